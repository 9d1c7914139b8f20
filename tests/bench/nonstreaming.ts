// Section 1: non-streaming requests through each Envoy configuration against the fixed-response
// backend: saturation throughput (wrk, many connections) and closed-loop latency (one connection, so
// no queueing hides or inflates the per-request cost), plus Envoy's CPU per request from schedstat.
import type { Gateway } from "../harness/envoy.ts";
import { chatBody, writeBody } from "./bodies.ts";
import { loadSummary, rotate, type BenchContext, type LoadSummary } from "./context.ts";
import { availableVariants, startVariant, stopAll, type Variant } from "./gateways.ts";
import type { FixedBackend } from "./nginx.ts";
import { profileDuring, type PerfProfile } from "./perf.ts";
import { CpuMeter, type CpuSample } from "./procs.ts";
import { runWrk, type WrkResult } from "./wrk.ts";

export const CHAT_PATH = "/v1/chat/completions";

export interface VariantRun {
  saturation: LoadSummary;
  latency: LoadSummary;
  envoyCpuUsPerRequest: number; // during the saturation run
  cpu: CpuSample; // who used which CPU during the saturation run
}

export interface NonStreamingRepeat {
  order: Variant[];
  runs: Partial<Record<Variant, VariantRun>>;
  perf: Partial<Record<Variant, PerfProfile & { envoyCpuUsPerRequest: number }>>;
  perfError?: string;
}

const SLICES = 2;

// Several slices of one configuration's load as one run: counts and times add up; the latency
// percentiles are those of the first slice (throughput runs are judged by their rate).
function mergeWrk(runs: WrkResult[]): WrkResult {
  const first = runs[0];
  if (first === undefined) throw new Error("mergeWrk: no runs");
  const requests = runs.reduce((a, r) => a + r.requests, 0);
  const durationS = runs.reduce((a, r) => a + r.durationS, 0);
  const errors = { ...first.errors };
  for (const r of runs.slice(1)) for (const k of Object.keys(errors) as (keyof typeof errors)[]) errors[k] += r.errors[k];
  return {
    ...first,
    requests,
    durationS,
    rps: durationS > 0 ? requests / durationS : 0,
    errors,
    bytesRead: runs.reduce((a, r) => a + r.bytesRead, 0),
    cpuNs: runs.reduce((a, r) => a + r.cpuNs, 0),
  };
}

function meanPercentiles(merged: WrkResult, runs: WrkResult[]): WrkResult {
  const p: Record<string, number> = {};
  for (const k of Object.keys(merged.latencyUs.p)) p[k] = runs.reduce((a, r) => a + (r.latencyUs.p[k] ?? NaN), 0) / runs.length;
  const mean = runs.reduce((a, r) => a + r.latencyUs.mean * r.requests, 0) / Math.max(1, merged.requests);
  return { ...merged, latencyUs: { ...merged.latencyUs, p, mean, max: Math.max(...runs.map((r) => r.latencyUs.max)) } };
}

function mergeCpu(samples: CpuSample[]): CpuSample {
  const wallNs = samples.reduce((a, s) => a + s.wallNs, 0);
  const processes: CpuSample["processes"] = {};
  for (const s of samples) {
    for (const [k, p] of Object.entries(s.processes)) {
      const acc = processes[k] ?? { cpuNs: 0, coreShare: 0 };
      acc.cpuNs += p.cpuNs;
      processes[k] = acc;
    }
  }
  for (const p of Object.values(processes)) p.coreShare = wallNs > 0 ? p.cpuNs / wallNs : 0;
  const cores = Math.max(0, ...samples.map((s) => s.coreBusy.length));
  const coreBusy = Array.from(
    { length: cores },
    (_, i) => samples.reduce((a, s) => a + (s.coreBusy[i] ?? 0) * s.wallNs, 0) / Math.max(1, wallNs),
  );
  return { wallNs, processes, coreBusy };
}

