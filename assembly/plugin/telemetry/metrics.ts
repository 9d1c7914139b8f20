// Every metric the plugin defines: names, label order, units. Names follow Higress's ai-statistics
// plugin, `route.<route>.upstream.<cluster>.model.<model>.consumer.<consumer>.metric.<name>`, so the
// stats tags in Higress's bootstrap (and in our harness) turn the parts into the labels ai_route,
// ai_cluster, ai_model and ai_consumer, and Higress's AI dashboard works unchanged.
import { MetricType } from "../../abi/enums";
import { defineMetric, incrementMetric, recordMetric, NO_METRIC } from "../../abi/host";

// Higress's counters (same names and meanings).
export const INPUT_TOKEN = "input_token";
export const OUTPUT_TOKEN = "output_token";
export const TOTAL_TOKEN = "total_token";
export const FIRST_TOKEN_DURATION = "llm_first_token_duration"; // ms, summed over streamed requests
export const SERVICE_DURATION = "llm_service_duration"; // ms, summed over requests
export const DURATION_COUNT = "llm_duration_count";
export const STREAM_DURATION_COUNT = "llm_stream_duration_count";

// Beyond Higress: histograms (percentiles) and outcome counters.
export const H_FIRST_TOKEN_MS = "first_token_ms";
export const H_DURATION_MS = "duration_ms";
export const H_INTER_TOKEN_MS = "inter_token_ms";
export const H_INPUT_TOKENS = "input_tokens";
export const H_OUTPUT_TOKENS = "output_tokens";
export const H_OUTPUT_TOKENS_PER_SECOND = "output_tokens_per_second";
export const CACHED_TOKEN = "cached_token";
export const REASONING_TOKEN = "reasoning_token"; // usage.completion_tokens_details.reasoning_tokens
// Time to the first answer token (content or tool calls, reasoning excluded); first_token_ms counts any.
export const H_FIRST_ANSWER_TOKEN_MS = "first_answer_token_ms";
// Every attempt failed and the plugin answered with the all_attempts_failed error (requested model's labels).
export const ALL_ATTEMPTS_FAILED = "all_attempts_failed";
export const USAGE_ESTIMATED = "usage_estimated";
// A quota rule refused the request (429 rate_limit_exceeded).
export const QUOTA_REFUSED = "quota_refused";
export const STREAM_INCOMPLETE = "stream_incomplete";
export const STREAM_UNPARSED = "stream_unparsed";
// fallback.to.<model>.reason.<reason>, counted under the labels of the model that failed; the
// stats tags ai_fallback_to and ai_fallback_reason (docs/metrics.md) turn the two parts into labels.
export const FALLBACK = "fallback";
// responses_<origin>_<class>: origin "upstream" (code_details via_upstream) or "local" (Envoy or this
// plugin answered), class 2xx…5xx.
export const RESPONSES_PREFIX = "responses_";

// OpenTelemetry's GenAI metrics (semantic conventions), under their own label set (GenAiLabels). Envoy's
// histograms hold unsigned integers and a Wasm plugin cannot give them a unit, so durations are in
// milliseconds and say so (OpenTelemetry specifies seconds; its Prometheus naming of an `ms` unit is
// `_milliseconds`).
export const GEN_AI_INPUT_TOKENS = "token_type.input.client.token.usage";
export const GEN_AI_OUTPUT_TOKENS = "token_type.output.client.token.usage";
export const GEN_AI_REQUEST_DURATION = "server.request.duration.milliseconds";
export const GEN_AI_TIME_TO_FIRST_TOKEN = "server.time_to_first_token.milliseconds";
export const GEN_AI_TIME_PER_OUTPUT_TOKEN = "server.time_per_output_token.milliseconds";

// Distinct label sets one VM will define; past it, model and consumer become "overflow" so a client
// cycling through names cannot grow Envoy's stats without bound.
export const MAX_SERIES: i32 = 2000;
export const MAX_LABEL_LENGTH: i32 = 64;
export const OVERFLOW = "overflow";

// A set of label values, encoded in the metric name's prefix (Envoy's stats tags take them out again).
export class LabelSet {
  readonly prefix: string; // built once per request, reused by every metric of it
  // Metric ids of this label set by metric name, shared by every request with the same labels (see
  // admit): a request looks its metrics up by short name instead of hashing full metric names.
  ids: Map<string, u32> = EMPTY_IDS;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  // The same set with its client-chosen values folded into "overflow" (admit, past MAX_SERIES).
  overflowed(): LabelSet {
    return this;
  }
}

