// Per-request phase glue: which feature runs in which phase. Decisions live in routing.ts,
// response.ts, report.ts and fallback.ts; this file reads what Envoy gives, applies the results and
// answers when the plugin must.
import { HttpContext } from "../../abi/context";
import { Action, BufferType, MapType } from "../../abi/enums";
import * as host from "../../abi/host";
import { HeaderPair, deserializeHeaders } from "../../abi/headers";
import { HostBytes } from "../../abi/memory";
import { JsonScan } from "../../json/reader";
import { GatewayConfig, MODEL_LIST_SUFFIX, MODEL_RETRIEVE_INFIX } from "../config/gateway-config";
import { LocalReply, allAttemptsFailed, bodyTooLarge, emptyBody, envoyError, modelNotFound, overloaded } from "../replies";
import * as cooldown from "../fallback/cooldown-store";
import { Gate, MECHANISM_DISPATCH, Reason, failureReason, reasonName } from "../fallback/policy";
import { failuresOf } from "../fallback/attempt-journal";
import { ATTEMPT_COUNT_HEADER, chainModel } from "./attempt-stage";
import { FALLBACK_FROM_HEADER, FALLBACK_REASON_HEADER, MODEL_HEADER, PLAN_PROPERTY, REQUEST_ID_HEADER, Plan } from "../fallback/plan";
import { Account, REQUEST_STATE_BYTES, vmBudget } from "../../util/budget";
import { arenaBytes, collectSoon } from "../../abi/memory";
import { backupRequestHeaders, headerValue, materialize, relayedResponseHeaders } from "../fallback/dispatch";
import { AttemptFacts, RequestFacts } from "../request-facts";
import * as metrics from "../telemetry/metrics";
import { aiLog, countResponse, recordMetrics, summarize } from "../telemetry/report";
import { ResponseObserver, observeWholeBody } from "../response/observer";
import { REQUEST_KEYS, RoutingResult, modelObject, modelSpan, percentDecode, routeRequest } from "../routing/route-request";
import { applyEdits, declaredTooLarge } from "../routing/request-body";
import { parseDigits } from "../../util/digits";
import { requestLabels } from "../telemetry/labels";
import { GatewayRoot } from "../root";
import { estimatePromptTokens } from "../response/usage";

// One scan object per VM, reused by every request (a VM runs one callback at a time).
const requestScan = new JsonScan(REQUEST_KEYS);

const enum Phase {
  PassThrough = 0,
  ReadingBody = 1,
  Answered = 2,    // the plugin answered (bad request, model list)
  Routed = 3,      // on its way to (or back from) the upstream
  FallingBack = 4, // the primary failed; a backup call is under way, the primary's response held
  Relayed = 5,     // answered with a backup's response, or with the error naming every attempt
}

// Bodies up to this size get a content-based prompt estimate; larger ones bytes/4, whose JSON overhead
// is small next to their text, and which keeps the cost per request linear in body size (make bench).
const PROMPT_ESTIMATE_SCAN_LIMIT: i32 = 4 * 1024;

// Set by Higress on a request it replays to a fallback route (its custom_response redirect).
export const HIGRESS_FALLBACK_HEADER = "x-higress-fallback-from";
const NS_PER_MS: u64 = 1_000_000;
// Linear memory the VM has whatever the load (runtime, static data, compiled configuration), beside
// the budget and the body arena.
const FIXED_MEMORY_BYTES: i64 = 8 * 1024 * 1024;
// Charged for the request headers a dispatched fallback keeps (Envoy caps them at 60 KiB by default).
const HELD_HEADERS_BYTES: i64 = 64 * 1024;
// Attempts beyond this are not itemised in the all-attempts-failed error (maxAttempts is at most 10).
const MAX_REPORTED_ATTEMPTS: i32 = 16;
// A request that charged more than this gets its garbage collected as soon as it ends.
const COLLECT_AFTER_BYTES: i64 = 1024 * 1024;

const CODE_DETAILS: Array<string> = ["response", "code_details"];
// Higress's Envoy: per-request buffer limits (set_property), decimal bytes.
const DECODER_BUFFER_LIMIT: Array<string> = ["set_decoder_buffer_limit"];
const ENCODER_BUFFER_LIMIT: Array<string> = ["set_encoder_buffer_limit"];
const RESPONSE_CODE: Array<string> = ["response", "code"];
const AI_LOG: Array<string> = ["ai_log"];

