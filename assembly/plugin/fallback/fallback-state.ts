// How far a request's fallback got, and every transition it can make: pure state, no host calls, so it
// is unit-tested without Envoy (tests/as/fallback-state.spec.ts). The request stage applies what it
// decides (holds the primary's answer, calls a backup, answers with an error).
//
//   Idle ──watch()──> Watching ──primary failed, backup left──> Calling ──backup failed, another left──> Calling
//                        │                                        │  └──backup answered──> Relayed
//                        │                                        └──none left──> GaveUp
//                        └──primary answered (or failed with no backup tried)──> Idle
//
// Watching is only entered by the `dispatch` mechanism, whose plugin holds the body; with `envoy`,
// Envoy's router retries and the request stage only learns the outcome (switched(), gaveUp()).
import { FallbackPolicy } from "../config/gateway-config";
import { Reason, failureReason, reasonName } from "./policy";

export const enum Step {
  Idle = 0, // no fallback pending: whatever answers goes to the client
  Watching = 1, // the primary's answer may still send the request to a backup (the body is held)
  Calling = 2, // a backup call is under way; the primary's response is held back
  Relayed = 3, // answered with a backup's response
  GaveUp = 4, // answered with the error naming every failed attempt
}

export class FallbackState {
  step: Step = Step.Idle;
  from: string = ""; // the model this request fell back from ("" = none)
  reason: string = ""; // why (fallback metric reason: status_503, cooldown, …)
  tried: Array<string> = new Array<string>(); // "model (why)" of failed attempts, for the error
  probe: bool = false; // this request holds its model's cooldown probe slot
  onPrimary: bool = false; // the attempt under way is the requested model's own
  private next: i32 = 0; // index of the next backup in the chain
  private attempts: i32 = 1; // attempts made or under way (the primary counts)

  // The request now goes to another model than `requested` (cooldown, Higress's replay, a backup);
  // the first reason stands.
  switched(requested: string, reason: string): void {
    if (this.from.length > 0) return;
    this.from = requested;
    this.reason = reason;
  }

  // The primary is cooling down: the request goes straight to the chain's first backup.
  skipPrimary(primary: string): void {
    this.tried.push(primary + " (cooling down)");
    this.switched(primary, reasonName(Reason.Cooldown, 0));
    this.next = 1;
    this.attempts = 2;
  }

  // The primary's answer will decide (dispatch: the body is held meanwhile).
  watch(): void {
    this.step = Step.Watching;
  }

  // Why the primary's answer (status, whether it came from the upstream, time since the request
  // arrived) sends the request to a backup; Reason.None to deliver it.
  judge(policy: FallbackPolicy, status: i32, viaUpstream: bool, elapsedMs: i64): Reason {
    return this.step == Step.Watching ? failureReason(policy, status, viaUpstream, elapsedMs) : Reason.None;
  }

  // The requested model's own attempt failed (`what`, for the client's error; `reason`, for metrics).
  primaryFailed(model: string, what: string, reason: string): void {
    this.tried.push(model + " (" + what + ")");
    this.switched(model, reason);
    this.onPrimary = false;
  }

  // A backup attempt failed.
  attemptFailed(model: string, what: string): void {
    this.tried.push(model + " (" + what + ")");
  }

  // The next backup of `chain` to call, or null when the chain or maxAttempts is used up.
  nextBackup(chain: Array<string>, maxAttempts: i32): string | null {
    if (this.next >= chain.length || this.attempts >= maxAttempts) return null;
    this.attempts++;
    this.step = Step.Calling;
    return unchecked(chain[this.next++]);
  }

  // After a failure with no backup left: true when backups were tried (or skipped), so the client gets
  // the error naming them; false when the primary's own answer goes to the client unchanged.
  exhausted(): bool {
    if (this.tried.length > 1) return true;
    // Nothing else was tried (maxAttempts 1, or an empty chain): not a fallback after all.
    this.from = "";
    this.reason = "";
    this.step = Step.Idle;
    return false;
  }

  delivered(): void {
    if (this.step == Step.Watching) this.step = Step.Idle;
  }

  relayed(): void {
    this.step = Step.Relayed;
  }

  gaveUp(): void {
    this.step = Step.GaveUp;
  }

  get holdsResponse(): bool {
    return this.step == Step.Calling;
  }

  // The request was answered from a backup or with the all-attempts error (not by what Envoy routed).
  get answeredByPlugin(): bool {
    return this.step == Step.Relayed || this.step == Step.GaveUp;
  }
}
