// The shared-prefix workload of `make bench-lb`: tenants with long system prompts whose users hold
// multi-turn chats, plus one-off prompts that share nothing. Fully determined by the seed and laid out in
// advance (open loop): every request's send time and body, each later turn re-sending the earlier turns
// and the stub's (deterministic) answers to them, so each policy gets exactly the same requests.
// Times are simulated milliseconds; the runner divides them by the speed factor.
import { blockHashes, BLOCK_SIZE, type ReplicaParams } from "../../backends/replica.ts";
import { expectedText, outputTokenIds, promptTokenIds } from "../../backends/tokens.ts";

export interface WorkloadSpec {
  seed: number;
  model: string;
  /** Simulated seconds of arrivals. */
  durationS: number;
  /** Requests per simulated second, conversations' turns and one-off prompts together. */
  rate: number;
  tenants: number;
  /** Tenant popularity ~ 1 / rank^zipf (0: all alike). */
  zipf: number;
  systemTokens: [number, number];
  turns: [number, number];
  /** Mean simulated seconds between a turn's send and the next turn's (exponential). */
  thinkS: number;
  firstUserTokens: [number, number];
  userTokens: [number, number];
  outputTokens: [number, number];
  /** Share of requests that are one-off prompts with nothing shared. */
  uniqueShare: number;
  uniqueTokens: [number, number];
}

export const DEFAULT_WORKLOAD: Omit<WorkloadSpec, "rate"> = {
  seed: 14,
  model: "qwen2-1-5b",
  durationS: 60,
  tenants: 8,
  zipf: 1,
  systemTokens: [1000, 4000],
  turns: [2, 6],
  thinkS: 6,
  firstUserTokens: [50, 300],
  userTokens: [20, 150],
  outputTokens: [50, 250],
  uniqueShare: 0.2,
  uniqueTokens: [500, 3000],
};

export interface PlannedRequest {
  id: number;
  atMs: number;
  kind: "chat" | "unique";
  tenant: number; // -1 for one-off prompts
  conversation: number; // -1 for one-off prompts
  turn: number;
  outputTokens: number;
  promptTokens: number;
  body: { model: string; messages: { role: string; content: string }[]; stream: true; stream_options: { include_usage: true } };
}

