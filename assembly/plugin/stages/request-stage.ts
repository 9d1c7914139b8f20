// The request stage: the plugin as an HTTP filter, one context per request. It reads what Envoy gives,
// asks the features for decisions (routing/, response/, fallback/, telemetry/) and applies them: sets
// headers, rewrites the body, answers itself when it must. What happened to the request is `phase`;
// how far its fallback got is `req.fallback` (fallback/fallback-state.ts), its own state machine.
import { HttpContext } from "../../abi/context";
import { Action, BufferType, MapType, StreamType } from "../../abi/enums";
import * as host from "../../abi/host";
import { HeaderMapView, HeaderPair, deserializeHeaders } from "../../abi/headers";
import { HostBytes } from "../../abi/memory";
import { arenaBytes, collectSoon } from "../../abi/memory";
import { JsonScan } from "../../json/reader";
import { Account, REQUEST_STATE_BYTES, vmBudget } from "../../util/budget";
import { parseDigits } from "../../util/digits";
import { NS_PER_MS, msBetween, msOf } from "../../util/time";
import { LoadAwarePolicy } from "../config/affinity-policy";
import { GatewayConfig, MECHANISM_DISPATCH } from "../config/gateway-config";
import { QUOTA_CLUSTER } from "../config/quota-policy";
import {
  AI_LOG,
  ATTEMPT_CLUSTER_HEADER,
  ATTEMPT_COUNT_HEADER,
  CODE_DETAILS,
  DECODER_BUFFER_LIMIT,
  ENCODER_BUFFER_LIMIT,
  FALLBACK_FROM_HEADER,
  FALLBACK_REASON_HEADER,
  HIGRESS_FALLBACK_HEADER,
  MODEL_HEADER,
  PLAN_PROPERTY,
  REQUEST_ID_HEADER,
  RESPONSE_CODE,
  UPSTREAM_ADDRESS,
} from "../envoy-names";
import { failuresOf } from "../fallback/attempt-journal";
import * as cooldown from "../fallback/cooldown-store";
import { HeldRequest, backupRequestHeaders, headerValue, relayedResponseHeaders } from "../fallback/dispatch";
import { FallbackState, Step } from "../fallback/fallback-state";
import { Plan, chainModel } from "../fallback/plan";
import { Gate, Reason, failureReason, reasonName } from "../fallback/policy";
import {
  LocalReply,
  allAttemptsFailed,
  bodyTooLarge,
  emptyBody,
  envoyError,
  modelNotFound,
  overloaded,
  quotaServiceUnavailable,
} from "../replies";
import { admissionRequest, admitFromResponse, chargeRequest } from "../quota/cluster-store";
import { admitLocal, chargeLocal } from "../quota/local-store";
import { RLS_METHOD, RLS_SERVICE, answersAll, readRlsResponse } from "../quota/rls-proto";
import { QuotaTicket, ticketFor } from "../quota/ticket";
import { AttemptFacts, RequestFacts } from "../request-facts";
import { ResponseObserver, observeWholeBody } from "../response/observer";
import { estimateFromMembers } from "../response/usage";
import { MODEL_LIST_SUFFIX, MODEL_RETRIEVE_INFIX, modelObject, percentDecode } from "../routing/model-list";
import { LOAD_REPORT_FORMAT, LOAD_REPORT_FORMAT_HEADER, LOAD_REPORT_HEADER, parseLoadReport } from "../routing/load-report";
import { forget, noteAnswer, replicasOf } from "../routing/replica-table";
import { applyEdits, declaredTooLarge } from "../routing/request-body";
import { F_MESSAGES, F_PROMPT, REQUEST_KEYS, RoutingResult, modelSpan, routeRequest } from "../routing/route-request";
import { requestLabels } from "../telemetry/labels";
import * as metrics from "../telemetry/metrics";
import { aiLog, countResponse, recordMetrics, summarize } from "../telemetry/report";
import { GatewayRoot, QuotaEvent, ReplicaEvent } from "../root";

// One scan object per VM, reused by every request (a VM runs one callback at a time).
const requestScan = new JsonScan(REQUEST_KEYS);

const enum Phase {
  PassThrough = 0, // not a request the plugin routes
  ReadingBody = 1, // headers held until the body is whole
  Answered = 2, // the plugin answered (bad request, model list, shed, quota)
  Routed = 3, // on its way to (or back from) the upstream; fallback may still answer instead
  AwaitingQuota = 4, // body whole and routed, waiting for the rate-limit service's answer
}

