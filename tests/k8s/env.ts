// A real Kubernetes API server for tests: etcd + kube-apiserver on loopback, our CRDs installed.
//
// startKubeEnv() starts both servers on free 127.0.0.1 ports with throw-away state, waits until the
// API server is ready and every CRD in tests/k8s/crds/ is Established and discoverable, and writes a
// kubeconfig (admin token, the server's self-generated CA). Nothing else runs: no controller-manager,
// scheduler or kubelet, so Deployments never get Pods and no garbage collection happens; llmaz's
// controller is stood in for by fake-llmaz-controller.ts.
//
// Binaries: kube-apiserver from tests/k8s/build-kube-apiserver.sh (or $KUBE_APISERVER_BIN), etcd from
// Debian's etcd-server via tests/k8s/install-deps.sh (or $ETCD_BIN).
//
// Cleanup: stop() kills both process groups and removes the temp dirs. Should a test forget stop() or
// die, the process 'exit' handler and SIGINT/SIGTERM/SIGHUP handlers do the same, and a small bash
// watchdog does it when this Node process goes away without a word (even SIGKILL).
//
// Node built-ins only, on purpose: this file must work before anything else of ours does.

import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, mkdir, open, readdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { request, type RequestOptions } from "node:https";
import { createServer, type Socket } from "node:net";
import { homedir, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Keep in step with KUBE_VERSION in tests/k8s/build-kube-apiserver.sh. */
export const DEFAULT_KUBE_VERSION = "v1.36.5";

/** Directory of the CRDs this env installs. */
export const CRD_DIR = join(dirname(fileURLToPath(import.meta.url)), "crds");

export interface KubeEnv {
  /** kubeconfig with one context (cluster + admin token); load it with KubeConfig.loadFromFile. */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Bearer token of a system:masters user. */
  readonly token: string;
  /** PEM bundle that verifies the server's certificate. */
  readonly caCert: string;
  /** Where etcd.log and kube-apiserver.log are written (removed by stop()). */
  readonly logDir: string;
  /** Milliseconds from the call to startKubeEnv until ready with CRDs installed. */
  readonly startMs: number;
  /** Kills both servers and removes every temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface KubeEnvOptions {
  /** Path of kube-apiserver; default $KUBE_APISERVER_BIN or the build script's cache path. */
  kubeApiserverPath?: string;
  /** Path of etcd; default $ETCD_BIN or `etcd` on PATH. */
  etcdPath?: string;
  /** CRD manifests to install (every *.yaml in it); default tests/k8s/crds. */
  crdDir?: string;
  /** Give up starting after this long; default 90 s (2 shared cores in CI). */
  startTimeoutMs?: number;
  /** Progress messages; default silent. */
  log?: (message: string) => void;
}

const ADMIN_USER = "llm-gateway-test-admin";
const CRD_FIELD_MANAGER = "llm-gateway-test-env";
const POLL_MS = 100;
const REQUEST_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 3; // a free port can be taken between our probe and the server's bind
const LOG_TAIL_BYTES = 4_000;
const SERVICE_CIDR = "10.96.0.0/16"; // cluster IPs are only allocated, never routed: no server runs there

// ---------------------------------------------------------------------------------------------------
// Process bookkeeping and last-resort cleanup

interface Running {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logPath: string;
  /** Resolves with a description once the process has exited. */
  readonly exited: Promise<string>;
  hasExited: boolean;
}

interface LiveEnv {
  readonly processes: Running[];
  readonly dirs: string[];
  /** Kills the servers and removes dirs if this Node process dies; see WATCHDOG. */
  readonly watchdog: ChildProcess;
}

const liveEnvs = new Set<LiveEnv>();
let exitHooksInstalled = false;

function killGroup(p: Running): void {
  const pid = p.child.pid;
  if (pid === undefined || p.hasExited) return;
  try {
    // Spawned detached, the server leads its own process group; anything it forked goes with it.
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function killWatchdog(env: LiveEnv): void {
  try {
    env.watchdog.kill("SIGKILL");
  } catch {
    // already gone
  }
}

function cleanupSync(env: LiveEnv): void {
  killWatchdog(env);
  for (const p of env.processes) killGroup(p);
  for (const dir of env.dirs) rmSync(dir, { recursive: true, force: true });
  liveEnvs.delete(env);
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", () => {
    for (const env of [...liveEnvs]) cleanupSync(env);
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      for (const env of [...liveEnvs]) cleanupSync(env);
      process.removeListener(signal, onSignal);
      // Re-raise so the default action (or another listener) still ends the process.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

// The last resort when this Node process dies without running its exit handler (SIGKILL, OOM): the
// watchdog reads server pids from a pipe whose other end only we hold; EOF means we are gone, and it
// kills those process groups and removes the env's dirs ("$@"). stop() and the exit handler kill the
// watchdog first, so it does nothing then. The servers are our own children (not the watchdog's) so
// that we reap them and no zombie is left behind.
const WATCHDOG = `
pids=()
while read -r pid; do pids+=("$pid"); done
for pid in "\${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
rm -rf -- "$@"
`;

function startWatchdog(dirs: string[]): ChildProcess {
  const watchdog = spawn("bash", ["-c", WATCHDOG, "llmgw-kube-watchdog", ...dirs], {
    detached: true, // not in our process group: a Ctrl-C must reach us, not it
    stdio: ["pipe", "ignore", "ignore"],
  });
  // Neither it nor our end of its pipe may keep this process alive: a test that forgot stop() should
  // still end, and the exit handler then cleans up.
  watchdog.unref();
  (watchdog.stdin as Socket | null)?.unref();
  // Losing the watchdog (no bash, killed) only loses the last resort; it must not crash the tests.
  watchdog.on("error", () => undefined);
  watchdog.stdin?.on("error", () => undefined);
  return watchdog;
}

async function startProcess(name: string, argv: string[], logPath: string, watchdog: ChildProcess): Promise<Running> {
  const log = await open(logPath, "a");
  const [command, ...args] = argv;
  if (command === undefined) throw new Error(`${name}: empty command`);
  const child = spawn(command, args, { detached: true, stdio: ["ignore", log.fd, log.fd] });
  await log.close(); // the child has its own copy of the descriptor
  let running: Running | undefined;
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => {
      if (running !== undefined) running.hasExited = true;
      resolve(signal !== null ? `killed by ${signal}` : `exited with code ${String(code)}`);
    });
    child.once("error", (err) => {
      if (running !== undefined) running.hasExited = true;
      resolve(`failed to start: ${err.message}`);
    });
  });
  child.unref();
  if (child.pid !== undefined) watchdog.stdin?.write(`${child.pid}\n`);
  running = { name, child, logPath, exited, hasExited: false };
  return running;
}

async function logTail(path: string): Promise<string> {
  try {
    const text = await readFile(path, "utf8");
    return text.length > LOG_TAIL_BYTES ? `...${text.slice(-LOG_TAIL_BYTES)}` : text;
  } catch {
    return "(no log)";
  }
}

class ProcessExitedError extends Error {
  constructor(
    readonly processName: string,
    readonly logText: string,
    how: string,
  ) {
    super(`${processName} ${how} during start-up; log tail:\n${logText}`);
  }
}

/** Rejects as soon as any of the processes exits; the returned cancel() detaches it. */
function watchForExit(processes: Running[]): { promise: Promise<never>; cancel: () => void } {
  let cancelled = false;
  const promise = new Promise<never>((_, reject) => {
    for (const p of processes) {
      void p.exited.then(async (how) => {
        if (cancelled) return;
        reject(new ProcessExitedError(p.name, await logTail(p.logPath), how));
      });
    }
  });
  promise.catch(() => undefined); // observed via race(); avoid an unhandled rejection after cancel
  return { promise, cancel: () => void (cancelled = true) };
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

function cacheRoot(): string {
  const explicit = process.env["LLM_GATEWAY_CACHE"];
  if (explicit) return explicit;
  const xdg = process.env["XDG_CACHE_HOME"];
  return join(xdg ? xdg : join(homedir(), ".cache"), "llm-gateway");
}

/** The path build-kube-apiserver.sh caches the binary at (or $KUBE_APISERVER_BIN). */
export function kubeApiserverPath(version: string = process.env["KUBE_VERSION"] ?? DEFAULT_KUBE_VERSION): string {
  return process.env["KUBE_APISERVER_BIN"] ?? join(cacheRoot(), "kube-apiserver", version, "kube-apiserver");
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

const SHM = "/dev/shm";
const SHM_NEEDED_BYTES = 512 * 1024 * 1024;

async function shmHasRoom(): Promise<boolean> {
  try {
    const fs = await statfs(SHM);
    return fs.bavail * fs.bsize >= SHM_NEEDED_BYTES;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface HttpResult {
  status: number;
  body: string;
}

interface ApiTarget {
  server: string;
  token: string;
  ca: string;
}

function httpsRequest(target: ApiTarget, method: string, path: string, body?: string, contentType?: string): Promise<HttpResult> {
  const url = new URL(path, target.server);
  const headers: Record<string, string> = { Authorization: `Bearer ${target.token}`, Accept: "application/json" };
  if (body !== undefined) {
    headers["Content-Type"] = contentType ?? "application/json";
    headers["Content-Length"] = String(Buffer.byteLength(body));
  }
  const options: RequestOptions = {
    method,
    hostname: url.hostname,
    port: url.port,
    path: `${url.pathname}${url.search}`,
    headers,
    ca: target.ca,
    timeout: REQUEST_TIMEOUT_MS,
    agent: false,
  };
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** Polls check() every POLL_MS until it returns true; throws after the deadline with the last reason. */
async function pollUntil(what: string, deadline: number, check: () => Promise<true | string>): Promise<void> {
  let last = "not checked yet";
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result === true) return;
      last = result;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(POLL_MS);
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}

interface CrdInfo {
  name: string;
  group: string;
  versions: string[];
  plural: string;
}

interface CrdCondition {
  type?: string;
  status?: string;
  message?: string;
}

interface CrdJson {
  metadata?: { name?: string };
  spec?: { group?: string; names?: { plural?: string }; versions?: { name?: string; served?: boolean }[] };
  status?: { conditions?: CrdCondition[] };
}

function crdInfo(json: CrdJson, file: string): CrdInfo {
  const name = json.metadata?.name;
  const group = json.spec?.group;
  const plural = json.spec?.names?.plural;
  const versions = (json.spec?.versions ?? []).filter((v) => v.served !== false).map((v) => v.name ?? "");
  if (!name || !group || !plural || versions.length === 0 || versions.includes("")) {
    throw new Error(`${file}: the server returned a CRD without name/group/plural/versions`);
  }
  return { name, group, plural, versions };
}

// ---------------------------------------------------------------------------------------------------
// Start-up

function kubeconfigJson(server: string, ca: string, token: string): string {
  // JSON is YAML, and both kubectl and client-node read it.
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "llm-gateway-test", cluster: { server, "certificate-authority-data": Buffer.from(ca).toString("base64") } }],
    users: [{ name: ADMIN_USER, user: { token } }],
    contexts: [{ name: "llm-gateway-test", context: { cluster: "llm-gateway-test", user: ADMIN_USER, namespace: "default" } }],
    "current-context": "llm-gateway-test",
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

async function installCrds(target: ApiTarget, crdDir: string, deadline: number): Promise<CrdInfo[]> {
  const files = (await readdir(crdDir)).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml")).sort();
  if (files.length === 0) throw new Error(`no CRD manifests in ${crdDir}`);
  const crds: CrdInfo[] = [];
  // The API server reads YAML request bodies itself, which keeps a YAML parser out of this file.
  await Promise.all(
    files.map(async (file) => {
      const yaml = await readFile(join(crdDir, file), "utf8");
      const res = await httpsRequest(
        target,
        "POST",
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions?fieldManager=${CRD_FIELD_MANAGER}&fieldValidation=Strict`,
        yaml,
        "application/yaml",
      );
      if (res.status !== 201) throw new Error(`installing ${file}: HTTP ${res.status}: ${res.body}`);
      crds.push(crdInfo(JSON.parse(res.body) as CrdJson, file));
    }),
  );
  await Promise.all(
    crds.map(async (crd) => {
      await pollUntil(`CRD ${crd.name} Established`, deadline, async () => {
        const res = await httpsRequest(target, "GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.name}`);
        if (res.status !== 200) return `HTTP ${res.status}`;
        const conditions = (JSON.parse(res.body) as CrdJson).status?.conditions ?? [];
        const established = conditions.find((c) => c.type === "Established");
        if (established?.status === "True") return true;
        const names = conditions.find((c) => c.type === "NamesAccepted");
        return `Established=${established?.status ?? "absent"} NamesAccepted=${names?.status ?? "absent"} ${names?.message ?? ""}`;
      });
      // Clients resolve kinds through discovery, which is updated a little after Established.
      for (const version of crd.versions) {
        await pollUntil(`${crd.plural}.${crd.group}/${version} in discovery`, deadline, async () => {
          const res = await httpsRequest(target, "GET", `/apis/${crd.group}/${version}`);
          if (res.status !== 200) return `HTTP ${res.status}`;
          const resources = (JSON.parse(res.body) as { resources?: { name?: string }[] }).resources ?? [];
          return resources.some((r) => r.name === crd.plural) ? true : "not listed yet";
        });
      }
    }),
  );
  return crds;
}

async function startOnce(
  opts: Required<Pick<KubeEnvOptions, "kubeApiserverPath" | "etcdPath" | "crdDir" | "startTimeoutMs">>,
  log: (message: string) => void,
  t0: number,
): Promise<KubeEnv> {
  const deadline = Date.now() + opts.startTimeoutMs;
  const root = await mkdtemp(join(tmpdir(), "llmgw-kube-"));
  // etcd fsyncs every write; on tmpfs that costs nothing. Its WAL preallocates 64 MB, so only where
  // there is room (a container's /dev/shm is often 64 MB in all).
  const etcdData = (await shmHasRoom()) ? await mkdtemp(join(SHM, "llmgw-etcd-")) : join(root, "etcd");
  const dirs = [root, etcdData];
  const env: LiveEnv = { processes: [], dirs, watchdog: startWatchdog(dirs) };
  liveEnvs.add(env);
  installExitHooks();

  try {
    const certDir = join(root, "certs");
    await mkdir(certDir, { recursive: true });
    const token = randomBytes(24).toString("hex");
    const tokenFile = join(root, "tokens.csv");
    // token,user,uid,"groups"
    await writeFile(tokenFile, `${token},${ADMIN_USER},${ADMIN_USER},"system:masters"\n`, { mode: 0o600 });
    const { publicKey, privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    const saPub = join(root, "sa.pub");
    const saKey = join(root, "sa.key");
    await writeFile(saPub, publicKey);
    await writeFile(saKey, privateKey, { mode: 0o600 });

    const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const server = `https://127.0.0.1:${apiPort}`;

    const etcd = await startProcess(
      "etcd",
      [
        opts.etcdPath,
        "--name=llmgw-test",
        `--data-dir=${etcdData}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=llmgw-test=${peerUrl}`,
        "--initial-cluster-state=new",
        "--logger=zap",
        "--log-level=warn",
      ],
      join(root, "etcd.log"),
      env.watchdog,
    );
    env.processes.push(etcd);

    // Started together with etcd: the API server retries its etcd connection, which saves a round of
    // waiting for etcd's health first.
    const apiserver = await startProcess(
      "kube-apiserver",
      [
        opts.kubeApiserverPath,
        `--etcd-servers=${etcdUrl}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        // Self-signed serving cert (CA + cert, SANs include 127.0.0.1) generated into certDir.
        `--cert-dir=${certDir}`,
        `--token-auth-file=${tokenFile}`,
        "--authorization-mode=RBAC",
        `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        // No controller-manager creates the default ServiceAccount, so this plugin would reject Pods.
        "--disable-admission-plugins=ServiceAccount",
        // No Endpoints for the kubernetes Service, no flow-control bootstrap: less start-up work.
        "--endpoint-reconciler-type=none",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=0",
      ],
      join(root, "kube-apiserver.log"),
      env.watchdog,
    );
    env.processes.push(apiserver);

    const exitWatch = watchForExit(env.processes);
    const raced = <T>(p: Promise<T>): Promise<T> => Promise.race([p, exitWatch.promise]);
    try {
      const caPath = join(certDir, "apiserver.crt");
      await raced(
        pollUntil("the self-generated serving certificate", deadline, async () =>
          existsSync(caPath) && (await readFile(caPath, "utf8")).includes("END CERTIFICATE") ? true : "not written yet",
        ),
      );
      // apiserver.crt holds the serving cert followed by the CA that signed it.
      const ca = await readFile(caPath, "utf8");
      const target: ApiTarget = { server, token, ca };
      await raced(
        pollUntil("/readyz", deadline, async () => {
          const res = await httpsRequest(target, "GET", "/readyz");
          return res.status === 200
            ? true
            : `HTTP ${res.status}: ${res.body
                .split("\n")
                .filter((l) => l.startsWith("[-]"))
                .join(" ")}`;
        }),
      );
      log(`kube-apiserver ready after ${Date.now() - t0} ms`);
      await raced(
        pollUntil("namespace default", deadline, async () => {
          const res = await httpsRequest(target, "GET", "/api/v1/namespaces/default");
          return res.status === 200 ? true : `HTTP ${res.status}`;
        }),
      );
      const crds = await raced(installCrds(target, opts.crdDir, deadline));
      log(`${crds.length} CRDs established after ${Date.now() - t0} ms`);

      const kubeconfigPath = join(root, "kubeconfig");
      await writeFile(kubeconfigPath, kubeconfigJson(server, ca, token), { mode: 0o600 });
      exitWatch.cancel();

      let stopping: Promise<void> | undefined;
      const kubeEnv: KubeEnv = {
        kubeconfigPath,
        server,
        token,
        caCert: ca,
        logDir: root,
        startMs: Date.now() - t0,
        stop: () => (stopping ??= stopEnv(env)),
      };
      return kubeEnv;
    } finally {
      exitWatch.cancel();
    }
  } catch (err) {
    await stopEnv(env);
    throw err;
  }
}

async function stopEnv(env: LiveEnv): Promise<void> {
  // SIGKILL straight away: all state is thrown away, and a graceful kube-apiserver/etcd shutdown takes
  // about 2 s each.
  killWatchdog(env);
  for (const p of env.processes) killGroup(p);
  await Promise.all(
    env.processes.map(
      (p) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5_000);
          void p.exited.then(() => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  await Promise.all(env.dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  liveEnvs.delete(env);
}

/**
 * Starts etcd and kube-apiserver on loopback, installs the CRDs and returns once they are usable.
 * Always call stop() (in an after/finally); process exit and signals clean up too.
 */
export async function startKubeEnv(options: KubeEnvOptions = {}): Promise<KubeEnv> {
  const t0 = Date.now();
  const log = options.log ?? ((): void => undefined);
  const kubeApiserver = options.kubeApiserverPath ?? kubeApiserverPath();
  if (!existsSync(kubeApiserver)) {
    throw new Error(`kube-apiserver not found at ${kubeApiserver}: run tests/k8s/build-kube-apiserver.sh (or set KUBE_APISERVER_BIN)`);
  }
  const etcd = options.etcdPath ?? process.env["ETCD_BIN"] ?? findOnPath("etcd");
  if (etcd === undefined || !existsSync(etcd)) {
    throw new Error("etcd not found: run tests/k8s/install-deps.sh (Debian package etcd-server) or set ETCD_BIN");
  }
  const resolved = {
    kubeApiserverPath: kubeApiserver,
    etcdPath: etcd,
    crdDir: options.crdDir ?? CRD_DIR,
    startTimeoutMs: options.startTimeoutMs ?? 90_000,
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(resolved, log, t0);
    } catch (err) {
      const portTaken = err instanceof ProcessExitedError && /address already in use/i.test(err.logText);
      if (!portTaken || attempt >= START_ATTEMPTS) throw err;
      log(`${err.processName} lost its port to someone else; retrying (${attempt}/${START_ATTEMPTS})`);
    }
  }
}
