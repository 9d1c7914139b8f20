// report.md of `make bench-lb`: the three policies side by side, the issue's targets, the sensitivity runs.
import type { Machine, WasmFile } from "../machine.ts";
import type { ReplicaParams } from "../../backends/replica.ts";
import type { PolicyResult } from "./summary.ts";
import type { WorkloadSpec } from "./workload.ts";

export interface LbRawResults {
  startedAt: string;
  machine: Machine;
  plugin: WasmFile;
  options: {
    speed: number;
    durationS: number;
    warmupS: number;
    demand: number;
    hashBalanceFactor: number;
    replicas: number;
  };
  replicaParams: ReplicaParams;
  workload: {
    spec: WorkloadSpec;
    requests: number;
    measured_requests: number;
    offered_rps: number;
    uncached_gpu_demand: number;
    achievable_hit_rate: number;
    /** No policy's TTFT percentile can be lower (workload.ts ttftFloorsMs). */
    ttft_floor_p50_ms: number;
    ttft_floor_p90_ms: number;
    distinct_tokens: number;
    chat_share: number;
    mean_prompt_tokens: number;
    mean_output_tokens: number;
  };
  policies: PolicyResult[];
  sensitivity: { variant: string; description: string; results: PolicyResult[] }[];
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : "n/a");

export interface Target {
  id: string;
  goal: string;
  measured: string;
  met: boolean | null;
}

/** The plugin's policies, judged against the issue's targets. */
export const PLUGIN_POLICIES = ["prefix-affinity", "load-aware"];

export function lbTargets(raw: LbRawResults, policy = "prefix-affinity"): Target[] {
  const lr = raw.policies.find((p) => p.policy === "least-request");
  const pa = raw.policies.find((p) => p.policy === policy);
  if (lr === undefined || pa === undefined) return [];
  const factor = raw.options.hashBalanceFactor / 100;
  const ratio = lr.ttft_p90_ms / pa.ttft_p90_ms;
  const share = pa.prefix_cache_hit_rate / raw.workload.achievable_hit_rate;
  const floor = raw.workload.ttft_floor_p90_ms;
  return [
    {
      id: "ttft-p90",
      goal: "TTFT p90 ≥ 2× lower than least-request",
      measured:
        `${ratio.toFixed(2)}× (${ms(lr.ttft_p90_ms)} → ${ms(pa.ttft_p90_ms)} ms); ` +
        `no policy can go below ${ms(floor)} ms here, i.e. ${(lr.ttft_p90_ms / floor).toFixed(2)}× at best`,
      met: ratio >= 2,
    },
    {
      id: "hit-rate",
      goal: "hit rate > 80% of the achievable maximum",
      measured: `${pct(pa.prefix_cache_hit_rate)} of ${pct(raw.workload.achievable_hit_rate)} = ${pct(share)}`,
      met: share > 0.8,
    },
    {
      id: "load",
      goal: `no replica above the load factor (${factor})`,
      measured: `max/mean ${pa.max_replica_load_ratio.toFixed(2)}`,
      met: pa.max_replica_load_ratio <= factor,
    },
  ];
}

function policyTable(rs: PolicyResult[]): string[] {
  const lines = [
    "| Policy | TTFT p50 (ms) | TTFT p90 (ms) | TTFT p99 (ms) | Chat turns p50 / p90 | One-off prompts p50 / p90 | Client TTFT p50 / p90 | Throughput (req/s) | Prefix-cache hit rate | Max replica load / mean | Requests per replica | Errors |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rs) {
    lines.push(
      `| ${r.policy} | ${ms(r.ttft_p50_ms)} | ${ms(r.ttft_p90_ms)} | ${ms(r.ttft_p99_ms)} | ${ms(r.chat_ttft_p50_ms)} / ${ms(r.chat_ttft_p90_ms)} | ` +
        `${ms(r.unique_ttft_p50_ms)} / ${ms(r.unique_ttft_p90_ms)} | ${ms(r.client_ttft_p50_ms)} / ${ms(r.client_ttft_p90_ms)} | ` +
        `${r.throughput_rps.toFixed(2)} | ${pct(r.prefix_cache_hit_rate)} | ` +
        `${r.max_replica_load_ratio.toFixed(2)} | ${Object.values(r.requests_per_replica).join(" / ")} | ${r.errors} |`,
    );
  }
  return lines;
}