// Bodies up to this size get a content-based prompt estimate (message texts, not JSON syntax); larger
// ones bytes/4, whose JSON overhead is small next to their text: a second scan of a body that large
// costs more than the estimate gains (make bench).
const PROMPT_ESTIMATE_SCAN_LIMIT: i32 = 1024 * 1024;
// Linear memory the VM has whatever the load (runtime, static data, compiled configuration), beside
// the budget and the body arena.
const FIXED_MEMORY_BYTES: i64 = 8 * 1024 * 1024;
// Charged for the request headers a dispatched fallback keeps (Envoy caps them at 60 KiB by default).
const HELD_HEADERS_BYTES: i64 = 64 * 1024;
// Attempts beyond this are not itemised in the all-attempts-failed error (maxAttempts is at most 10).
const MAX_REPORTED_ATTEMPTS: i32 = 16;
// A request that charged more than this gets its garbage collected as soon as it ends.
const COLLECT_AFTER_BYTES: i64 = 1024 * 1024;

export class RequestStage extends HttpContext {
  private phase: Phase = Phase.PassThrough;
  private cfg: GatewayConfig;
  private wantsUsage: bool = false;
  private hasContentLength: bool = false; // the client framed the body with content-length (not chunked)
  private req: RequestFacts = new RequestFacts();
  private attempt: AttemptFacts = new AttemptFacts();
  private observer: ResponseObserver | null = null;
  private reported: bool = false;
  // fallback.mechanism "dispatch": what a backup call needs, kept only while one may still be made.
  private held: HeldRequest | null = null;
  private higressFallbackFrom: string = "";
  // fallback.mechanism "envoy": the model the plan named (the attempt stage rewrites the others).
  private plannedModel: string = "";
  // What this request holds in the VM, against the memory budget (util/budget.ts).
  private account: Account = new Account();
  private envoyReply: LocalReply | null = null; // Envoy's error answer, being reshaped
  private envoyReplySent: bool = false;
  private admitted: bool;
  // quotas: the rules that apply to this request, and (cluster mode) the routing it resumes with.
  private quota: QuotaTicket | null = null;
  private pendingRouting: RoutingResult | null = null;
  private bodySize: u32 = 0;
  // prefixAffinity.loadAware: the route (routing header value) whose replica was picked, until its answer
  // is noted; the replica the plugin named first, and the one this request counts against in the picker's
  // in-flight load.
  private replicaRoute: string = "";
  private pickedReplica: string = "";
  private servingReplica: string = "";

  constructor(
    id: u32,
    private gateway: GatewayRoot,
  ) {
    super(id, gateway);
    this.cfg = gateway.config.global;
    this.admitted = this.account.take(REQUEST_STATE_BYTES);
  }

  private get fallback(): FallbackState {
    return this.req.fallback;
  }

  onRequestHeaders(_numHeaders: u32, endOfStream: bool): Action {
    // The client's headers, read from one copy (a host call per header costs more than the lookups).
    const headers = host.viewHeaders(MapType.HttpRequestHeaders);
    const action = this.readRequestHeaders(headers, endOfStream);
    headers.release();
    return action;
  }

  private readRequestHeaders(headers: HeaderMapView, endOfStream: bool): Action {
    this.req.startNs = host.nowNanos();
    this.cfg = this.gateway.selectConfig();
    const cfg = this.cfg;
    // Whatever the path, a client never chooses its own route (nor its replica).
    if (headers.has(cfg.routingHeader)) host.removeHeader(MapType.HttpRequestHeaders, cfg.routingHeader);
    if (cfg.affinity.enabled && headers.has(cfg.affinity.header)) host.removeHeader(MapType.HttpRequestHeaders, cfg.affinity.header);
    if (!this.admitted) {
      // The VM's memory budget is spent on requests in flight: shed this one (retryable 503) rather
      // than risk the VM, and with it every request on this worker.
      this.gateway.countShed();
      return this.answer(overloaded());
    }

    const method = headers.get(":method");
    const rawPath = headers.get(":path");
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
    this.req.operation = operationOf(path);
    const replayedFrom = headers.get(HIGRESS_FALLBACK_HEADER);
    if (replayedFrom != null) this.higressFallbackFrom = replayedFrom;

    const cl = headers.get("content-length");
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
    const fb = req.fallback;
    req.requestedModel = res.model;
    req.route = res.route;
    req.stream = res.stream;
    req.usageInjected = res.usageInjected;
    // From the routing scan's spans (a routed body is a valid JSON object): no second pass over the body.
    req.promptEstimate =
      body.len <= PROMPT_ESTIMATE_SCAN_LIMIT
        ? estimateFromMembers(body.ptr, requestScan.field(F_MESSAGES), requestScan.field(F_PROMPT))
        : <i64>((body.len + 3) / 4);
    req.prefixKey = res.prefixKey;
    const quotas = cfg.quotas;
    if (quotas.enabled) {
      const t = ticketFor(quotas, res.model);
      if (t != null) {
        this.quota = t;
        if (quotas.mode == QUOTA_CLUSTER) {
          // The body stays in Envoy's buffer, not here, while the service answers; read again after.
          body.release();
          this.bodySize = bodySize;
          return this.askQuotaService(res, t);
        }
        const ok = admitLocal(quotas, t, msOf(req.startNs));
        if (t.tableFull) this.gateway.countQuota(QuotaEvent.TableFull);
        if (!ok) {
          body.release();
          return this.refuseQuota(t);
        }
      }
    }
    return this.forward(res, body);
  }

