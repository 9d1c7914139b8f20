// The attempt stage: the plugin as an Envoy upstream HTTP filter (Envoy >= 1.31), run once per
// upstream attempt of a request. With fallback.mechanism "envoy", Envoy's router holds the request body
// and retries a failed attempt on the next model's cluster (an aggregate cluster, one priority per
// model, envoy.retry_priorities.previous_priorities), so a backup's answer streams like any other.
// What Envoy cannot do is put the backup's name in the body's `model`; this stage does, for the
// attempts that go to another model than the one the request stage routed to, and it tells the
// request stage (response headers) and the next attempt (attempt-journal.ts) what happened.
//
// Which model an attempt goes to: the host's metadata filter_metadata["llm-gateway"].model when the
// cluster sets it (exact, also when Envoy skips an unhealthy priority), else the attempt number
// (x-envoy-attempt-count) counted along the route's fallback chain.
import { HttpContext } from "../../abi/context";
import { Action, BufferType, MapType } from "../../abi/enums";
import * as host from "../../abi/host";
import { jsonString } from "../../json/writer";
import { GatewayConfig, ModelRoute } from "../config/gateway-config";
import * as cooldown from "../fallback/cooldown-store";
import { Reason, failureReason, reasonName } from "../fallback/policy";
import { noteFailure, failuresOf } from "../fallback/attempt-journal";
import { parseDigits } from "../../util/digits";
import { Edit, Splice } from "../../util/splice";
import { Plan, chainModel } from "../fallback/plan";
import {
  ATTEMPT_CLUSTER_HEADER,
  ATTEMPT_COUNT_HEADER,
  FALLBACK_FROM_HEADER,
  FALLBACK_REASON_HEADER,
  HOST_CLUSTER,
  HOST_MODEL,
  MODEL_HEADER,
  PLAN_PROPERTY,
  REQUEST_ID_HEADER,
} from "../envoy-names";
import { msBetween, msOf } from "../../util/time";
import { GatewayRoot } from "../root";
import { clusterName, requestLabels } from "../telemetry/labels";
import { countResponse } from "../telemetry/report";

export class AttemptStage extends HttpContext {
  private plan: Plan | null = null;
  private route: ModelRoute | null = null; // the planned model's route (its fallback chain, route value)
  private model: string = ""; // the model this attempt goes to
  private served: string = ""; // the name its server must see ("" = no rewrite)
  private requestId: string = "";
  private attempt: i32 = 1; // x-envoy-attempt-count
  private startNs: u64 = 0;
  private answered: bool = false; // response headers arrived
  private recorded: bool = false; // this attempt's outcome is written (journal, cooldown)

  private cfg: GatewayConfig;

  constructor(
    id: u32,
    private gateway: GatewayRoot,
  ) {
    super(id, gateway);
    this.cfg = gateway.config.global;
  }

