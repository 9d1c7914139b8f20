// GET /metrics of a vLLM server (V1 engine), for the series a load balancer or the bench reads. vLLM
// registers them with prometheus_client (vllm/v1/metrics/loggers.py, PrometheusStatLogger), labels
// model_name (the served model) and engine (the engine index, "0" for one engine); prometheus_client
// writes floats ("3.0"), adds `_total` to a counter's name and a `_created` sample beside it.
import type { ReplicaStats } from "./replica.ts";

function labels(model: string): string {
  return `{model_name="${model.replace(/["\\\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}",engine="0"}`;
}

// Python's float repr as prometheus_client writes it: "3.0", "0.25", and Go-style exponents past 1e16
// or for epoch seconds ("1.764712345e+09").
function float(n: number): string {
  if (Math.abs(n) >= 1e9) {
    const [m = "0", e = "0"] = n.toExponential().split("e");
    const exp = Number(e);
    return `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return Number.isInteger(n) ? `${n}.0` : String(n);
}

export function metricsText(model: string, stats: ReplicaStats, createdSec: number): string {
  const l = labels(model);
  const gauge = (name: string, help: string, value: number): string =>
    `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${l} ${float(value)}\n`;
  const counter = (name: string, help: string, value: number): string =>
    `# HELP ${name}_total ${help}\n# TYPE ${name}_total counter\n${name}_total${l} ${float(value)}\n` +
    `# HELP ${name}_created ${help}\n# TYPE ${name}_created gauge\n${name}_created${l} ${float(createdSec)}\n`;
  return (
    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", stats.running) +
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", stats.waiting) +
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", stats.kvCacheUsage) +
    counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", stats.prefixCacheQueries) +
    counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", stats.prefixCacheHits) +
    counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", stats.preemptions)
  );
}
