// Renders the local Envoy's configuration: the shape Higress generates for the seed scenario, so the
// plugin runs here as it runs there. AI routes are named like Higress's console names them
// (`ai-route-<model>.internal`) and match on the routing header; clusters are named like Higress's
// McpBridge DNS registries (`outbound|8080||llm-<model>.dns`).
//
// The pieces a deployment needs too (fallback chains, retry policy, aggregate cluster, the plugin's two
// stages, endpoint metadata, stats) come from deploy-scripts/render/envoy/, which the deploy CLI's upstream-Envoy
// target renders from as well, so the tests run the configuration users get.
import { stringify } from "yaml";
import { aggregateCluster, modelCluster } from "../../deploy-scripts/render/envoy/clusters.ts";
import { fallbackChains } from "../../deploy-scripts/render/envoy/fallback-chains.ts";
import { DEFAULT_BUFFER_LIMIT, listener } from "../../deploy-scripts/render/envoy/listener.ts";
import { fallbackClusterName, modelClusterName } from "../../deploy-scripts/render/envoy/names.ts";
import { httpFilters, pluginStages as stagesOf } from "../../deploy-scripts/render/envoy/plugin-filters.ts";
import { fallbackRetryPolicy } from "../../deploy-scripts/render/envoy/retry-policy.ts";
import { modelRoute, noRoute } from "../../deploy-scripts/render/envoy/routes.ts";
import { statsConfig } from "../../deploy-scripts/render/envoy/stats.ts";

export { DEFAULT_BUFFER_LIMIT } from "../../deploy-scripts/render/envoy/listener.ts";
export { fallbackClusterName } from "../../deploy-scripts/render/envoy/names.ts";
export { fallbackRetryPolicy } from "../../deploy-scripts/render/envoy/retry-policy.ts";
// The rate-limit service's HTTP/2 cluster, as the deploy CLI renders it (quotas mode cluster).
export { grpcCluster } from "../../deploy-scripts/render/envoy/clusters.ts";
export { FALLBACK_STATS_TAGS, HIGRESS_STATS_TAGS, PLUGIN_HISTOGRAM_BUCKETS } from "../../deploy-scripts/render/envoy/stats.ts";

export interface BackendTarget {
  model: string; // routing header value the route matches
  host: string;
  port: number;
}

export interface EnvoyLayout {
  listenPort: number;
  adminPort: number;
  wasmPath: string;
  backends: BackendTarget[];
  pluginConfig: unknown;
  accessLogPath: string;
  routingHeader?: string;
  // Envoy buffers a request body up to this before answering 413 itself; kept above the plugin's own
  // limit so the plugin's OpenAI-style 413 is the one clients see.
  bufferLimitBytes?: number;
  // false: the same listener without the Wasm filter, one static route (prefix "/") to the first
  // backend's cluster; the benchmarks' baseline (plain Envoy). Default true.
  plugin?: boolean;
  // The AI routes' timeout; "0s" is none, as in Higress (Istio's default). Default "300s".
  routeTimeout?: string;
  // More static clusters, beside the models' (e.g. grpcCluster(): the rate-limit service the plugin calls).
  clusters?: Record<string, unknown>[];
}

// Higress's defaults where they differ from this harness's (checked in Higress v2.2's source and
// Istio's): a 32 KiB connection buffer limit (downstream.connectionBufferLimits), which the plugin raises
// per request with set_decoder_buffer_limit where Higress's Envoy honours it (upstream Envoy does not:
// there bodies over 32 KiB get Envoy's 413), and no route timeout. The 10 s connect timeout is the
// harness's default already.
export const HIGRESS_PROFILE = { bufferLimitBytes: 32 * 1024, routeTimeout: "0s" } as const;

export function clusterName(model: string): string {
  return modelClusterName(model);
}

export function routeName(model: string): string {
  return `ai-route-${model}.internal`;
}

// The rate-limit service's cluster, named as Higress names a McpBridge DNS registry `ratelimit` on
// envoyproxy/ratelimit's gRPC port 8081 (the tests' service listens on a free port; the name stays).
export const RATELIMIT_CLUSTER = "outbound|8081||ratelimit.dns";

// ---- fallback through Envoy's router (fallback.mechanism "envoy", the default) ------------------
// A model with backups is routed to an aggregate cluster whose priorities are the model and its
// backups in order; the route's retry policy retries a failed attempt on the next priority; the
// plugin's attempt stage, an upstream HTTP filter, puts each backup's name in the body (see
// deploy-scripts/render/envoy/fallback-chains.ts).

