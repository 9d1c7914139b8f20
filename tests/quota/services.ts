// The cluster-wide quota mode's real services on loopback: redis-server (Debian's, tests/quota/install-deps.sh)
// and envoyproxy/ratelimit (built from its pinned Go module by tests/quota/build-ratelimit.sh), each on free
// ports, plus a black hole (accepts connections, never answers) for the "service hangs" case.
// `make quota-deps` installs both.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "../harness/net.ts";
import { ratelimitConfigFile, ratelimitEnv } from "../../deploy-scripts/render/quota-service.ts";

// Keep in step with tests/quota/build-ratelimit.sh.
export const RATELIMIT_VERSION = "v1.4.1-0.20260122083618-3fb702589d36";
// The plugin's default `quotas.service.domain`; the service's own configuration holds only this domain,
// every limit comes with the request (descriptor `limit` overrides).
export const QUOTA_DOMAIN = "llm-gateway";

function cacheRoot(): string {
  const explicit = process.env["LLM_GATEWAY_CACHE"];
  if (explicit) return explicit;
  const xdg = process.env["XDG_CACHE_HOME"];
  return join(xdg ? xdg : join(homedir(), ".cache"), "llm-gateway");
}

/** The ratelimit binary: $RATELIMIT_BIN or where build-ratelimit.sh caches it. */
export function ratelimitBinary(): string {
  const p = process.env["RATELIMIT_BIN"] ?? join(cacheRoot(), "ratelimit", RATELIMIT_VERSION, "ratelimit");
  if (!existsSync(p)) throw new Error(`ratelimit not found at ${p}: run \`make quota-deps\` (tests/quota/build-ratelimit.sh)`);
  return p;
}

interface Proc {
  child: ChildProcess;
  exited: () => boolean;
  log: () => string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

function startProc(bin: string, args: string[], env: NodeJS.ProcessEnv, logPath: string): Proc {
  const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  const take = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  let exited = false;
  child.on("exit", () => {
    exited = true;
    writeFileSync(logPath, out);
  });
  const onExit = (): void => {
    if (!exited && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  };
  process.once("exit", onExit);
  return {
    child,
    exited: () => exited,
    log: () => out,
    async kill(signal) {
      process.removeListener("exit", onExit);
      if (exited || child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        return;
      }
      const deadline = Date.now() + 5000;
      while (!exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (!exited) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          /* gone */
        }
        while (!exited) await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

// ---- redis ----------------------------------------------------------------------------------------

type Resp = string | number | null | Resp[] | Error;

// One command on its own connection, RESP2 (what redis-server 7 speaks by default).
function redisCommand(port: number, args: string[]): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const sock: Socket = createConnection({ host: "127.0.0.1", port });
    let buf = Buffer.alloc(0);
    sock.setTimeout(5000, () => sock.destroy(new Error("redis: timed out")));
    sock.on("error", reject);
    sock.on("connect", () => {
      sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(""));
    });
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf, 0);
      if (r !== null) {
        sock.end();
        resolve(r.value);
      }
    });
  });
}

function parseResp(b: Buffer, at: number): { value: Resp; end: number } | null {
  const eol = b.indexOf("\r\n", at);
  if (eol < 0) return null;
  const line = b.subarray(at + 1, eol).toString();
  switch (String.fromCharCode(b[at] ?? 0)) {
    case "+":
      return { value: line, end: eol + 2 };
    case "-":
      return { value: new Error(line), end: eol + 2 };
    case ":":
      return { value: Number(line), end: eol + 2 };
    case "$": {
      const n = Number(line);
      if (n < 0) return { value: null, end: eol + 2 };
      if (b.length < eol + 2 + n + 2) return null;
      return { value: b.subarray(eol + 2, eol + 2 + n).toString(), end: eol + 2 + n + 2 };
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return { value: null, end: eol + 2 };
      const items: Resp[] = [];
      let end = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parseResp(b, end);
        if (r === null) return null;
        items.push(r.value);
        end = r.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`redis: unexpected reply ${JSON.stringify(b.subarray(at, eol).toString())}`);
  }
}

