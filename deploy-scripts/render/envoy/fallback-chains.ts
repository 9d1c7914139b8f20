// Which models Envoy's router falls back through, derived from the plugin's own configuration so the routes, the
// clusters and the plugin cannot disagree. Defaults are the plugin's (assembly/plugin/config/schema.ts).
//
// fallback.mechanism "envoy" (the plugin's default): a model with backups is routed to an aggregate cluster whose
// priorities are the model and its backups in order; the route's retry policy retries a failed attempt (before any
// byte reached the client) on the next priority while Envoy holds the request body; the plugin's attempt stage, an
// upstream HTTP filter, puts each backup's name in the body. "dispatch": the plugin calls backups itself, and Envoy
// needs none of this.

export const MECHANISM_ENVOY = "envoy";

export interface FallbackSettings {
  mechanism: string;
  enabled: boolean;
  maxAttempts: number;
  attemptTimeoutMs: number;
  firstByteTimeoutMs: number;
  onStatus: (string | number)[];
  onUpstreamUnreachable: boolean;
}

interface ModelEntry {
  name?: unknown;
  fallback?: unknown;
}

/** The plugin configuration's `fallback` object with the plugin's defaults filled in. */
export function fallbackSettings(pluginConfig: unknown): FallbackSettings {
  const f = ((pluginConfig as { fallback?: Record<string, unknown> } | null)?.fallback ?? {}) as Record<string, unknown>;
  return {
    mechanism: typeof f["mechanism"] === "string" ? f["mechanism"] : MECHANISM_ENVOY,
    enabled: f["enabled"] !== false,
    maxAttempts: typeof f["maxAttempts"] === "number" ? f["maxAttempts"] : 3,
    attemptTimeoutMs: typeof f["attemptTimeoutMs"] === "number" ? f["attemptTimeoutMs"] : 60000,
    firstByteTimeoutMs: typeof f["firstByteTimeoutMs"] === "number" ? f["firstByteTimeoutMs"] : 0,
    onStatus: Array.isArray(f["onStatus"]) ? (f["onStatus"] as (string | number)[]) : ["5xx", 429],
    onUpstreamUnreachable: f["onUpstreamUnreachable"] !== false,
  };
}

/**
 * model -> its backups in order, for the models Envoy falls back for: only when fallback is enabled with
 * mechanism "envoy", only models (and backups) in `served` (those Envoy has a cluster for), at most
 * maxAttempts - 1 backups each; models left without a backup are left out.
 */
export function fallbackChains(pluginConfig: unknown, served: ReadonlySet<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const f = fallbackSettings(pluginConfig);
  if (!f.enabled || f.mechanism !== MECHANISM_ENVOY) return out;
  const models = (pluginConfig as { models?: ModelEntry[] } | null)?.models ?? [];
  for (const m of models) {
    if (typeof m.name !== "string" || !served.has(m.name) || !Array.isArray(m.fallback)) continue;
    const chain = (m.fallback as unknown[]).filter((x): x is string => typeof x === "string" && served.has(x));
    const limited = chain.slice(0, Math.max(0, f.maxAttempts - 1));
    if (limited.length > 0) out.set(m.name, limited);
  }
  return out;
}
