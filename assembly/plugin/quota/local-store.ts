// quotas.mode "local": each rule's counters in proxy-wasm shared data, which every worker (VM) of one
// Envoy sees; updates are compare-and-swap, retried when another worker wrote in between.
//
// Memory is bounded by design: a rule has a fixed table of `quotas.localSlots` slots (shared data has
// no delete, so one key per identity would grow without bound under a flood of API keys). An identity
// probes a few slots from its hash and takes its own, a free one or one whose window has passed; when
// all are live with others, the request is admitted untracked and counted (table_full).
import { Status } from "../../abi/enums";
import { getSharedData, setSharedData } from "../../abi/host";
import { KINDS, KIND_INPUT, KIND_OUTPUT, KIND_REQUESTS, KIND_TOTAL, QuotaPolicy } from "../config/quota-policy";
import { fnv1a64 } from "../../util/hash";
import { parseDigits } from "../../util/digits";
import { AppliedRule, QuotaTicket } from "./ticket";
import { resetMs, windowStartSec } from "./window";

const KEY_PREFIX = "llm-gateway/quota/";
const PROBES: i32 = 4;
const CAS_RETRIES: i32 = 8;

// A slot's value: owner "\n" window start (s) "\n" requests "\n" input "\n" output "\n" total.
class Row {
  owner: string = "";
  windowStart: i64 = 0;
  counts: StaticArray<i64> = new StaticArray<i64>(KINDS);

  read(v: string): void {
    let at = v.indexOf("\n");
    this.owner = at < 0 ? "" : v.substring(0, at);
    let from = at + 1;
    for (let k = -1; k < KINDS; k++) {
      let to = v.indexOf("\n", from);
      if (to < 0) to = v.length;
      const n = at < 0 ? 0 : parseDigits(v.substring(from, to));
      if (k < 0) this.windowStart = n < 0 ? 0 : n;
      else this.counts[k] = n < 0 ? 0 : n;
      from = to + 1;
    }
  }

  text(): string {
    let s = this.owner + "\n" + this.windowStart.toString();
    for (let k = 0; k < KINDS; k++) s += "\n" + this.counts[k].toString();
    return s;
  }

  restart(owner: string, windowStart: i64): void {
    this.owner = owner;
    this.windowStart = windowStart;
    for (let k = 0; k < KINDS; k++) this.counts[k] = 0;
  }
}

const row = new Row();

// Identity and model (a model name has no control characters: routing refuses those).
function ownerOf(a: AppliedRule): string {
  return a.identity + "\t" + a.model;
}

// Reads the slot `key` into `row` for `owner` in the window `ws`: false when another live owner holds it.
function readSlot(key: string, owner: string, ws: i64, windowSec: i64): u32 {
  const sv = getSharedData(key);
  if (sv == null) {
    row.restart(owner, ws);
    return 0;
  }
  row.read(sv.value);
  const mine = row.owner == owner;
  if (!mine && row.windowStart + windowSec > ws) return u32.MAX_VALUE; // live, someone else's
  if (!mine || row.windowStart != ws) row.restart(owner, ws);
  return sv.cas;
}

// Admission for every rule of the ticket; false when one refuses (ticket.refusal says which). A rule
// with a requests limit counts this request; `tableFull` is set when a rule could not track it.
export function admitLocal(policy: QuotaPolicy, t: QuotaTicket, nowMs: i64): bool {
  for (let i = 0; i < t.applied.length; i++) {
    const a = unchecked(t.applied[i]);
    const rule = a.rule;
    const owner = ownerOf(a);
    const ws = windowStartSec(nowMs, rule.windowSeconds);
    const reset = resetMs(nowMs, rule.windowSeconds);
    const slots = <u64>policy.localSlots;
    const base = fnv1a64(owner) % slots;
    for (let p = 0; p < PROBES && a.slotKey.length == 0; p++) {
      const key = KEY_PREFIX + rule.name + "/" + ((base + <u64>p) % slots).toString();
      // Check and count in one compare-and-swap, so concurrent workers cannot both take the last request.
      for (let tries = 0; tries < CAS_RETRIES; tries++) {
        const cas = readSlot(key, owner, ws, rule.windowSeconds);
        if (cas == u32.MAX_VALUE) break; // next probe
        a.slotKey = key;
        if (!t.note(a, KIND_INPUT, row.counts[KIND_INPUT], reset)) return false;
        if (!t.note(a, KIND_OUTPUT, row.counts[KIND_OUTPUT], reset)) return false;
        if (!t.note(a, KIND_TOTAL, row.counts[KIND_TOTAL], reset)) return false;
        if (rule.limits[KIND_REQUESTS] <= 0) {
          if (cas == 0) setSharedData(key, row.text(), 0); // claim the slot for this owner
          break;
        }
        row.counts[KIND_REQUESTS]++;
        if (!t.note(a, KIND_REQUESTS, row.counts[KIND_REQUESTS], reset)) return false;
        if (setSharedData(key, row.text(), cas) == Status.Ok) break;
        // Lost a race: read again (the views keep the tightest figure seen, which is still a bound).
      }
    }
    if (a.slotKey.length == 0) t.tableFull = true;
  }
  return true;
}

// Adds a finished request's tokens to every rule that tracked it.
export function chargeLocal(t: QuotaTicket, input: i64, output: i64, total: i64, nowMs: i64): void {
  for (let i = 0; i < t.applied.length; i++) {
    const a = unchecked(t.applied[i]);
    if (a.slotKey.length == 0) continue;
    const rule = a.rule;
    if (!rule.limitsTokens()) continue;
    const owner = ownerOf(a);
    const ws = windowStartSec(nowMs, rule.windowSeconds);
    for (let tries = 0; tries < CAS_RETRIES; tries++) {
      const cas = readSlot(a.slotKey, owner, ws, rule.windowSeconds);
      if (cas == u32.MAX_VALUE) break; // taken over after our window passed: nothing left to charge
      row.counts[KIND_INPUT] += input;
      row.counts[KIND_OUTPUT] += output;
      row.counts[KIND_TOTAL] += total;
      if (setSharedData(a.slotKey, row.text(), cas) == Status.Ok) break;
    }
  }
}