  onRequestHeaders(_numHeaders: u32, _endOfStream: bool): Action {
    // The request stage's plan, from the request's filter state (the upstream stream info falls back
    // to the downstream one): nothing a client can send, and nothing that reaches the upstream.
    const planText = host.getProperty(PLAN_PROPERTY);
    if (planText == null) return Action.Continue;
    const plan = Plan.decode(planText);
    // The same `_rules_` entry as the request stage chose (route, host, service are the request's).
    this.cfg = this.gateway.selectConfig();
    const cfg = this.cfg;
    const route = plan != null ? cfg.findRoute(plan.model) : null;
    if (plan == null || route == null) return Action.Continue;
    this.plan = plan;
    this.route = route;
    this.startNs = host.nowNanos();
    // Two headers from one copy: a host call costs more than the lookups (see the request stage).
    const headers = host.viewHeaders(MapType.HttpRequestHeaders);
    const rid = headers.get(REQUEST_ID_HEADER);
    if (rid != null) this.requestId = rid;
    const n = headers.get(ATTEMPT_COUNT_HEADER);
    headers.release();
    const count = n != null ? parseDigits(n) : 1;
    this.attempt = count >= 1 && count <= 1000 ? <i32>count : 1;
    if (this.attempt > 1) this.notePreviousAttempt(plan, route);
    this.model = attemptModel(cfg, plan.model, route, this.attempt);
    if (this.model == plan.model) return Action.Continue;
    const target = cfg.findRoute(this.model);
    if (target == null) return Action.Continue;
    this.served = target.servedFor(this.model);
    // Hold the headers until the body's model is rewritten: content-length changes with it.
    return Action.Pause;
  }

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    const plan = this.plan;
    if (plan == null || this.served.length == 0) return Action.Continue;
    if (!endOfStream) return Action.Pause; // Envoy buffers until the body is whole
    if (<i64>bodySize < <i64>plan.end || plan.end - plan.start < 2) return this.skipRewrite("the body is shorter than the plan says");
    // Only the bytes up to the end of `model` come into the VM: Envoy drains and replaces a prefix.
    const head = host.getBufferBytes(BufferType.HttpRequestBody, 0, <u32>plan.end);
    if (head == null) return this.skipRewrite("the body is unavailable");
    const quote: u8 = 0x22;
    if (load<u8>(head.ptr + <usize>plan.start) != quote || load<u8>(head.ptr + <usize>(plan.end - 1)) != quote) {
      head.release();
      return this.skipRewrite("the plan does not point at the model");
    }
    // The body's first plan.end bytes, with the model's value replaced, built in memory and put back
    // in one call: Envoy drains and replaces a prefix, but only appends after the rest of the body.
    const splice = new Splice();
    splice.add(new Edit(plan.start, plan.end, jsonString(this.served)));
    const prefix = splice.apply(head.ptr, plan.end);
    head.release();
    host.setBufferBytes(BufferType.HttpRequestBody, 0, <u32>plan.end, changetype<usize>(prefix), <usize>prefix.byteLength);
    const length = <i64>bodySize + <i64>(prefix.byteLength - plan.end);
    if (host.getHeader(MapType.HttpRequestHeaders, "content-length") != null) {
      host.replaceHeader(MapType.HttpRequestHeaders, "content-length", length.toString());
    }
    return Action.Continue;
  }

  private skipRewrite(why: string): Action {
    host.logWarn("llm-gateway: attempt on " + this.model + " sent unchanged: " + why);
    this.served = "";
    return Action.Continue;
  }

  onResponseHeaders(_numHeaders: u32, _endOfStream: bool): Action {
    const plan = this.plan;
    if (plan == null) return Action.Continue;
    this.answered = true;
    const statusText = host.getHeader(MapType.HttpResponseHeaders, ":status");
    const status = statusText != null ? <i32>parseDigits(statusText) : 0;
    const reason = failureReason(this.cfg.fallback, status, true, msBetween(this.startNs, host.nowNanos()));
    this.record(reason != Reason.None, "status " + status.toString(), reasonName(reason, status));
    // Every attempt's status counts against its own model and cluster (inside an aggregate cluster,
    // Envoy's cluster name is the aggregate's; the endpoint metadata names the model's own). The
    // header tells the request stage, which would otherwise count the final attempt again.
    const own = host.getProperty(HOST_CLUSTER);
    const cluster = own != null && own.length > 0 ? own : clusterName();
    countResponse(requestLabels(this.model, this.cfg, cluster), status, true);
    host.replaceHeader(MapType.HttpResponseHeaders, ATTEMPT_CLUSTER_HEADER, cluster);
    if (this.model != plan.model) {
      // Another model answers: say so to the client and to the request stage, which counts it.
      const earlier = failuresOf(this.requestId);
      const why = earlier != null ? earlier.lastReason() : "";
      host.replaceHeader(MapType.HttpResponseHeaders, MODEL_HEADER, this.model);
      host.replaceHeader(MapType.HttpResponseHeaders, FALLBACK_FROM_HEADER, plan.model);
      host.replaceHeader(MapType.HttpResponseHeaders, FALLBACK_REASON_HEADER, why.length > 0 ? why : reasonName(Reason.LocalReply, 0));
    }
    return Action.Continue;
  }

  // No response headers: the connection failed, was reset, or the attempt timed out (Envoy then
  // retries or answers itself; upstream filters get no log callback).
  onDone(): bool {
    if (this.plan != null && !this.answered) {
      // Envoy's per-try timeout is rendered from these (deploy-scripts, the harness).
      const p = this.cfg.fallback;
      const perTryMs = p.firstByteTimeoutMs > 0 ? p.firstByteTimeoutMs : <i64>p.attemptTimeoutMs;
      const elapsedMs = msBetween(this.startNs, host.nowNanos());
      // Envoy's timer starts a moment before this attempt's first callback: allow for it.
      const slack = perTryMs / 20 > 50 ? perTryMs / 20 : 50;
      if (elapsedMs + slack >= perTryMs) this.record(true, "timed out", reasonName(Reason.FirstByteTimeout, 0));
      else this.record(true, "unreachable", reasonName(Reason.LocalReply, 0));
    }
    return true;
  }

  // A retry means the previous attempt failed. One that ended with status or a refused connection has
  // written why by now; one Envoy gave up on (its per-try timeout, a reset) reports only later, when
  // Envoy destroys it: write for it now, so the reason is known while this attempt answers.
  private notePreviousAttempt(plan: Plan, route: ModelRoute): void {
    const earlier = failuresOf(this.requestId);
    const prev = this.attempt - 1;
    if (earlier != null && earlier.has(prev)) return;
    const reason = this.cfg.fallback.firstByteTimeoutMs > 0 ? Reason.FirstByteTimeout : Reason.LocalReply;
    noteFailure(this.requestId, prev, chainModel(plan.model, route, prev) + " (no response)", reasonName(reason, 0));
  }

  private record(failed: bool, what: string, reason: string): void {
    if (this.recorded) return;
    this.recorded = true;
    const plan = this.plan!;
    if (failed) noteFailure(this.requestId, this.attempt, this.model + " (" + what + ")", reason);
    // The cooldown circuit is the routed model's: only its own attempts open or close it.
    if (this.model == plan.model) {
      cooldown.record(this.cfg.fallback, this.route!.routeFor(plan.model), failed, msOf(host.nowNanos()), plan.probe);
    }
  }
}

// The model an attempt goes to: the host's metadata when it names a configured model, else the
// chain's.
function attemptModel(cfg: GatewayConfig, routed: string, route: ModelRoute, attempt: i32): string {
  const tagged = host.getProperty(HOST_MODEL);
  if (tagged != null && tagged.length > 0 && cfg.findRoute(tagged) != null) return tagged;
  return chainModel(routed, route, attempt);
}
