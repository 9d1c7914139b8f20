// A request's quota state: the rules that apply to it, what admission found, and what the client is
// told (OpenAI's x-ratelimit-* headers on every answer, a 429 on refusal). Both stores (local shared
// data, the cluster-wide rate-limit service) report into it the same way, through `note`.
import { HeaderPair } from "../../abi/headers";
import { KIND_NAMES, KIND_REQUESTS, QuotaPolicy, QuotaRule } from "../config/quota-policy";
import { LocalReply, rateLimited } from "../replies";
import { identityOf } from "./identity";
import { resetText } from "./window";

// Longest wait a refusal leaves to the client's own retry (the Python client's cap too).
const RETRY_WAIT_MAX_MS: i64 = 60000;

// One rule as it applies to one request.
export class AppliedRule {
  slotKey: string = ""; // local mode: shared-data key of its counters; "" = untracked (table full)
  constructor(
    public rule: QuotaRule,
    public identity: string,
    public model: string, // the budget's model when the rule is perModel, else ""
  ) {}
}

// One limit as admission saw it.
export class LimitView {
  rule: QuotaRule | null = null; // null: no limit of this family applies
  kind: i32 = 0;
  limit: i64 = 0;
  used: i64 = 0; // requests: including this one
  resetMs: i64 = 0;

  get remaining(): i64 {
    return this.used >= this.limit ? 0 : this.limit - this.used;
  }

  set(rule: QuotaRule, kind: i32, limit: i64, used: i64, resetMs: i64): void {
    this.rule = rule;
    this.kind = kind;
    this.limit = limit;
    this.used = used;
    this.resetMs = resetMs;
  }
}

export class QuotaTicket {
  applied: Array<AppliedRule> = new Array<AppliedRule>();
  // The tightest limit of each family (what the headers describe), and the one that refused.
  requests: LimitView = new LimitView();
  tokens: LimitView = new LimitView();
  refusal: LimitView | null = null;
  tableFull: bool = false; // local mode: a rule had no slot for this identity (admitted untracked)
  sent: Array<i32> = new Array<i32>(); // cluster mode: the limit (rule index * KINDS + kind) of each descriptor sent

  constructor(public model: string) {}

  // Records what a store found for one limit of `a`; false when it refuses the request: tokens used
  // reached the limit, or requests (this one included) passed it.
  note(a: AppliedRule, kind: i32, used: i64, resetMs: i64): bool {
    const limit = a.rule.limits[kind];
    if (limit <= 0) return true;
    const view = kind == KIND_REQUESTS ? this.requests : this.tokens;
    const remaining = used >= limit ? 0 : limit - used;
    if (view.rule == null || remaining < view.remaining) view.set(a.rule, kind, limit, used, resetMs);
    const over = kind == KIND_REQUESTS ? used > limit : used >= limit;
    if (over && this.refusal == null) {
      const r = new LimitView();
      r.set(a.rule, kind, limit, used, resetMs);
      this.refusal = r;
    }
    return !over;
  }

  // OpenAI's rate-limit headers: the refusing limit stands for its family.
  headers(): Array<HeaderPair> {
    const out = new Array<HeaderPair>();
    const r = this.refusal;
    let requests = this.requests;
    let tokens = this.tokens;
    if (r != null) {
      if (r.kind == KIND_REQUESTS) requests = r;
      else tokens = r;
    }
    addFamily(out, "requests", requests);
    addFamily(out, "tokens", tokens);
    if (r != null) {
      out.push(new HeaderPair("retry-after", ((r.resetMs + 999) / 1000).toString()));
      out.push(new HeaderPair("retry-after-ms", r.resetMs.toString()));
      // OpenAI's clients sleep retry-after-ms before retrying, however long; past a minute the caller
      // is better told at once (the clients honour x-should-retry).
      if (r.resetMs > RETRY_WAIT_MAX_MS) out.push(new HeaderPair("x-should-retry", "false"));
    }
    return out;
  }

  refusalReply(): LocalReply {
    const r = this.refusal!;
    const rule = r.rule!;
    return rateLimited(
      "Rate limit reached for " +
        this.model +
        " on " +
        KIND_NAMES[r.kind] +
        " per " +
        rule.window +
        " (rule " +
        rule.name +
        "): limit " +
        r.limit.toString() +
        ", used " +
        (r.used > r.limit ? r.limit : r.used).toString() +
        ". Please try again in " +
        resetText(r.resetMs) +
        ".",
      r.kind != KIND_REQUESTS,
    );
  }
}

function addFamily(out: Array<HeaderPair>, family: string, v: LimitView): void {
  if (v.rule == null) return;
  out.push(new HeaderPair("x-ratelimit-limit-" + family, v.limit.toString()));
  out.push(new HeaderPair("x-ratelimit-remaining-" + family, v.remaining.toString()));
  out.push(new HeaderPair("x-ratelimit-reset-" + family, resetText(v.resetMs)));
}

// The rules that apply to a request for `model` (the requested name); null when none does.
export function ticketFor(policy: QuotaPolicy, model: string): QuotaTicket | null {
  let t: QuotaTicket | null = null;
  for (let i = 0; i < policy.rules.length; i++) {
    const rule = unchecked(policy.rules[i]);
    if (!rule.models.matches(model)) continue;
    if (t == null) t = new QuotaTicket(model);
    t.applied.push(new AppliedRule(rule, identityOf(rule), rule.perModel ? model : ""));
  }
  return t;
}
