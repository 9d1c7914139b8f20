// Section 2: streamed chat completions from the vLLM stub (token by token, one write per SSE event,
// as vLLM sends them) straight to the stub, through plain Envoy and through Envoy with the plugin:
//   TTFT     sequential requests, the targets interleaved, time to the first SSE bytes;
//   chunk    Envoy's CPU per SSE event with paced tokens (each event its own read and body callback);
//   tokens/s closed-loop streams at 1, 16 and 64 concurrent clients, tokens as fast as the stub goes.
import type { Gateway } from "../harness/envoy.ts";
import { startStubProcess } from "./backends.ts";
import { chatBody } from "./bodies.ts";
import { rotate, type BenchContext } from "./context.ts";
import { startVariant, stopAll, type Variant } from "./gateways.ts";
import type { FixedBackend } from "./nginx.ts";
import { CHAT_PATH } from "./nonstreaming.ts";
import { CpuMeter, type CpuSample } from "./procs.ts";
import { keepAliveAgent, streamLoad, streamOnce, type LoadResult, type StreamRequest, type StreamTarget } from "./sse-client.ts";
import { percentile } from "./stats.ts";

export type StreamTargetName = "direct" | "plain" | "plugin";
// TTFT also goes through the buffer probe (holding the request costs what?) and the plugin with a body
// that already asks for usage (so the plugin edits nothing: what does the include_usage rewrite cost?).
export type TtftTargetName = StreamTargetName | "wasm-buffer" | "plugin-no-edit";
export const TTFT_TARGETS: readonly TtftTargetName[] = ["direct", "plain", "wasm-buffer", "plugin", "plugin-no-edit"];
const STREAM_VARIANTS: readonly Variant[] = ["plain", "wasm-buffer", "plugin"];

export interface TtftStats {
  n: number;
  failures: number;
  us: { p50: number; p90: number; p99: number; mean: number; min: number };
}

export interface ChunkCost {
  streams: number;
  events: number;
  tokens: number;
  envoyCpuUsPerEvent: number;
}

export interface StreamLoadRun extends LoadResult {
  envoyCpuUsPerEvent: number | null; // null for direct
  cpu: CpuSample;
}

export interface StreamingRepeat {
  ttft: Partial<Record<TtftTargetName, TtftStats>>;
  chunk: Partial<Record<Variant, ChunkCost>>;
  load: { concurrency: number; runs: Partial<Record<StreamTargetName, StreamLoadRun>> }[];
}

function ttftStats(samplesNs: number[], failures: number): TtftStats {
  const us = samplesNs.map((n) => n / 1000);
  return {
    n: us.length,
    failures,
    us: {
      p50: percentile(us, 50),
      p90: percentile(us, 90),
      p99: percentile(us, 99),
      mean: us.reduce((a, b) => a + b, 0) / Math.max(1, us.length),
      min: Math.min(...us),
    },
  };
}