export class GatewayHttp extends HttpContext {
  private phase: Phase = Phase.PassThrough;
  private cfg: GatewayConfig;
  private wantsUsage: bool = false;
  private hasContentLength: bool = false; // the client framed the body with content-length (not chunked)
  private req: RequestFacts = new RequestFacts();
  private attempt: AttemptFacts = new AttemptFacts();
  private observer: ResponseObserver | null = null;
  private reported: bool = false;
  // Fallback state: what a backup attempt needs, kept only while one may still be made.
  private routing: RoutingResult | null = null;
  // The request's headers as the host serialised them: decoded only if a backup call is made.
  private requestHeaders: HostBytes | null = null;
  private higressFallbackFrom: string = "";
  private probe: bool = false;
  private onPrimary: bool = false; // the current attempt is the requested model's own route
  private nextBackup: i32 = 0;
  private attemptsMade: i32 = 1;
  private gaveUp: bool = false;
  // fallback.mechanism "envoy": the model the plan named (the attempt stage rewrites the others).
  private plannedModel: string = "";
  // What this request holds in the VM, against the memory budget (util/budget.ts).
  private account: Account = new Account();
  private envoyReply: LocalReply | null = null; // Envoy's error answer, being reshaped
  private envoyReplySent: bool = false;
  private admitted: bool;

  constructor(id: u32, private gateway: GatewayRoot) {
    super(id, gateway);
    this.cfg = gateway.config.global;
    this.admitted = this.account.take(REQUEST_STATE_BYTES);
  }