export interface Redis {
  port: number;
  pid: number;
  address: string; // host:port, as ratelimit's REDIS_URL takes it
  command(...args: string[]): Promise<Resp>;
  /** Every key matching `pattern` with its integer value (ratelimit's counters). */
  counters(pattern: string): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<Redis> {
  const dir = mkdtempSync(join(tmpdir(), "llm-gw-redis-"));
  const port = await freePort();
  // No persistence: the counters live as long as the test.
  const proc = startProc(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"],
    process.env,
    join(dir, "redis.log"),
  );
  const command = async (...args: string[]): Promise<Resp> => {
    const r = await redisCommand(port, args);
    if (r instanceof Error) throw new Error(`redis ${args[0] ?? ""}: ${r.message}`);
    return r;
  };
  try {
    await waitFor(
      async () => {
        if (proc.exited()) throw new Error(`redis-server exited during start-up:\n${proc.log().slice(-2000)}`);
        return (await command("PING")) === "PONG";
      },
      10000,
      "redis-server",
    );
  } catch (e) {
    await proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    port,
    pid: proc.child.pid ?? -1,
    address: `127.0.0.1:${port}`,
    command,
    async counters(pattern) {
      const keys = (await command("KEYS", pattern)) as string[];
      const out = new Map<string, number>();
      for (const k of keys.sort()) out.set(k, Number(await command("GET", k)));
      return out;
    },
    async stop() {
      await proc.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- ratelimit ------------------------------------------------------------------------------------

export interface Ratelimit {
  grpcPort: number;
  pid: number;
  grpcAddress: string;
  httpPort: number;
  log(): string;
  /** Kills the process (SIGKILL): the "service down" case; also how the tests stop it. */
  stop(): Promise<void>;
}

export interface RatelimitOptions {
  redis: Redis;
  /** Fixed gRPC port (to start it again where Envoy's cluster points); default a free one. */
  grpcPort?: number;
  domain?: string;
}

export async function startRatelimit(opts: RatelimitOptions): Promise<Ratelimit> {
  const dir = mkdtempSync(join(tmpdir(), "llm-gw-ratelimit-"));
  // The environment and configuration file the deploy CLI gives the service in a cluster, with the
  // paths and ports moved here: RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config/*.yaml, one domain and no
  // descriptors (every limit comes with the request).
  const configDir = join(dir, "runtime", "ratelimit", "config");
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, "config.yaml"), ratelimitConfigFile(opts.domain ?? QUOTA_DOMAIN));
  const grpcPort = opts.grpcPort ?? (await freePort());
  const httpPort = await freePort();
  const debugPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...Object.fromEntries(ratelimitEnv(opts.redis.address).map((e) => [e.name, e.value])),
    RUNTIME_ROOT: join(dir, "runtime"),
    RUNTIME_SUBDIRECTORY: "ratelimit",
    LOG_LEVEL: "warn",
    // Its stats would go to its log every 10 s; the tests read Redis instead.
    DISABLE_STATS: "true",
    // A failing Redis answers every call with an error quickly rather than after the 10 s default.
    REDIS_TIMEOUT: "2s",
    HOST: "127.0.0.1",
    PORT: String(httpPort),
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: String(grpcPort),
    DEBUG_HOST: "127.0.0.1",
    DEBUG_PORT: String(debugPort),
  };
  const proc = startProc(ratelimitBinary(), [], env, join(dir, "ratelimit.log"));
  const stop = async (): Promise<void> => {
    // Its SIGTERM handler waits on a graceful gRPC/HTTP shutdown that can take seconds; it keeps no
    // state of its own (Redis does), so a kill loses nothing.
    await proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (proc.exited()) throw new Error(`ratelimit exited during start-up:\n${proc.log().slice(-4000)}`);
        const r = await fetch(`http://127.0.0.1:${httpPort}/healthcheck`).catch(() => null);
        if (r === null || r.status !== 200) return false;
        // The gRPC listener opens beside the HTTP one; wait for it too.
        return await canConnect(grpcPort);
      },
      20000,
      "ratelimit",
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { grpcPort, pid: proc.child.pid ?? -1, grpcAddress: `127.0.0.1:${grpcPort}`, httpPort, log: proc.log, stop };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

export interface QuotaServices {
  redis: Redis;
  ratelimit: Ratelimit;
  stop(): Promise<void>;
}

export async function startQuotaServices(opts: Omit<RatelimitOptions, "redis"> = {}): Promise<QuotaServices> {
  const redis = await startRedis();
  try {
    const ratelimit = await startRatelimit({ ...opts, redis });
    return {
      redis,
      ratelimit,
      async stop() {
        await ratelimit.stop();
        await redis.stop();
      },
    };
  } catch (e) {
    await redis.stop();
    throw e;
  }
}

/** ratelimit's Redis key of one counter: `<domain>_<key>_<value>_..._<window start, epoch s>`. */
export function counterKey(entries: [string, string][], windowSeconds: number, nowMs = Date.now(), domain = QUOTA_DOMAIN): string {
  const start = Math.floor(nowMs / 1000 / windowSeconds) * windowSeconds;
  return `${domain}_${entries.map(([k, v]) => `${k}_${v}_`).join("")}${start}`;
}

// ---- a service that never answers -------------------------------------------------------------------

export interface BlackHole {
  port: number;
  connections(): number;
  stop(): Promise<void>;
}

/** Accepts TCP connections and reads them, never writing a byte: a hung service. */
export async function startBlackHole(port?: number): Promise<BlackHole> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createServer((s) => {
    count++;
    sockets.add(s);
    s.on("data", () => {});
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  const p = port ?? (await freePort());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(p, "127.0.0.1", () => resolve());
  });
  return {
    port: p,
    connections: () => count,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
