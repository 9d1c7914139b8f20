// Section 7: the added cost of a quota check. Section 1's non-streaming chat requests against the fixed-response
// backend, through three Envoys with the plugin (the seed configuration, one worker) that differ only in `quotas`:
//   none     no quotas: the baseline
//   local    one rule (requests and total tokens per day, never reached): admission reads and writes its slot in
//            shared data, the answer's tokens are added to it
//   cluster  the same rule in cluster mode: an admission call to envoyproxy/ratelimit (Redis behind it) that the
//            request waits for, and a charge call after the answer; the service and Redis run on the load core
// Each: closed-loop latency on one connection (the added p50/p99 is the check's latency) and saturation
// throughput with Envoy's CPU per request (and the service's and Redis's, for cluster).
import type { Gateway } from "../harness/envoy.ts";
import { startGateway } from "../harness/envoy.ts";
import { RATELIMIT_CLUSTER, grpcCluster } from "../harness/envoy-config.ts";
import { seedPluginConfig } from "../harness/seed.ts";
import { startQuotaServices, type QuotaServices } from "../quota/services.ts";
import { chatBody, writeBody } from "./bodies.ts";
import { loadSummary, rotate, type BenchContext, type LoadSummary } from "./context.ts";
import { backendTargets, statValue, stopAll } from "./gateways.ts";
import type { FixedBackend } from "./nginx.ts";
import { CHAT_PATH } from "./nonstreaming.ts";
import { CpuMeter, pin } from "./procs.ts";
import { runWrk, type WrkResult } from "./wrk.ts";

export type QuotaVariant = "none" | "local" | "cluster";
export const QUOTA_VARIANTS: readonly QuotaVariant[] = ["none", "local", "cluster"];

export interface QuotaRun {
  latency: LoadSummary; // one connection; percentiles: the mean over the slices
  saturation: LoadSummary;
  envoyCpuUsPerRequest: number;
  serviceCpuUsPerRequest: number | null; // cluster: ratelimit + Redis
}

export interface QuotaResult {
  rule: Record<string, unknown>;
  runs: Partial<Record<QuotaVariant, QuotaRun>>;
  // Per variant, what the plugin counted: refusals must be 0 (the limits are never reached), and so must the
  // service's failures, or the cluster figures would include requests that skipped the check.
  counters: Partial<Record<QuotaVariant, Record<string, number>>>;
}

const SLICES = 2;
const HEADER = "x-team";
// Below 2^32: the rate-limit service's limits are uint32.
const RULE = { name: "bench", consumerHeader: HEADER, window: "day", requests: 2_000_000_000, totalTokens: 2_000_000_000 };
const COUNTERS = [
  "wasmcustom.llm_gateway.quota.service_unavailable.outcome.allowed",
  "wasmcustom.llm_gateway.quota.charge_failed",
  "wasmcustom.llm_gateway.quota.table_full",
];

function configOf(v: QuotaVariant): Record<string, unknown> {
  const base = seedPluginConfig();
  if (v === "none") return base;
  return {
    ...base,
    quotas: {
      mode: v,
      ...(v === "cluster" ? { service: { cluster: RATELIMIT_CLUSTER, timeoutMs: 1000 } } : {}),
      rules: [RULE],
    },
  };
}

function meanLatency(runs: WrkResult[]): LoadSummary {
  const first = runs[0];
  if (first === undefined) throw new Error("quota: no latency runs");
  const sums = runs.map((r) => loadSummary(r, 1));
  const avg = (f: (s: LoadSummary) => number): number => sums.reduce((a, s) => a + f(s), 0) / sums.length;
  const requests = sums.reduce((a, s) => a + s.requests, 0);
  const durationS = sums.reduce((a, s) => a + s.durationS, 0);
  return {
    ...(sums[0] as LoadSummary),
    requests,
    durationS,
    rps: durationS > 0 ? requests / durationS : 0,
    errors: sums.reduce((a, s) => a + s.errors, 0),
    latencyUs: {
      p50: avg((s) => s.latencyUs.p50),
      p75: avg((s) => s.latencyUs.p75),
      p90: avg((s) => s.latencyUs.p90),
      p99: avg((s) => s.latencyUs.p99),
      p999: avg((s) => s.latencyUs.p999),
      mean: avg((s) => s.latencyUs.mean),
      max: Math.max(...sums.map((s) => s.latencyUs.max)),
    },
  };
}