// mulberry32: small, seeded, good enough to draw a workload.
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function words(prefix: string, n: number): string {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`).join(" ");
}

export function planWorkload(spec: WorkloadSpec): PlannedRequest[] {
  const rand = rng(spec.seed);
  const between = ([lo, hi]: [number, number]): number => lo + Math.floor(rand() * (hi - lo + 1));
  const exp = (mean: number): number => -Math.log(1 - rand()) * mean;
  const systems = Array.from({ length: spec.tenants }, (_, t) => words(`t${t}s`, between(spec.systemTokens)));
  const weights = Array.from({ length: spec.tenants }, (_, t) => 1 / Math.pow(t + 1, spec.zipf));
  const total = weights.reduce((a, b) => a + b, 0);
  const pickTenant = (): number => {
    let x = rand() * total;
    for (let t = 0; t < weights.length; t++) if ((x -= weights[t]!) < 0) return t;
    return weights.length - 1;
  };
  const meanTurns = (spec.turns[0] + spec.turns[1]) / 2;
  const conversationRate = (spec.rate * (1 - spec.uniqueShare)) / meanTurns;
  const uniqueRate = spec.rate * spec.uniqueShare;
  const endMs = spec.durationS * 1000;
  const out: Omit<PlannedRequest, "id">[] = [];

  let conversation = 0;
  for (let at = exp(1000 / conversationRate); at < endMs; at += exp(1000 / conversationRate), conversation++) {
    const tenant = pickTenant();
    const turns = between(spec.turns);
    const messages: { role: string; content: string }[] = [{ role: "system", content: systems[tenant]! }];
    let t = at;
    for (let turn = 0; turn < turns && t < endMs; turn++) {
      const userTokens = between(turn === 0 ? spec.firstUserTokens : spec.userTokens);
      messages.push({ role: "user", content: words(`c${conversation}t${turn}u`, userTokens) });
      const outputTokens = between(spec.outputTokens);
      const body = {
        model: spec.model,
        messages: messages.map((m) => ({ ...m })),
        stream: true as const,
        stream_options: { include_usage: true as const },
      };
      out.push({
        atMs: t,
        kind: "chat",
        tenant,
        conversation,
        turn,
        outputTokens,
        promptTokens: promptTokenIds("chat", body).length,
        body,
      });
      messages.push({ role: "assistant", content: expectedText(spec.model, outputTokens) });
      t += exp(spec.thinkS * 1000);
    }
  }
  let unique = 0;
  for (let at = exp(1000 / uniqueRate); at < endMs; at += exp(1000 / uniqueRate), unique++) {
    const outputTokens = between(spec.outputTokens);
    const body = {
      model: spec.model,
      messages: [{ role: "user", content: words(`x${unique}w`, between(spec.uniqueTokens)) }],
      stream: true as const,
      stream_options: { include_usage: true as const },
    };
    out.push({
      atMs: at,
      kind: "unique",
      tenant: -1,
      conversation: -1,
      turn: 0,
      outputTokens,
      promptTokens: promptTokenIds("chat", body).length,
      body,
    });
  }
  out.sort((a, b) => a.atMs - b.atMs);
  return out.map((r, id) => ({ id, ...r }));
}

/**
 * The best any placement could do: one cache holding every block any earlier request computed (its prompt
 * and its answer), never evicted; each request hits on its longest cached prefix (at most prompt − 1
 * tokens, as vLLM). Returns prompt tokens cached / prompt tokens, over `from` onwards.
 */
export function achievableHitRate(requests: readonly PlannedRequest[], model: string, fromMs = 0): number {
  return reuse(requests, model, fromMs).hitRate;
}

/** Tokens in distinct full blocks the whole workload computes: what one cache would need to hold all of it. */
export function distinctTokens(requests: readonly PlannedRequest[], model: string): number {
  return reuse(requests, model, 0).distinctBlocks * BLOCK_SIZE;
}

/**
 * A floor under every policy's TTFT, per measured request (sorted): the request alone on an idle replica whose
 * cache holds every prefix any earlier request computed (the achievable hit rate's cache). Its prefill is
 * then its uncached tokens in steps of at most maxBatchedTokens, each step's fixed part included; queueing
 * and sharing a step with other requests only add to it. No balancer can bring a percentile below this one's.
 */
export function ttftFloorsMs(requests: readonly PlannedRequest[], model: string, params: ReplicaParams, fromMs = 0): number[] {
  const floors = reuse(requests, model, fromMs).uncached.map((u) => {
    const steps = Math.ceil(u / params.maxBatchedTokens);
    return (steps * params.stepBaseUs + u * params.prefillUsPerToken) / 1000;
  });
  return floors.sort((a, b) => a - b);
}

function reuse(
  requests: readonly PlannedRequest[],
  model: string,
  fromMs: number,
): { hitRate: number; distinctBlocks: number; uncached: number[] } {
  const seen = new Set<string>();
  const uncached: number[] = [];
  let queried = 0;
  let hit = 0;
  for (const r of requests) {
    const prompt = promptTokenIds("chat", r.body);
    const all = blockHashes([...prompt, ...outputTokenIds(model, r.outputTokens)]);
    const cap = Math.floor((prompt.length - 1) / BLOCK_SIZE);
    let h = 0;
    while (h < cap && seen.has(all[h]!)) h++;
    if (r.atMs >= fromMs) {
      queried += prompt.length;
      hit += h * BLOCK_SIZE;
      uncached.push(prompt.length - h * BLOCK_SIZE);
    }
    // Computed KV: prompt and answer but its last token.
    const computedBlocks = Math.floor((prompt.length + r.outputTokens - 1) / BLOCK_SIZE);
    for (let i = 0; i < computedBlocks; i++) seen.add(all[i]!);
  }
  return { hitRate: queried === 0 ? 0 : hit / queried, distinctBlocks: seen.size, uncached };
}

/**
 * GPU time the workload asks of the fleet if nothing were cached, as a share of `replicas` GPUs over its
 * duration: prefill of every prompt token plus each output token's per-request decode time (the step's
 * fixed part, shared by a batch, left out). The offered load is set from it, before any policy runs.
 */
export function uncachedDemand(requests: readonly PlannedRequest[], params: ReplicaParams, replicas: number, durationS: number): number {
  let us = 0;
  for (const r of requests) us += r.promptTokens * params.prefillUsPerToken + r.outputTokens * params.decodeUsPerSeq;
  return us / 1e6 / (durationS * replicas);
}

/** The rate at which uncachedDemand is about `target` (roughly linear in the rate; a few corrections). */
export function rateForDemand(spec: Omit<WorkloadSpec, "rate">, params: ReplicaParams, replicas: number, target: number): number {
  let rate = 10;
  for (let i = 0; i < 4; i++) rate *= target / uncachedDemand(planWorkload({ ...spec, rate }), params, replicas, spec.durationS);
  return rate;
}
