// Renders the local Envoy's configuration: the shape Higress generates for the seed scenario, so the
// plugin runs here as it runs there. AI routes are named like Higress's console names them
// (`ai-route-<model>.internal`) and match on the routing header; clusters are named like Higress's
// McpBridge DNS registries (`outbound|8080||llm-<model>.dns`).
import { stringify } from "yaml";

export interface BackendTarget {
  model: string;      // routing header value the route matches
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
}

export const DEFAULT_BUFFER_LIMIT = 64 * 1024 * 1024;

export function clusterName(model: string): string {
  return `outbound|8080||llm-${model}.dns`;
}

export function routeName(model: string): string {
  return `ai-route-${model}.internal`;
}

// Higress's bootstrap stats tags: turn the Wasm metric name parts into Prometheus labels.
export const HIGRESS_STATS_TAGS = [
  { tag_name: "ai_route", regex: "^wasmcustom\\.route\\.((.*?)\\.)upstream" },
  { tag_name: "ai_cluster", regex: "^wasmcustom\\..*?\\.upstream\\.((.*?)\\.)model" },
  { tag_name: "ai_model", regex: "^wasmcustom\\..*?\\.model\\.((.*?)\\.)consumer" },
  { tag_name: "ai_consumer", regex: "^wasmcustom\\..*?\\.consumer\\.((.*?)\\.)metric" },
];

const MS_BUCKETS = [10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 30000, 60000, 120000, 300000];
export const PLUGIN_HISTOGRAM_BUCKETS = [
  { match: { suffix: ".metric.first_token_ms" }, buckets: MS_BUCKETS },
  { match: { suffix: ".metric.duration_ms" }, buckets: MS_BUCKETS },
  { match: { suffix: ".metric.inter_token_ms" }, buckets: [1, 2, 3, 5, 7, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000] },
  { match: { suffix: ".metric.input_tokens" }, buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000] },
  { match: { suffix: ".metric.output_tokens" }, buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000] },
  { match: { suffix: ".metric.output_tokens_per_second" }, buckets: [1, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000] },
];

// Ours, for the fallback counter `….metric.fallback.to.<model>.reason.<reason>`: add these to Higress's
// bootstrap stats tags too (README) to get them as labels there.
export const FALLBACK_STATS_TAGS = [
  { tag_name: "ai_fallback_to", regex: "^wasmcustom\\..*?\\.metric\\.fallback\\.to\\.((.*?)\\.)reason" },
  { tag_name: "ai_fallback_reason", regex: "^wasmcustom\\..*?\\.metric\\.fallback\\.to\\..*?\\.reason(\\.(.*))$" },
];

// ---- fallback through Envoy's router (fallback.mechanism "envoy", the default) ------------------
// A model with backups is routed to an aggregate cluster whose priorities are the model and its
// backups in order; the route's retry policy retries a failed attempt (before any byte reached the
// client) on the next priority, Envoy holding the request body; the plugin's attempt stage, an upstream
// HTTP filter, puts each backup's name in the body. Everything below is derived from the plugin
// configuration so the two cannot disagree; deploy-scripts renders the same shapes.

interface FallbackSettings {
  mechanism: string;
  enabled: boolean;
  maxAttempts: number;
  attemptTimeoutMs: number;
  firstByteTimeoutMs: number;
  onStatus: (string | number)[];
  onUpstreamUnreachable: boolean;
}

interface ModelEntry { name?: unknown; fallback?: unknown }

function fallbackSettings(pluginConfig: unknown): FallbackSettings {
  const f = ((pluginConfig as { fallback?: Record<string, unknown> } | null)?.fallback ?? {}) as Record<string, unknown>;
  return {
    mechanism: typeof f["mechanism"] === "string" ? f["mechanism"] : "envoy",
    enabled: f["enabled"] !== false,
    maxAttempts: typeof f["maxAttempts"] === "number" ? f["maxAttempts"] : 3,
    attemptTimeoutMs: typeof f["attemptTimeoutMs"] === "number" ? f["attemptTimeoutMs"] : 60000,
    firstByteTimeoutMs: typeof f["firstByteTimeoutMs"] === "number" ? f["firstByteTimeoutMs"] : 0,
    onStatus: Array.isArray(f["onStatus"]) ? (f["onStatus"] as (string | number)[]) : ["5xx", 429],
    onUpstreamUnreachable: f["onUpstreamUnreachable"] !== false,
  };
}

