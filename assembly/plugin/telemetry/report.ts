// At the end of a request: the metrics and the `ai_log` access-log field, computed once from the
// request's and the serving attempt's facts. Every request is counted, including those without usage
// (estimated and marked so) and those the plugin or Envoy answered locally.
import { jsonString, jsonStringArray } from "../../json/writer";
import { Step } from "../fallback/fallback-state";
import { AttemptFacts, RequestFacts } from "../request-facts";
import * as m from "./metrics";
import { msBetween } from "../../util/time";
import { completeUsage, UsageRecord } from "../response/usage";

export class Outcome {
  labels: m.Labels;
  usage: UsageRecord;
  durationMs: i64 = -1;
  ttftMs: i64 = -1; // first generated token, reasoning included
  firstAnswerMs: i64 = -1; // first answer token (content, tool calls)
  interTokenMs: i64 = -1;
  tokensPerSecond: i64 = -1;
  incomplete: bool = false;

  constructor(labels: m.Labels, usage: UsageRecord) {
    this.labels = labels;
    this.usage = usage;
  }
}

// Computes the outcome of a request that reached an upstream (or was answered locally with `status`).
export function summarize(req: RequestFacts, a: AttemptFacts, labels: m.Labels, endNs: u64): Outcome {
  // Estimates stand in for a successful answer's missing usage only: an error body generated nothing,
  // and counting it would inflate the token counters that dashboards and billing read.
  const ok = a.status >= 200 && a.status < 300;
  const usage = a.usage.reported || !ok ? a.usage : completeUsage(a.usage, req.promptEstimate, a.completionEstimate);
  const o = new Outcome(labels, usage);
  const end = a.endNs != 0 ? a.endNs : endNs;
  o.durationMs = msBetween(req.startNs, end);
  if (a.isStream && ok) {
    o.ttftMs = msBetween(req.startNs, a.firstTokenNs);
    o.firstAnswerMs = msBetween(req.startNs, a.firstAnswerNs);
  }
  const out = usage.completionTokens;
  // Inter-token latency: the time after the first token, spread over the tokens that followed it. Not
  // for a stream that arrived in one piece (a fallback's answer): its tokens had no gaps to measure.
  if (!a.arrivedWhole && o.ttftMs >= 0 && o.durationMs >= o.ttftMs && out > 1) o.interTokenMs = (o.durationMs - o.ttftMs) / (out - 1);
  if (ok && out > 0 && o.durationMs > 0) o.tokensPerSecond = (out * 1000) / o.durationMs;
  // Unparsed streams are counted as such, not as incomplete: we could not see whether [DONE] came.
  o.incomplete = a.isStream && a.status == 200 && !a.sawDone && !a.unparsed;
  return o;
}

export function recordMetrics(req: RequestFacts, a: AttemptFacts, o: Outcome): void {
  const l = o.labels;
  const u = o.usage;
  if (u.promptTokens > 0) m.count(l, m.INPUT_TOKEN, u.promptTokens);
  if (u.completionTokens > 0) m.count(l, m.OUTPUT_TOKEN, u.completionTokens);
  if (u.totalTokens > 0) m.count(l, m.TOTAL_TOKEN, u.totalTokens);
  if (u.cachedTokens > 0) m.count(l, m.CACHED_TOKEN, u.cachedTokens);
  if (u.reasoningTokens > 0) m.count(l, m.REASONING_TOKEN, u.reasoningTokens);
  if (o.durationMs >= 0) {
    m.count(l, m.SERVICE_DURATION, o.durationMs);
    m.count(l, m.DURATION_COUNT, 1);
    m.observe(l, m.H_DURATION_MS, o.durationMs);
  }
  if (a.isStream && o.ttftMs >= 0) {
    m.count(l, m.FIRST_TOKEN_DURATION, o.ttftMs);
    m.count(l, m.STREAM_DURATION_COUNT, 1);
    m.observe(l, m.H_FIRST_TOKEN_MS, o.ttftMs);
  }
  if (o.firstAnswerMs >= 0) m.observe(l, m.H_FIRST_ANSWER_TOKEN_MS, o.firstAnswerMs);
  if (o.interTokenMs >= 0) m.observe(l, m.H_INTER_TOKEN_MS, o.interTokenMs);
  if (u.promptTokens >= 0) m.observe(l, m.H_INPUT_TOKENS, u.promptTokens);
  if (u.completionTokens >= 0) m.observe(l, m.H_OUTPUT_TOKENS, u.completionTokens);
  if (o.tokensPerSecond >= 0) m.observe(l, m.H_OUTPUT_TOKENS_PER_SECOND, o.tokensPerSecond);
  if (u.estimated) m.count(l, m.USAGE_ESTIMATED, 1);
  if (o.incomplete) m.count(l, m.STREAM_INCOMPLETE, 1);
  if (a.unparsed) m.count(l, m.STREAM_UNPARSED, 1);
  // The attempt stage counted this status already (fallback.mechanism envoy), with the attempt's cluster.
  if (!a.statusCounted) countResponse(l, a.status, a.viaUpstream);
  if (a.status >= 200 && a.status < 300) recordGenAi(req, a, o);
}