  onRequestHeaders(_numHeaders: u32, endOfStream: bool): Action {
    this.req.startNs = host.nowNanos();
    this.cfg = this.gateway.selectConfig();
    const cfg = this.cfg;
    // Whatever the path, a client never chooses its own route.
    host.removeHeader(MapType.HttpRequestHeaders, cfg.routingHeader);
    if (!this.admitted) {
      // The VM's memory budget is spent on requests in flight: shed this one (retryable 503) rather
      // than risk the VM, and with it every request on this worker.
      this.gateway.countShed();
      return this.answer(overloaded());
    }

    const method = host.getHeader(MapType.HttpRequestHeaders, ":method");
    const rawPath = host.getHeader(MapType.HttpRequestHeaders, ":path");
    if (method == null || rawPath == null) return Action.Continue;
    const q = rawPath.indexOf("?");
    const path = q >= 0 ? rawPath.substring(0, q) : rawPath;

    if (method == "GET" && cfg.serveModelList) {
      if (path.endsWith(MODEL_LIST_SUFFIX)) return this.answerJson(200, "llm_gateway_model_list", cfg.modelListBody);
      const at = path.indexOf(MODEL_RETRIEVE_INFIX);
      if (at >= 0) {
        const raw = path.substring(at + MODEL_RETRIEVE_INFIX.length);
        const id = percentDecode(raw);
        const model = id != null ? modelObject(cfg, id) : null;
        if (model != null) return this.answerJson(200, "llm_gateway_model", model);
        return this.answer(modelNotFound(id != null ? id : raw, cfg.servedNames));
      }
    }
    if (method != "POST" || !cfg.isRoutedPath(path)) return Action.Continue;
    this.wantsUsage = cfg.carriesStreamUsage(path);
    const replayedFrom = host.getHeader(MapType.HttpRequestHeaders, HIGRESS_FALLBACK_HEADER);
    if (replayedFrom != null) this.higressFallbackFrom = replayedFrom;

    const cl = host.getHeader(MapType.HttpRequestHeaders, "content-length");
    this.hasContentLength = cl != null;
    if (cl != null && declaredTooLarge(cl, cfg.maxBodyBytes)) return this.answer(bodyTooLarge(cfg.maxBodyBytes));
    if (endOfStream) return this.answer(emptyBody());
    // Higress's Envoy gives a connection a 32 KiB buffer by default: raise this request's to
    // maxBodyBytes, or Envoy answers 413 before the plugin sees the body. Higress's Envoy honours the
    // property; upstream Envoy only keeps it in filter state (there the limit is configuration).
    host.setProperty(DECODER_BUFFER_LIMIT, cfg.maxBodyBytesText);
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
    const route = res.route!;
    const a = this.attempt;
    a.model = route.isPrefix ? res.model : route.name;
    a.routeValue = res.routeValue;
    let routeValue = res.routeValue;
    let edits = res.edits;
    let served = route.servedFor(res.model);
    let keepForFallback = false;
    let sendPlan = false;

    const policy = cfg.fallback;
    if (policy.enabled && route.fallback.length > 0) {
      const backup = cfg.findRoute(unchecked(route.fallback[0]));
      if (this.higressFallbackFrom.length > 0 && backup != null) {
        // Higress replayed this request after the primary failed: its fallback route (matched on the
        // routing header plus x-higress-fallback-from) leads to the backup, which must see its own name.
        served = backup.servedFor(unchecked(route.fallback[0]));
        edits = res.editsFor(served);
        this.switchTo(unchecked(route.fallback[0]), routeValue, "higress_redirect");
      } else if (backup != null) {
        const gate = cooldown.admit(policy, res.routeValue, <i64>(this.req.startNs / NS_PER_MS));
        if (gate == Gate.Backup) {
          // The primary is cooling down: straight to the backup, streaming intact.
          const name = unchecked(route.fallback[0]);
          routeValue = backup.routeFor(name);
          served = backup.servedFor(name);
          edits = res.editsFor(served);
          this.req.attemptsTried.push(a.model + " (cooling down)");
          this.switchTo(name, routeValue, reasonName(Reason.Cooldown, 0));
          this.nextBackup = 1;
          this.attemptsMade = 2;
        } else {
          this.probe = gate == Gate.Probe;
          this.onPrimary = true;
        }
        if (policy.mechanism == MECHANISM_DISPATCH) keepForFallback = this.canHold(body.len);
        else sendPlan = true;
      }
    }

    host.replaceHeader(MapType.HttpRequestHeaders, cfg.routingHeader, routeValue);
    let headers: HostBytes | null = null;
    if (keepForFallback) {
      // Held until the primary's response headers show whether a backup is needed.
      headers = host.getHeadersRaw(MapType.HttpRequestHeaders);
      keepForFallback = headers != null && body.keep() && headers.keep();
      if (!keepForFallback) {
        if (headers != null) headers.release();
        this.account.giveBack(<i64>body.len * 2 + HELD_HEADERS_BYTES);
        this.gateway.countUnprotected();
      }
    }
    if (keepForFallback) {
      this.req.body = body;
      this.routing = res;
      this.requestHeaders = headers;
      if (policy.firstByteTimeoutMs > 0 && this.onPrimary) {
        this.gateway.watchFirstByte(this, this.req.startNs + <u64>policy.firstByteTimeoutMs * NS_PER_MS);
      }
    }
    if (sendPlan) {
      // Envoy holds the body and retries on the backups' clusters; the attempt stage puts each
      // backup's name where this span says the model is.
      const span = modelSpan(res, edits, served);
      this.plannedModel = this.attempt.model;
      host.setProperty(PLAN_PROPERTY, new Plan(this.attempt.model, span.start, span.end, this.probe).encode());
    }
    if (edits.length > 0) {
      const newLength = applyEdits(body, edits);
      // The length changed. Say the new one: without content-length the request would go upstream
      // chunked, which costs Envoy noticeably more per request (make bench). A chunked request
      // stays chunked.
      if (this.hasContentLength) host.replaceHeader(MapType.HttpRequestHeaders, "content-length", newLength.toString());
    }
    if (!keepForFallback) body.release();
    this.phase = Phase.Routed;
    return Action.Continue;
  }

  // fallback.mechanism "dispatch": whether this request's body may stay in the VM until its primary
  // answers. Charged for the body, one copy of it for a backup call and the headers; when the budget
  // cannot take that, the request goes on without fallback (counted), never with an error.
  private canHold(bodyLen: i32): bool {
    const need = <i64>bodyLen * 2 + HELD_HEADERS_BYTES;
    // Held bodies come and go in sizes of their own, and small objects settle in the holes they leave:
    // linear memory must have room too, not only the charges.
    if (vmBudget.roomInMemory(need, <i64>arenaBytes() + FIXED_MEMORY_BYTES) && this.account.take(need)) return true;
    this.gateway.countUnprotected();
    return false;
  }