  // The routing decision applied: routing header, fallback plan or held body, body edits.
  private forward(res: RoutingResult, body: HostBytes): Action {
    const cfg = this.cfg;
    const req = this.req;
    const fb = req.fallback;
    const route = res.route!;
    const a = this.attempt;
    a.model = route.isPrefix ? res.model : route.name;
    a.routeValue = res.routeValue;
    req.routedModel = a.model;
    let routeValue = res.routeValue;
    let edits = res.splice;
    let served = route.servedFor(res.model);
    let holdBody = false;
    let sendPlan = false;

    const policy = cfg.fallback;
    if (policy.enabled && route.fallback.length > 0) {
      const first = unchecked(route.fallback[0]);
      const backup = cfg.findRoute(first);
      if (this.higressFallbackFrom.length > 0 && backup != null) {
        // Higress replayed this request after the primary failed: its fallback route (matched on the
        // routing header plus x-higress-fallback-from) leads to the backup, which must see its own name.
        served = backup.servedFor(first);
        edits = res.editsFor(served);
        fb.switched(a.model, "higress_redirect");
        this.useAttempt(first, routeValue);
      } else if (backup != null) {
        const gate = cooldown.admit(policy, res.routeValue, msOf(req.startNs));
        if (gate == Gate.Backup) {
          // The primary is cooling down: straight to the backup, streaming intact.
          routeValue = backup.routeFor(first);
          served = backup.servedFor(first);
          edits = res.editsFor(served);
          fb.skipPrimary(a.model);
          this.useAttempt(first, routeValue);
        } else {
          fb.probe = gate == Gate.Probe;
          fb.onPrimary = true;
        }
        if (policy.mechanism == MECHANISM_DISPATCH) holdBody = this.canHold(body.len);
        else sendPlan = true;
      }
    }

    host.replaceHeader(MapType.HttpRequestHeaders, cfg.routingHeader, routeValue);
    if (res.prefixKey.length > 0) host.replaceHeader(MapType.HttpRequestHeaders, cfg.affinity.header, res.prefixKey);
    const loadAware = cfg.affinity.loadAware;
    if (loadAware.enabled && cfg.affinity.appliesTo(res.model) && route.hasFixedRoute)
      this.pickReplica(loadAware, routeValue, res.prefixKey);
    if (holdBody) {
      // Held until the primary's response headers show whether a backup is needed.
      const headers = host.getHeadersRaw(MapType.HttpRequestHeaders);
      if (headers != null && body.keep() && headers.keep()) {
        this.held = new HeldRequest(res, body, headers);
        fb.watch();
        if (policy.firstByteTimeoutMs > 0 && fb.onPrimary) {
          this.gateway.deadlines.watch(this, req.startNs + <u64>policy.firstByteTimeoutMs * NS_PER_MS);
        }
      } else {
        if (headers != null) headers.release();
        this.account.giveBack(<i64>body.len * 2 + HELD_HEADERS_BYTES);
        this.gateway.countUnprotected();
      }
    }
    if (sendPlan) {
      // Envoy holds the body and retries on the backups' clusters; the attempt stage puts each
      // backup's name where this span says the model is.
      // (this.attempt, not `a`: a cooled-down primary's request is planned from its backup.)
      const span = modelSpan(res, edits, served);
      this.plannedModel = this.attempt.model;
      host.setProperty(PLAN_PROPERTY, new Plan(this.plannedModel, span.start, span.end, fb.probe).encode());
    }
    if (!edits.isEmpty) {
      const newLength = applyEdits(body, edits);
      // The length changed. Say the new one: without content-length the request would go upstream
      // chunked, which costs Envoy noticeably more per request (make bench). A chunked request
      // stays chunked.
      if (this.hasContentLength) host.replaceHeader(MapType.HttpRequestHeaders, "content-length", newLength.toString());
    }
    if (this.held == null) body.release();
    this.phase = Phase.Routed;
    return Action.Continue;
  }

