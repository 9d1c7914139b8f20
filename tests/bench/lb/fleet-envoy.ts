// Envoy in front of a fleet: each model's cluster holds every replica of the model, balanced by one of
// Envoy's policies. Every piece comes from deploy-scripts/render/envoy/, the renderer of the upstream-Envoy
// deployment (listener, the plugin's filters, stats, and for prefix affinity the model cluster with
// consistent hashing under a load bound and outlier detection, the route's hash policy on the plugin's header
// and its retry on another replica), so the benchmark and the end-to-end tests run the configuration users
// get. For round-robin and least-request only lb_policy differs (same endpoints, outlier detection and
// retries), so the policies are compared on the balancer alone.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  hashBalanceFactor,
  prefixHashPolicy,
  replicaOutlierDetection,
  replicaRetryPolicy,
} from "../../../deploy-scripts/render/envoy/affinity.ts";
import { modelCluster } from "../../../deploy-scripts/render/envoy/clusters.ts";
import { DEFAULT_BUFFER_LIMIT, listener } from "../../../deploy-scripts/render/envoy/listener.ts";
import { modelClusterName } from "../../../deploy-scripts/render/envoy/names.ts";
import { httpFilters } from "../../../deploy-scripts/render/envoy/plugin-filters.ts";
import { modelRoute, noRoute } from "../../../deploy-scripts/render/envoy/routes.ts";
import { statsConfig } from "../../../deploy-scripts/render/envoy/stats.ts";
import { envoyBinary, WASM_PATH } from "../../harness/envoy.ts";
import { freePort, waitFor } from "../../harness/net.ts";

/** The plugin's prefix-key header (prefixAffinity.header's default). */
export const PREFIX_KEY_HEADER = "x-llm-gateway-prefix-key";

/** The plugin's load-aware picking header (prefixAffinity.loadAware.header's default). */
export const PICKED_HOST_HEADER = "x-gateway-destination-endpoint";

/** Envoy's balancers, and PLUGIN_PICK: the plugin names the replica (override-host, the ring as fallback). */
export type LbPolicy = "ROUND_ROBIN" | "LEAST_REQUEST" | "RING_HASH" | "PLUGIN_PICK";

const hashes = (p: LbPolicy): boolean => p === "RING_HASH" || p === "PLUGIN_PICK";

export interface Replica {
  host: string;
  port: number;
}

export interface FleetModel {
  model: string;
  replicas: Replica[];
}

export interface FleetLayout {
  models: FleetModel[];
  policy: LbPolicy;
  /** RING_HASH: the load factor (1.25: no replica above 1.25 × the average active requests). */
  loadFactor?: number;
  pluginConfig: unknown;
  listenPort: number;
  adminPort: number;
  accessLogPath: string;
  wasmPath?: string;
  routingHeader?: string;
}

export function fleetCluster(m: FleetModel, l: Pick<FleetLayout, "policy" | "loadFactor">): Record<string, unknown> {
  const [first, ...more] = m.replicas;
  if (first === undefined) throw new Error(`fleet: ${m.model} has no replicas`);
  const cluster = modelCluster({
    name: modelClusterName(m.model),
    model: m.model,
    type: "STATIC",
    address: first.host,
    port: first.port,
    bufferLimitBytes: DEFAULT_BUFFER_LIMIT,
    moreEndpoints: more.map((r) => ({ address: r.host, port: r.port })),
    balancing: {
      hashBalanceFactor: hashBalanceFactor(l.loadFactor ?? 1.25),
      ...(l.policy === "PLUGIN_PICK" ? { pickedHostHeader: PICKED_HOST_HEADER } : {}),
    },
  });
  if (hashes(l.policy)) return cluster;
  // The same cluster under another balancer: no ring, no load bound.
  const { common_lb_config: _unused, ...rest } = cluster;
  return { ...rest, lb_policy: l.policy, outlier_detection: replicaOutlierDetection() };
}