  // This request is served by `model` instead of the one asked for.
  private switchTo(model: string, routeValue: string, reason: string): void {
    const req = this.req;
    if (req.fallbackFrom.length == 0) {
      req.fallbackFrom = this.attempt.model;
      req.fallbackReason = reason;
    }
    const a = new AttemptFacts();
    a.model = model;
    a.routeValue = routeValue;
    this.attempt = a;
  }

  onResponseHeaders(_numHeaders: u32, endOfStream: bool): Action {
    // A primary answering after its first-byte timeout sent the request to a backup: held, never sent.
    if (this.phase == Phase.FallingBack) return Action.Pause;
    // Envoy answered before the body was whole (413: over its buffer limit).
    if (this.phase == Phase.ReadingBody) this.shapeEnvoyReply(endOfStream);
    if (this.phase != Phase.Routed) return Action.Continue;
    this.gateway.unwatchFirstByte(this);
    if (this.plannedModel.length > 0) this.noteAttemptStage();
    const a = this.attempt;
    a.headersNs = host.nowNanos();
    const status = host.getHeader(MapType.HttpResponseHeaders, ":status");
    a.status = status != null ? <i32>parseDigits(status) : 0;
    const details = host.getProperty(CODE_DETAILS);
    a.viaUpstream = details != null && details == "via_upstream";
    if (this.req.body != null) {
      // An answer while a fallback was still possible: decide now, before any byte of it reaches
      // the client.
      const policy = this.cfg.fallback;
      const elapsedMs = <i64>((a.headersNs - this.req.startNs) / NS_PER_MS);
      const reason = failureReason(policy, a.status, a.viaUpstream, elapsedMs);
      if (this.onPrimary) cooldown.record(policy, a.routeValue, reason != Reason.None, <i64>(a.headersNs / NS_PER_MS), this.probe);
      if (reason != Reason.None) {
        const req = this.req;
        this.primaryFailed(reason == Reason.LocalReply ? "unreachable" : "status " + a.status.toString(), reasonName(reason, a.status));
        if (this.tryNextBackup()) return Action.Pause;
        if (req.attemptsTried.length > 1) {
          // Backups were tried (or skipped) and none could answer: say what was tried.
          this.giveUp(a.status);
          return Action.Pause;
        }
        // No backup left to try (maxAttempts): the primary's own answer goes to the client.
        req.fallbackFrom = "";
        req.fallbackReason = "";
      }
      this.releaseFallbackState();
    } else if (this.plannedModel.length > 0 && this.allAttemptsFailed(a)) {
      return Action.Pause;
    }
    if (!a.viaUpstream && a.status >= 400) this.shapeEnvoyReply(endOfStream);
    const ct = host.getHeader(MapType.HttpResponseHeaders, "content-type");
    a.isStream = ct != null && ct.startsWith("text/event-stream");
    const drop = a.isStream && this.req.usageInjected;
    // We may edit the stream (usage chunk out, a cut-stream event in): its length is no longer known.
    if (a.isStream) host.removeHeader(MapType.HttpResponseHeaders, "content-length");
    host.replaceHeader(MapType.HttpResponseHeaders, MODEL_HEADER, a.model);
    if (this.req.fallbackFrom.length > 0) host.replaceHeader(MapType.HttpResponseHeaders, FALLBACK_FROM_HEADER, this.req.fallbackFrom);
    this.observer = new ResponseObserver(a, this.cfg.maxSseEventBytes, this.cfg.maxResponseBytes, drop, this.account);
    return Action.Continue;
  }

  onResponseBody(bodySize: u32, endOfStream: bool): Action {
    // The failed attempt's body stays here (buffered, never sent) until the backup's answer replaces it.
    if (this.phase == Phase.FallingBack) return Action.Pause;
    const shaped = this.envoyReply;
    if (shaped != null) {
      // Envoy's text becomes the OpenAI-shaped error: the first chunk is replaced, the rest dropped.
      const text = this.envoyReplySent ? "" : shaped.body();
      const b = String.UTF8.encode(text);
      host.setBufferBytes(BufferType.HttpResponseBody, 0, bodySize, changetype<usize>(b), <usize>b.byteLength);
      this.envoyReplySent = true;
      return Action.Continue;
    }
    const o = this.observer;
    if (o == null) return Action.Continue;
    o.onChunk(bodySize, endOfStream, host.nowNanos());
    return Action.Continue;
  }

