// One policy's figures from its run: what results.json carries per policy.
import type { LoadRun } from "./load.ts";

export interface PolicyResult {
  policy: string;
  /** Requests sent after the warm-up (the measured ones) and how many failed. */
  requests: number;
  errors: number;
  /** The replicas' TTFT on their simulated clocks (as vLLM measures it), ms, measured requests answered. */
  ttft_p50_ms: number;
  ttft_p90_ms: number;
  ttft_p99_ms: number;
  /** The client's TTFT through Envoy and the plugin, wall ms × speed (this machine's delays included). */
  client_ttft_p50_ms: number;
  client_ttft_p90_ms: number;
  /** The replicas' TTFT of chat turns only (the requests a prefix can help) and of one-off prompts. */
  chat_ttft_p50_ms: number;
  chat_ttft_p90_ms: number;
  unique_ttft_p50_ms: number;
  unique_ttft_p90_ms: number;
  /** Measured requests answered per simulated second, from the end of the warm-up to the last answer. */
  throughput_rps: number;
  /** Prefix-cache hits / queries (tokens), summed over the replicas' vLLM counters, after the warm-up. */
  prefix_cache_hit_rate: number;
  /** The busiest replica's measured requests over the mean per replica. */
  max_replica_load_ratio: number;
  requests_per_replica: Record<string, number>;
  hit_rate_per_replica: Record<string, number>;
  client_lag_p99_ms: number;
  wall_s: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  // Nearest rank.
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarizeRun(
  policy: string,
  run: LoadRun,
  replicas: string[],
  warmupMs: number,
  durationMs: number,
  kinds: ReadonlyMap<number, string> = new Map(),
): PolicyResult {
  const measured = run.outcomes.filter((o) => o.atMs >= warmupMs);
  const ok = measured.filter((o) => o.status === 200 && o.error === undefined && Number.isFinite(o.ttftMs));
  const ttfts = ok.map((o) => o.ttftMs).sort((a, b) => a - b);
  const clientTtfts = ok.map((o) => o.clientTtftMs).sort((a, b) => a - b);
  const ttftsOf = (kind: string): number[] =>
    ok
      .filter((o) => kinds.get(o.id) === kind)
      .map((o) => o.ttftMs)
      .sort((a, b) => a - b);
  const chat = ttftsOf("chat");
  const unique = ttftsOf("unique");
  const perReplica: Record<string, number> = Object.fromEntries(replicas.map((r) => [r, 0]));
  for (const o of ok) perReplica[o.replica] = (perReplica[o.replica] ?? 0) + 1;
  const counts = replicas.map((r) => perReplica[r] ?? 0);
  const mean = counts.reduce((a, b) => a + b, 0) / Math.max(1, counts.length);
  let queries = 0;
  let hits = 0;
  const hitPerReplica: Record<string, number> = {};
  for (const r of replicas) {
    const q = (run.countersAtEnd[r]?.queries ?? 0) - (run.countersAtWarmup[r]?.queries ?? 0);
    const h = (run.countersAtEnd[r]?.hits ?? 0) - (run.countersAtWarmup[r]?.hits ?? 0);
    queries += q;
    hits += h;
    hitPerReplica[r] = q > 0 ? h / q : 0;
  }
  const lastDone = Math.max(durationMs, ...ok.map((o) => o.atMs + o.doneMs));
  return {
    policy,
    requests: measured.length,
    errors: measured.length - ok.length,
    ttft_p50_ms: percentile(ttfts, 50),
    ttft_p90_ms: percentile(ttfts, 90),
    ttft_p99_ms: percentile(ttfts, 99),
    client_ttft_p50_ms: percentile(clientTtfts, 50),
    client_ttft_p90_ms: percentile(clientTtfts, 90),
    chat_ttft_p50_ms: percentile(chat, 50),
    chat_ttft_p90_ms: percentile(chat, 90),
    unique_ttft_p50_ms: percentile(unique, 50),
    unique_ttft_p90_ms: percentile(unique, 90),
    throughput_rps: ok.length / ((lastDone - warmupMs) / 1000),
    prefix_cache_hit_rate: queries > 0 ? hits / queries : 0,
    max_replica_load_ratio: mean > 0 ? Math.max(...counts) / mean : 0,
    requests_per_replica: perReplica,
    hit_rate_per_replica: hitPerReplica,
    client_lag_p99_ms: run.clientLagP99Ms,
    wall_s: run.wallS,
  };
}
