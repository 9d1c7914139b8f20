// Envoy's stats_config for the plugin's metrics: Higress's stats tags (which turn the Wasm metric names into the
// ai_route/ai_cluster/ai_model/ai_consumer labels its AI dashboard reads), ours for the fallback counter, and
// histogram buckets fitted to LLM latencies and sizes.

// Higress's bootstrap stats tags.
export const HIGRESS_STATS_TAGS = [
  { tag_name: "ai_route", regex: "^wasmcustom\\.route\\.((.*?)\\.)upstream" },
  { tag_name: "ai_cluster", regex: "^wasmcustom\\..*?\\.upstream\\.((.*?)\\.)model" },
  { tag_name: "ai_model", regex: "^wasmcustom\\..*?\\.model\\.((.*?)\\.)consumer" },
  { tag_name: "ai_consumer", regex: "^wasmcustom\\..*?\\.consumer\\.((.*?)\\.)metric" },
];

// Ours, for the fallback counter `….metric.fallback.to.<model>.reason.<reason>`: Higress gets them from
// manifests/higress-bootstrap/ (higressStatsOverride).
export const FALLBACK_STATS_TAGS = [
  { tag_name: "ai_fallback_to", regex: "^wasmcustom\\..*?\\.metric\\.fallback\\.to\\.((.*?)\\.)reason" },
  { tag_name: "ai_fallback_reason", regex: "^wasmcustom\\..*?\\.metric\\.fallback\\.to\\..*?\\.reason(\\.(.*))$" },
];

const MS_BUCKETS = [
  10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 30000, 60000, 120000, 300000,
];

// Envoy's default buckets are too coarse for inter-token gaps; the dashboard's percentiles assume these.
export const PLUGIN_HISTOGRAM_BUCKETS = [
  { match: { suffix: ".metric.first_token_ms" }, buckets: MS_BUCKETS },
  { match: { suffix: ".metric.duration_ms" }, buckets: MS_BUCKETS },
  {
    match: { suffix: ".metric.inter_token_ms" },
    buckets: [1, 2, 3, 5, 7, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000],
  },
  {
    match: { suffix: ".metric.input_tokens" },
    buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000],
  },
  { match: { suffix: ".metric.output_tokens" }, buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000] },
  {
    match: { suffix: ".metric.output_tokens_per_second" },
    buckets: [1, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000],
  },
];

/**
 * What Higress's bootstrap lacks of statsConfig(): our tags and the buckets, not Higress's own tags (its bootstrap
 * has them) nor use_all_default_tags (a singular field, which an override would replace). Envoy merges a bootstrap
 * override by appending repeated fields, so Higress's bootstrap plus this has statsConfig()'s tags and buckets
 * (manifests/higress-bootstrap/).
 */
export function higressStatsOverride(): Record<string, unknown> {
  return {
    stats_tags: FALLBACK_STATS_TAGS,
    histogram_bucket_settings: PLUGIN_HISTOGRAM_BUCKETS,
  };
}

/** The bootstrap's stats_config. */
export function statsConfig(): Record<string, unknown> {
  return {
    stats_tags: [...HIGRESS_STATS_TAGS, ...FALLBACK_STATS_TAGS],
    use_all_default_tags: true,
    histogram_bucket_settings: PLUGIN_HISTOGRAM_BUCKETS,
  };
}