// model -> its backups (only models with a backend here), when Envoy does the fallback.
export function envoyFallbackChains(l: EnvoyLayout): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const f = fallbackSettings(l.pluginConfig);
  if (!f.enabled || f.mechanism !== "envoy" || (l.plugin ?? true) === false) return out;
  const known = new Set(l.backends.map((b) => b.model));
  const models = ((l.pluginConfig as { models?: ModelEntry[] } | null)?.models ?? []);
  for (const m of models) {
    if (typeof m.name !== "string" || !known.has(m.name) || !Array.isArray(m.fallback)) continue;
    const chain = (m.fallback as unknown[]).filter((x): x is string => typeof x === "string" && known.has(x));
    const limited = chain.slice(0, Math.max(0, f.maxAttempts - 1));
    if (limited.length > 0) out.set(m.name, limited);
  }
  return out;
}

export function fallbackClusterName(model: string): string {
  return `outbound|8080||llm-${model}.fallback`;
}

// The route's retry policy: what the plugin's fallback.onStatus / onUpstreamUnreachable say, retried
// at once (1 ms backoff) on the next priority, each attempt given fallback.firstByteTimeoutMs (or
// attemptTimeoutMs) to answer with headers: Envoy's per-try timeout ends when headers arrive, so a
// long stream is never cut by it.
export function fallbackRetryPolicy(pluginConfig: unknown, backups: number): Record<string, unknown> {
  const f = fallbackSettings(pluginConfig);
  const on = new Set<string>();
  const codes: number[] = [];
  for (const t of f.onStatus) {
    if (t === "5xx") on.add("5xx");
    else if (typeof t === "string" && /^[1-5]xx$/.test(t)) on.add("retriable-status-codes"), codes.push(...Array.from({ length: 100 }, (_, i) => Number(t[0]) * 100 + i));
    else { on.add("retriable-status-codes"); codes.push(Number(t)); }
  }
  if (f.onUpstreamUnreachable) { on.add("reset"); on.add("connect-failure"); }
  const perTry = f.firstByteTimeoutMs > 0 ? f.firstByteTimeoutMs : f.attemptTimeoutMs;
  return {
    retry_on: [...on].join(","),
    ...(codes.length > 0 ? { retriable_status_codes: codes } : {}),
    num_retries: backups,
    per_try_timeout: `${perTry / 1000}s`,
    retry_back_off: { base_interval: "0.001s", max_interval: "0.002s" },
    retry_priority: {
      name: "envoy.retry_priorities.previous_priorities",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        update_frequency: 1,
      },
    },
  };
}

// The plugin's Wasm config; the request and attempt stages share vm_config, so one VM per worker
// serves both (they share the attempt journal and the memory budget).
function wasmPluginConfig(l: EnvoyLayout, stage: "request" | "attempt"): Record<string, unknown> {
  const configuration = stage === "request" ? l.pluginConfig : { ...(l.pluginConfig as Record<string, unknown>), stage: "attempt" };
  return {
    name: stage === "request" ? "llm-gateway" : "llm-gateway-attempt",
    root_id: stage === "request" ? "llm-gateway" : "llm-gateway-attempt",
    // Lets the plugin hold request headers while it reads the body (Envoy >= 1.39; without
    // it proxy-wasm turns StopIteration into StopAllIteration and the body never arrives).
    // Higress's Envoy behaves this way by default, which is how its model-router works.
    allow_on_headers_stop_iteration: true,
    // A VM that failed (a trap) is replaced by a new one, after 1 s then backing off; meanwhile the
    // filter answers 503 (README, "When the VM fails").
    failure_policy: "FAIL_RELOAD",
    configuration: {
      "@type": "type.googleapis.com/google.protobuf.StringValue",
      value: JSON.stringify(configuration),
    },
    vm_config: {
      vm_id: "llm-gateway",
      runtime: "envoy.wasm.runtime.v8",
      code: { local: { filename: l.wasmPath } },
    },
  };
}

// How many Wasm filter configs the plugin has in this layout (each VM configures each once).
export function pluginStages(l: EnvoyLayout): number {
  if ((l.plugin ?? true) === false) return 0;
  return envoyFallbackChains(l).size > 0 ? 2 : 1;
}