  // Sends the held request to the next backup's cluster; false when none is left.
  private tryNextBackup(): bool {
    const cfg = this.cfg;
    const policy = cfg.fallback;
    const req = this.req;
    const route = req.route;
    const res = this.routing;
    const body = req.body;
    const raw = this.requestHeaders;
    if (route == null || res == null || body == null || raw == null) return false;
    const headers = deserializeHeaders(raw.ptr, raw.len);
    while (this.nextBackup < route.fallback.length && this.attemptsMade < policy.maxAttempts) {
      const name = unchecked(route.fallback[this.nextBackup]);
      this.nextBackup++;
      this.attemptsMade++;
      const backup = cfg.findRoute(name);
      if (backup == null) continue; // refused at configure time; kept as a guard
      const routeValue = backup.routeFor(name);
      const payload = materialize(body, res.editsFor(backup.servedFor(name)));
      const callHeaders = backupRequestHeaders(headers, cfg.routingHeader, routeValue);
      const cluster = cfg.clusterOf(backup, routeValue);
      const token = this.dispatchHttpCall(cluster, callHeaders,
        changetype<usize>(payload), <usize>payload.byteLength, policy.attemptTimeoutMs);
      this.switchTo(name, routeValue, req.fallbackReason);
      this.attempt.cluster = cluster;
      if (token != 0) {
        this.phase = Phase.FallingBack;
        // The primary's answer waits in Envoy's buffer until the backup's replaces it.
        host.setProperty(ENCODER_BUFFER_LIMIT, this.cfg.maxResponseBytesText);
        return true;
      }
      req.attemptsTried.push(name + " (call refused)");
    }
    return false;
  }

  onHttpCallResponse(_token: u32, numHeaders: u32, bodySize: u32, _numTrailers: u32): void {
    if (this.phase != Phase.FallingBack) return;
    const a = this.attempt;
    const req = this.req;
    const now = host.nowNanos();
    a.headersNs = now;
    if (numHeaders == 0) {
      // Connection failure, reset or timeout of the backup call.
      req.attemptsTried.push(a.model + " (unreachable or timed out)");
      if (!this.tryNextBackup()) this.giveUp(503);
      return;
    }
    const headers = host.getHeaders(MapType.HttpCallResponseHeaders);
    const status = headerValue(headers, ":status");
    a.status = status != null ? <i32>parseDigits(status) : 0;
    a.viaUpstream = true;
    const elapsedMs = <i64>((now - req.startNs) / NS_PER_MS);
    if (failureReason(this.cfg.fallback, a.status, true, elapsedMs) != Reason.None) {
      req.attemptsTried.push(a.model + " (status " + a.status.toString() + ")");
      if (!this.tryNextBackup()) this.giveUp(a.status);
      return;
    }
    const ct = headerValue(headers, "content-type");
    a.isStream = ct != null && ct.startsWith("text/event-stream");
    if (!this.account.take(<i64>bodySize)) {
      // The answer arrives whole, so it must fit in the budget to be relayed.
      this.gateway.countUnprotected();
      req.attemptsTried.push(a.model + " (answer larger than the memory budget allows)");
      this.giveUp(503);
      return;
    }
    const body = host.getBufferBytes(BufferType.HttpCallResponseBody, 0, bodySize);
    let ptr: usize = 0;
    let len: i32 = 0;
    if (body != null) { ptr = body.ptr; len = body.len; }
    const edited = observeWholeBody(a, ptr, len, this.cfg.maxSseEventBytes, req.usageInjected, now, this.account);
    if (edited != null) { ptr = changetype<usize>(edited); len = edited.byteLength; }
    host.sendLocalResponseBytes(<u32>a.status, "llm_gateway_fallback", ptr, <usize>len,
      relayedResponseHeaders(headers, MODEL_HEADER, a.model, FALLBACK_FROM_HEADER, req.fallbackFrom));
    if (body != null) body.release();
    this.phase = Phase.Relayed;
    this.releaseFallbackState();
  }

