// Turns the raw repeats into the report's figures: ratios and differences paired within each repeat
// (the configurations of one repeat share the machine's state), then the median and range across
// repeats; and the targets, judged.
import type { BodySizeRepeat } from "./bodysize.ts";
import type { BackendCalibration } from "./calibration.ts";
import { FALLBACK_SERIES, type FallbackResult, type FallbackSeriesName, type Quantiles } from "./fallback.ts";
import type { QuotaResult } from "./quota.ts";
import { VARIANTS, type Variant } from "./gateways.ts";
import type { Machine, WasmFile } from "./machine.ts";
import type { MemoryResult } from "./memory.ts";
import type { NonStreamingRepeat } from "./nonstreaming.ts";
import type { BenchOptions } from "./options.ts";
import { PERF_GROUPS, type PerfGroup } from "./perf.ts";
import { othersShare } from "./procs.ts";
import type { ProfileResult } from "./profile.ts";
import type { PluginNodeResult } from "./plugin-node.ts";
import { fitLine, median, spread, type LineFit, type Spread } from "./stats.ts";
import type { StartupResult } from "./startup.ts";
import { TTFT_TARGETS, type StreamingRepeat, type TtftTargetName } from "./streaming.ts";

// /2: section 6, TTFT through a fallback (raw `fallback`, `summary.fallback`, target `fallback-ttft`).
export const SCHEMA = "llm-gateway-bench/2";

export interface RawResults {
  schema: string;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: Machine;
  plugin: WasmFile;
  options: BenchOptions;
  cpuPlan: string;
  probeErrors: string[];
  calibration: { runs: BackendCalibration[]; chosen: string };
  nonStreaming: NonStreamingRepeat[];
  streaming: StreamingRepeat[];
  bodySize: BodySizeRepeat[];
  memory: MemoryResult | null;
  startup: StartupResult | null;
  profile: ProfileResult | null;
  pluginNode: PluginNodeResult | null;
  fallback: FallbackResult | null;
  quota?: QuotaResult | null; // section 7 (absent in runs before it)
  errors: string[];
}

export interface Target {
  id: string;
  goal: string;
  measured: string;
  met: boolean | null; // null: not measured
}

export interface Summary {
  nonStreaming: {
    rps: Partial<Record<Variant, Spread>>;
    ratioToPlain: Partial<Record<Variant, Spread>>;
    p50Us: Partial<Record<Variant, Spread>>;
    p99Us: Partial<Record<Variant, Spread>>;
    addedP50Us: Spread;
    addedP99Us: Spread;
    envoyCpuUsPerRequest: Partial<Record<Variant, Spread>>;
    ladder: { wasmFilterUs: Spread; bufferRerouteUs: Spread; pluginOwnUs: Spread; totalUs: Spread } | null;
    // plugin − plugin-no-fallback: the seed's fallback chain (aggregate cluster, retry policy, attempt stage).
    fallbackChainUs: Spread | null;
    perfUsPerRequest: Partial<Record<Variant, Record<PerfGroup, number>>> | null;
  };
  streaming: {
    ttftP50Us: Partial<Record<TtftTargetName, Spread>>;
    ttftP99Us: Partial<Record<TtftTargetName, Spread>>;
    ttftHoldUs: Spread; // wasm-buffer − plain: holding the request until its body is read
    ttftEditUs: Spread; // plugin − plugin-no-edit: the include_usage rewrite
    addedTtftVsPlainUs: Spread;
    addedTtftVsDirectUs: Spread;
    chunkCpuUs: { plain: Spread; plugin: Spread; added: Spread };
    tokensPerS: { concurrency: number; direct: Spread; plain: Spread; plugin: Spread; ratio: Spread; pluginEnvoyCpuUsPerEvent: Spread }[];
  };
  bodySize: {
    points: {
      bytes: number;
      plainP50Us: Spread;
      addedP50Us: Spread;
      addedCpuUs: Spread;
      bufferCpuUs: Spread;
      pluginOwnCpuUs: Spread;
      nodeScanUs: number | null;
      nodeRouteUs: number | null;
      v8PluginUs: number | null;
    }[];
    fitAddedCpu: LineFit; // µs = intercept + slope·bytes
    fitOwnCpu: LineFit;
    marginalNsPerByte: { from: number; to: number; ns: number }[];
    linear: boolean | null;
  };
  memory: {
    firstRss: number;
    lastRss: number;
    rssGrowth: number;
    allocatedGrowth: number | null;
    wasmGrowth: number | null;
    flat: boolean | null;
  } | null;
  startup: {
    wasmBytes: number;
    readyMs: Partial<Record<Variant, Spread>>;
    mainListenerMs: Partial<Record<Variant, Spread>>;
    workerVmMs: Spread;
    v8: {
      compileMs: Spread;
      instantiateMs: Spread;
      startMs: Spread;
      configureMs: Spread;
      secondConfigureMs: Spread;
      totalMs: Spread;
    } | null;
    v8EagerCompileMs: Spread;
  } | null;
  cpuSplit: { processes: Record<string, number>; coreBusy: number[] } | null;
  fallback: FallbackSummary | null;
  targets: Target[];
}