export function listenerResource(l: EnvoyLayout): Record<string, unknown> {
  const header = l.routingHeader ?? "x-higress-llm-model";
  const limit = l.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT;
  const withPlugin = l.plugin ?? true;
  const first = l.backends[0];
  const chains = envoyFallbackChains(l);
  const routes: unknown[] = !withPlugin && first !== undefined
    ? [{ name: "no-plugin-static", match: { prefix: "/" }, route: { cluster: clusterName(first.model), timeout: "300s" } }]
    : l.backends.map((b) => {
      const backups = chains.get(b.model);
      return {
        name: routeName(b.model),
        match: { prefix: "/", headers: [{ name: header, string_match: { exact: b.model } }] },
        route: backups === undefined
          ? { cluster: clusterName(b.model), timeout: "300s" }
          : { cluster: fallbackClusterName(b.model), timeout: "300s", retry_policy: fallbackRetryPolicy(l.pluginConfig, backups.length) },
      };
    });
  // No routing header: nothing Higress would route either.
  routes.push({
    name: "no-ai-route",
    match: { prefix: "/" },
    direct_response: {
      status: 404,
      body: { inline_string: '{"error":{"message":"No route for this request.","type":"invalid_request_error","param":null,"code":"no_route"}}' },
    },
  });
  return {
    "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
    name: "llm-gateway",
    address: { socket_address: { address: "127.0.0.1", port_value: l.listenPort } },
    per_connection_buffer_limit_bytes: limit,
    filter_chains: [{
      filters: [{
        name: "envoy.filters.network.http_connection_manager",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
          stat_prefix: "llm_gateway",
          access_log: [{
            name: "envoy.access_loggers.file",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
              path: l.accessLogPath,
              log_format: {
                json_format: {
                  start_time: "%START_TIME%",
                  method: "%REQ(:METHOD)%",
                  path: "%REQ(:PATH)%",
                  status: "%RESPONSE_CODE%",
                  details: "%RESPONSE_CODE_DETAILS%",
                  route: "%ROUTE_NAME%",
                  cluster: "%UPSTREAM_CLUSTER%",
                  duration_ms: "%DURATION%",
                  ai_log: "%FILTER_STATE(wasm.ai_log:PLAIN)%",
                },
              },
            },
          }],
          route_config: {
            name: "llm-gateway-routes",
            // x-envoy-attempt-count tells the attempt stage which model an attempt is for when the
            // host carries no model metadata.
            virtual_hosts: [{ name: "llm", domains: ["*"], routes, include_request_attempt_count: true }],
          },
          http_filters: [
            ...(withPlugin ? [{
              name: "llm-gateway",
              typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", config: wasmPluginConfig(l, "request") },
            }] : []),
            {
              name: "envoy.filters.http.router",
              typed_config: {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                // The attempt stage runs once per upstream attempt (Envoy >= 1.31 takes Wasm here).
                ...(chains.size > 0 ? {
                  upstream_http_filters: [
                    { name: "llm-gateway-attempt", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", config: wasmPluginConfig(l, "attempt") } },
                    { name: "envoy.filters.http.upstream_codec", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec" } },
                  ],
                } : {}),
              },
            },
          ],
        },
      }],
    }],
  };
}

// The bootstrap: static clusters, the listener from a watched file (LDS), so a test or an operator can
// swap the plugin configuration of a running Envoy by replacing that file.
export function bootstrap(l: EnvoyLayout, ldsDir: string): Record<string, unknown> {
  const limit = l.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT;
  return {
    node: { id: "llm-gateway-local", cluster: "llm-gateway" },
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: l.adminPort } } },
    stats_config: {
      stats_tags: [...HIGRESS_STATS_TAGS, ...FALLBACK_STATS_TAGS],
      use_all_default_tags: true,
      // Buckets fitted to LLM latencies and sizes (Envoy's defaults are too coarse for inter-token
      // gaps). Higress: add the same histogram_bucket_settings to its bootstrap (README, Metrics).
      histogram_bucket_settings: PLUGIN_HISTOGRAM_BUCKETS,
    },
    // Histograms reach /stats/prometheus at each flush; 1 s keeps tests and dashboards current.
    stats_flush_interval: "1s",
    dynamic_resources: {
      lds_config: {
        resource_api_version: "V3",
        path_config_source: { path: `${ldsDir}/lds.yaml`, watched_directory: { path: ldsDir } },
      },
    },
    static_resources: {
      clusters: [
        ...l.backends.map((b) => ({
          name: clusterName(b.model),
          type: "STATIC",
          connect_timeout: "1s",
          per_connection_buffer_limit_bytes: limit,
          load_assignment: {
            cluster_name: clusterName(b.model),
            endpoints: [{
              lb_endpoints: [{
                endpoint: { address: { socket_address: { address: b.host, port_value: b.port } } },
                // Which model this host serves, for the attempt stage (exact even when Envoy skips
                // an unhealthy priority).
                metadata: { filter_metadata: { "llm-gateway": { model: b.model } } },
              }],
            }],
          },
        })),
        ...[...envoyFallbackChains(l)].map(([model, backups]) => ({
          name: fallbackClusterName(model),
          connect_timeout: "1s",
          lb_policy: "CLUSTER_PROVIDED",
          cluster_type: {
            name: "envoy.clusters.aggregate",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
              clusters: [model, ...backups].map(clusterName),
            },
          },
        })),
      ],
    },
  };
}

export function ldsDocument(l: EnvoyLayout): string {
  return stringify({ version_info: String(Date.now()), resources: [listenerResource(l)] });
}

export function bootstrapDocument(l: EnvoyLayout, ldsDir: string): string {
  return stringify(bootstrap(l, ldsDir));
}
