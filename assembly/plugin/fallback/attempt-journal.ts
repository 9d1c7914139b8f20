// Which upstream attempts of a request failed, and why, as the attempt stage saw them (attempt.ts):
// read by the next attempt (for the fallback reason) and by the request stage (to name every failed
// attempt when the last one fails too). Both stages run in one VM when their filters share a vm_config
// (as the harness and the rendered manifests configure them); without it the request stage finds
// nothing here and falls back to less specific messages.
//
// Only failures are written, so a healthy request costs nothing. Bounded: a ring of the most recent
// requests with failures; an older entry is overwritten, never grown.

const CAPACITY: i32 = 256;
const MAX_LINES: i32 = 16;

export class AttemptFailures {
  requestId: string = "";
  // By attempt number - 1: "model (why)" of a failed attempt, "" where nothing was written.
  lines: Array<string> = new Array<string>();
  reasons: Array<string> = new Array<string>(); // metric reason (status_503, …) beside each line

  has(attempt: i32): bool {
    return attempt >= 1 && attempt <= this.lines.length && unchecked(this.lines[attempt - 1]).length > 0;
  }

  line(attempt: i32): string {
    return this.has(attempt) ? unchecked(this.lines[attempt - 1]) : "";
  }

  // The reason of the latest attempt written.
  lastReason(): string {
    for (let i = this.reasons.length - 1; i >= 0; i--) {
      if (unchecked(this.reasons[i]).length > 0) return unchecked(this.reasons[i]);
    }
    return "";
  }
}

const ring = new Array<AttemptFailures | null>(CAPACITY);
let next: i32 = 0;

export function failuresOf(requestId: string): AttemptFailures | null {
  if (requestId.length == 0) return null;
  // Newest first: the request asking is almost always among the last few written.
  for (let k = 1; k <= CAPACITY; k++) {
    const e = unchecked(ring[(next - k + CAPACITY) % CAPACITY]);
    if (e == null) return null;
    if (e.requestId == requestId) return e;
  }
  return null;
}

// Writes attempt `attempt`'s failure unless something is written for it already (the first word
// stands: a later attempt may write for an earlier one that has not reported yet).
export function noteFailure(requestId: string, attempt: i32, line: string, reason: string): void {
  if (requestId.length == 0 || attempt < 1 || attempt > MAX_LINES) return;
  let e = failuresOf(requestId);
  if (e == null) {
    e = new AttemptFailures();
    e.requestId = requestId;
    unchecked((ring[next] = e));
    next = (next + 1) % CAPACITY;
  }
  while (e.lines.length < attempt) {
    e.lines.push("");
    e.reasons.push("");
  }
  if (unchecked(e.lines[attempt - 1]).length > 0) return;
  unchecked((e.lines[attempt - 1] = line));
  unchecked((e.reasons[attempt - 1] = reason));
}