export async function streamingRepeat(ctx: BenchContext, repeat: number): Promise<StreamingRepeat> {
  const { opts } = ctx;
  const out: StreamingRepeat = { ttft: {}, chunk: {}, load: [] };
  let stub: FixedBackend | null = null;
  const gateways = new Map<Variant, Gateway>();
  try {
    stub = await startStubProcess("qwen2-1-5b", opts.streamTokens);
    for (const v of STREAM_VARIANTS) {
      if (v === "wasm-buffer" && ctx.probes.buffer === null) continue;
      gateways.set(v, await startVariant(v, ctx.probes, stub.port, ctx.envoyCores));
    }
    const targets: Record<StreamTargetName, StreamTarget> = {
      direct: { name: "direct", url: `http://127.0.0.1:${stub.port}` },
      plain: { name: "plain", url: gateways.get("plain")?.url ?? "" },
      plugin: { name: "plugin", url: gateways.get("plugin")?.url ?? "" },
    };
    const names: StreamTargetName[] = ["direct", "plain", "plugin"];

    // TTFT: one request at a time, targets interleaved (rotating order), after a warm-up.
    ctx.log(`  TTFT: ${opts.ttftRequests} streams per target`);
    const ttftBody = chatBody(1024, { stream: true, maxTokens: 16 });
    const ttftReq: StreamRequest = { path: CHAT_PATH, body: ttftBody };
    const noEditReq: StreamRequest = {
      path: CHAT_PATH,
      body: JSON.stringify({ ...(JSON.parse(ttftBody) as object), stream_options: { include_usage: true } }),
    };
    const ttftTargets = TTFT_TARGETS.filter((n) => n !== "wasm-buffer" || gateways.has("wasm-buffer"));
    const ttftTarget = (n: TtftTargetName): StreamTarget =>
      n === "wasm-buffer" ? { name: n, url: gateways.get("wasm-buffer")?.url ?? "" } : n === "plugin-no-edit" ? targets.plugin : targets[n];
    const agents = new Map(ttftTargets.map((n) => [n, keepAliveAgent(1)] as const));
    const samples = new Map<TtftTargetName, number[]>(ttftTargets.map((n) => [n, []]));
    const failures = new Map<TtftTargetName, number>(ttftTargets.map((n) => [n, 0]));
    for (let i = 0; i < opts.ttftRequests + 10; i++) {
      for (const n of rotate(ttftTargets, i + repeat)) {
        const agent = agents.get(n);
        if (agent === undefined) continue;
        try {
          const o = await streamOnce(ttftTarget(n), n === "plugin-no-edit" ? noEditReq : ttftReq, agent);
          if (o.status !== 200 || o.tokens === 0) failures.set(n, (failures.get(n) ?? 0) + 1);
          else if (i >= 10) samples.get(n)?.push(o.ttftNs);
        } catch {
          failures.set(n, (failures.get(n) ?? 0) + 1);
        }
      }
    }
    for (const a of agents.values()) a.destroy();
    for (const n of ttftTargets) out.ttft[n] = ttftStats(samples.get(n) ?? [], failures.get(n) ?? 0);

    // Per-chunk cost: paced tokens, so every SSE event reaches Envoy as its own read.
    ctx.log(`  per-chunk cost: ${opts.pacedStreams} streams × ${opts.pacedTokens} tokens, ${opts.pacedIntervalMs} ms apart`);
    const pacedReq: StreamRequest = {
      path: CHAT_PATH,
      body: chatBody(1024, { stream: true, maxTokens: opts.pacedTokens }),
      headers: { "x-stub-token-interval-ms": String(opts.pacedIntervalMs), "x-stub-completion-tokens": String(opts.pacedTokens) },
    };
    // Two rounds, plain and plugin alternating, summed: the difference is small next to the noise.
    const sums = new Map<Variant, { streams: number; events: number; tokens: number; cpuNs: number }>();
    for (let round = 0; round < 2; round++) {
      for (const v of rotate(["plain", "plugin"] as const, repeat + round)) {
        const g = gateways.get(v);
        if (g === undefined) continue;
        const agent = keepAliveAgent(opts.pacedStreams);
        const meter = new CpuMeter(new Map([["envoy", g.pid]]));
        meter.start();
        const results = await Promise.all(Array.from({ length: opts.pacedStreams }, () => streamOnce(targets[v], pacedReq, agent, 120000)));
        const cpu = meter.stop();
        agent.destroy();
        const acc = sums.get(v) ?? { streams: 0, events: 0, tokens: 0, cpuNs: 0 };
        acc.streams += results.length;
        acc.events += results.reduce((a, r) => a + r.events, 0);
        acc.tokens += results.reduce((a, r) => a + r.tokens, 0);
        acc.cpuNs += cpu.processes["envoy"]?.cpuNs ?? 0;
        sums.set(v, acc);
      }
    }
    for (const [v, acc] of sums) {
      out.chunk[v] = {
        streams: acc.streams,
        events: acc.events,
        tokens: acc.tokens,
        envoyCpuUsPerEvent: acc.events > 0 ? acc.cpuNs / acc.events / 1000 : NaN,
      };
    }

    // Sustained tokens/s: closed-loop streams, tokens as fast as the stub writes them.
    const loadReq: StreamRequest = { path: CHAT_PATH, body: chatBody(1024, { stream: true, maxTokens: opts.streamTokens }) };
    for (const c of opts.concurrencies) {
      ctx.log(`  tokens/s at ${c} concurrent streams, ${opts.streamSeconds}s per target`);
      const entry: StreamingRepeat["load"][number] = { concurrency: c, runs: {} };
      for (const n of rotate(names, repeat)) {
        const g = n === "direct" ? undefined : gateways.get(n);
        const pids = new Map([
          ["backend", stub.pid],
          ["bench", process.pid],
        ]);
        if (g !== undefined) pids.set("envoy", g.pid);
        const meter = new CpuMeter(pids);
        meter.start();
        const r = await streamLoad(targets[n], loadReq, c, opts.streamSeconds);
        const cpu = meter.stop();
        const envoyNs = cpu.processes["envoy"]?.cpuNs;
        entry.runs[n] = { ...r, envoyCpuUsPerEvent: envoyNs !== undefined && r.events > 0 ? envoyNs / r.events / 1000 : null, cpu };
      }
      out.load.push(entry);
    }
  } finally {
    await stopAll(gateways.values());
    if (stub !== null) await stub.stop();
  }
  return out;
}