// Higress's labels: route and cluster Envoy picked, the model that served, the consumer.
export class Labels extends LabelSet {
  constructor(
    public route: string,
    public cluster: string,
    public model: string,
    public consumer: string,
  ) {
    super("route." + route + ".upstream." + cluster + ".model." + model + ".consumer." + consumer + ".metric.");
  }

  overflowed(): LabelSet {
    return new Labels(this.route, this.cluster, OVERFLOW, OVERFLOW);
  }
}

// OpenTelemetry GenAI attributes: gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model.
export class GenAiLabels extends LabelSet {
  constructor(
    public operation: string,
    public requestModel: string,
    public responseModel: string,
  ) {
    super("gen_ai.operation." + operation + ".request_model." + requestModel + ".response_model." + responseModel + ".");
  }

  overflowed(): LabelSet {
    return new GenAiLabels(this.operation, OVERFLOW, OVERFLOW);
  }
}

// Route and cluster names come from the operator's configuration and keep their dots (Higress's route
// names contain them and its dashboards show them). Model and consumer come from clients: every byte
// outside [A-Za-z0-9_-:/] becomes '_' (a '.' would shift Higress's lazy tag regexes and forge labels),
// and they are cut to MAX_LABEL_LENGTH.
export function sanitizeClientLabel(s: string): string {
  if (s.length == 0) return "none";
  const n = s.length < MAX_LABEL_LENGTH ? s.length : MAX_LABEL_LENGTH;
  let clean = true;
  for (let i = 0; i < n; i++)
    if (!safeChar(s.charCodeAt(i), false)) {
      clean = false;
      break;
    }
  if (clean && n == s.length) return s;
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    unchecked((out[i] = safeChar(c, false) ? String.fromCharCode(c) : "_"));
  }
  return out.join("");
}

export function sanitizeConfigLabel(s: string): string {
  if (s.length == 0) return "none";
  for (let i = 0; i < s.length; i++) {
    if (!safeChar(s.charCodeAt(i), true)) return sanitizeClientLabel(s);
  }
  return s;
}

function safeChar(c: i32, allowDot: bool): bool {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c == 0x5f ||
    c == 0x2d ||
    c == 0x3a ||
    c == 0x2f ||
    c == 0x7c ||
    (allowDot && c == 0x2e)
  );
}

const EMPTY_IDS = new Map<string, u32>();

// Metric ids per label set, defined on first use (label values are only known per request) and kept
// for the VM's life.
const series = new Map<string, Map<string, u32>>();

// Admits a label set (attaching its ids); once MAX_SERIES sets exist, new ones have their client-chosen
// values (model, consumer) folded into "overflow" (one such set per route and cluster, or per
// operation, which the configuration bounds).
export function admit<T extends LabelSet>(labels: T): T {
  let l: T = labels;
  if (!series.has(l.prefix) && series.size >= MAX_SERIES) l = changetype<T>(l.overflowed());
  if (series.has(l.prefix)) {
    l.ids = series.get(l.prefix);
  } else {
    l.ids = new Map<string, u32>();
    series.set(l.prefix, l.ids);
  }
  return l;
}

function metricId(labels: LabelSet, type: MetricType, name: string): u32 {
  const ids = labels.ids;
  if (ids.has(name)) return ids.get(name);
  const id = defineMetric(type, labels.prefix + name);
  // Labels never admitted (EMPTY_IDS) define their metrics each time rather than share a cache.
  if (id != NO_METRIC && ids !== EMPTY_IDS) ids.set(name, id);
  return id;
}

export function count(labels: LabelSet, name: string, delta: i64): void {
  if (delta <= 0) return;
  incrementMetric(metricId(labels, MetricType.Counter, name), delta);
}

export function countFallback(labels: Labels, to: string, reason: string): void {
  count(labels, FALLBACK + ".to." + sanitizeClientLabel(to) + ".reason." + reason, 1);
}

export function observe(labels: LabelSet, name: string, value: i64): void {
  if (value < 0) return;
  recordMetric(metricId(labels, MetricType.Histogram, name), <u64>value);
}
