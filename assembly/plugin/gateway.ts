// Per-request phase glue: which feature runs in which phase. Decisions live in routing.ts,
// response.ts, report.ts and fallback.ts; this file reads what Envoy gives, applies the results and
// answers when the plugin must.
import { HttpContext } from "../abi/context";
import { Action, BufferType, MapType } from "../abi/enums";
import * as host from "../abi/host";
import { HeaderPair } from "../abi/headers";
import { HostBytes } from "../abi/memory";
import { JsonScan } from "../json/reader";
import { GatewayConfig, MODEL_LIST_SUFFIX } from "./config";
import { LocalReply, bodyTooLarge, emptyBody } from "./errors";
import { AttemptFacts, RequestFacts } from "./exchange";
import * as metrics from "./metrics";
import { aiLog, countResponse, recordMetrics, summarize } from "./report";
import { ResponseObserver } from "./response";
import { REQUEST_KEYS, BodyEdit, routeRequest } from "./routing";
import { GatewayRoot } from "./root";
import { estimatePromptTokens } from "./usage";

// One scan object per VM, reused by every request (a VM runs one callback at a time).
const requestScan = new JsonScan(REQUEST_KEYS);

const enum Phase { PassThrough = 0, ReadingBody = 1, Answered = 2, Routed = 3 }

const APPEND: u32 = u32.MAX_VALUE; // start offset meaning "append" to Envoy
// Bodies up to this size get a content-based prompt estimate; larger ones bytes/4 (no second scan).
const PROMPT_ESTIMATE_SCAN_LIMIT: i32 = 256 * 1024;

export const MODEL_HEADER = "x-llm-gateway-model";
export const FALLBACK_FROM_HEADER = "x-llm-gateway-fallback-from";

// Higress's Envoy answers "route_name"/"cluster_name"; upstream Envoy's attributes are "xds.*".
const ROUTE_NAME: Array<string> = ["route_name"];
const XDS_ROUTE_NAME: Array<string> = ["xds", "route_name"];
const CLUSTER_NAME: Array<string> = ["cluster_name"];
const XDS_CLUSTER_NAME: Array<string> = ["xds", "cluster_name"];
const CODE_DETAILS: Array<string> = ["response", "code_details"];
const RESPONSE_CODE: Array<string> = ["response", "code"];
const AI_LOG: Array<string> = ["ai_log"];

export class GatewayHttp extends HttpContext {
  private phase: Phase = Phase.PassThrough;
  private cfg: GatewayConfig;
  private wantsUsage: bool = false;
  private req: RequestFacts = new RequestFacts();
  private attempt: AttemptFacts = new AttemptFacts();
  private observer: ResponseObserver | null = null;
  private reported: bool = false;

  constructor(id: u32, private gateway: GatewayRoot) {
    super(id, gateway);
    this.cfg = gateway.config.global;
  }

  onRequestHeaders(_numHeaders: u32, endOfStream: bool): Action {
    this.req.startNs = host.nowNanos();
    this.cfg = this.gateway.selectConfig();
    const cfg = this.cfg;
    // Whatever the path, a client never chooses its own route.
    host.removeHeader(MapType.HttpRequestHeaders, cfg.routingHeader);

    const method = host.getHeader(MapType.HttpRequestHeaders, ":method");
    const rawPath = host.getHeader(MapType.HttpRequestHeaders, ":path");
    if (method == null || rawPath == null) return Action.Continue;
    const q = rawPath.indexOf("?");
    const path = q >= 0 ? rawPath.substring(0, q) : rawPath;

    if (method == "GET" && cfg.serveModelList && path.endsWith(MODEL_LIST_SUFFIX)) {
      const headers: Array<HeaderPair> = [new HeaderPair("content-type", "application/json")];
      host.sendLocalResponse(200, "llm_gateway_model_list", cfg.modelListBody, headers);
      this.phase = Phase.Answered;
      return Action.Pause;
    }
    if (method != "POST" || !cfg.isRoutedPath(path)) return Action.Continue;
    this.wantsUsage = cfg.carriesStreamUsage(path);

    const cl = host.getHeader(MapType.HttpRequestHeaders, "content-length");
    if (cl != null && declaredTooLarge(cl, cfg.maxBodyBytes)) return this.answer(bodyTooLarge(cfg.maxBodyBytes));
    if (endOfStream) return this.answer(emptyBody());
    // Hold the headers: the routing header is only known once the whole body is read, and Envoy
    // re-picks the route when they change.
    this.phase = Phase.ReadingBody;
    return Action.Pause;
  }

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    if (this.phase != Phase.ReadingBody) return Action.Continue;
    const cfg = this.cfg;
    if (<i64>bodySize > <i64>cfg.maxBodyBytes) return this.answer(bodyTooLarge(cfg.maxBodyBytes));
    if (!endOfStream) return Action.Pause; // Envoy buffers until the end of the body
    if (bodySize == 0) return this.answer(emptyBody());

    const body = host.getBufferBytes(BufferType.HttpRequestBody, 0, bodySize);
    if (body == null) {
      // Fail open: without the body we cannot route, but Envoy's own routes still apply.
      host.logWarn("llm-gateway: request body unavailable; passing the request through unrouted");
      this.phase = Phase.PassThrough;
      return Action.Continue;
    }
    const res = routeRequest(cfg, body.ptr, body.len, requestScan, this.wantsUsage);
    if (res.reply != null) {
      body.release();
      return this.answer(res.reply!);
    }
    const req = this.req;
    req.requestedModel = res.model;
    req.route = res.route;
    req.stream = res.stream;
    req.usageInjected = res.usageInjected;
    req.promptEstimate = body.len <= PROMPT_ESTIMATE_SCAN_LIMIT ? estimatePromptTokens(body.ptr, body.len) : <i64>((body.len + 3) / 4);
    const a = this.attempt;
    a.model = res.route!.isPrefix ? res.model : res.route!.name;
    a.routeValue = res.routeValue;

