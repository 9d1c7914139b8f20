// One policy's run: the planned requests sent open loop through the gateway, each streamed. Two TTFTs per
// request: the replica's, on its simulated clock (what vLLM's own TTFT measures: arrival at the server to
// the first token; read from GET /stub/stats by the request's x-stub-tag), and the client's, to the first
// SSE bytes through Envoy and the plugin (wall time × speed, so it includes this shared machine's
// scheduling delays). Replica counters are read from each replica's GET /metrics (vLLM's names) when the
// warm-up ends and after the last answer.
import { request, Agent } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parsePrometheus } from "../../harness/metrics.ts";
import type { PlannedRequest } from "./workload.ts";

export interface Outcome {
  id: number;
  atMs: number;
  status: number;
  replica: string;
  /** The replica's simulated TTFT, ms (NaN when it never produced a token). */
  ttftMs: number;
  /** The client's TTFT: wall ms to the first SSE bytes × speed. */
  clientTtftMs: number;
  doneMs: number;
  error?: string;
}

export interface ReplicaCounters {
  queries: number;
  hits: number;
}

export interface LoadRun {
  outcomes: Outcome[];
  countersAtWarmup: Record<string, ReplicaCounters>;
  countersAtEnd: Record<string, ReplicaCounters>;
  /** Client event-loop delay, wall ms (how late the load generator may have sent or read). */
  clientLagP99Ms: number;
  wallS: number;
}

export async function replicaCounters(replicas: { name: string; url: string }[]): Promise<Record<string, ReplicaCounters>> {
  const out: Record<string, ReplicaCounters> = {};
  for (const r of replicas) {
    const samples = parsePrometheus(await (await fetch(`${r.url}/metrics`)).text());
    const value = (name: string): number => samples.find((s) => s.name === name)?.value ?? 0;
    out[r.name] = { queries: value("vllm:prefix_cache_queries_total"), hits: value("vllm:prefix_cache_hits_total") };
  }
  return out;
}

function send(agent: Agent, url: string, r: PlannedRequest, speed: number): Promise<Outcome> {
  const body = Buffer.from(JSON.stringify(r.body));
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": body.length,
    // The stub's EOS after this many tokens (the workload's answer length).
    "x-stub-completion-tokens": r.outputTokens,
    "x-stub-tag": String(r.id),
  };
  const u = new URL(`${url}/v1/chat/completions`);
  const start = performance.now();
  return new Promise((resolve) => {
    let first = -1;
    const done = (status: number, replica: string, error?: string): void => {
      const end = performance.now();
      resolve({
        id: r.id,
        atMs: r.atMs,
        status,
        replica,
        ttftMs: NaN,
        clientTtftMs: first < 0 ? NaN : (first - start) * speed,
        doneMs: (end - start) * speed,
        ...(error !== undefined ? { error } : {}),
      });
    };
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers, agent }, (res) => {
      const replica = String(res.headers["x-stub-replica"] ?? "");
      res.on("data", () => {
        if (first < 0) first = performance.now();
      });
      res.on("end", () => done(res.statusCode ?? 0, replica));
      res.on("error", (e) => done(res.statusCode ?? 0, replica, e.message));
    });
    req.on("error", (e) => done(0, "", e.message));
    req.end(body);
  });
}

export async function runLoad(opts: {
  url: string;
  requests: readonly PlannedRequest[];
  speed: number;
  warmupMs: number;
  replicas: { name: string; url: string }[];
  log?: (m: string) => void;
}): Promise<LoadRun> {
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = performance.now();
  const pending: Promise<Outcome>[] = [];
  let warmupScrape: Promise<Record<string, ReplicaCounters>> | null = null;
  const warmupWall = opts.warmupMs / opts.speed;
  let next = 0;
  // One timer at a time, firing every request that is due: open loop, whatever the answers do.
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now() - t0;
      if (warmupScrape === null && now >= warmupWall) warmupScrape = replicaCounters(opts.replicas);
      while (next < opts.requests.length && opts.requests[next]!.atMs / opts.speed <= now) {
        pending.push(send(agent, opts.url, opts.requests[next]!, opts.speed));
        next++;
      }
      if (next >= opts.requests.length) return resolve();
      setTimeout(tick, Math.max(0, opts.requests[next]!.atMs / opts.speed - (performance.now() - t0)));
    };
    tick();
  });
  // A load shorter than the warm-up reads the counters once everything was sent.
  const countersAtWarmup = await (warmupScrape ?? replicaCounters(opts.replicas));
  const outcomes = await Promise.all(pending);
  const countersAtEnd = await replicaCounters(opts.replicas);
  const engineTtft = new Map<string, number>();
  for (const r of opts.replicas) {
    const stats = (await (await fetch(`${r.url}/stub/stats`)).json()) as {
      replica: { requests: { tag: string | null; ttftMs: number }[] };
    };
    for (const x of stats.replica.requests) if (x.tag !== null) engineTtft.set(x.tag, x.ttftMs);
  }
  for (const o of outcomes) o.ttftMs = engineTtft.get(String(o.id)) ?? NaN;
  lag.disable();
  agent.destroy();
  return {
    outcomes,
    countersAtWarmup,
    countersAtEnd,
    clientLagP99Ms: lag.percentile(99) / 1e6,
    wallS: (performance.now() - t0) / 1000,
  };
}
