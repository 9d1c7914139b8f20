// vLLM's ORCA per-response load report (vllm/entrypoints/serve/utils/orca_metrics.py): a request that
// carries `endpoint-load-metrics-format: text|json` (any case) gets an `endpoint-load-metrics` header
// with two of vLLM's Prometheus gauges; any other value gets none (vLLM only logs a warning).
// vLLM attaches it to non-streamed answers only: the chat and completions routes pass it to their
// JSONResponse, never to the StreamingResponse, and error answers carry none.
import type { ReplicaStats } from "./replica.ts";

export const ORCA_FORMAT_HEADER = "endpoint-load-metrics-format";
export const ORCA_REPORT_HEADER = "endpoint-load-metrics";

/** Python's repr of a float: what vLLM's f-string and json.dumps write. */
export function pythonFloatRepr(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  if (n === 0) return Object.is(n, -0) ? "-0.0" : "0.0";
  // toExponential() gives the same shortest round-trip digits as Python; only the layout differs:
  // Python switches to an exponent below 1e-4 and from 1e16 (JS: 1e-7 and 1e21), with two digits at least.
  const [mantissa = "0", exponent = "0"] = n.toExponential().split("e");
  const exp = Number(exponent);
  if (exp < -4 || exp >= 16) return `${mantissa}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  const fixed = String(n);
  return fixed.includes(".") ? fixed : `${fixed}.0`;
}

// json.dumps writes non-finite floats as JavaScript literals, not as repr.
function pythonJsonFloat(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "Infinity" : "-Infinity";
  return pythonFloatRepr(n);
}

/**
 * The header value for `format`, or null for no header. The gauges come in the order vLLM's metrics
 * snapshot lists them, the order PrometheusStatLogger registers them: waiting before KV usage.
 */
export function orcaLoadReport(format: string | undefined, stats: Pick<ReplicaStats, "waiting" | "kvCacheUsage">): string | null {
  if (format === undefined || format === "") return null;
  const kind = format.toLowerCase();
  if (kind !== "text" && kind !== "json") return null;
  const metrics: [string, number][] = [
    ["num_requests_waiting", stats.waiting],
    ["kv_cache_usage_perc", stats.kvCacheUsage],
  ];
  if (kind === "text") return `TEXT ${metrics.map(([name, value]) => `named_metrics.${name}=${pythonFloatRepr(value)}`).join(", ")}`;
  // json.dumps' default separators: ", " and ": ".
  const body = metrics.map(([name, value]) => `${JSON.stringify(name)}: ${pythonJsonFloat(value)}`).join(", ");
  return `JSON {"named_metrics": {${body}}}`;
}
