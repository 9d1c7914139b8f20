// Test harness for the OCI push tests: a real CNCF distribution registry (Debian's docker-registry)
// on a free loopback port, optional htpasswd or token auth, a token service, fake HTTP servers, and
// a process list that is emptied on teardown and on exit, whatever happened.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, createPrivateKey, sign, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../deploy-scripts/oci/cli.ts";

export const REGISTRY_BIN = "/usr/bin/docker-registry";
export const INSTALL_HINT = "run tests/oci/install-deps.sh (as root) first";

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
});

export function requireTool(path: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: ${INSTALL_HINT}`);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `llm-gateway-${prefix}-`));
}

/** A free loopback port (bound then released; the registry binds it right after). */
export async function freePort(): Promise<number> {
  const server: TcpServer = createTcpServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A fake plugin: wasm magic + version, then deterministic pseudo-random bytes (so gzip has work). */
export function fakeWasm(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).copy(out, 0);
  let block = createHash("sha256").update(seed).digest();
  for (let off = 8; off < size; off += block.length) {
    block = createHash("sha256").update(block).digest();
    // Half the bytes repeat, so the layer really compresses.
    block.copy(out, off, 0, Math.min(16, size - off));
    if (off + 16 < size) out.fill(0x41, off + 16, Math.min(off + 32, size));
  }
  return out;
}

export interface CliResult {
  code: number;
  out: string[];
  err: string[];
}

/** Runs the CLI in-process (same code path as `tsx deploy-scripts/oci/cli.ts`). */
export async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, env, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

export type RegistryAuth =
  | { kind: "none" }
  | { kind: "htpasswd"; user: string; password: string }
  | { kind: "token"; realm: string; service: string; issuer: string; certPem: string };

export interface Registry {
  host: string; // 127.0.0.1:PORT
  dir: string;
  stop: () => Promise<void>;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

async function waitForHttp(url: string, child: ChildProcess, logPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`registry exited with ${child.exitCode}: ${readFileSync(logPath, "utf8").slice(-2000)}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`registry at ${url} not ready after ${timeoutMs} ms: ${readFileSync(logPath, "utf8").slice(-2000)}`);
}

/** Starts docker-registry (distribution 2.8) with filesystem storage in a temp dir. */
export async function startRegistry(auth: RegistryAuth): Promise<Registry> {
  requireTool(REGISTRY_BIN);
  const dir = tempDir("registry");
  const port = await freePort();
  const lines = [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "data")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    "  secret: test-only-upload-state-secret",
  ];
  if (auth.kind === "htpasswd") {
    const htpasswd = execFileSync("htpasswd", ["-Bbn", auth.user, auth.password], { encoding: "utf8" });
    writeFileSync(join(dir, "htpasswd"), htpasswd);
    lines.push("auth:", "  htpasswd:", "    realm: test-realm", `    path: ${join(dir, "htpasswd")}`);
  } else if (auth.kind === "token") {
    writeFileSync(join(dir, "token-ca.pem"), auth.certPem);
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${auth.realm}`,
      `    service: ${auth.service}`,
      `    issuer: ${auth.issuer}`,
      `    rootcertbundle: ${join(dir, "token-ca.pem")}`,
    );
  }
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "config.yml"), lines.join("\n") + "\n");
  const logPath = join(dir, "registry.log");
  writeFileSync(logPath, "");
  const child = spawn(REGISTRY_BIN, ["serve", join(dir, "config.yml")], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const append = (chunk: Buffer): void => writeFileSync(logPath, chunk, { flag: "a" });
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  const host = `127.0.0.1:${port}`;
  try {
    await waitForHttp(`http://${host}/v2/`, child, logPath, 15_000);
  } catch (err) {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host,
    dir,
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface FakeServer {
  host: string;
  requests: string[];
  stop: () => Promise<void>;
}

/** An HTTP server on loopback answering with `handler`; records "METHOD path" lines. */
export async function startFakeHttp(handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): Promise<FakeServer> {
  const requests: string[] = [];
  const server: Server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests.push(`${req.method ?? "?"} ${req.url ?? "?"}`);
      handler(req, res, Buffer.concat(chunks));
    });
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A TCP server that answers every connection with bytes that are not HTTP, then closes. */
export async function startJunkTcp(): Promise<FakeServer> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.end("SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 not http at all\r\n\r\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    requests: [],
    // The client may keep its half of a junk connection open; close() would wait for it forever.
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A DOCKER_CONFIG directory holding `auths[registry].auth` = base64(user:password). */
export function dockerConfig(entries: Record<string, { user: string; password: string }>): string {
  const dir = tempDir("docker-config");
  const auths: Record<string, { auth: string }> = {};
  for (const [registry, c] of Object.entries(entries)) {
    auths[registry] = { auth: Buffer.from(`${c.user}:${c.password}`).toString("base64") };
  }
  writeFileSync(join(dir, "config.json"), JSON.stringify({ auths }));
  return dir;
}

/** skopeo copy docker://HOST/NAME:TAG oci:DIR:TAG, the independent client. */
export function skopeoPull(ref: string, ociDir: string, tag: string, creds?: { user: string; password: string }): void {
  const policyDir = tempDir("skopeo-policy");
  const policy = join(policyDir, "policy.json");
  writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const args = ["--policy", policy, "copy", "--src-tls-verify=false"];
  if (creds !== undefined) args.push("--src-creds", `${creds.user}:${creds.password}`);
  else args.push("--src-no-creds");
  args.push(`docker://${ref}`, `oci:${ociDir}:${tag}`);
  try {
    execFileSync("skopeo", args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, REGISTRY_AUTH_FILE: join(policyDir, "auth.json") },
    });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`skopeo copy failed: ${e.stderr?.toString() ?? String(err)}`);
  } finally {
    rmSync(policyDir, { recursive: true, force: true });
  }
}

