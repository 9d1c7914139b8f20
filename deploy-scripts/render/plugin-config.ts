// The plugin's defaultConfig, derived from the deployment file so routes, fallbacks and the plugin agree.
import { CONFIG_FIELDS } from "../../assembly/plugin/config/schema.ts";
import { hashBalanceFactor } from "./envoy/affinity.ts";
import { MECHANISM_ENVOY } from "./envoy/fallback-chains.ts";
import { routingHeader, type DeploySpec, type LoadAware } from "../spec.ts";

export interface PluginModel {
  name: string;
  route: string;
  upstreamModel?: string;
  fallback?: string[];
}

// `route` is the routing header's value, which the rendered Ingresses match against the model's name
// (models[].route names the Ingress, i.e. Envoy's route, not the header value). The plugin's default
// cluster for backup calls, outbound|8080||llm-<route>.dns, is then the McpBridge registry llm-<name>.
export function pluginModels(spec: DeploySpec): PluginModel[] {
  return spec.models.map((m) => {
    const entry: PluginModel = { name: m.name, route: m.name };
    if (m.upstreamModel !== undefined) entry.upstreamModel = m.upstreamModel;
    if (m.fallback.length > 0) entry.fallback = [...m.fallback];
    return entry;
  });
}

/**
 * The plugin's `fallback` object: `mechanism: envoy` said explicitly (the plugin's default: Envoy, not the plugin,
 * sends a failed request again, so answers stream; in Higress that is Higress's native replay, on Envoy the
 * router's retries), and the file's fallback.on (the status classes Higress's native fallback replays on) becomes
 * its `onStatus`, so the plugin and the gateway fall back on the same answers. What plugin.config.fallback says
 * wins. A plugin.config.fallback that is not a mapping is passed on for the plugin to refuse.
 */
export function pluginFallback(spec: DeploySpec): unknown {
  const own = spec.plugin.config["fallback"];
  if (own !== undefined && (typeof own !== "object" || own === null || Array.isArray(own))) return own;
  return { mechanism: MECHANISM_ENVOY, onStatus: [...spec.fallback.on], ...(own as Record<string, unknown> | undefined) };
}

/** The request header the plugin writes the prefix key to (its default; the routes hash on the same name). */
export const PREFIX_KEY_HEADER = String(
  CONFIG_FIELDS.find((f) => f.key === "prefixAffinity.header")?.default ?? "x-llm-gateway-prefix-key",
);

/**
 * The request header in which the plugin names the replicas it picked (prefixAffinity.loadAware, its default); the
 * model clusters' override-host policy reads the same name.
 */
export const PICKED_HOST_HEADER = String(
  CONFIG_FIELDS.find((f) => f.key === "prefixAffinity.loadAware.header")?.default ?? "x-gateway-destination-endpoint",
);

/**
 * The plugin's `prefixAffinity`, for the models with `affinity` (undefined when none has it). The header is
 * written out, so the routes' hash policy and the plugin visibly name the same one. spec.ts makes the models
 * agree on prefixBytes and loadAware, so the first one's are everyone's.
 */
export function pluginPrefixAffinity(spec: DeploySpec): Record<string, unknown> | undefined {
  const models = spec.models.filter((m) => m.affinity !== undefined);
  const first = models[0]?.affinity;
  if (first === undefined) return undefined;
  return {
    enabled: true,
    header: PREFIX_KEY_HEADER,
    prefixBytes: first.prefixBytes,
    models: models.map((m) => m.name),
    ...(first.loadAware !== undefined ? { loadAware: pluginLoadAware(first.loadFactor, first.loadAware) } : {}),
  };
}

/**
 * prefixAffinity.loadAware: the plugin's in-flight bound is the same percentage as the ring's hash_balance_factor,
 * so a request keeps the same bound whether the plugin or, as fallback, Envoy places it. discoverEvery stays the
 * plugin's default.
 */
function pluginLoadAware(loadFactor: number, l: LoadAware): Record<string, unknown> {
  return {
    enabled: true,
    header: PICKED_HOST_HEADER,
    loadFactor: hashBalanceFactor(loadFactor),
    maxWaiting: l.maxWaiting,
    maxKvCacheUsage: l.maxKvCacheUsage,
    reportTtlMs: l.reportTtlMs,
  };
}

/**
 * routingHeader first (the Ingress annotations are built from the same value), then the file's plugin.config in
 * its own order, then `fallback` (if plugin.config has none), `prefixAffinity` (from models[].affinity), `quotas`
 * (from the file's quotas), then the derived models. plugin.config cannot hold `models`, `prefixAffinity` or
 * `quotas` (spec.ts refuses them).
 */
export function pluginConfig(spec: DeploySpec): Record<string, unknown> {
  const out: Record<string, unknown> = { routingHeader: routingHeader(spec) };
  for (const [k, v] of Object.entries(spec.plugin.config)) if (k !== "routingHeader") out[k] = v;
  out["fallback"] = pluginFallback(spec);
  const affinity = pluginPrefixAffinity(spec);
  if (affinity !== undefined) out["prefixAffinity"] = affinity;
  if (spec.quotas !== undefined) out["quotas"] = structuredClone(spec.quotas.config);
  out["models"] = pluginModels(spec);
  return out;
}