// model -> its backups (only models with a backend here), when Envoy does the fallback.
export function envoyFallbackChains(l: EnvoyLayout): Map<string, string[]> {
  if ((l.plugin ?? true) === false) return new Map();
  return fallbackChains(l.pluginConfig, new Set(l.backends.map((b) => b.model)));
}

// How many Wasm filter configs the plugin has in this layout (each VM configures each once).
export function pluginStages(l: EnvoyLayout): number {
  return stagesOf(l.plugin ?? true, envoyFallbackChains(l).size > 0);
}

export function listenerResource(l: EnvoyLayout): Record<string, unknown> {
  const header = l.routingHeader ?? "x-higress-llm-model";
  const withPlugin = l.plugin ?? true;
  const first = l.backends[0];
  const chains = envoyFallbackChains(l);
  const routes: unknown[] =
    !withPlugin && first !== undefined
      ? [{ name: "no-plugin-static", match: { prefix: "/" }, route: { cluster: clusterName(first.model), timeout: "300s" } }]
      : l.backends.map((b) => {
          const backups = chains.get(b.model);
          return modelRoute({
            name: routeName(b.model),
            header,
            value: b.model,
            timeout: l.routeTimeout ?? "300s",
            ...(backups === undefined
              ? { cluster: clusterName(b.model) }
              : { cluster: fallbackClusterName(b.model), retryPolicy: fallbackRetryPolicy(l.pluginConfig, backups.length) }),
          });
        });
  routes.push(noRoute());
  return {
    "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
    ...listener({
      name: "llm-gateway",
      address: "127.0.0.1",
      port: l.listenPort,
      bufferLimitBytes: l.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT,
      accessLog: { path: l.accessLogPath },
      domains: ["*"],
      routes,
      httpFilters: httpFilters({
        pluginConfig: l.pluginConfig,
        code: { local: { filename: l.wasmPath } },
        withPlugin,
        attemptStage: chains.size > 0,
      }),
    }),
  };
}

// The bootstrap: the models' clusters static, the aggregate clusters of their fallback chains from a
// watched file (CDS) and the listener from another (LDS), so a test or an operator can swap the plugin
// configuration of a running Envoy, fallback chains included, by replacing those files.
export function bootstrap(l: EnvoyLayout, ldsDir: string, cdsDir: string): Record<string, unknown> {
  const limit = l.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT;
  return {
    node: { id: "llm-gateway-local", cluster: "llm-gateway" },
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: l.adminPort } } },
    // Higress's stats tags, ours for the fallback counter, and histogram buckets fitted to LLM
    // latencies (Higress gets ours from manifests/higress-bootstrap/).
    stats_config: statsConfig(),
    // Histograms reach /stats/prometheus at each flush; 1 s keeps tests and dashboards current.
    stats_flush_interval: "1s",
    dynamic_resources: {
      cds_config: {
        resource_api_version: "V3",
        path_config_source: { path: `${cdsDir}/cds.yaml`, watched_directory: { path: cdsDir } },
      },
      lds_config: {
        resource_api_version: "V3",
        path_config_source: { path: `${ldsDir}/lds.yaml`, watched_directory: { path: ldsDir } },
      },
    },
    static_resources: {
      clusters: [
        ...l.backends.map((b) =>
          modelCluster({
            name: clusterName(b.model),
            model: b.model,
            type: "STATIC",
            address: b.host,
            port: b.port,
            bufferLimitBytes: limit,
          }),
        ),
        ...(l.clusters ?? []),
      ],
    },
  };
}

export function ldsDocument(l: EnvoyLayout): string {
  return stringify({ version_info: String(Date.now()), resources: [listenerResource(l)] });
}

export function cdsDocument(l: EnvoyLayout): string {
  const resources = [...envoyFallbackChains(l)].map(([model, backups]) => ({
    "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    ...aggregateCluster(fallbackClusterName(model), [model, ...backups].map(clusterName)),
  }));
  return stringify({ version_info: String(Date.now()), resources });
}

export function bootstrapDocument(l: EnvoyLayout, ldsDir: string, cdsDir: string): string {
  return stringify(bootstrap(l, ldsDir, cdsDir));
}