// ---- token service for a Bearer-auth registry ------------------------------------------------

export interface TokenService extends FakeServer {
  realm: string;
  service: string;
  issuer: string;
  certPem: string;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

/**
 * A minimal token service (distribution "token authentication" spec): Basic credentials in, an
 * ES256 JWT out, signed by a throwaway self-signed certificate sent in the x5c header, which the
 * registry trusts through rootcertbundle. Anonymous callers get a token with no access (as public
 * registries do); wrong credentials get 401.
 */
export async function startTokenService(user: string, password: string): Promise<TokenService> {
  const dir = tempDir("token-ca");
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=llm-gateway test token issuer",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
  } catch (err) {
    throw new Error(`openssl could not make a test certificate (${INSTALL_HINT}): ${String(err)}`);
  }
  const certPem = readFileSync(join(dir, "cert.pem"), "utf8");
  const key = createPrivateKey(readFileSync(join(dir, "key.pem")));
  rmSync(dir, { recursive: true, force: true });
  const x5c = new X509Certificate(certPem).raw.toString("base64");
  const service = "llm-gateway-test-registry";
  const issuer = "llm-gateway-test-issuer";
  const expected = "Basic " + Buffer.from(`${user}:${password}`).toString("base64");

  const fake = await startFakeHttp((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const authz = req.headers["authorization"];
    if (authz !== undefined && authz !== expected) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "invalid username or password" }] }));
      return;
    }
    const access =
      authz === undefined
        ? []
        : url.searchParams.getAll("scope").flatMap((scope) => {
            const m = /^repository:([^:]+):(.+)$/.exec(scope);
            return m === null || m[1] === undefined || m[2] === undefined
              ? []
              : [{ type: "repository", name: m[1], actions: m[2].split(",") }];
          });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "ES256", x5c: [x5c] };
    const claims = {
      iss: issuer,
      sub: authz === undefined ? "" : user,
      aud: url.searchParams.get("service") ?? "",
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: createHash("sha256").update(`${now}${Math.random()}`).digest("hex").slice(0, 16),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), { key, dsaEncoding: "ieee-p1363" });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token: `${signingInput}.${b64url(signature)}`, expires_in: 300 }));
  });
  return { ...fake, realm: `http://${fake.host}/token`, service, issuer, certPem };
}
