// Fallback policy, as pure functions: when a failed attempt goes to a backup model, and the cooldown
// that sends a failing model's requests straight to its backup for a while. The stages apply these; the cooldown state lives in proxy shared data so every
// Envoy worker sees the same (cooldown-store.ts).
import { parseDigits } from "../../util/digits";
import { FallbackPolicy } from "../config/gateway-config";

export const enum Reason {
  None = 0,
  Status = 1,
  LocalReply = 2,
  CallFailed = 3,
  Cooldown = 4,
  FirstByteTimeout = 5,
}

export function reasonName(r: Reason, status: i32): string {
  switch (r) {
    case Reason.Status:
      return "status_" + status.toString();
    case Reason.LocalReply:
      return "upstream_unreachable";
    case Reason.CallFailed:
      return "call_failed";
    case Reason.Cooldown:
      return "cooldown";
    case Reason.FirstByteTimeout:
      return "first_byte_timeout";
    default:
      return "none";
  }
}

// Why a response should go to the backup, or Reason.None. `viaUpstream`: the response came from the
// upstream (code_details "via_upstream"); otherwise Envoy answered (connect failure, reset, timeout).
export function failureReason(p: FallbackPolicy, status: i32, viaUpstream: bool, elapsedMs: i64): Reason {
  if (!p.enabled) return Reason.None;
  if (p.slowFailureMs > 0 && elapsedMs >= p.slowFailureMs) return Reason.None;
  if (!viaUpstream && p.onLocalReply && status >= 500) return Reason.LocalReply;
  for (let i = 0; i < p.onStatus.length; i++) {
    if (unchecked(p.onStatus[i]).matches(status)) return Reason.Status;
  }
  return Reason.None;
}

// ---- cooldown -----------------------------------------------------------------------------------

export const enum Gate {
  Primary = 0,
  Backup = 1,
  Probe = 2,
}

// One route's circuit, as stored in shared data: "failures,windowStartMs,openUntilMs,probeUntilMs".
export class Circuit {
  failures: i32 = 0;
  windowStartMs: i64 = 0;
  openUntilMs: i64 = 0; // > now: requests go to the backup
  probeUntilMs: i64 = 0; // a probe is in flight until then (guards against a probe that never reports)

  encode(): string {
    return (
      this.failures.toString() +
      "," +
      this.windowStartMs.toString() +
      "," +
      this.openUntilMs.toString() +
      "," +
      this.probeUntilMs.toString()
    );
  }

  static decode(s: string): Circuit {
    const c = new Circuit();
    const a = s.indexOf(",");
    const b = a < 0 ? -1 : s.indexOf(",", a + 1);
    const d = b < 0 ? -1 : s.indexOf(",", b + 1);
    if (d < 0 || s.indexOf(",", d + 1) >= 0) return c;
    c.failures = <i32>fieldValue(s.substring(0, a));
    c.windowStartMs = fieldValue(s.substring(a + 1, b));
    c.openUntilMs = fieldValue(s.substring(b + 1, d));
    c.probeUntilMs = fieldValue(s.substring(d + 1));
    return c;
  }
}

// A stored field; a damaged value reads as 0 (a closed circuit), never as an abort.
function fieldValue(s: string): i64 {
  const v = parseDigits(s);
  return v < 0 ? 0 : v;
}

// Where a new request goes. Mutates `c` when it takes the probe slot.
export function admitRequest(p: FallbackPolicy, c: Circuit, nowMs: i64): Gate {
  if (p.cooldownFailures <= 0 || c.openUntilMs == 0) return Gate.Primary;
  if (nowMs < c.openUntilMs) return Gate.Backup;
  // Cooldown over: one request probes the primary; the others keep going to the backup meanwhile.
  if (nowMs < c.probeUntilMs) return Gate.Backup;
  c.probeUntilMs = nowMs + <i64>p.attemptTimeoutMs;
  return Gate.Probe;
}

// Records a primary's outcome; returns true when this failure opened the circuit.
export function recordOutcome(p: FallbackPolicy, c: Circuit, failed: bool, nowMs: i64, wasProbe: bool): bool {
  if (p.cooldownFailures <= 0) return false;
  if (!failed) {
    if (wasProbe || c.openUntilMs != 0 || c.failures != 0) {
      c.failures = 0;
      c.windowStartMs = 0;
      c.openUntilMs = 0;
      c.probeUntilMs = 0;
    }
    return false;
  }
  if (wasProbe) {
    c.openUntilMs = nowMs + p.cooldownMs;
    c.probeUntilMs = 0;
    c.failures = 0;
    return true;
  }
  if (c.failures == 0 || nowMs - c.windowStartMs > p.cooldownWindowMs) {
    c.failures = 0;
    c.windowStartMs = nowMs;
  }
  c.failures++;
  if (c.failures >= p.cooldownFailures) {
    c.openUntilMs = nowMs + p.cooldownMs;
    c.probeUntilMs = 0;
    c.failures = 0;
    return true;
  }
  return false;
}
