// quotas.mode "cluster": the counters live in envoyproxy/ratelimit (Redis behind it), shared by every
// gateway. Admission is one ShouldRateLimit call before the request goes upstream (requests counted
// with hits_addend 1, token limits asked with 0); the tokens are charged by a second call when the
// answer is complete. Descriptors: rule, identity, model (perModel rules), kind.
import { KINDS, KIND_NAMES, KIND_REQUESTS, QuotaPolicy } from "../config/quota-policy";
import { CODE_OVER_LIMIT, RlsRequest, RlsResponse } from "./rls-proto";
import { AppliedRule, QuotaTicket } from "./ticket";
import { resetMs } from "./window";

const keys = new Array<string>();
const values = new Array<string>();

function entries(a: AppliedRule, kind: i32): void {
  keys.length = 0;
  values.length = 0;
  keys.push("rule");
  values.push(a.rule.name);
  keys.push("identity");
  values.push(a.identity);
  if (a.model.length > 0) {
    keys.push("model");
    values.push(a.model);
  }
  keys.push("kind");
  values.push(KIND_NAMES[kind]);
}

// The admission call; remembers in the ticket which limit each descriptor is.
export function admissionRequest(policy: QuotaPolicy, t: QuotaTicket): ArrayBuffer {
  const req = new RlsRequest(policy.domain);
  t.sent.length = 0;
  for (let i = 0; i < t.applied.length; i++) {
    const a = unchecked(t.applied[i]);
    for (let k = 0; k < KINDS; k++) {
      const limit = a.rule.limits[k];
      if (limit <= 0) continue;
      entries(a, k);
      req.descriptor(keys, values, limit, a.rule.windowSeconds, k == KIND_REQUESTS ? 1 : 0);
      t.sent.push(i * KINDS + k);
    }
  }
  return req.finish();
}

// Reads the service's answer into the ticket; false when it refuses the request. A requests limit is
// over when the service says so (it counted this request); a token limit when nothing remains.
export function admitFromResponse(t: QuotaTicket, r: RlsResponse, nowMs: i64): bool {
  let ok = true;
  const n = r.statuses.length < t.sent.length ? r.statuses.length : t.sent.length;
  for (let j = 0; j < n; j++) {
    const s = unchecked(r.statuses[j]);
    const at = unchecked(t.sent[j]);
    const a = unchecked(t.applied[at / KINDS]);
    const kind = at % KINDS;
    const limit = a.rule.limits[kind];
    const reset = s.resetMs >= 0 ? s.resetMs : resetMs(nowMs, a.rule.windowSeconds);
    let used = limit - s.remaining;
    if (kind == KIND_REQUESTS && s.code == CODE_OVER_LIMIT) used = limit + 1;
    if (kind != KIND_REQUESTS && s.code == CODE_OVER_LIMIT) used = limit;
    if (!t.note(a, kind, used, reset)) ok = false;
  }
  return ok;
}

// The charge call for a finished request's tokens; null when no rule limits tokens.
export function chargeRequest(policy: QuotaPolicy, t: QuotaTicket, input: i64, output: i64, total: i64): ArrayBuffer | null {
  const req = new RlsRequest(policy.domain);
  let any = false;
  for (let i = 0; i < t.applied.length; i++) {
    const a = unchecked(t.applied[i]);
    for (let k = 1; k < KINDS; k++) {
      const limit = a.rule.limits[k];
      if (limit <= 0) continue;
      const hits = k == 1 ? input : k == 2 ? output : total;
      if (hits <= 0) continue;
      entries(a, k);
      req.descriptor(keys, values, limit, a.rule.windowSeconds, hits);
      any = true;
    }
  }
  return any ? req.finish() : null;
}
