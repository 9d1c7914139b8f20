// What one `make bench` run measures and for how long. Every knob is an environment variable, so the
// Makefile target stays one line; BENCH_SMOKE=1 shrinks everything to a seconds-long run (the test).
import { join } from "node:path";
import { ROOT } from "../harness/envoy.ts";

export interface BenchOptions {
  smoke: boolean;
  repeats: number; // BENCH_REPEATS: runs of sections 1-3, for the spread
  seconds: number; // BENCH_SECONDS: saturation run per Envoy configuration (section 1)
  latencySeconds: number; // closed-loop latency run (one connection) per configuration
  connections: number; // BENCH_CONNECTIONS: wrk connections for throughput
  bodyBytes: number; // section 1's request body
  sizes: number[]; // BENCH_SIZES: section 3's body sizes (bytes)
  sizeSeconds: number; // per size and configuration
  ttftRequests: number; // BENCH_TTFT_REQUESTS: sequential streams per target
  streamSeconds: number; // per concurrency and target
  streamTokens: number; // tokens per stream for the tokens/s runs
  concurrencies: number[]; // BENCH_STREAMS: concurrent streams
  pacedStreams: number; // streams for the per-chunk cost run
  pacedTokens: number;
  pacedIntervalMs: number; // token interval in the per-chunk cost run (one SSE event per read)
  fallbackRequests: number; // BENCH_FALLBACK_REQUESTS: streams per series in section 6 (TTFT through a fallback)
  fallbackTtftMs: number; // BENCH_FALLBACK_TTFT_MS: the backup stub's first-token delay
  fallbackWarmup: number; // warm-up rounds per phase of section 6 (not timed)
  memoryCheckpoints: number[]; // BENCH_MEMORY: cumulative request counts at which memory is read
  warmupRequests: number;
  startups: number; // BENCH_STARTUPS: Envoy starts per configuration
  v8Starts: number; // fresh Node processes timing compile/instantiate/configure
  perf: boolean; // BENCH_PERF=0 skips the perf(1) profile of Envoy (off in smoke runs)
  cpuProfile: boolean; // BENCH_CPU_PROFILE=0 skips V8's CPU profile of the plugin (off in smoke runs)
  pin: boolean; // BENCH_PIN=0 lets the scheduler place everything
  calibrationSeconds: number;
  envoyCores: string; // BENCH_ENVOY_CORES
  loadCores: string; // BENCH_LOAD_CORES: load generator, backends, this process
  outRoot: string; // BENCH_OUT: results/ by default
}

function num(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`);
  return n;
}

function list(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const out = raw.split(",").map((s) => parseSize(s.trim()));
  if (out.some((n) => !Number.isFinite(n) || n <= 0))
    throw new Error(`${name} must be a comma-separated list of positive numbers, got ${JSON.stringify(raw)}`);
  return out;
}

// "4096", "4K", "4KB", "1M", "4MB", "100k" (request counts use the same suffixes, ×1000 for k).
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(k|K|KB|KiB|M|MB|MiB)?$/.exec(s);
  if (m === null || m[1] === undefined) return NaN;
  const v = Number(m[1]);
  switch (m[2]) {
    case "k":
      return v * 1000;
    case "K":
    case "KB":
    case "KiB":
      return v * 1024;
    case "M":
    case "MB":
    case "MiB":
      return v * 1024 * 1024;
    default:
      return v;
  }
}

function flag(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  return raw !== "0";
}

const KB = 1024;
const MB = 1024 * 1024;

export function benchOptions(): BenchOptions {
  const smoke = process.env.BENCH_SMOKE === "1";
  const seconds = num("BENCH_SECONDS", smoke ? 0.3 : 4);
  return {
    smoke,
    repeats: Math.max(1, Math.round(num("BENCH_REPEATS", smoke ? 1 : 3))),
    seconds,
    latencySeconds: smoke ? 0.3 : Math.max(2, seconds),
    connections: Math.max(1, Math.round(num("BENCH_CONNECTIONS", 32))),
    bodyBytes: 1 * KB,
    sizes: list("BENCH_SIZES", smoke ? [1 * KB, 64 * KB] : [1 * KB, 4 * KB, 16 * KB, 64 * KB, 256 * KB, 1 * MB, 4 * MB]),
    sizeSeconds: smoke ? 0.2 : Math.max(1, seconds / 4),
    ttftRequests: Math.max(5, Math.round(num("BENCH_TTFT_REQUESTS", smoke ? 10 : 300))),
    streamSeconds: smoke ? 0.2 : Math.max(1, seconds / 2),
    streamTokens: smoke ? 64 : 512,
    concurrencies: list("BENCH_STREAMS", [1, 16, 64]).map(Math.round),
    pacedStreams: smoke ? 2 : 16,
    pacedTokens: smoke ? 20 : 800,
    pacedIntervalMs: 2,
    // 3 × 200 sequential streams at 100 ms each: about a minute.
    fallbackRequests: Math.max(4, Math.round(num("BENCH_FALLBACK_REQUESTS", smoke ? 10 : 200))),
    fallbackTtftMs: Math.round(num("BENCH_FALLBACK_TTFT_MS", smoke ? 20 : 100)),
    fallbackWarmup: smoke ? 2 : 10,
    memoryCheckpoints: list("BENCH_MEMORY", smoke ? [500, 2000] : [10_000, 100_000]).map(Math.round),
    warmupRequests: smoke ? 100 : 1000,
    startups: Math.max(1, Math.round(num("BENCH_STARTUPS", smoke ? 1 : 3))),
    v8Starts: smoke ? 1 : 5,
    perf: flag("BENCH_PERF", !smoke),
    cpuProfile: flag("BENCH_CPU_PROFILE", !smoke),
    pin: process.env.BENCH_PIN !== "0",
    calibrationSeconds: smoke ? 0.2 : 2,
    envoyCores: process.env.BENCH_ENVOY_CORES ?? "0",
    loadCores: process.env.BENCH_LOAD_CORES ?? "1",
    outRoot: process.env.BENCH_OUT ?? join(ROOT, "results"),
  };
}