// Section 6 in figures (ms): each series' TTFT to the first content chunk, the fallback series'
// added time over the backup's own (same statistic of both series), and whether every stream did what
// it should (answered 200 with content, by the backup; every 503 stream tried the primary first).
export type FallbackKind = Exclude<FallbackSeriesName, "backup">;
export const FALLBACK_KINDS: readonly FallbackKind[] = ["primary-503", "primary-down"];
export const FALLBACK_BUDGET_MS = 10;

export interface FallbackSummary {
  ttftMs: Record<FallbackSeriesName, Quantiles>;
  addedMs: Record<FallbackKind, { p50: number; p95: number; mean: number }>;
  errors: number; // all series
  notFromBackup: number; // all series
  allFellBack: boolean; // every fallback stream: 200, content, from the backup, naming the primary
  primaryTriedFirst: boolean; // the primary's stub saw every primary-503 stream
  othersCpuCores: number; // CPU used by anything else on the machine during the section (max of the phases)
}

function perRepeat<T>(repeats: readonly T[], f: (r: T) => number | undefined): Spread {
  return spread(repeats.map((r) => f(r) ?? NaN));
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "n/a";
}

function rangeText(s: Spread, digits = 1, unit = ""): string {
  if (!Number.isFinite(s.median)) return "n/a";
  const r = s.values.length > 1 ? ` (${fmt(s.min, digits)}–${fmt(s.max, digits)})` : "";
  return `${fmt(s.median, digits)}${unit}${r}`;
}

// Issue 15's throughput target, as a share of plain Envoy's.
export const THROUGHPUT_GOAL = 0.65;

