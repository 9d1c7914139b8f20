// What every benchmark section gets: the options, a scratch folder, the compiled probes, the CPU split.
import type { BenchOptions } from "./options.ts";
import type { Probes } from "./gateways.ts";
import type { WrkResult } from "./wrk.ts";
import { errorCount } from "./wrk.ts";

export interface BenchContext {
  opts: BenchOptions;
  workDir: string; // bodies, wrk scripts; removed at the end
  probes: Probes;
  envoyCores: string | null; // null: not pinned
  log(message: string): void;
}

// wrk's figures as the report keeps them (latency in µs).
export interface LoadSummary {
  connections: number;
  durationS: number;
  requests: number;
  rps: number;
  errors: number;
  latencyUs: { p50: number; p75: number; p90: number; p99: number; p999: number; mean: number; max: number };
  loadGenCpuNs: number;
}

export function loadSummary(r: WrkResult, connections: number): LoadSummary {
  const p = r.latencyUs.p;
  return {
    connections,
    durationS: r.durationS,
    requests: r.requests,
    rps: r.rps,
    errors: errorCount(r),
    latencyUs: {
      p50: p["50"] ?? NaN,
      p75: p["75"] ?? NaN,
      p90: p["90"] ?? NaN,
      p99: p["99"] ?? NaN,
      p999: p["99.9"] ?? NaN,
      mean: r.latencyUs.mean,
      max: r.latencyUs.max,
    },
    loadGenCpuNs: r.cpuNs,
  };
}

// Rotates a list so repeat r starts at a different element: drift over a run does not always favour
// the same configuration.
export function rotate<T>(items: readonly T[], r: number): T[] {
  if (items.length === 0) return [];
  const k = r % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