    host.replaceHeader(MapType.HttpRequestHeaders, cfg.routingHeader, res.routeValue);
    if (res.edits.length > 0) {
      applyEdits(body, res.edits);
      // The length changed; Envoy then frames the upstream request itself.
      host.removeHeader(MapType.HttpRequestHeaders, "content-length");
    }
    body.release();
    this.phase = Phase.Routed;
    return Action.Continue;
  }

  onResponseHeaders(_numHeaders: u32, _endOfStream: bool): Action {
    if (this.phase != Phase.Routed) return Action.Continue;
    const a = this.attempt;
    a.headersNs = host.nowNanos();
    const status = host.getHeader(MapType.HttpResponseHeaders, ":status");
    a.status = status != null ? I32.parseInt(status) : 0;
    const details = host.getProperty(CODE_DETAILS);
    a.viaUpstream = details != null && details == "via_upstream";
    const ct = host.getHeader(MapType.HttpResponseHeaders, "content-type");
    a.isStream = ct != null && ct.startsWith("text/event-stream");
    const drop = a.isStream && this.req.usageInjected;
    // We may edit the stream (usage chunk out, a cut-stream event in): its length is no longer known.
    if (a.isStream) host.removeHeader(MapType.HttpResponseHeaders, "content-length");
    host.replaceHeader(MapType.HttpResponseHeaders, MODEL_HEADER, a.model);
    this.observer = new ResponseObserver(a, this.cfg.maxSseEventBytes, this.cfg.maxResponseBytes, drop);
    return Action.Continue;
  }

  onResponseBody(bodySize: u32, endOfStream: bool): Action {
    const o = this.observer;
    if (o == null) return Action.Continue;
    o.onChunk(bodySize, endOfStream, host.nowNanos());
    return Action.Continue;
  }

  // The request is over (Envoy is about to write its access log): metrics and the ai_log field.
  onLog(): void {
    if (this.reported) return;
    this.reported = true;
    const a = this.attempt;
    const end = host.nowNanos();
    const route = propertyOr(ROUTE_NAME, XDS_ROUTE_NAME);
    const cluster = propertyOr(CLUSTER_NAME, XDS_CLUSTER_NAME);
    const consumer = host.getHeader(MapType.HttpRequestHeaders, this.cfg.consumerHeader);
    if (a.status == 0) {
      const code = host.getPropertyU64(RESPONSE_CODE);
      a.status = code >= 0 ? <i32>code : 0;
      const details = host.getProperty(CODE_DETAILS);
      a.viaUpstream = details != null && details == "via_upstream";
    }
    const modelLabel = this.phase == Phase.Routed ? a.model : (this.req.requestedModel.length > 0 ? this.req.requestedModel : "none");
    const labels = metrics.admit(new metrics.Labels(
      metrics.sanitizeConfigLabel(route != null ? route : ""),
      metrics.sanitizeConfigLabel(cluster != null ? cluster : ""),
      metrics.sanitizeClientLabel(modelLabel),
      metrics.sanitizeClientLabel(consumer != null ? consumer : "")));
    if (this.phase != Phase.Routed) {
      // Answered by the plugin itself (400/404/413, the model list) or passed through unrouted.
      if (this.phase == Phase.Answered) countResponse(labels, a.status, false);
      return;
    }
    const outcome = summarize(this.req, a, labels, end);
    recordMetrics(this.req, a, outcome);
    host.setProperty(AI_LOG, aiLog(this.req, a, outcome));
  }

  onDelete(): void {
    this.req.releaseBody();
  }

  private answer(reply: LocalReply): Action {
    const headers: Array<HeaderPair> = [new HeaderPair("content-type", "application/json")];
    host.sendLocalResponse(reply.status, reply.details(), reply.body(), headers);
    this.phase = Phase.Answered;
    this.attempt.status = <i32>reply.status;
    this.attempt.viaUpstream = false;
    return Action.Pause;
  }
}

function propertyOr(first: Array<string>, second: Array<string>): string | null {
  const v = host.getProperty(first);
  if (v != null && v.length > 0) return v;
  return host.getProperty(second);
}

// content-length larger than the limit (a malformed value is left to Envoy's codec).
function declaredTooLarge(value: string, limit: i32): bool {
  if (value.length == 0 || value.length > 12) return value.length > 12;
  let n: i64 = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return false;
    n = n * 10 + c;
  }
  return n > <i64>limit;
}

// Rewrites the buffered body from slices of the copy we already hold plus the edits' texts: Envoy's
// set_buffer_bytes only prepends (after draining) or appends, and this avoids building a second copy.
function applyEdits(body: HostBytes, edits: Array<BodyEdit>): void {
  let from: i32 = 0;
  for (let i = 0; i < edits.length; i++) {
    const e = unchecked(edits[i]);
    if (i == 0) host.setBufferBytes(BufferType.HttpRequestBody, 0, <u32>body.len, body.ptr, <usize>e.start);
    else host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, body.ptr + <usize>from, <usize>(e.start - from));
    const t = String.UTF8.encode(e.text);
    host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, changetype<usize>(t), <usize>t.byteLength);
    from = e.end;
  }
  host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, body.ptr + <usize>from, <usize>(body.len - from));
}