export function summarize(raw: RawResults): Summary {
  const ns = raw.nonStreaming;
  const rps: Summary["nonStreaming"]["rps"] = {};
  const ratioToPlain: Summary["nonStreaming"]["ratioToPlain"] = {};
  const p50Us: Summary["nonStreaming"]["p50Us"] = {};
  const p99Us: Summary["nonStreaming"]["p99Us"] = {};
  const cpu: Summary["nonStreaming"]["envoyCpuUsPerRequest"] = {};
  for (const v of VARIANTS) {
    if (!ns.some((r) => r.runs[v] !== undefined)) continue;
    rps[v] = perRepeat(ns, (r) => r.runs[v]?.saturation.rps);
    ratioToPlain[v] = perRepeat(ns, (r) => (r.runs[v]?.saturation.rps ?? NaN) / (r.runs.plain?.saturation.rps ?? NaN));
    p50Us[v] = perRepeat(ns, (r) => r.runs[v]?.latency.latencyUs.p50);
    p99Us[v] = perRepeat(ns, (r) => r.runs[v]?.latency.latencyUs.p99);
    cpu[v] = perRepeat(ns, (r) => r.runs[v]?.envoyCpuUsPerRequest);
  }
  const diff =
    (a: Variant, b: Variant) =>
    (r: NonStreamingRepeat): number =>
      (r.runs[a]?.envoyCpuUsPerRequest ?? NaN) - (r.runs[b]?.envoyCpuUsPerRequest ?? NaN);
  const ladder = ns.some((r) => r.runs["wasm-min"] && r.runs["wasm-buffer"])
    ? {
        wasmFilterUs: perRepeat(ns, diff("wasm-min", "plain")),
        bufferRerouteUs: perRepeat(ns, diff("wasm-buffer", "wasm-min")),
        pluginOwnUs: perRepeat(ns, diff("plugin", "wasm-buffer")),
        totalUs: perRepeat(ns, diff("plugin", "plain")),
      }
    : null;
  const fallbackChainUs = ns.some((r) => r.runs["plugin-no-fallback"]) ? perRepeat(ns, diff("plugin", "plugin-no-fallback")) : null;
  let perfUsPerRequest: Summary["nonStreaming"]["perfUsPerRequest"] = null;
  const perfRepeat = ns.find((r) => Object.keys(r.perf).length > 0);
  if (perfRepeat !== undefined) {
    perfUsPerRequest = {};
    for (const v of VARIANTS) {
      const p = perfRepeat.perf[v];
      if (p === undefined) continue;
      const row = {} as Record<PerfGroup, number>;
      for (const g of PERF_GROUPS) row[g] = p.shares[g] * p.envoyCpuUsPerRequest;
      perfUsPerRequest[v] = row;
    }
  }

  const st = raw.streaming;
  const ttftP50Us: Summary["streaming"]["ttftP50Us"] = {};
  const ttftP99Us: Summary["streaming"]["ttftP99Us"] = {};
  for (const t of TTFT_TARGETS) {
    if (!st.some((r) => r.ttft[t] !== undefined)) continue;
    ttftP50Us[t] = perRepeat(st, (r) => r.ttft[t]?.us.p50);
    ttftP99Us[t] = perRepeat(st, (r) => r.ttft[t]?.us.p99);
  }
  const ttftHoldUs = perRepeat(st, (r) => (r.ttft["wasm-buffer"]?.us.p50 ?? NaN) - (r.ttft.plain?.us.p50 ?? NaN));
  const ttftEditUs = perRepeat(st, (r) => (r.ttft.plugin?.us.p50 ?? NaN) - (r.ttft["plugin-no-edit"]?.us.p50 ?? NaN));
  const concurrencies = [...new Set(st.flatMap((r) => r.load.map((l) => l.concurrency)))];
  const tokensPerS = concurrencies.map((c) => {
    const at = (r: StreamingRepeat) => r.load.find((l) => l.concurrency === c);
    return {
      concurrency: c,
      direct: perRepeat(st, (r) => at(r)?.runs.direct?.tokensPerS),
      plain: perRepeat(st, (r) => at(r)?.runs.plain?.tokensPerS),
      plugin: perRepeat(st, (r) => at(r)?.runs.plugin?.tokensPerS),
      ratio: perRepeat(st, (r) => (at(r)?.runs.plugin?.tokensPerS ?? NaN) / (at(r)?.runs.plain?.tokensPerS ?? NaN)),
      pluginEnvoyCpuUsPerEvent: perRepeat(st, (r) => at(r)?.runs.plugin?.envoyCpuUsPerEvent ?? NaN),
    };
  });

  const bs = raw.bodySize;
  const sizes = [...new Set(bs.flatMap((r) => r.points.map((p) => p.bytes)))].sort((a, b) => a - b);
  const points = sizes.map((bytes) => {
    const at = (r: BodySizeRepeat) => r.points.find((p) => p.bytes === bytes);
    const nodePoint = raw.profile?.points.find((p) => p.bytes === bytes);
    return {
      bytes,
      plainP50Us: perRepeat(bs, (r) => at(r)?.runs.plain?.latency.latencyUs.p50),
      addedP50Us: perRepeat(
        bs,
        (r) => (at(r)?.runs.plugin?.latency.latencyUs.p50 ?? NaN) - (at(r)?.runs.plain?.latency.latencyUs.p50 ?? NaN),
      ),
      addedCpuUs: perRepeat(
        bs,
        (r) => (at(r)?.runs.plugin?.envoyCpuUsPerRequest ?? NaN) - (at(r)?.runs.plain?.envoyCpuUsPerRequest ?? NaN),
      ),
      bufferCpuUs: perRepeat(
        bs,
        (r) => (at(r)?.runs["wasm-buffer"]?.envoyCpuUsPerRequest ?? NaN) - (at(r)?.runs.plain?.envoyCpuUsPerRequest ?? NaN),
      ),
      pluginOwnCpuUs: perRepeat(
        bs,
        (r) => (at(r)?.runs.plugin?.envoyCpuUsPerRequest ?? NaN) - (at(r)?.runs["wasm-buffer"]?.envoyCpuUsPerRequest ?? NaN),
      ),
      nodeScanUs: nodePoint?.scanUs ?? null,
      nodeRouteUs: nodePoint?.routeUs ?? null,
      v8PluginUs: raw.pluginNode?.jsonUs.find((j) => j.bytes === bytes)?.us ?? null,
    };
  });
  const fitAddedCpu = fitLine(
    points.map((p) => p.bytes),
    points.map((p) => p.addedCpuUs.median),
  );
  const fitOwnCpu = fitLine(
    points.map((p) => p.bytes),
    points.map((p) => p.pluginOwnCpuUs.median),
  );
  const marginalNsPerByte = points.slice(1).map((p, i) => {
    const prev = points[i];
    const from = prev?.bytes ?? 0;
    return { from, to: p.bytes, ns: ((p.addedCpuUs.median - (prev?.addedCpuUs.median ?? NaN)) * 1000) / (p.bytes - from) };
  });
  // Linear: the straight line explains the growth, and the largest step costs per byte what the fit says.
  const lastStep = marginalNsPerByte[marginalNsPerByte.length - 1];
  const slopeNs = fitAddedCpu.slope * 1000;
  const linear =
    points.length >= 3 && lastStep !== undefined && Number.isFinite(fitAddedCpu.r2)
      ? fitAddedCpu.r2 >= 0.98 && lastStep.ns > 0.5 * slopeNs && lastStep.ns < 2 * slopeNs
      : null;

  let memory: Summary["memory"] = null;
  const cps = raw.memory?.checkpoints ?? [];
  const first = cps.find((c) => c.label.startsWith("after ") && !c.label.includes("start") && !c.label.includes("warm-up"));
  const last = cps[cps.length - 1];
  if (first !== undefined && last !== undefined) {
    const rssGrowth = last.rssBytes - first.rssBytes;
    const allocatedGrowth =
      last.memoryAllocated !== null && first.memoryAllocated !== null ? last.memoryAllocated - first.memoryAllocated : null;
    const wasmGrowth = last.wasmVmBytes !== null && first.wasmVmBytes !== null ? last.wasmVmBytes - first.wasmVmBytes : null;
    const flat =
      rssGrowth < 1024 * 1024 && (allocatedGrowth === null || allocatedGrowth < 1024 * 1024) && (wasmGrowth === null || wasmGrowth <= 0);
    memory = { firstRss: first.rssBytes, lastRss: last.rssBytes, rssGrowth, allocatedGrowth, wasmGrowth, flat };
  }

  let startup: Summary["startup"] = null;
  if (raw.startup !== null) {
    const s = raw.startup;
    const readyMs: Partial<Record<Variant, Spread>> = {};
    const mainListenerMs: Partial<Record<Variant, Spread>> = {};
    for (const v of VARIANTS) {
      const rows = s.envoy.filter((e) => e.variant === v);
      if (rows.length === 0) continue;
      readyMs[v] = spread(rows.map((e) => e.readyMs));
      mainListenerMs[v] = spread(rows.map((e) => e.mainListenerMs ?? NaN));
    }
    const v8 =
      s.v8.length > 0
        ? {
            compileMs: spread(s.v8.map((r) => r.compileMs)),
            instantiateMs: spread(s.v8.map((r) => r.instantiateMs)),
            startMs: spread(s.v8.map((r) => r.startMs)),
            configureMs: spread(s.v8.map((r) => r.vmStartMs + r.configureMs)),
            secondConfigureMs: spread(s.v8.map((r) => r.secondConfigureMs)),
            totalMs: spread(s.v8.map((r) => r.compileMs + r.instantiateMs + r.startMs + r.vmStartMs + r.configureMs)),
          }
        : null;
    startup = {
      wasmBytes: s.wasmBytes,
      readyMs,
      mainListenerMs,
      v8EagerCompileMs: spread(s.v8Eager.map((r) => r.compileMs)),
      workerVmMs: spread(s.envoy.filter((e) => e.variant === "plugin").map((e) => e.workerVmMs ?? NaN)),
      v8,
    };
  }

  const firstPlugin = ns.find((r) => r.runs.plugin !== undefined)?.runs.plugin;
  const cpuSplit =
    firstPlugin !== undefined
      ? {
          processes: Object.fromEntries(Object.entries(firstPlugin.cpu.processes).map(([k, v]) => [k, v.coreShare])),
          coreBusy: firstPlugin.cpu.coreBusy,
        }
      : null;

  const addedP50Us = perRepeat(ns, (r) => (r.runs.plugin?.latency.latencyUs.p50 ?? NaN) - (r.runs.plain?.latency.latencyUs.p50 ?? NaN));
  const addedP99Us = perRepeat(ns, (r) => (r.runs.plugin?.latency.latencyUs.p99 ?? NaN) - (r.runs.plain?.latency.latencyUs.p99 ?? NaN));
  const addedTtftVsPlainUs = perRepeat(st, (r) => (r.ttft.plugin?.us.p50 ?? NaN) - (r.ttft.plain?.us.p50 ?? NaN));
  const addedTtftVsDirectUs = perRepeat(st, (r) => (r.ttft.plugin?.us.p50 ?? NaN) - (r.ttft.direct?.us.p50 ?? NaN));
  const chunkPlain = perRepeat(st, (r) => r.chunk.plain?.envoyCpuUsPerEvent);
  const chunkPlugin = perRepeat(st, (r) => r.chunk.plugin?.envoyCpuUsPerEvent);
  const chunkAdded = perRepeat(st, (r) => (r.chunk.plugin?.envoyCpuUsPerEvent ?? NaN) - (r.chunk.plain?.envoyCpuUsPerEvent ?? NaN));

  const fallback = summarizeFallback(raw.fallback);

  const ratio = ratioToPlain.plugin ?? spread([]);
  // The plugin against the minimal Wasm filter, paired within each repeat: the part of the cost the
  // plugin itself controls.
  const ratioToMinimal = perRepeat(ns, (r) => (r.runs.plugin?.saturation.rps ?? NaN) / (r.runs["wasm-min"]?.saturation.rps ?? NaN));
  const wasmBytes = raw.plugin.bytes;
  // Targets of issue 15 (the earlier ones were 0.95 ×, 30 µs and 0.1 ms: docs/benchmarks.md).
  const targets: Target[] = [
    {
      id: "throughput",
      goal: `≥ ${THROUGHPUT_GOAL} × plain Envoy's non-streaming throughput`,
      measured: `${rangeText(ratio, 3)} ×`,
      met: judge(ratio.median, (v) => v >= THROUGHPUT_GOAL),
    },
    {
      id: "throughput-vs-minimal",
      goal: "≥ 0.75 × the minimal Wasm filter's non-streaming throughput",
      measured: `${rangeText(ratioToMinimal, 3)} ×`,
      met: judge(ratioToMinimal.median, (v) => v >= 0.75),
    },
    {
      id: "latency",
      goal: "≤ 40 µs added p50 latency (one connection)",
      measured: `${rangeText(addedP50Us)} µs`,
      met: judge(addedP50Us.median, (v) => v <= 40),
    },
    {
      id: "ttft",
      goal: "≤ 60 µs added TTFT (p50, vs plain Envoy)",
      measured: `${rangeText(addedTtftVsPlainUs)} µs`,
      met: judge(addedTtftVsPlainUs.median, (v) => v <= 60),
    },
    {
      id: "sse-chunk",
      goal: "≤ 1 µs of Envoy CPU added per SSE chunk",
      measured: `${rangeText(chunkAdded, 2)} µs`,
      met: judge(chunkAdded.median, (v) => v <= 1),
    },
    {
      id: "linear",
      goal: "plugin time linear in body size (1 KB–4 MB)",
      measured: Number.isFinite(fitAddedCpu.r2)
        ? `R² ${fmt(fitAddedCpu.r2, 4)}, ${fmt(slopeNs, 3)} ns/B, last step ${fmt(lastStep?.ns ?? NaN, 3)} ns/B`
        : "n/a",
      met: linear,
    },
    {
      id: "memory",
      goal: "flat memory after warm-up",
      measured:
        memory === null
          ? "n/a"
          : `RSS ${signedKiB(memory.rssGrowth)}, allocated ${memory.allocatedGrowth === null ? "n/a" : signedKiB(memory.allocatedGrowth)}${memory.wasmGrowth === null ? "" : `, VM ${signedKiB(memory.wasmGrowth)}`} from first to last checkpoint`,
      met: memory?.flat ?? null,
    },
    {
      id: "size",
      goal: "plugin.wasm ≤ 64 KB (65,536 bytes)",
      measured: `${wasmBytes.toLocaleString("en-US")} bytes`,
      met: wasmBytes <= 65536,
    },
    fallbackTarget(fallback),
  ];

  return {
    nonStreaming: {
      rps,
      ratioToPlain,
      p50Us,
      p99Us,
      addedP50Us,
      addedP99Us,
      envoyCpuUsPerRequest: cpu,
      ladder,
      fallbackChainUs,
      perfUsPerRequest,
    },
    streaming: {
      ttftP50Us,
      ttftP99Us,
      ttftHoldUs,
      ttftEditUs,
      addedTtftVsPlainUs,
      addedTtftVsDirectUs,
      chunkCpuUs: { plain: chunkPlain, plugin: chunkPlugin, added: chunkAdded },
      tokensPerS,
    },
    bodySize: { points, fitAddedCpu, fitOwnCpu, marginalNsPerByte, linear },
    memory,
    startup,
    cpuSplit,
    fallback,
    targets,
  };
}