export async function nonStreamingRepeat(
  ctx: BenchContext,
  repeat: number,
  backend: FixedBackend,
  withPerf: boolean,
): Promise<NonStreamingRepeat> {
  const { opts } = ctx;
  const bodyFile = writeBody(ctx.workDir, "chat-1k.json", chatBody(opts.bodyBytes, { maxTokens: 16 }));
  const variants = availableVariants(ctx.probes);
  const gateways = new Map<Variant, Gateway>();
  const out: NonStreamingRepeat = { order: rotate(variants, repeat), runs: {}, perf: {} };
  try {
    for (const v of variants) gateways.set(v, await startVariant(v, ctx.probes, backend.port, ctx.envoyCores));
    // Warm every configuration (connections, V8 tier-up) before anything is measured.
    for (const v of variants) {
      const g = gateways.get(v);
      if (g !== undefined)
        await runWrk({
          url: g.url,
          requests: [{ path: CHAT_PATH, bodyFile }],
          connections: 4,
          durationS: opts.smoke ? 0.2 : 1,
          workDir: ctx.workDir,
        });
    }
    // Throughput in SLICES slices per configuration, the configurations taking turns, so a slow drift
    // in the machine's load (other work on it) is shared instead of landing on one configuration.
    ctx.log(
      `  non-streaming: ${out.order.join(", ")}: ${opts.seconds}s each at ${opts.connections} connections, then ${opts.latencySeconds}s each at 1 (in ${SLICES} turns)`,
    );
    const slices = new Map<Variant, { runs: WrkResult[]; cpu: CpuSample[] }>();
    for (let slice = 0; slice < SLICES; slice++) {
      for (const v of rotate(out.order, slice)) {
        const g = gateways.get(v);
        if (g === undefined) continue;
        const meter = new CpuMeter(
          new Map([
            ["envoy", g.pid],
            ["backend", backend.pid],
            ["bench", process.pid],
          ]),
        );
        meter.start();
        const sat = await runWrk({
          url: g.url,
          requests: [{ path: CHAT_PATH, bodyFile }],
          connections: opts.connections,
          durationS: opts.seconds / SLICES,
          workDir: ctx.workDir,
        });
        const cpu = meter.stop();
        cpu.processes["load-generator"] = { cpuNs: sat.cpuNs, coreShare: cpu.wallNs > 0 ? sat.cpuNs / cpu.wallNs : 0 };
        const acc = slices.get(v) ?? { runs: [], cpu: [] };
        acc.runs.push(sat);
        acc.cpu.push(cpu);
        slices.set(v, acc);
      }
    }
    // Latency the same way, one connection; a configuration's percentiles are the mean over its slices.
    const latSlices = new Map<Variant, WrkResult[]>();
    for (let slice = 0; slice < SLICES; slice++) {
      for (const v of rotate(out.order, slice + 1)) {
        const g = gateways.get(v);
        if (g === undefined) continue;
        const lat = await runWrk({
          url: g.url,
          requests: [{ path: CHAT_PATH, bodyFile }],
          connections: 1,
          durationS: opts.latencySeconds / SLICES,
          workDir: ctx.workDir,
        });
        latSlices.set(v, [...(latSlices.get(v) ?? []), lat]);
      }
    }
    for (const v of out.order) {
      const acc = slices.get(v);
      const latRuns = latSlices.get(v);
      if (acc === undefined || latRuns === undefined) continue;
      const sat = mergeWrk(acc.runs);
      const cpu = mergeCpu(acc.cpu);
      const lat = meanPercentiles(mergeWrk(latRuns), latRuns);
      out.runs[v] = {
        saturation: loadSummary(sat, opts.connections),
        latency: loadSummary(lat, 1),
        envoyCpuUsPerRequest: sat.requests > 0 ? (cpu.processes["envoy"]?.cpuNs ?? 0) / sat.requests / 1000 : NaN,
        cpu,
      };
    }
    if (withPerf) {
      // The no-fallback variant is a comparison point for the CPU figures; its profile would repeat the plugin's.
      for (const v of variants.filter((x) => x !== "plugin-no-fallback")) {
        const g = gateways.get(v);
        if (g === undefined) continue;
        ctx.log(`  perf profile of Envoy (${v})`);
        try {
          let usPerReq = NaN;
          const profile = await profileDuring(g.pid, ctx.workDir, v, async () => {
            const meter = new CpuMeter(new Map([["envoy", g.pid]]));
            meter.start();
            const r = await runWrk({
              url: g.url,
              requests: [{ path: CHAT_PATH, bodyFile }],
              connections: opts.connections,
              durationS: opts.smoke ? 0.5 : 2,
              workDir: ctx.workDir,
            });
            usPerReq = (meter.stop().processes["envoy"]?.cpuNs ?? 0) / Math.max(1, r.requests) / 1000;
          });
          out.perf[v] = { ...profile, envoyCpuUsPerRequest: usPerReq };
        } catch (e) {
          out.perfError = String((e as Error).message ?? e);
          break;
        }
      }
    }
  } finally {
    await stopAll(gateways.values());
  }
  return out;
}
