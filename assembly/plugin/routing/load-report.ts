// vLLM's load figures, from the two places it gives them:
// - its per-answer report (ORCA, "endpoint-load-metrics"), attached to non-streamed answers when the
//   request asks with `endpoint-load-metrics-format: text`:
//     endpoint-load-metrics: TEXT named_metrics.num_requests_waiting=3.0, named_metrics.kv_cache_usage_perc=0.25
// - its Prometheus page (/metrics): vllm:num_requests_waiting, vllm:kv_cache_usage_perc (before vLLM 0.10:
//   vllm:gpu_cache_usage_perc), one series per engine.
// Both come from an upstream: parsed without trusting them (no abort on any input; a malformed report is
// no report).
import { HostBytes } from "../../abi/memory";
import { parseDecimal } from "../../util/digits";

export const LOAD_REPORT_HEADER = "endpoint-load-metrics";
export const LOAD_REPORT_FORMAT_HEADER = "endpoint-load-metrics-format";
export const LOAD_REPORT_FORMAT = "text";

const KV_USAGE = "named_metrics.kv_cache_usage_perc";
const WAITING = "named_metrics.num_requests_waiting";
// Longer values are not vLLM's report (it has two metrics): not parsed.
const MAX_REPORT_CHARS = 1024;

export class LoadFigures {
  constructor(
    public waiting: i32 = 0, // requests in vLLM's queue
    public kvPermille: i32 = 0, // KV-cache blocks in use, per mille
  ) {}
}

// The report in `v`; null when it is not a TEXT report holding at least one of the two metrics.
export function parseLoadReport(v: string): LoadFigures | null {
  const n = v.length;
  if (n > MAX_REPORT_CHARS || !v.startsWith("TEXT ")) return null;
  const r = new LoadFigures();
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
          r.kvPermille = permille(value);
          found = true;
        } else if (name == WAITING) {
          r.waiting = count(value);
          found = true;
        }
      }
    }
    i = end + 1;
  }
  return found ? r : null;
}

function permille(fraction: f64): i32 {
  return <i32>Math.round(Math.min(fraction, 1.0) * 1000);
}

function count(v: f64): i32 {
  return <i32>Math.min(Math.round(v), 1e9);
}

const PROM_WAITING = "vllm:num_requests_waiting";
const PROM_KV = "vllm:kv_cache_usage_perc";
const PROM_KV_OLD = "vllm:gpu_cache_usage_perc";
// A metrics page larger than this is not read (vLLM's is tens of kilobytes).
export const MAX_METRICS_BYTES: i32 = 1024 * 1024;

// The figures on a Prometheus text page: waiting summed over the series (one per engine), KV usage the
// highest; null when neither is there. Scans bytes in place: only sample values become strings.
export function parseMetricsPage(b: HostBytes): LoadFigures | null {
  const p = b.ptr;
  const n = <i32>b.len;
  let waiting: f64 = 0;
  let kv: f64 = -1;
  let found = false;
  let line = 0;
  while (line < n) {
    let end = line;
    while (end < n && load<u8>(p + <usize>end) != 0x0a) end++;
    const isWaiting = sampleOf(p, line, end, PROM_WAITING);
    const isKv = !isWaiting && (sampleOf(p, line, end, PROM_KV) || sampleOf(p, line, end, PROM_KV_OLD));
    if (isWaiting || isKv) {
      const v = sampleValue(p, line, end);
      if (!isNaN(v) && v >= 0) {
        found = true;
        if (isWaiting) waiting += v;
        else if (v > kv) kv = v;
      }
    }
    line = end + 1;
  }
  if (!found) return null;
  return new LoadFigures(count(waiting), kv < 0 ? 0 : permille(kv));
}

// Whether the line is a sample of `name` (followed by labels or a space, not a longer name).
function sampleOf(p: usize, line: i32, end: i32, name: string): bool {
  const k = name.length;
  if (end - line <= k) return false;
  for (let i = 0; i < k; i++) if (<i32>load<u8>(p + <usize>(line + i)) != name.charCodeAt(i)) return false;
  const next = load<u8>(p + <usize>(line + k));
  return next == 0x7b || next == 0x20;
}

// The value of a sample line: the field after the last space outside labels (an optional timestamp
// after it is not written by vLLM's client library and is refused here).
function sampleValue(p: usize, line: i32, end: i32): f64 {
  let close = line;
  for (let i = line; i < end; i++) if (load<u8>(p + <usize>i) == 0x7d) close = i;
  let start = close;
  while (start < end && load<u8>(p + <usize>start) != 0x20) start++;
  if (end - start > 64) return NaN;
  const text = String.UTF8.decodeUnsafe(p + <usize>start, <usize>(end - start));
  return parseDecimal(text, 0, text.length);
}

function trimmed(v: string, start: i32, end: i32): string {
  while (start < end && v.charCodeAt(start) == 0x20) start++;
  while (end > start && v.charCodeAt(end - 1) == 0x20) end--;
  return v.substring(start, end);
}