export async function quotaSection(ctx: BenchContext, backend: FixedBackend): Promise<QuotaResult> {
  const { opts } = ctx;
  const bodyFile = writeBody(ctx.workDir, "quota-chat-1k.json", chatBody(opts.bodyBytes, { maxTokens: 16 }));
  const request = { path: CHAT_PATH, bodyFile, headers: { [HEADER]: "bench" } };
  const out: QuotaResult = { rule: RULE, runs: {}, counters: {} };
  const gateways = new Map<QuotaVariant, Gateway>();
  let services: QuotaServices | null = null;
  try {
    services = await startQuotaServices();
    if (ctx.envoyCores !== null) {
      pin(services.ratelimit.pid, opts.loadCores);
      pin(services.redis.pid, opts.loadCores);
    }
    for (const v of QUOTA_VARIANTS) {
      const g = await startGateway({
        backends: backendTargets(backend.port),
        pluginConfig: configOf(v),
        wasmPath: ctx.probes.plugin,
        concurrency: 1,
        clusters: [grpcCluster({ name: RATELIMIT_CLUSTER, address: "127.0.0.1", port: services.ratelimit.grpcPort })],
      });
      if (ctx.envoyCores !== null) pin(g.pid, ctx.envoyCores);
      gateways.set(v, g);
      // Warm-up: connections (the gRPC one too), V8 tier-up.
      await runWrk({ url: g.url, requests: [request], connections: 4, durationS: opts.smoke ? 0.2 : 1, workDir: ctx.workDir });
    }
    ctx.log(
      `  quota check: ${QUOTA_VARIANTS.join(", ")}: ${opts.seconds}s each at ${opts.connections} connections, ${opts.latencySeconds}s at 1`,
    );
    const sat = new Map<QuotaVariant, { runs: WrkResult[]; envoyNs: number; serviceNs: number }>();
    const lat = new Map<QuotaVariant, WrkResult[]>();
    for (let slice = 0; slice < SLICES; slice++) {
      for (const v of rotate(QUOTA_VARIANTS, slice)) {
        const g = gateways.get(v);
        if (g === undefined) continue;
        const meter = new CpuMeter(
          new Map([
            ["envoy", g.pid],
            ["ratelimit", services.ratelimit.pid],
            ["redis", services.redis.pid],
          ]),
        );
        meter.start();
        const r = await runWrk({
          url: g.url,
          requests: [request],
          connections: opts.connections,
          durationS: opts.seconds / SLICES,
          workDir: ctx.workDir,
        });
        const cpu = meter.stop();
        const acc = sat.get(v) ?? { runs: [], envoyNs: 0, serviceNs: 0 };
        acc.runs.push(r);
        acc.envoyNs += cpu.processes["envoy"]?.cpuNs ?? 0;
        acc.serviceNs += (cpu.processes["ratelimit"]?.cpuNs ?? 0) + (cpu.processes["redis"]?.cpuNs ?? 0);
        sat.set(v, acc);
        const l = await runWrk({
          url: g.url,
          requests: [request],
          connections: 1,
          durationS: opts.latencySeconds / SLICES,
          workDir: ctx.workDir,
        });
        lat.set(v, [...(lat.get(v) ?? []), l]);
      }
    }
    for (const v of QUOTA_VARIANTS) {
      const s = sat.get(v);
      const l = lat.get(v);
      const g = gateways.get(v);
      if (s === undefined || l === undefined || g === undefined) continue;
      const requests = s.runs.reduce((a, r) => a + r.requests, 0);
      const durationS = s.runs.reduce((a, r) => a + r.durationS, 0);
      const first = s.runs[0] as WrkResult;
      const merged: WrkResult = { ...first, requests, durationS, rps: durationS > 0 ? requests / durationS : 0 };
      merged.errors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
      for (const r of s.runs) for (const k of Object.keys(merged.errors) as (keyof WrkResult["errors"])[]) merged.errors[k] += r.errors[k];
      out.runs[v] = {
        saturation: loadSummary(merged, opts.connections),
        latency: meanLatency(l),
        envoyCpuUsPerRequest: requests > 0 ? s.envoyNs / requests / 1000 : NaN,
        serviceCpuUsPerRequest: v === "cluster" && requests > 0 ? s.serviceNs / requests / 1000 : null,
      };
      const counters: Record<string, number> = {};
      for (const name of COUNTERS) counters[name.replace("wasmcustom.llm_gateway.quota.", "")] = (await statValue(g, name)) ?? 0;
      out.counters[v] = counters;
    }
  } finally {
    await stopAll(gateways.values());
    await services?.stop();
  }
  return out;
}

// The added cost over `none`: latency percentiles (µs) and Envoy's CPU per request (µs).
export function quotaAdded(
  r: QuotaResult,
  v: Exclude<QuotaVariant, "none">,
): { p50Us: number; p99Us: number; envoyCpuUs: number; rpsRatio: number } | null {
  const base = r.runs.none;
  const x = r.runs[v];
  if (base === undefined || x === undefined) return null;
  return {
    p50Us: x.latency.latencyUs.p50 - base.latency.latencyUs.p50,
    p99Us: x.latency.latencyUs.p99 - base.latency.latencyUs.p99,
    envoyCpuUs: x.envoyCpuUsPerRequest - base.envoyCpuUsPerRequest,
    rpsRatio: base.saturation.rps > 0 ? x.saturation.rps / base.saturation.rps : NaN,
  };
}