  // Names the replicas for Envoy's override-host policy (routing/replica-picker.ts) and asks vLLM for its
  // load report; a client's own value of the header never steers the request. Replicas are kept per
  // routing header value (one Envoy cluster each), of configured routes only: a pattern without `route`
  // would let clients create tables by naming models.
  private pickReplica(p: LoadAwarePolicy, routeValue: string, key: string): void {
    this.replicaRoute = routeValue;
    host.replaceHeader(MapType.HttpRequestHeaders, LOAD_REPORT_FORMAT_HEADER, LOAD_REPORT_FORMAT);
    const picker = this.gateway.picker;
    const named = picker.pick(p, replicasOf(routeValue), key, msOf(this.req.startNs));
    if (named == null) {
      host.removeHeader(MapType.HttpRequestHeaders, p.header);
      this.gateway.countReplica(ReplicaEvent.LeftToEnvoy);
      return;
    }
    if (picker.skippedSaturated) this.gateway.countReplica(ReplicaEvent.SaturatedSkipped);
    else if (picker.skippedBound) this.gateway.countReplica(ReplicaEvent.BoundSkipped);
    host.replaceHeader(MapType.HttpRequestHeaders, p.header, named);
    this.pickedReplica = picker.chosen;
    this.servingReplica = picker.chosen;
    picker.started(picker.chosen);
  }

  // What the answer says of the replica: its address (so the picker knows it), vLLM's load report (kept
  // from the client), and whether the replica the plugin named failed (another one answered, or Envoy).
  private noteReplica(headers: HeaderMapView, viaUpstream: bool, nowMs: i64): void {
    const route = this.replicaRoute;
    this.replicaRoute = "";
    const report = headers.get(LOAD_REPORT_HEADER);
    if (report != null) host.removeHeader(MapType.HttpResponseHeaders, LOAD_REPORT_HEADER);
    // An answer from a backup model's cluster says nothing about this model's replicas.
    if (this.fallback.from.length > 0) return;
    const address = viaUpstream ? host.getProperty(UPSTREAM_ADDRESS) : null;
    const picked = this.pickedReplica;
    if (picked.length > 0 && (address == null || address != picked)) {
      forget(route, picked);
      this.gateway.countReplica(ReplicaEvent.Failed);
    }
    if (address == null) return;
    const picker = this.gateway.picker;
    if (address != this.servingReplica) {
      picker.finished(this.servingReplica);
      picker.started(address);
      this.servingReplica = address;
    }
    noteAnswer(route, address, report != null ? parseLoadReport(report) : null, nowMs, this.cfg.affinity.loadAware.reportTtlMs);
  }

  // quotas.mode "cluster": admission by the rate-limit service; the request waits (paused) for it.
  private askQuotaService(res: RoutingResult, t: QuotaTicket): Action {
    const quotas = this.cfg.quotas;
    this.pendingRouting = res;
    this.phase = Phase.AwaitingQuota;
    const token = this.dispatchGrpcCall(quotas.cluster, RLS_SERVICE, RLS_METHOD, admissionRequest(quotas, t), quotas.timeoutMs);
    if (token == 0) return this.quotaUnavailable(false);
    return Action.Pause;
  }

  onGrpcReceive(_token: u32, size: u32): void {
    if (this.phase != Phase.AwaitingQuota) return;
    const t = this.quota!;
    const msg = host.getBufferBytes(BufferType.GrpcCallMessage, 0, size);
    if (msg == null) {
      this.quotaUnavailable(true);
      return;
    }
    const r = readRlsResponse(msg.ptr, msg.len);
    msg.release();
    if (!answersAll(r, t.sent.length)) this.quotaUnavailable(true);
    else if (!admitFromResponse(t, r, msOf(host.nowNanos()))) this.refuseQuota(t);
    else this.resumeAfterQuota();
  }

  onGrpcClose(_token: u32, _status: u32): void {
    if (this.phase == Phase.AwaitingQuota) this.quotaUnavailable(true);
  }

  // The service failed, timed out or answered nonsense: quotas.service.onUnavailable decides.
  // `paused`: the request is waiting in Envoy (a callback), not in onRequestBody.
  private quotaUnavailable(paused: bool): Action {
    if (this.cfg.quotas.denyWhenUnavailable) {
      this.gateway.countQuota(QuotaEvent.UnavailableRefused);
      this.quota = null;
      return this.answer(quotaServiceUnavailable());
    }
    this.gateway.countQuota(QuotaEvent.UnavailableAllowed);
    this.quota = null; // nothing to charge: the service holds no admission of it
    if (paused) {
      this.resumeAfterQuota();
      return Action.Pause;
    }
    return this.resumeRouting();
  }

  private resumeAfterQuota(): void {
    if (this.resumeRouting() == Action.Continue) host.continueStream(StreamType.HttpRequest);
  }