export function renderLbReport(raw: LbRawResults, chart: string | null): string {
  const w = raw.workload;
  const s = w.spec;
  const p = raw.replicaParams;
  const lines = [
    `# bench-lb ${raw.startedAt.slice(0, 16).replace("T", " ")} UTC`,
    "",
    `${raw.machine.nproc} cores (${raw.machine.cpuModel}), Envoy ${raw.machine.envoy}, Node ${raw.machine.node}, plugin.wasm ${raw.plugin.bytes} bytes ` +
      `(sha256 ${raw.plugin.sha256.slice(0, 12)}…). ${raw.options.replicas} simulated replicas of ${s.model} (docs/replica-routing.md), ` +
      `simulated time ${raw.options.speed}× the wall clock; every time below is simulated ms.`,
    "",
    "## Targets (the plugin's policies against least-request, same offered load)",
    "",
    "| Policy | Target | Goal | Measured | Met |",
    "|---|---|---|---|---|",
    ...PLUGIN_POLICIES.flatMap((name) =>
      lbTargets(raw, name).map(
        (t) => `| ${name} | ${t.id} | ${t.goal} | ${t.measured} | ${t.met === null ? "n/a" : t.met ? "yes" : "no"} |`,
      ),
    ),
    "",
    `TTFT floor: each measured request alone on an idle replica whose cache holds every prefix computed before it ` +
      `(p50 ${ms(w.ttft_floor_p50_ms)} ms, p90 ${ms(w.ttft_floor_p90_ms)} ms); queueing and shared steps only add, so no balancer gets below it.`,
    "",
    "## Policies",
    "",
    ...policyTable(raw.policies),
    "",
    `Measured: the ${w.measured_requests} requests sent after the ${raw.options.warmupS} s warm-up (caches start cold for every policy). ` +
      `prefix-affinity: the plugin's key in \`x-llm-gateway-prefix-key\`, RING_HASH with hash_balance_factor ${raw.options.hashBalanceFactor}. ` +
      `load-aware: the plugin names the replica (rendezvous ranking of the key, in-flight bound ${raw.options.hashBalanceFactor}%, vLLM's load reports) ` +
      `in \`x-gateway-destination-endpoint\` for Envoy's override-host policy, the same ring as its fallback.`,
    "",
    ...(chart !== null ? [`![bench-lb chart](${chart})`, ""] : []),
    "## Workload",
    "",
    `Seed ${s.seed}: ${w.requests} requests in ${s.durationS} s (${w.offered_rps.toFixed(1)} req/s, open loop), ${pct(w.chat_share)} of them turns of chats ` +
      `(${s.tenants} tenants, popularity ∝ 1/rank^${s.zipf}, system prompts of ${s.systemTokens[0]}–${s.systemTokens[1]} tokens, ${s.turns[0]}–${s.turns[1]} turns ` +
      `${s.thinkS} s apart on average, first user message ${s.firstUserTokens[0]}–${s.firstUserTokens[1]} tokens, later ones ${s.userTokens[0]}–${s.userTokens[1]}), ` +
      `the rest one-off prompts of ${s.uniqueTokens[0]}–${s.uniqueTokens[1]} tokens; answers of ${s.outputTokens[0]}–${s.outputTokens[1]} tokens. ` +
      `Mean prompt ${w.mean_prompt_tokens.toFixed(0)} tokens, mean answer ${w.mean_output_tokens.toFixed(0)}.`,
    "",
    `Offered load: the rate at which computing every prompt token (no cache at all) would keep the ${raw.options.replicas} replicas ` +
      `${pct(w.uncached_gpu_demand)} busy (BENCH_LB_DEMAND). Achievable hit rate (every prefix any earlier request computed, one unbounded cache): ${pct(w.achievable_hit_rate)}.`,
    "",
    `Replica: ${p.numBlocks} KV blocks of 16 tokens (${(p.numBlocks * 16).toLocaleString("en-US")} tokens), max_num_seqs ${p.maxNumSeqs}, ` +
      `${p.maxBatchedTokens} tokens per step, step ${p.stepBaseUs} µs + ${p.decodeUsPerSeq} µs per decoding request + ${p.prefillUsPerToken} µs per prefilled token. ` +
      `The whole workload computes ${w.distinct_tokens.toLocaleString("en-US")} distinct tokens (full blocks): ` +
      (w.distinct_tokens <= p.numBlocks * 8
        ? "half a replica's cache holds all of it, so no replica evicts and the cache size does not matter here."
        : "more than half a replica's cache, so eviction can matter."),
    "",
  ];
  if (raw.sensitivity.length > 0) {
    lines.push("## Sensitivity (same workload and rate)", "");
    lines.push(
      "| Variant | Policy | TTFT p50 | TTFT p90 | Hit rate | Max load / mean | TTFT p90 least-request / this policy |",
      "|---|---|---|---|---|---|---|",
    );
    const baseLr = raw.policies.find((r) => r.policy === "least-request");
    const basePlugin = raw.policies.filter((r) => PLUGIN_POLICIES.includes(r.policy));
    const rows: { name: string; rs: PolicyResult[] }[] = [
      { name: "base", rs: [baseLr, ...basePlugin].filter((r): r is PolicyResult => r !== undefined) },
      ...raw.sensitivity.map((v) => ({ name: v.description, rs: v.results })),
    ];
    for (const row of rows) {
      const lr = row.rs.find((r) => r.policy === "least-request");
      for (const r of row.rs) {
        const ratio = lr !== undefined && PLUGIN_POLICIES.includes(r.policy) ? `${(lr.ttft_p90_ms / r.ttft_p90_ms).toFixed(2)}×` : "";
        lines.push(
          `| ${row.name} | ${r.policy} | ${ms(r.ttft_p50_ms)} | ${ms(r.ttft_p90_ms)} | ${pct(r.prefix_cache_hit_rate)} | ${r.max_replica_load_ratio.toFixed(2)} | ${ratio} |`,
        );
      }
    }
    lines.push("");
  }
  lines.push(
    "## Fidelity",
    "",
    "TTFT is the replicas' own (arrival at the replica to its first token, on the replica model's simulated clock, as vLLM's " +
      "time_to_first_token measures it): a late event loop on this shared machine does not stretch it. The client's TTFT (first SSE " +
      "bytes through Envoy and the plugin, wall time × speed) includes those delays; its event-loop delay p99 (wall ms) per run: " +
      `${raw.policies.map((r) => `${r.policy} ${r.client_lag_p99_ms.toFixed(1)}`).join(", ")}.`,
    "",
  );
  return lines.join("\n");
}
