// Envoy's stats_config for the plugin's metrics: Higress's stats tags (which turn the Wasm metric names into the
// ai_route/ai_cluster/ai_model/ai_consumer labels its AI dashboard reads), ours for the fallback counter and the
// OpenTelemetry GenAI histograms, and histogram buckets fitted to LLM latencies and sizes.

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

// Ours, for the OpenTelemetry GenAI histograms
// `gen_ai.operation.<op>.request_model.<rm>.response_model.<resp>[.token_type.<type>].<client|server>.<name>`, which
// come out as `gen_ai_client_token_usage{gen_ai_operation_name, gen_ai_request_model, gen_ai_response_model,
// gen_ai_token_type}` and `gen_ai_server_<name>_milliseconds{…}`. Envoy matches every tag regex against the full
// stat name (not against what an earlier tag left of it) and removes each first group, the second being the value;
// hence each regex spells out the segments before its own. A segment is `[^.]*`: the plugin's label values have no
// dots (sanitised like ai_model), so a model named like a keyword cannot shift a tag.
const GEN_AI = "^wasmcustom\\.gen_ai\\.";
const OP = "operation\\.[^.]*\\.";
const REQ = "request_model\\.[^.]*\\.";
const RESP = "response_model\\.[^.]*\\.";
export const GEN_AI_STATS_TAGS = [
  { tag_name: "gen_ai_operation_name", regex: `${GEN_AI}(operation\\.([^.]*)\\.)request_model\\.` },
  { tag_name: "gen_ai_request_model", regex: `${GEN_AI}${OP}(request_model\\.([^.]*)\\.)response_model\\.` },
  { tag_name: "gen_ai_response_model", regex: `${GEN_AI}${OP}${REQ}(response_model\\.([^.]*)\\.)(?:token_type|client|server)\\.` },
  { tag_name: "gen_ai_token_type", regex: `${GEN_AI}${OP}${REQ}${RESP}(token_type\\.([^.]*)\\.)client\\.` },
];

/**
 * The E12 preferred numbers (1.0 1.2 1.5 1.8 2.2 2.7 3.3 3.9 4.7 5.6 6.8 8.2 per decade) from `from` to `to`, and `to`
 * itself when it is not one of them. Consecutive bounds are 18-25% apart, so a bucket is never wider than a quarter
 * of its lower bound.
 */
export function e12Buckets(from: number, to: number): number[] {
  const mantissas = [10, 12, 15, 18, 22, 27, 33, 39, 47, 56, 68, 82];
  const out: number[] = [];
  for (let exp = Math.floor(Math.log10(from)) - 1; ; exp++) {
    // m × 10^exp computed as an integer product or quotient, so 1.2 is 1.2 and not 1.2000000000000002
    const bounds = mantissas.map((m) => (exp >= 0 ? m * 10 ** exp : m / 10 ** -exp));
    for (const b of bounds) if (b >= from && b <= to) out.push(b);
    if (bounds[bounds.length - 1]! >= to) break;
  }
  if (out[out.length - 1] !== to) out.push(to);
  return out;
}

// Why E12 for our own millisecond histograms: Prometheus's histogram_quantile finds the bucket that holds the quantile
// and interpolates linearly inside it, so its answer can be off by up to that bucket's width. With the earlier
// 10/25/50/…/200/300 edges every TTFT from 201 to 300 ms fell into one bucket 50% wide (a median of 201-208 ms read as
// ~250 ms). E12 bounds are at most 25% apart (mostly ~20%): an interpolated quantile stays within about ±10% of the
// bucket's middle. Bounds between the integers (1.2, 1.5, …) stay empty for integer milliseconds; harmless.
// Unbiased quantiles: Envoy's own /stats?format=json computed_quantiles (docs/metrics.md).
const LATENCY_MS_BUCKETS = e12Buckets(10, 600000); // 10 ms .. 10 min
const INTER_TOKEN_MS_BUCKETS = e12Buckets(1, 1000);

// OpenTelemetry's recommended explicit bucket boundaries for the GenAI metrics (semantic conventions, gen-ai-metrics),
// the durations converted from seconds to the milliseconds the plugin records.
export const GEN_AI_TOKEN_USAGE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
export const GEN_AI_REQUEST_DURATION_MS_BUCKETS = [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920];
export const GEN_AI_TIME_TO_FIRST_TOKEN_MS_BUCKETS = [1, 5, 10, 20, 40, 60, 80, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
export const GEN_AI_TIME_PER_OUTPUT_TOKEN_MS_BUCKETS = [10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2500];

// Envoy's default buckets are too coarse for LLM latencies and token counts; the dashboard's percentiles assume these.
// Envoy matches each rule against the full stat name (`wasmcustom.route.….metric.first_token_ms`,
// `wasmcustom.gen_ai.….server.request.duration.milliseconds`); the first rule that matches wins.
export const PLUGIN_HISTOGRAM_BUCKETS = [
  { match: { suffix: ".metric.first_token_ms" }, buckets: LATENCY_MS_BUCKETS },
  { match: { suffix: ".metric.first_answer_token_ms" }, buckets: LATENCY_MS_BUCKETS },
  { match: { suffix: ".metric.duration_ms" }, buckets: LATENCY_MS_BUCKETS },
  { match: { suffix: ".metric.inter_token_ms" }, buckets: INTER_TOKEN_MS_BUCKETS },
  {
    match: { suffix: ".metric.input_tokens" },
    buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000],
  },
  { match: { suffix: ".metric.output_tokens" }, buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000] },
  {
    match: { suffix: ".metric.output_tokens_per_second" },
    buckets: [1, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000],
  },
  { match: { suffix: ".client.token.usage" }, buckets: GEN_AI_TOKEN_USAGE_BUCKETS },
  { match: { suffix: ".server.request.duration.milliseconds" }, buckets: GEN_AI_REQUEST_DURATION_MS_BUCKETS },
  { match: { suffix: ".server.time_to_first_token.milliseconds" }, buckets: GEN_AI_TIME_TO_FIRST_TOKEN_MS_BUCKETS },
  { match: { suffix: ".server.time_per_output_token.milliseconds" }, buckets: GEN_AI_TIME_PER_OUTPUT_TOKEN_MS_BUCKETS },
];

/**
 * What Higress's bootstrap lacks of statsConfig(): our tags and the buckets, not Higress's own tags (its bootstrap
 * has them) nor use_all_default_tags (a singular field, which an override would replace). Envoy merges a bootstrap
 * override by appending repeated fields, so Higress's bootstrap plus this has statsConfig()'s tags and buckets
 * (manifests/higress-bootstrap/).
 */
export function higressStatsOverride(): Record<string, unknown> {
  return {
    stats_tags: [...FALLBACK_STATS_TAGS, ...GEN_AI_STATS_TAGS],
    histogram_bucket_settings: PLUGIN_HISTOGRAM_BUCKETS,
  };
}

/** The bootstrap's stats_config. */
export function statsConfig(): Record<string, unknown> {
  return {
    stats_tags: [...HIGRESS_STATS_TAGS, ...FALLBACK_STATS_TAGS, ...GEN_AI_STATS_TAGS],
    use_all_default_tags: true,
    histogram_bucket_settings: PLUGIN_HISTOGRAM_BUCKETS,
  };
}