  // Envoy's own error answer to a routed request (413 over its buffer limit, 503 no healthy upstream
  // or a refused connection, 504 a timeout), with its text body, becomes an OpenAI-shaped error.
  private shapeEnvoyReply(endOfStream: bool): void {
    if (endOfStream || this.envoyReply != null) return;
    const details = host.getProperty(CODE_DETAILS);
    if (details == null || details == "via_upstream" || details.startsWith("llm_gateway")) return;
    const status = host.getHeader(MapType.HttpResponseHeaders, ":status");
    const reply = envoyError(status != null ? <i32>parseDigits(status) : 0, details);
    if (reply == null) return;
    host.replaceHeader(MapType.HttpResponseHeaders, "content-type", "application/json");
    host.removeHeader(MapType.HttpResponseHeaders, "content-length");
    this.envoyReply = reply;
  }

  // fallback.mechanism "envoy": the attempt stage marks an answer from another model than the planned
  // one (response headers); take it as this request's attempt.
  private noteAttemptStage(): void {
    const served = host.getHeader(MapType.HttpResponseHeaders, MODEL_HEADER);
    if (served == null || served == this.attempt.model) return;
    const backup = this.cfg.findRoute(served);
    if (backup == null) return;
    const why = host.getHeader(MapType.HttpResponseHeaders, FALLBACK_REASON_HEADER);
    host.removeHeader(MapType.HttpResponseHeaders, FALLBACK_REASON_HEADER);
    this.switchTo(served, backup.routeFor(served), why != null ? why : reasonName(Reason.LocalReply, 0));
  }

  // fallback.mechanism "envoy": Envoy's final answer is a failure after more than one attempt: answer
  // with the error naming each, as the attempt stage wrote them in the journal. An attempt missing
  // there has not reported yet: Envoy answered for it (timeout, refused connection) and its upstream
  // filter ends after this answer.
  private allAttemptsFailed(a: AttemptFacts): bool {
    const elapsedMs = <i64>((a.headersNs - this.req.startNs) / NS_PER_MS);
    if (failureReason(this.cfg.fallback, a.status, a.viaUpstream, elapsedMs) == Reason.None) return false;
    // The router writes the attempt count into the request's headers for every attempt.
    const n = host.getHeader(MapType.HttpRequestHeaders, ATTEMPT_COUNT_HEADER);
    const attempts = n != null ? <i32>parseDigits(n) : 1;
    const route = this.cfg.findRoute(this.plannedModel);
    if (attempts < 2 || attempts > MAX_REPORTED_ATTEMPTS || route == null) return false;
    const rid = host.getHeader(MapType.HttpRequestHeaders, REQUEST_ID_HEADER);
    const f = rid != null ? failuresOf(rid) : null;
    const tried = new Array<string>();
    for (let k = 1; k <= attempts; k++) {
      if (f != null && f.has(k)) { tried.push(f.line(k)); continue; }
      const what = k < attempts ? " (no response)" : a.status == 504 ? " (timed out)" : a.viaUpstream ? " (status " + a.status.toString() + ")" : " (unreachable)";
      tried.push(chainModel(this.plannedModel, route, k) + what);
    }
    const req = this.req;
    req.attemptsTried = tried;
    if (req.fallbackFrom.length == 0) {
      const why = f != null ? f.lastReason() : "";
      req.fallbackFrom = this.plannedModel;
      req.fallbackReason = why.length > 0 ? why : reasonName(Reason.LocalReply, 0);
    }
    this.giveUp(a.status);
    return true;
  }

  // Every attempt failed: one clear error naming them, instead of the last failure or a hang. The
  // status is the last attempt's when it is a 5xx, else 502.
  private giveUp(lastStatus: i32): void {
    const status: u32 = lastStatus >= 500 && lastStatus < 600 ? <u32>lastStatus : 502;
    const reply = allAttemptsFailed(this.req.attemptsTried, status);
    const headers: Array<HeaderPair> = [new HeaderPair("content-type", "application/json"), new HeaderPair(FALLBACK_FROM_HEADER, this.req.fallbackFrom)];
    host.sendLocalResponse(reply.status, reply.details(), reply.body(), headers);
    this.attempt.status = <i32>status;
    this.attempt.viaUpstream = false;
    this.gaveUp = true;
    this.phase = Phase.Relayed;
    this.releaseFallbackState();
  }