// OpenTelemetry's GenAI metrics of an answered request (semantic conventions: gen_ai.client.token.usage,
// gen_ai.server.request.duration, …time_to_first_token, …time_per_output_token), in milliseconds.
function recordGenAi(req: RequestFacts, a: AttemptFacts, o: Outcome): void {
  const g = m.admit(new m.GenAiLabels(req.operation, m.sanitizeClientLabel(req.requestedModel), m.sanitizeClientLabel(a.servedModel)));
  const u = o.usage;
  m.observe(g, m.GEN_AI_INPUT_TOKENS, u.promptTokens);
  m.observe(g, m.GEN_AI_OUTPUT_TOKENS, u.completionTokens);
  m.observe(g, m.GEN_AI_REQUEST_DURATION, o.durationMs);
  m.observe(g, m.GEN_AI_TIME_TO_FIRST_TOKEN, o.ttftMs);
  m.observe(g, m.GEN_AI_TIME_PER_OUTPUT_TOKEN, o.interTokenMs);
}

// responses_<origin>_<class>, e.g. responses_upstream_2xx, responses_local_4xx.
export function countResponse(l: m.Labels, status: i32, viaUpstream: bool): void {
  const cls = status >= 100 && status < 600 ? (status / 100).toString() + "xx" : "none";
  m.count(l, m.RESPONSES_PREFIX + (viaUpstream ? "upstream_" : "local_") + cls, 1);
}

function num(v: i64): string {
  return v >= 0 ? v.toString() : "null";
}

// The `ai_log` filter state (Higress's access log prints it with %FILTER_STATE(wasm.ai_log:PLAIN)%):
// Higress's field names, plus ours.
export function aiLog(req: RequestFacts, a: AttemptFacts, o: Outcome): string {
  const u = o.usage;
  let s =
    '{"model":' +
    jsonString(a.model) +
    ',"requested_model":' +
    jsonString(req.requestedModel) +
    ',"served_model":' +
    jsonString(a.servedModel) +
    ',"route":' +
    jsonString(o.labels.route) +
    ',"cluster":' +
    jsonString(o.labels.cluster) +
    ',"consumer":' +
    jsonString(o.labels.consumer) +
    ',"response_type":' +
    (a.isStream ? '"stream"' : '"normal"') +
    ',"status":' +
    a.status.toString() +
    ',"input_token":' +
    num(u.promptTokens) +
    ',"output_token":' +
    num(u.completionTokens) +
    ',"total_token":' +
    num(u.totalTokens) +
    ',"cached_token":' +
    num(u.cachedTokens) +
    ',"reasoning_token":' +
    num(u.reasoningTokens) +
    ',"usage_estimated":' +
    (u.estimated ? "true" : "false") +
    ',"llm_first_token_duration":' +
    num(o.ttftMs) +
    ',"first_answer_token_ms":' +
    num(o.firstAnswerMs) +
    ',"llm_service_duration":' +
    num(o.durationMs) +
    ',"inter_token_ms":' +
    num(o.interTokenMs) +
    ',"output_tokens_per_second":' +
    num(o.tokensPerSecond) +
    ',"stream_complete":' +
    (a.isStream ? (o.incomplete ? "false" : "true") : "null");
  const fb = req.fallback;
  if (fb.from.length > 0) s += ',"fallback_from":' + jsonString(fb.from) + ',"fallback_reason":' + jsonString(fb.reason);
  if (fb.step == Step.GaveUp) s += ',"attempts_failed":' + jsonStringArray(fb.tried);
  if (req.prefixKey.length > 0) s += ',"prefix_key":"' + req.prefixKey + '"';
  if (req.quotaRefused.length > 0) s += ',"quota_refused":' + jsonString(req.quotaRefused);
  return s + "}";
}