function summarizeFallback(f: FallbackResult | null): FallbackSummary | null {
  if (f === null) return null;
  const ttftMs = {} as Record<FallbackSeriesName, Quantiles>;
  for (const s of FALLBACK_SERIES) ttftMs[s] = f.series[s].firstContentMs;
  const addedMs = {} as FallbackSummary["addedMs"];
  for (const k of FALLBACK_KINDS) {
    addedMs[k] = {
      p50: ttftMs[k].p50 - ttftMs.backup.p50,
      p95: ttftMs[k].p95 - ttftMs.backup.p95,
      mean: ttftMs[k].mean - ttftMs.backup.mean,
    };
  }
  const all = FALLBACK_SERIES.map((s) => f.series[s]);
  return {
    ttftMs,
    addedMs,
    errors: all.reduce((a, s) => a + s.errors, 0),
    notFromBackup: all.reduce((a, s) => a + s.notFromBackup, 0),
    allFellBack: FALLBACK_KINDS.every(
      (k) => f.series[k].sent > 0 && f.series[k].n === f.series[k].sent && f.series[k].fallbackFrom === f.series[k].sent,
    ),
    primaryTriedFirst: f.primaryAttempts.received === f.primaryAttempts.expected,
    othersCpuCores: Math.max(othersShare(f.cpu.primaryUp), othersShare(f.cpu.primaryDown)),
  };
}

