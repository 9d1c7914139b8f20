// Section 6: TTFT through a fallback. Streamed chat requests (stream: true) timed at the client from
// writing the request to the first content chunk (the first `delta.content` event), in three series on
// one Envoy with the plugin, two vLLM stubs (qwen2-1-5b, gemma-2-2b, each its own process) behind it:
//   backup        straight to gemma-2-2b: the backup's own TTFT, the baseline;
//   primary-503   to qwen2-1-5b, whose backend answers 503 (x-stub-status with x-stub-target), so Envoy's
//                 router retries on gemma-2-2b (the attempt stage rewriting the body's model);
//   primary-down  to qwen2-1-5b with its backend stopped (connection refused), the same retry.
// The backup's TTFT is its stub's start-up option (--ttft-ms), so it applies in every series: a request
// header would, with x-stub-target, only reach the failing primary. The plugin runs the seed
// configuration with the cooldown off: otherwise after 3 failures the primary is skipped for 30 s and
// the fallback series would measure the backup's route, not a failed attempt and a retry.
// Two phases, since one backend cannot refuse connections and answer 503 at once: qwen up
// (backup and primary-503 interleaved), then qwen stopped (backup and primary-down interleaved). The
// backup runs every other round of each phase, so every series gets the same number of streams.
import { Agent } from "node:http";
import { startGateway, type Gateway } from "../harness/envoy.ts";
import { seedPluginConfig } from "../harness/seed.ts";
import { startStubProcess } from "./backends.ts";
import { chatBody } from "./bodies.ts";
import { rotate, type BenchContext } from "./context.ts";
import type { FixedBackend } from "./nginx.ts";
import { CHAT_PATH } from "./nonstreaming.ts";
import { CpuMeter, pin, type CpuSample } from "./procs.ts";
import { keepAliveAgent, streamOnce, type StreamOutcome, type StreamRequest, type StreamTarget } from "./sse-client.ts";
import { percentile } from "./stats.ts";

export const FALLBACK_PRIMARY = "qwen2-1-5b";
export const FALLBACK_BACKUP = "gemma-2-2b";

export type FallbackSeriesName = "backup" | "primary-503" | "primary-down";
export const FALLBACK_SERIES: readonly FallbackSeriesName[] = ["backup", "primary-503", "primary-down"];

export interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export interface FallbackSeries {
  sent: number; // streams after the warm-up
  errors: number; // transport error, status ≠ 200, or no content chunk
  notFromBackup: number; // 200 with content, but x-llm-gateway-model is not the backup
  fallbackFrom: number; // answers with x-llm-gateway-fallback-from: the primary
  n: number; // timed samples: 200, content, from the backup
  firstContentMs: Quantiles;
}

export interface FallbackResult {
  primary: string;
  backup: string;
  backupTtftMs: number; // the backup stub's first-token delay
  completionTokens: number;
  requestsPerSeries: number;
  warmupRounds: number; // per phase, not timed
  pluginConfig: unknown;
  series: Record<FallbackSeriesName, FallbackSeries>;
  backupByPhase: { primaryUp: Quantiles; primaryDown: Quantiles };
  primaryAttempts: { expected: number; received: number }; // generation requests qwen's stub saw in phase 1
  // The 503 straight from qwen's stub, no Envoy (request written → answer read), kept-alive and new connections.
  primary503DirectMs: { keepAlive: Quantiles; newConnection: Quantiles };
  envoyCounters: { afterPhase1: Record<string, number>; afterPhase2: Record<string, number> };
  cpu: { primaryUp: CpuSample; primaryDown: CpuSample }; // each phase's CPU by process and core
}

function quantiles(ms: readonly number[]): Quantiles {
  return {
    p50: percentile(ms, 50),
    p95: percentile(ms, 95),
    p99: percentile(ms, 99),
    mean: ms.length > 0 ? ms.reduce((a, b) => a + b, 0) / ms.length : NaN,
    min: ms.length > 0 ? Math.min(...ms) : NaN,
    max: ms.length > 0 ? Math.max(...ms) : NaN,
  };
}

// Envoy's counters that tell what the router did, by short name: per cluster ("qwen2-1-5b",
// "gemma-2-2b", the aggregate "qwen2-1-5b.fallback") its connections, refused connects, retries and
// retried 5xx; the plugin's fallback counters as "fallback.to.<model>.reason.<reason>".
const COUNTER =
  /^cluster\.outbound\|8080\|\|llm-(.+?)(?:\.dns)?\.(upstream_cx_total|upstream_cx_connect_fail|upstream_rq_retry|upstream_rq_retry_success|retry\.upstream_rq_5xx)$/;
