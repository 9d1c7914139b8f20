// Envoy in front of a fleet: each model's cluster holds every replica of the model, balanced by one of
// Envoy's policies. The listener, the plugin's filters, the stats and the single-replica cluster shape come
// from deploy-scripts/render/envoy/ (as the harness's); what a fleet adds is here, and is what the deploy
// renderer should emit for a model with replicas (docs/replica-routing.md):
// - cluster: every replica an endpoint (with the model's endpoint metadata); lb_policy; for prefix
//   affinity RING_HASH with consistent hashing with bounded load (hash_balance_factor, Envoy counts each
//   host's active requests); an HTTP health check on vLLM's /health and outlier detection, so a dead
//   replica leaves the ring;
// - route: hash_policy on the plugin's prefix-key header, and a retry of connect failures and resets on
//   another host (previous_hosts), so a replica that died before the health check noticed costs a retry,
//   not an error.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { modelCluster, modelEndpointMetadata } from "../../../deploy-scripts/render/envoy/clusters.ts";
import { DEFAULT_BUFFER_LIMIT, listener } from "../../../deploy-scripts/render/envoy/listener.ts";
import { modelClusterName } from "../../../deploy-scripts/render/envoy/names.ts";
import { httpFilters } from "../../../deploy-scripts/render/envoy/plugin-filters.ts";
import { modelRoute, noRoute } from "../../../deploy-scripts/render/envoy/routes.ts";
import { statsConfig } from "../../../deploy-scripts/render/envoy/stats.ts";
import { envoyBinary, WASM_PATH } from "../../harness/envoy.ts";
import { freePort, waitFor } from "../../harness/net.ts";

/** The plugin's prefix-key header (contract default, prefixAffinity.header). */
export const PREFIX_KEY_HEADER = "x-llm-gateway-prefix-key";

export type LbPolicy = "ROUND_ROBIN" | "LEAST_REQUEST" | "RING_HASH";

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
  /** RING_HASH: Envoy's hash_balance_factor (125 = no host above 1.25 × the average active requests). */
  hashBalanceFactor?: number;
  /** The header the route hashes on (RING_HASH). */
  hashHeader?: string;
  pluginConfig: unknown;
  listenPort: number;
  adminPort: number;
  accessLogPath: string;
  wasmPath?: string;
  routingHeader?: string;
  /** Active health checks on /health (default true; interval below). */
  healthCheckIntervalMs?: number;
}

export function fleetCluster(
  m: FleetModel,
  l: Pick<FleetLayout, "policy" | "hashBalanceFactor" | "healthCheckIntervalMs">,
): Record<string, unknown> {
  const name = modelClusterName(m.model);
  const first = m.replicas[0];
  if (first === undefined) throw new Error(`fleet: ${m.model} has no replicas`);
  const base = modelCluster({
    name,
    model: m.model,
    type: "STATIC",
    address: first.host,
    port: first.port,
    bufferLimitBytes: DEFAULT_BUFFER_LIMIT,
  });
  const interval = l.healthCheckIntervalMs ?? 1000;
  return {
    ...base,
    lb_policy: l.policy,
    ...(l.policy === "RING_HASH"
      ? { common_lb_config: { consistent_hashing_lb_config: { hash_balance_factor: l.hashBalanceFactor ?? 125 } } }
      : {}),
    // vLLM answers GET /health with 200 while its engine is alive.
    health_checks: [
      {
        timeout: `${Math.max(interval, 500) / 1000}s`,
        interval: `${interval / 1000}s`,
        unhealthy_threshold: 1,
        healthy_threshold: 1,
        // A host that refuses connections is marked unhealthy at once, not after the interval.
        http_health_check: { path: "/health" },
      },
    ],
    // Refused connections and resets, seen by requests, eject a host before the next health check.
    outlier_detection: {
      consecutive_gateway_failure: 2,
      consecutive_local_origin_failure: 2,
      split_external_local_origin_errors: true,
      interval: "1s",
      base_ejection_time: "10s",
      max_ejection_percent: 50,
    },
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          lb_endpoints: m.replicas.map((r) => ({
            endpoint: { address: { socket_address: { address: r.host, port_value: r.port } } },
            metadata: modelEndpointMetadata(m.model, name),
          })),
        },
      ],
    },
  };
}

/** The model's route: affinity hashing (RING_HASH) and a retry on another host for connect failures and resets. */
export function fleetRoute(m: FleetModel, l: Pick<FleetLayout, "policy" | "hashHeader" | "routingHeader">): Record<string, unknown> {
  const route = modelRoute({
    name: `ai-route-${m.model}.internal`,
    header: l.routingHeader ?? "x-higress-llm-model",
    value: m.model,
    cluster: modelClusterName(m.model),
    timeout: "300s",
  });
  const action = route["route"] as Record<string, unknown>;
  if (l.policy === "RING_HASH") action["hash_policy"] = [{ header: { header_name: l.hashHeader ?? PREFIX_KEY_HEADER } }];
  action["retry_policy"] = {
    retry_on: "connect-failure,reset",
    num_retries: 2,
    retry_host_predicate: [
      {
        name: "envoy.retry_host_predicates.previous_hosts",
        typed_config: { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" },
      },
    ],
    // Ring hash walks on along the ring for each host the predicate rejects.
    host_selection_retry_max_attempts: 5,
  };
  return route;
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

export type FleetGatewayOptions = Omit<FleetLayout, "listenPort" | "adminPort" | "accessLogPath"> & { concurrency?: number; cpus?: string };

/** Starts Envoy with the fleet bootstrap; resolves once every model's replicas passed a health check. */
export async function startFleetGateway(opts: FleetGatewayOptions): Promise<FleetGateway> {
  const workDir = mkdtempSync(join(tmpdir(), "llm-gw-fleet-"));
  const layout: FleetLayout = {
    ...opts,
    listenPort: await freePort(),
    adminPort: await freePort(),
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
    const expected = opts.models.reduce((n, m) => n + m.replicas.length, 0);
    await waitFor(
      async () => {
        if (exited) throw new Error(`Envoy exited during start-up:\n${readLog().slice(-4000)}`);
        const r = await fetch(`${adminUrl}/clusters`).catch(() => null);
        if (r === null || !r.ok) return false;
        const healthy = (await r.text()).split("\n").filter((line) => /::health_flags::healthy$/.test(line)).length;
        return healthy >= expected;
      },
      20000,
      "Envoy with every replica healthy",
    );
  } catch (e) {
    const log = readLog();
    await stop();
    throw new Error(`${(e as Error).message}\n${log.slice(-4000)}`);
  }
  return { url: `http://127.0.0.1:${layout.listenPort}`, adminUrl, pid: child.pid ?? -1, layout, log: readLog, stop };
}