// Met when at p50 and at p95, for the 503 and the refused primary alike, the client's TTFT through
// the fallback is within the budget of the backup's own, and every fallback stream was served by the
// backup (a fast error is not a fast fallback).
function fallbackTarget(f: FallbackSummary | null): Target {
  const goal = `client TTFT through a fallback ≤ the backup's own TTFT + ${FALLBACK_BUDGET_MS} ms (p50 and p95; primary answering 503, primary refusing connections)`;
  if (f === null) return { id: "fallback-ttft", goal, measured: "n/a", met: null };
  const a = f.addedMs;
  const values = FALLBACK_KINDS.flatMap((k) => [a[k].p50, a[k].p95]);
  const failures = f.errors + f.notFromBackup;
  const measured =
    `503: ${signedMs(a["primary-503"].p50)} p50, ${signedMs(a["primary-503"].p95)} p95; refused: ${signedMs(a["primary-down"].p50)} p50, ${signedMs(a["primary-down"].p95)} p95 ` +
    `(backup's own p50 ${fmt(f.ttftMs.backup.p50, 1)} ms)${failures > 0 ? `; ${failures} stream(s) failed or not from the backup` : ""}`;
  const met = values.every((v) => Number.isFinite(v))
    ? values.every((v) => v <= FALLBACK_BUDGET_MS) && failures === 0 && f.allFellBack
    : null;
  return { id: "fallback-ttft", goal, measured, met };
}

function signedMs(v: number): string {
  return Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)} ms` : "n/a";
}

function judge(v: number, ok: (v: number) => boolean): boolean | null {
  return Number.isFinite(v) ? ok(v) : null;
}

function signedKiB(bytes: number): string {
  return `${bytes >= 0 ? "+" : ""}${(bytes / 1024).toFixed(0)} KiB`;
}

export { fmt, rangeText, median };