const FALLBACK_COUNTER = /\.metric\.(fallback\.to\..+\.reason\..+)$/;

async function routerCounters(g: Gateway): Promise<Record<string, number>> {
  const text = await (
    await fetch(
      `${g.adminUrl}/stats?filter=upstream_cx_total|upstream_cx_connect_fail|upstream_rq_retry|retry\\.upstream_rq_5xx|metric\\.fallback`,
    )
  ).text();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^(\S+):\s*(\d+)\s*$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined) continue;
    const c = COUNTER.exec(m[1]);
    const f = FALLBACK_COUNTER.exec(m[1]);
    if (c?.[1] !== undefined && c[2] !== undefined) out[`${c[1]}.${c[2]}`] = Number(m[2]);
    else if (f?.[1] !== undefined) out[f[1]] = Number(m[2]);
  }
  return out;
}

async function stubHits(stub: FixedBackend): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${stub.port}/stub/stats`);
  return ((await r.json()) as { hits: number }).hits;
}

interface Tally {
  sent: number;
  errors: number;
  notFromBackup: number;
  fallbackFrom: number;
  ms: number[];
}

function header(o: StreamOutcome, name: string): string | undefined {
  const v = o.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export async function fallbackSection(ctx: BenchContext): Promise<FallbackResult> {
  const { opts } = ctx;
  const n = opts.fallbackRequests;
  const warmup = opts.fallbackWarmup;
  const tokens = 4;
  const pluginConfig = { ...seedPluginConfig(), fallback: { cooldown: { failures: 0 } } };
  let qwen: FixedBackend | null = null;
  let gemma: FixedBackend | null = null;
  let g: Gateway | null = null;
  try {
    qwen = await startStubProcess(FALLBACK_PRIMARY, tokens);
    gemma = await startStubProcess(FALLBACK_BACKUP, tokens, opts.fallbackTtftMs);
    g = await startGateway({
      backends: [
        { model: FALLBACK_PRIMARY, host: "127.0.0.1", port: qwen.port },
        { model: FALLBACK_BACKUP, host: "127.0.0.1", port: gemma.port },
      ],
      pluginConfig,
      wasmPath: ctx.probes.plugin,
      concurrency: 1,
    });
    if (ctx.envoyCores !== null) pin(g.pid, ctx.envoyCores);
    const target: StreamTarget = { name: "gateway", url: g.url };
    const requests: Record<FallbackSeriesName, StreamRequest> = {
      backup: { path: CHAT_PATH, body: chatBody(1024, { stream: true, maxTokens: 16, model: FALLBACK_BACKUP }) },
      "primary-503": {
        path: CHAT_PATH,
        body: chatBody(1024, { stream: true, maxTokens: 16, model: FALLBACK_PRIMARY }),
        headers: { "x-stub-status": "503", "x-stub-target": FALLBACK_PRIMARY },
      },
      "primary-down": { path: CHAT_PATH, body: chatBody(1024, { stream: true, maxTokens: 16, model: FALLBACK_PRIMARY }) },
    };
    const agents = new Map(FALLBACK_SERIES.map((s) => [s, keepAliveAgent(1)] as const));
    const tallies = new Map<FallbackSeriesName, Tally>(
      FALLBACK_SERIES.map((s) => [s, { sent: 0, errors: 0, notFromBackup: 0, fallbackFrom: 0, ms: [] }]),
    );
    const backupMs: { primaryUp: number[]; primaryDown: number[] } = { primaryUp: [], primaryDown: [] };

    const one = async (s: FallbackSeriesName, timed: boolean, phaseMs: number[]): Promise<void> => {
      const t = tallies.get(s);
      const agent = agents.get(s);
      if (t === undefined || agent === undefined) return;
      if (timed) t.sent++;
      let o: StreamOutcome;
      try {
        o = await streamOnce(target, requests[s], agent);
      } catch {
        if (timed) t.errors++;
        return;
      }
      if (!timed) return;
      if (o.status !== 200 || o.firstTokenNs === null) {
        t.errors++;
        return;
      }
      if (header(o, "x-llm-gateway-fallback-from") === FALLBACK_PRIMARY) t.fallbackFrom++;
      if (header(o, "x-llm-gateway-model") !== FALLBACK_BACKUP) {
        t.notFromBackup++;
        return;
      }
      const ms = o.firstTokenNs / 1e6;
      t.ms.push(ms);
      if (s === "backup") phaseMs.push(ms);
    };
    // Rounds of one phase: the fallback series every round, the backup every other round (phase 1
    // the even ones, phase 2 the odd ones: n streams in all); the warm-up sends both every round.
    // Order within a round rotates, so neither always goes first.
    let primary503Sent = 0;
    const phase = async (fallback: FallbackSeriesName, parity: number, phaseMs: number[]): Promise<void> => {
      for (let i = 0; i < warmup + n; i++) {
        const timed = i >= warmup;
        const k = i - warmup;
        const round: FallbackSeriesName[] = !timed || k % 2 === parity ? ["backup", fallback] : [fallback];
        for (const s of rotate(round, Math.floor(i / 2))) {
          if (s === "primary-503") primary503Sent++;
          await one(s, timed, phaseMs);
        }
      }
    };

    ctx.log(
      `  phase 1: ${FALLBACK_PRIMARY} answering 503, ${n} streams + ${Math.ceil(n / 2)} straight to ${FALLBACK_BACKUP} (TTFT ${opts.fallbackTtftMs} ms)`,
    );
    const hitsBefore = await stubHits(qwen);
    const envoyPid = g.pid;
    const backupPid = gemma.pid;
    const pids = (): Map<string, number> => {
      const m = new Map([
        ["envoy", envoyPid],
        ["backup stub", backupPid],
        ["bench", process.pid],
      ]);
      if (qwen !== null) m.set("primary stub", qwen.pid);
      return m;
    };
    const meter1 = new CpuMeter(pids());
    meter1.start();
    await phase("primary-503", 0, backupMs.primaryUp);
    const cpuUp = meter1.stop();
    const received = (await stubHits(qwen)) - hitsBefore;
    const afterPhase1 = await routerCounters(g);
    // What the failed attempt costs at its source: the same request straight to qwen's stub (no
    // Envoy), request written → its 503 read, on a kept-alive connection and on a new one each time
    // (as Envoy's attempts get it: Envoy closes an HTTP/1.1 upstream connection whose 5xx it retries).
    const qwenUrl: StreamTarget = { name: "qwen stub", url: `http://127.0.0.1:${qwen.port}` };
    const direct503 = async (agent: Agent): Promise<number[]> => {
      const ms: number[] = [];
      for (let i = 0; i < warmup + n; i++) {
        const o = await streamOnce(qwenUrl, requests["primary-503"], agent);
        if (o.status !== 503) throw new Error(`qwen's stub answered ${o.status} to x-stub-status 503`);
        if (i >= warmup) ms.push(o.totalNs / 1e6);
      }
      agent.destroy();
      return ms;
    };
    const keptAlive = await direct503(keepAliveAgent(1));
    const fresh = await direct503(new Agent({ keepAlive: false }));
    const primary503DirectMs = { keepAlive: quantiles(keptAlive), newConnection: quantiles(fresh) };

    ctx.log(
      `  phase 2: ${FALLBACK_PRIMARY}'s backend stopped (connection refused), ${n} streams + ${Math.floor(n / 2)} straight to ${FALLBACK_BACKUP}`,
    );
    await qwen.stop();
    qwen = null;
    const meter2 = new CpuMeter(pids());
    meter2.start();
    await phase("primary-down", 1, backupMs.primaryDown);
    const cpuDown = meter2.stop();
    const afterPhase2 = await routerCounters(g);
    for (const a of agents.values()) a.destroy();

    const series = {} as Record<FallbackSeriesName, FallbackSeries>;
    for (const s of FALLBACK_SERIES) {
      const t = tallies.get(s) ?? { sent: 0, errors: 0, notFromBackup: 0, fallbackFrom: 0, ms: [] };
      series[s] = {
        sent: t.sent,
        errors: t.errors,
        notFromBackup: t.notFromBackup,
        fallbackFrom: t.fallbackFrom,
        n: t.ms.length,
        firstContentMs: quantiles(t.ms),
      };
    }
    return {
      primary: FALLBACK_PRIMARY,
      backup: FALLBACK_BACKUP,
      backupTtftMs: opts.fallbackTtftMs,
      completionTokens: tokens,
      requestsPerSeries: n,
      warmupRounds: warmup,
      pluginConfig,
      series,
      backupByPhase: { primaryUp: quantiles(backupMs.primaryUp), primaryDown: quantiles(backupMs.primaryDown) },
      // Every primary-503 stream, warm-up included, tried the primary first (no cooldown, no skip).
      primaryAttempts: { expected: primary503Sent, received },
      primary503DirectMs,
      envoyCounters: { afterPhase1, afterPhase2 },
      cpu: { primaryUp: cpuUp, primaryDown: cpuDown },
    };
  } finally {
    if (g !== null) await g.stop();
    if (qwen !== null) await qwen.stop();
    if (gemma !== null) await gemma.stop();
  }
}