export function fleetRoute(m: FleetModel, l: Pick<FleetLayout, "policy" | "routingHeader">): Record<string, unknown> {
  return modelRoute({
    name: `ai-route-${m.model}.internal`,
    header: l.routingHeader ?? "x-higress-llm-model",
    value: m.model,
    cluster: modelClusterName(m.model),
    timeout: "300s",
    retryPolicy: replicaRetryPolicy(),
    ...(hashes(l.policy) ? { hashPolicy: prefixHashPolicy(PREFIX_KEY_HEADER) } : {}),
  });
}

export function fleetBootstrap(l: FleetLayout): Record<string, unknown> {
  const routes = [...l.models.map((m) => fleetRoute(m, l)), noRoute()];
  return {
    node: { id: "llm-gateway-fleet", cluster: "llm-gateway" },
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: l.adminPort } } },
    stats_config: statsConfig(),
    stats_flush_interval: "1s",
    static_resources: {
      listeners: [
        listener({
          name: "llm-gateway",
          address: "127.0.0.1",
          port: l.listenPort,
          bufferLimitBytes: DEFAULT_BUFFER_LIMIT,
          accessLog: { path: l.accessLogPath },
          domains: ["*"],
          routes,
          httpFilters: httpFilters({
            pluginConfig: l.pluginConfig,
            code: { local: { filename: l.wasmPath ?? WASM_PATH } },
            withPlugin: true,
            attemptStage: false,
          }),
        }),
      ],
      clusters: l.models.map((m) => fleetCluster(m, l)),
    },
  };
}

export interface FleetGateway {
  url: string;
  adminUrl: string;
  pid: number;
  layout: FleetLayout;
  log(): string;
  stop(): Promise<void>;
}

export type FleetGatewayOptions = Omit<FleetLayout, "listenPort" | "adminPort" | "accessLogPath"> & {
  /** Default: free ports. */
  listenPort?: number;
  adminPort?: number;
  concurrency?: number;
  cpus?: string;
};

/** Starts Envoy with the fleet bootstrap; resolves once its listener answers. */
export async function startFleetGateway(opts: FleetGatewayOptions): Promise<FleetGateway> {
  const workDir = mkdtempSync(join(tmpdir(), "llm-gw-fleet-"));
  const layout: FleetLayout = {
    ...opts,
    listenPort: opts.listenPort ?? (await freePort()),
    adminPort: opts.adminPort ?? (await freePort()),
    accessLogPath: join(workDir, "access.log"),
  };
  const configPath = join(workDir, "envoy.yaml");
  writeFileSync(configPath, stringify(fleetBootstrap(layout)));
  const logPath = join(workDir, "envoy.log");
  const args = [
    "-c",
    configPath,
    "--disable-hot-restart",
    "--concurrency",
    String(opts.concurrency ?? 1),
    "--log-level",
    "warn",
    "--log-path",
    logPath,
  ];
  const child: ChildProcess =
    opts.cpus !== undefined
      ? spawn("taskset", ["-c", opts.cpus, envoyBinary(), ...args], { stdio: ["ignore", "ignore", "pipe"], detached: true })
      : spawn(envoyBinary(), args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  child.on("exit", () => (exited = true));
  const readLog = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "") + stderr;
  const adminUrl = `http://127.0.0.1:${layout.adminPort}`;
  const kill = (sig: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      /* gone */
    }
  };
  const onExit = (): void => kill("SIGKILL");
  process.once("exit", onExit);
  const stop = async (): Promise<void> => {
    process.removeListener("exit", onExit);
    if (!exited) {
      kill("SIGTERM");
      const deadline = Date.now() + 5000;
      while (!exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (!exited) kill("SIGKILL");
    }
    if (!process.env.KEEP_ENVOY_DIR) rmSync(workDir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`Envoy exited during start-up:\n${readLog().slice(-4000)}`);
        // The listener answers once its worker is ready (404 from the no-route entry).
        const probe = await fetch(`http://127.0.0.1:${layout.listenPort}/`).catch(() => null);
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
  return { url: `http://127.0.0.1:${layout.listenPort}`, adminUrl, pid: child.pid ?? -1, layout, log: readLog, stop };
}
