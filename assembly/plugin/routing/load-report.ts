// vLLM's per-response load report (ORCA, "endpoint-load-metrics"), which vLLM attaches when the request
// asks for it with `endpoint-load-metrics-format: text`:
//   endpoint-load-metrics: TEXT named_metrics.kv_cache_usage_perc=0.25, named_metrics.num_requests_waiting=3.0
// The values are vLLM's gauges vllm:kv_cache_usage_perc (a fraction) and vllm:num_requests_waiting at the
// moment the answer started. The header comes from an upstream: parsed without trusting it (no abort on any
// input; a malformed report is no report).

export const LOAD_REPORT_HEADER = "endpoint-load-metrics";
export const LOAD_REPORT_FORMAT_HEADER = "endpoint-load-metrics-format";
export const LOAD_REPORT_FORMAT = "text";

const KV_USAGE = "named_metrics.kv_cache_usage_perc";
const WAITING = "named_metrics.num_requests_waiting";
// Longer values are not vLLM's report (it has two metrics): not parsed.
const MAX_REPORT_CHARS = 1024;

export class LoadReport {
  waiting: i32 = 0; // requests in vLLM's queue
  kvPermille: i32 = 0; // KV-cache blocks in use, per mille
}

// The report in `v`; null when it is not a TEXT report holding at least one of the two metrics.
export function parseLoadReport(v: string): LoadReport | null {
  const n = v.length;
  if (n > MAX_REPORT_CHARS || !v.startsWith("TEXT ")) return null;
  const r = new LoadReport();
  let found = false;
  let i = 5;
  while (i < n) {
    let end = v.indexOf(",", i);
    if (end < 0) end = n;
    const eq = v.indexOf("=", i);
    if (eq > i && eq < end) {
      const name = trimmed(v, i, eq);
      const value = parseDecimal(v, eq + 1, end);
      if (!isNaN(value) && value >= 0) {
        if (name == KV_USAGE) {
          r.kvPermille = <i32>Math.round(Math.min(value, 1.0) * 1000);
          found = true;
        } else if (name == WAITING) {
          r.waiting = <i32>Math.min(Math.round(value), 1e9);
          found = true;
        }
      }
    }
    i = end + 1;
  }
  return found ? r : null;
}

function trimmed(v: string, start: i32, end: i32): string {
  while (start < end && v.charCodeAt(start) == 0x20) start++;
  while (end > start && v.charCodeAt(end - 1) == 0x20) end--;
  return v.substring(start, end);
}

// A non-negative decimal as Python prints a float (3, 3.0, 0.25, 1e-05, 2.5E+3) in v[start..end), spaces
// around it allowed; NaN for anything else.
export function parseDecimal(v: string, start: i32, end: i32): f64 {
  while (start < end && v.charCodeAt(start) == 0x20) start++;
  while (end > start && v.charCodeAt(end - 1) == 0x20) end--;
  let i = start;
  let mantissa: f64 = 0;
  let scale: i32 = 0;
  let digits = 0;
  while (i < end && isDigit(v.charCodeAt(i))) {
    if (digits < 18) mantissa = mantissa * 10 + <f64>(v.charCodeAt(i) - 0x30);
    else scale++;
    digits++;
    i++;
  }
  if (i < end && v.charCodeAt(i) == 0x2e) {
    i++;
    while (i < end && isDigit(v.charCodeAt(i))) {
      if (digits < 18) {
        mantissa = mantissa * 10 + <f64>(v.charCodeAt(i) - 0x30);
        scale--;
      }
      digits++;
      i++;
    }
  }
  if (digits == 0) return NaN;
  if (i < end && (v.charCodeAt(i) | 0x20) == 0x65) {
    i++;
    let sign = 1;
    if (i < end && (v.charCodeAt(i) == 0x2b || v.charCodeAt(i) == 0x2d)) {
      if (v.charCodeAt(i) == 0x2d) sign = -1;
      i++;
    }
    let exp = 0;
    let expDigits = 0;
    while (i < end && isDigit(v.charCodeAt(i))) {
      if (exp < 10000) exp = exp * 10 + (v.charCodeAt(i) - 0x30);
      expDigits++;
      i++;
    }
    if (expDigits == 0) return NaN;
    scale += sign * exp;
  }
  if (i != end) return NaN;
  if (mantissa == 0) return 0;
  if (scale > 308) return Infinity;
  if (scale < -340) return 0;
  return mantissa * Math.pow(10, <f64>scale);
}

function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}