  private resumeRouting(): Action {
    const res = this.pendingRouting!;
    this.pendingRouting = null;
    const body = host.getBufferBytes(BufferType.HttpRequestBody, 0, this.bodySize);
    if (body == null) {
      host.logWarn("llm-gateway: request body unavailable after the quota check; passing the request through unrouted");
      this.phase = Phase.PassThrough;
      return Action.Continue;
    }
    return this.forward(res, body);
  }

  private refuseQuota(t: QuotaTicket): Action {
    const reply = t.refusalReply();
    this.req.quotaRefused = t.refusal!.rule!.name;
    const headers = t.headers();
    headers.push(new HeaderPair("content-type", "application/json"));
    host.sendLocalResponse(reply.status, reply.details(), reply.body(), headers);
    this.phase = Phase.Answered;
    this.attempt.status = <i32>reply.status;
    this.attempt.viaUpstream = false;
    return Action.Pause;
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

  // From now on the request is served by `model` (metrics, ai_log, response headers).
  private useAttempt(model: string, routeValue: string): void {
    const a = new AttemptFacts();
    a.model = model;
    a.routeValue = routeValue;
    this.attempt = a;
  }

  onResponseHeaders(_numHeaders: u32, endOfStream: bool): Action {
    const fb = this.fallback;
    // A primary answering after it failed (first-byte timeout) while a backup is called: held, never sent.
    if (fb.holdsResponse) return Action.Pause;
    // Envoy answered before the body was whole (413: over its buffer limit).
    if (this.phase == Phase.ReadingBody) this.shapeEnvoyReply(endOfStream);
    if (this.phase != Phase.Routed || fb.answeredByPlugin) return Action.Continue;
    // The answer's headers, read from one copy (see onRequestHeaders).
    const headers = host.viewHeaders(MapType.HttpResponseHeaders);
    const action = this.readRoutedResponse(headers, endOfStream);
    headers.release();
    return action;
  }

  private readRoutedResponse(headers: HeaderMapView, endOfStream: bool): Action {
    const fb = this.fallback;
    this.gateway.deadlines.unwatch(this);
    if (this.plannedModel.length > 0) this.noteAttemptStage(headers);
    const a = this.attempt;
    // Only planned requests go through the attempt stage (which overwrites any upstream's header of
    // that name): other requests need not look, nor trust one.
    const servedBy = this.plannedModel.length > 0 ? headers.get(ATTEMPT_CLUSTER_HEADER) : null;
    if (servedBy != null) {
      // The attempt stage counted this attempt's status, on the cluster that served it.
      host.removeHeader(MapType.HttpResponseHeaders, ATTEMPT_CLUSTER_HEADER);
      a.statusCounted = true;
      a.cluster = servedBy;
    }
    a.headersNs = host.nowNanos();
    const status = headers.get(":status");
    a.status = status != null ? <i32>parseDigits(status) : 0;
    const details = host.getProperty(CODE_DETAILS);
    a.viaUpstream = details != null && details == "via_upstream";
    if (this.replicaRoute.length > 0) this.noteReplica(headers, a.viaUpstream, msOf(a.headersNs));
    if (fb.step == Step.Watching) {
      // An answer while a fallback was still possible: decide now, before any byte of it reaches
      // the client.
      const policy = this.cfg.fallback;
      const reason = fb.judge(policy, a.status, a.viaUpstream, msBetween(this.req.startNs, a.headersNs));
      if (fb.onPrimary) cooldown.record(policy, a.routeValue, reason != Reason.None, msOf(a.headersNs), fb.probe);
      if (reason != Reason.None) {
        // An upstream's status counts against the primary, though the client will not see it (as the
        // attempt stage counts it with fallback.mechanism envoy; Envoy's own answers are not attempts').
        if (a.viaUpstream) {
          countResponse(requestLabels(a.model, this.cfg, ""), a.status, true);
          a.statusCounted = true; // (if no backup is tried, this same answer goes to the client)
        }
        fb.primaryFailed(
          a.model,
          reason == Reason.LocalReply ? "unreachable" : "status " + a.status.toString(),
          reasonName(reason, a.status),
        );
        if (this.callNextBackup()) return Action.Pause;
        if (fb.exhausted()) {
          // Backups were tried (or skipped) and none could answer: say what was tried.
          this.giveUp(a.status);
          return Action.Pause;
        }
        // No backup left to try (maxAttempts): the primary's own answer goes to the client.
      }
      fb.delivered();
      this.releaseHeld();
    } else if (this.plannedModel.length > 0 && this.allAttemptsFailed(a)) {
      return Action.Pause;
    }
    if (!a.viaUpstream && a.status >= 400) this.shapeEnvoyReply(endOfStream);
    // A reshaped reply is JSON now (the view still holds Envoy's text type).
    const ct = this.envoyReply == null ? headers.get("content-type") : null;
    a.isStream = ct != null && ct.startsWith("text/event-stream");
    const drop = a.isStream && this.req.usageInjected;
    // We may edit the stream (usage chunk out, a cut-stream event in): its length is no longer known.
    if (a.isStream) host.removeHeader(MapType.HttpResponseHeaders, "content-length");
    host.replaceHeader(MapType.HttpResponseHeaders, MODEL_HEADER, a.model);
    const t = this.quota;
    if (t != null) {
      const h = t.headers();
      for (let i = 0; i < h.length; i++) host.replaceHeader(MapType.HttpResponseHeaders, unchecked(h[i]).key, unchecked(h[i]).value);
    }
    if (fb.from.length > 0) host.replaceHeader(MapType.HttpResponseHeaders, FALLBACK_FROM_HEADER, fb.from);
    this.observer = new ResponseObserver(a, this.cfg.maxSseEventBytes, this.cfg.maxResponseBytes, drop, this.account);
    return Action.Continue;
  }

  onResponseBody(bodySize: u32, endOfStream: bool): Action {
    // The failed attempt's body stays here (buffered, never sent) until the backup's answer replaces it.
    if (this.fallback.holdsResponse) return Action.Pause;
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
    o.onChunk(bodySize, endOfStream);
    return Action.Continue;
  }

  // fallback.mechanism "dispatch": sends the held request to the next backup's cluster; false when
  // none is left.
  private callNextBackup(): bool {
    const cfg = this.cfg;
    const policy = cfg.fallback;
    const fb = this.fallback;
    const route = this.req.route;
    const held = this.held;
    if (route == null || held == null) return false;
    const headers = deserializeHeaders(held.headers.ptr, held.headers.len);
    let name = fb.nextBackup(route.fallback, policy.maxAttempts);
    while (name != null) {
      const backup = cfg.findRoute(name);
      if (backup != null) {
        // (refused at configure time otherwise; kept as a guard)
        const routeValue = backup.routeFor(name);
        const payload = held.routing.editsFor(backup.servedFor(name)).apply(held.body.ptr, held.body.len);
        const callHeaders = backupRequestHeaders(headers, cfg.routingHeader, routeValue);
        const cluster = cfg.clusterOf(backup, routeValue);
        const token = this.dispatchHttpCall(
          cluster,
          callHeaders,
          changetype<usize>(payload),
          <usize>payload.byteLength,
          policy.attemptTimeoutMs,
        );
        this.useAttempt(name, routeValue);
        this.attempt.cluster = cluster;
        if (token != 0) {
          // The primary's answer waits in Envoy's buffer until the backup's replaces it.
          host.setProperty(ENCODER_BUFFER_LIMIT, cfg.maxResponseBytesText);
          return true;
        }
        fb.attemptFailed(name, "call refused");
      }
      name = fb.nextBackup(route.fallback, policy.maxAttempts);
    }
    return false;
  }

  onHttpCallResponse(_token: u32, numHeaders: u32, bodySize: u32, _numTrailers: u32): void {
    const fb = this.fallback;
    if (!fb.holdsResponse) return;
    const a = this.attempt;
    const req = this.req;
    const now = host.nowNanos();
    a.headersNs = now;
    if (numHeaders == 0) {
      // Connection failure, reset or timeout of the backup call.
      fb.attemptFailed(a.model, "unreachable or timed out");
      if (!this.callNextBackup()) this.giveUp(503);
      return;
    }
    const headers = host.getHeaders(MapType.HttpCallResponseHeaders);
    const status = headerValue(headers, ":status");
    a.status = status != null ? <i32>parseDigits(status) : 0;
    a.viaUpstream = true;
    if (failureReason(this.cfg.fallback, a.status, true, msBetween(req.startNs, now)) != Reason.None) {
      countResponse(requestLabels(a.model, this.cfg, a.cluster), a.status, true);
      fb.attemptFailed(a.model, "status " + a.status.toString());
      if (!this.callNextBackup()) this.giveUp(a.status);
      return;
    }
    const ct = headerValue(headers, "content-type");
    a.isStream = ct != null && ct.startsWith("text/event-stream");
    if (!this.account.take(<i64>bodySize)) {
      // The answer arrives whole, so it must fit in the budget to be relayed.
      this.gateway.countUnprotected();
      fb.attemptFailed(a.model, "answer larger than the memory budget allows");
      this.giveUp(503);
      return;
    }
    const body = host.getBufferBytes(BufferType.HttpCallResponseBody, 0, bodySize);
    let ptr: usize = 0;
    let len: i32 = 0;
    if (body != null) {
      ptr = body.ptr;
      len = body.len;
    }
    const edited = observeWholeBody(a, ptr, len, this.cfg.maxSseEventBytes, req.usageInjected, now, this.account);
    if (edited != null) {
      ptr = changetype<usize>(edited);
      len = edited.byteLength;
    }
    host.sendLocalResponseBytes(
      <u32>a.status,
      "llm_gateway_fallback",
      ptr,
      <usize>len,
      relayedResponseHeaders(headers, MODEL_HEADER, a.model, FALLBACK_FROM_HEADER, fb.from),
    );
    if (body != null) body.release();
    fb.relayed();
    this.releaseHeld();
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
  private noteAttemptStage(headers: HeaderMapView): void {
    const served = headers.get(MODEL_HEADER);
    if (served == null || served == this.attempt.model) return;
    const backup = this.cfg.findRoute(served);
    if (backup == null) return;
    const why = headers.get(FALLBACK_REASON_HEADER);
    host.removeHeader(MapType.HttpResponseHeaders, FALLBACK_REASON_HEADER);
    this.fallback.switched(this.attempt.model, why != null ? why : reasonName(Reason.LocalReply, 0));
    this.useAttempt(served, backup.routeFor(served));
  }

  // fallback.mechanism "envoy": Envoy's final answer is a failure after more than one attempt: answer
  // with the error naming each, as the attempt stage wrote them in the journal. An attempt missing
  // there has not reported yet: Envoy answered for it (timeout, refused connection) and its upstream
  // filter ends after this answer.
  private allAttemptsFailed(a: AttemptFacts): bool {
    if (failureReason(this.cfg.fallback, a.status, a.viaUpstream, msBetween(this.req.startNs, a.headersNs)) == Reason.None) return false;
    // The router writes the attempt count into the request's headers for every attempt.
    const n = host.getHeader(MapType.HttpRequestHeaders, ATTEMPT_COUNT_HEADER);
    const attempts = n != null ? <i32>parseDigits(n) : 1;
    const route = this.cfg.findRoute(this.plannedModel);
    const fb = this.fallback;
    // A primary skipped for its cooldown counts as an attempt that failed (fb.tried names it).
    const skipped = fb.tried.length;
    if (attempts < 1 || attempts + skipped < 2 || attempts > MAX_REPORTED_ATTEMPTS || route == null) return false;
    const rid = host.getHeader(MapType.HttpRequestHeaders, REQUEST_ID_HEADER);
    const f = rid != null ? failuresOf(rid) : null;
    for (let k = 1; k <= attempts; k++) {
      if (f != null && f.has(k)) {
        fb.tried.push(f.line(k));
        continue;
      }
      const what =
        k < attempts
          ? " (no response)"
          : a.status == 504
            ? " (timed out)"
            : a.viaUpstream
              ? " (status " + a.status.toString() + ")"
              : " (unreachable)";
      fb.tried.push(chainModel(this.plannedModel, route, k) + what);
    }
    const why = f != null ? f.lastReason() : "";
    fb.switched(this.plannedModel, why.length > 0 ? why : reasonName(Reason.LocalReply, 0));
    // The last model tried (Envoy answered for it when it was unreachable: no attempt stage header).
    a.model = chainModel(this.plannedModel, route, attempts);
    this.giveUp(a.status);
    return true;
  }

  // Every attempt failed: one clear error naming them, instead of the last failure or a hang. The
  // status is the last attempt's when it is a 5xx, else 502.
  private giveUp(lastStatus: i32): void {
    const fb = this.fallback;
    const status: u32 = lastStatus >= 500 && lastStatus < 600 ? <u32>lastStatus : 502;
    const reply = allAttemptsFailed(fb.tried, status);
    const headers: Array<HeaderPair> = [new HeaderPair("content-type", "application/json"), new HeaderPair(FALLBACK_FROM_HEADER, fb.from)];
    host.sendLocalResponse(reply.status, reply.details(), reply.body(), headers);
    this.attempt.status = <i32>status;
    this.attempt.viaUpstream = false;
    fb.gaveUp();
    this.releaseHeld();
  }

  // The held body and headers are freed now; a copy made for a backup call stays charged until the
  // request ends (it is garbage until the next collection).
  private releaseHeld(): void {
    const held = this.held;
    if (held == null) return;
    this.account.giveBack(<i64>held.body.len + HELD_HEADERS_BYTES);
    held.release();
    this.held = null;
  }

  // The request is over (Envoy is about to write its access log): metrics and the ai_log field.
  onLog(): void {
    if (this.reported) return;
    this.reported = true;
    this.gateway.noteRequestDone();
    const a = this.attempt;
    const fb = this.fallback;
    const end = host.nowNanos();
    if (a.status == 0) {
      const code = host.getPropertyU64(RESPONSE_CODE);
      a.status = code >= 0 ? <i32>code : 0;
      const details = host.getProperty(CODE_DETAILS);
      a.viaUpstream = details != null && details == "via_upstream";
    }
    const routed = this.phase == Phase.Routed;
    const gaveUp = fb.step == Step.GaveUp;
    const req = this.req;
    // Every attempt failed: the answer is the plugin's, under the model the client asked for.
    const modelLabel = gaveUp ? req.routedModel : routed ? a.model : req.requestedModel.length > 0 ? req.requestedModel : "none";
    // A relayed backup answer is labelled with the backup's cluster, not the one Envoy had picked.
    const labels = requestLabels(modelLabel, this.cfg, gaveUp ? "" : a.cluster);
    if (fb.from.length > 0) {
      // Under the labels of the model that failed, on the cluster Envoy had picked for it; `to` is the
      // last model tried (after a give-up, it failed too: all_attempts_failed says so).
      const fromLabels = requestLabels(fb.from, this.cfg, "");
      metrics.countFallback(fromLabels, a.model, fb.reason);
    }
    if (gaveUp) {
      metrics.count(labels, metrics.ALL_ATTEMPTS_FAILED, 1);
      countResponse(labels, a.status, false);
      host.setProperty(AI_LOG, aiLog(req, a, summarize(req, a, labels, end)));
      return;
    }
    if (!routed) {
      // Answered by the plugin itself (400/404/413, the model list, a quota) or passed through unrouted.
      if (this.phase != Phase.PassThrough) countResponse(labels, a.status, false);
      if (req.quotaRefused.length > 0) {
        metrics.count(labels, metrics.QUOTA_REFUSED, 1);
        host.setProperty(AI_LOG, aiLog(req, a, summarize(req, a, labels, end)));
      }
      return;
    }
    // A stream the client left, or the upstream cut, is counted as far as it got.
    const o = this.observer;
    if (o != null) o.settle();
    const outcome = summarize(req, a, labels, end);
    recordMetrics(req, a, outcome);
    host.setProperty(AI_LOG, aiLog(req, a, outcome));
    const t = this.quota;
    if (t != null) this.chargeQuota(t, outcome.usage.promptTokens, outcome.usage.completionTokens, outcome.usage.totalTokens, end);
  }

  // The finished request's tokens (as the metrics count them) go to its quota rules. Never blocks:
  // the cluster-wide charge is sent as the root context and completes after this request is gone.
  private chargeQuota(t: QuotaTicket, input: i64, output: i64, total: i64, endNs: u64): void {
    if (input < 0) input = 0;
    if (output < 0) output = 0;
    if (total < 0) total = input + output;
    if (input + output + total == 0) return;
    const quotas = this.cfg.quotas;
    if (quotas.mode != QUOTA_CLUSTER) {
      chargeLocal(t, input, output, total, msOf(endNs));
      return;
    }
    const msg = chargeRequest(quotas, t, input, output, total);
    if (msg == null) return;
    const token = this.dispatchRootGrpcCall(quotas.cluster, RLS_SERVICE, RLS_METHOD, msg, quotas.timeoutMs);
    if (token == 0) this.gateway.countQuota(QuotaEvent.ChargeFailed);
    else this.gateway.noteCharge(token);
  }

  onDelete(): void {
    this.gateway.deadlines.unwatch(this);
    this.gateway.picker.finished(this.servingReplica);
    this.releaseHeld();
    if (this.account.charged > COLLECT_AFTER_BYTES) collectSoon();
    this.account.settle();
  }

  // fallback.firstByteTimeoutMs: the primary sent nothing in time (a deadline set in onRequestBody).
  onDeadline(): void {
    const fb = this.fallback;
    if (this.phase != Phase.Routed || fb.step != Step.Watching || this.held == null || !fb.onPrimary) return;
    const policy = this.cfg.fallback;
    cooldown.record(policy, this.attempt.routeValue, true, msOf(host.nowNanos()), fb.probe);
    fb.primaryFailed(
      this.attempt.model,
      "no response within " + policy.firstByteTimeoutMs.toString() + " ms",
      reasonName(Reason.FirstByteTimeout, 0),
    );
    if (!this.callNextBackup()) this.giveUp(504);
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

// gen_ai.operation.name of a routed path (OpenTelemetry's well-known values).
function operationOf(path: string): string {
  if (path.endsWith("/chat/completions") || path.endsWith("/responses")) return "chat";
  if (path.endsWith("/completions")) return "text_completion";
  if (path.endsWith("/embeddings")) return "embeddings";
  return "other";
}