  private releaseFallbackState(): void {
    const body = this.req.body;
    // The body and headers are freed now; a copy made for a backup call stays charged until the
    // request ends (it is garbage until the next collection).
    if (body != null) this.account.giveBack(<i64>body.len + HELD_HEADERS_BYTES);
    this.req.releaseBody();
    this.routing = null;
    const raw = this.requestHeaders;
    if (raw != null) raw.release();
    this.requestHeaders = null;
  }

  // The request is over (Envoy is about to write its access log): metrics and the ai_log field.
  onLog(): void {
    if (this.reported) return;
    this.reported = true;
    this.gateway.noteRequestDone();
    const a = this.attempt;
    const end = host.nowNanos();
    if (a.status == 0) {
      const code = host.getPropertyU64(RESPONSE_CODE);
      a.status = code >= 0 ? <i32>code : 0;
      const details = host.getProperty(CODE_DETAILS);
      a.viaUpstream = details != null && details == "via_upstream";
    }
    const routed = this.phase == Phase.Routed || this.phase == Phase.Relayed || this.phase == Phase.FallingBack;
    const modelLabel = routed ? a.model : (this.req.requestedModel.length > 0 ? this.req.requestedModel : "none");
    // A relayed backup answer is labelled with the backup's cluster, not the one Envoy had picked.
    const labels = requestLabels(modelLabel, this.cfg.consumerHeader, this.gaveUp ? "" : a.cluster);
    const from = this.req.fallbackFrom;
    if (from.length > 0) {
      // Under the labels of the model that failed, on the cluster Envoy had picked for it.
      const fromLabels = requestLabels(from, this.cfg.consumerHeader, "");
      metrics.countFallback(fromLabels, this.gaveUp ? "none" : a.model, this.req.fallbackReason);
    }
    if (!routed || this.gaveUp) {
      // Answered by the plugin itself (400/404/413, the model list, every attempt failed) or passed
      // through unrouted.
      if (this.phase != Phase.PassThrough) countResponse(labels, a.status, false);
      return;
    }
    const outcome = summarize(this.req, a, labels, end);
    recordMetrics(this.req, a, outcome);
    host.setProperty(AI_LOG, aiLog(this.req, a, outcome));
  }

  onDelete(): void {
    this.gateway.unwatchFirstByte(this);
    this.releaseFallbackState();
    if (this.account.charged > COLLECT_AFTER_BYTES) collectSoon();
    this.account.settle();
  }

  // The primary sent nothing within fallback.firstByteTimeoutMs (called from the root's tick).
  onFirstByteTimeout(): void {
    if (this.phase != Phase.Routed || this.req.body == null || !this.onPrimary) return;
    const policy = this.cfg.fallback;
    cooldown.record(policy, this.attempt.routeValue, true, <i64>(host.nowNanos() / NS_PER_MS), this.probe);
    this.primaryFailed("no response within " + policy.firstByteTimeoutMs.toString() + " ms", reasonName(Reason.FirstByteTimeout, 0));
    if (!this.tryNextBackup()) this.giveUp(504);
  }

  // The requested model's own attempt failed (`what`, for the client's error; `reason`, for metrics).
  private primaryFailed(what: string, reason: string): void {
    const req = this.req;
    req.attemptsTried.push(this.attempt.model + " (" + what + ")");
    if (req.fallbackFrom.length == 0) {
      req.fallbackFrom = this.attempt.model;
      req.fallbackReason = reason;
    }
    this.onPrimary = false;
  }

  private answerJson(status: u32, details: string, body: string): Action {
    const headers: Array<HeaderPair> = [new HeaderPair("content-type", "application/json")];
    host.sendLocalResponse(status, details, body, headers);
    this.phase = Phase.Answered;
    this.attempt.status = <i32>status;
    this.attempt.viaUpstream = false;
    return Action.Pause;
  }

  private answer(reply: LocalReply): Action {
    return this.answerJson(reply.status, reply.details(), reply.body());
  }
}

