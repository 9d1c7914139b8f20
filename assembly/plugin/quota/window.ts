// Fixed windows aligned to the clock, as envoyproxy/ratelimit counts them (a minute window starts at
// a whole minute), and their reset times in OpenAI's header format.

export function windowStartSec(nowMs: i64, windowSec: i64): i64 {
  const s = nowMs / 1000;
  return s - (s % windowSec);
}

// Milliseconds until the window that holds nowMs ends.
export function resetMs(nowMs: i64, windowSec: i64): i64 {
  return (windowStartSec(nowMs, windowSec) + windowSec) * 1000 - nowMs;
}

// OpenAI writes resets as Go durations: "250ms", "12s", "1m30s", "6m0s", "1h0m0s" (whole seconds
// rounded up above one second).
export function resetText(ms: i64): string {
  if (ms < 1000) return (ms < 1 ? 1 : ms).toString() + "ms";
  let s = (ms + 999) / 1000;
  const h = s / 3600;
  s -= h * 3600;
  const m = s / 60;
  s -= m * 60;
  if (h > 0) return h.toString() + "h" + m.toString() + "m" + s.toString() + "s";
  if (m > 0) return m.toString() + "m" + s.toString() + "s";
  return s.toString() + "s";
}
