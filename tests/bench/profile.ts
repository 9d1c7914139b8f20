// The plugin's request-side parsers on their own, in Node (V8, the engine Envoy embeds; Envoy offers no
// profiler for Wasm): tests/bench/as/parsers-node.ts compiled with the plugin's optimisation settings,
// timed on the section-3 bodies. Shows the parse cost per byte and whether it is linear, apart from
// Envoy's buffering and copying; and the VM's linear memory after many routed requests.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { seedPluginConfig } from "../harness/seed.ts";
import { chatBody } from "./bodies.ts";
import type { BenchContext } from "./context.ts";
import { BENCH_BUILD, compileAs } from "./gateways.ts";

interface ParserExports {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  release(ptr: number): void;
  configure(ptr: number, len: number): number;
  scanLoop(ptr: number, len: number, iterations: number): number;
  routeLoop(ptr: number, len: number, iterations: number): number;
  memoryBytes(): number;
}

export interface ParsePoint {
  bytes: number;
  iterations: number;
  scanUs: number; // scanJson per body
  routeUs: number; // routeRequest per body (scan + lookup + result)
  scanNsPerByte: number;
  scanError: number;
  routeStatus: number;
}

export interface ProfileResult {
  points: ParsePoint[];
  memory: { routed: number; bytesBefore: number; bytesAfter: number } | null;
  error?: string;
}

export function buildParsers(): string {
  const out = join(BENCH_BUILD, "parsers-node.wasm");
  compileAs("tests/bench/as/parsers-node.ts", out, ["--config", "tests/bench/as/asconfig.json"]);
  return out;
}

export async function loadParsers(file: string): Promise<ParserExports> {
  const { instance } = await WebAssembly.instantiate(readFileSync(file), {
    env: {
      abort: (): never => {
        throw new Error("parsers-node: abort");
      },
    },
  });
  return instance.exports as unknown as ParserExports;
}

function put(x: ParserExports, s: string): { ptr: number; len: number } {
  const b = Buffer.from(s);
  const ptr = x.alloc(b.length);
  new Uint8Array(x.memory.buffer, ptr, b.length).set(b);
  return { ptr, len: b.length };
}

// Times `fn(iterations)` with enough iterations for ~targetMs, after a warm-up (V8 tiers Wasm up from
// Liftoff to TurboFan on hot functions); the best of three rounds.
function timePerCall(fn: (n: number) => void, approxNs: number, targetMs: number): { us: number; iterations: number } {
  fn(Math.max(3, Math.ceil(2e6 / Math.max(1, approxNs)))); // warm-up ≈ 2 ms
  const iterations = Math.max(3, Math.ceil((targetMs * 1e6) / Math.max(1, approxNs)));
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = process.hrtime.bigint();
    fn(iterations);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / iterations);
  }
  return { us: best / 1000, iterations };
}

export async function profileSection(ctx: BenchContext): Promise<ProfileResult> {
  const out: ProfileResult = { points: [], memory: null };
  let x: ParserExports;
  try {
    x = await loadParsers(buildParsers());
  } catch (e) {
    out.error = `parsers did not build or load: ${String((e as { stderr?: Buffer }).stderr ?? e).slice(0, 2000)}`;
    return out;
  }
  const cfg = put(x, JSON.stringify(seedPluginConfig()));
  if (x.configure(cfg.ptr, cfg.len) === 0) {
    out.error = "parsers: the seed configuration was refused";
    return out;
  }
  const targetMs = ctx.opts.smoke ? 5 : 60;
  for (const bytes of ctx.opts.sizes) {
    const body = put(x, chatBody(bytes, { maxTokens: 16 }));
    const approxNs = 1000 + bytes; // ~1 ns/B as a first guess; only sets the iteration count
    let scanError = 0;
    let routeStatus = 0;
    const scan = timePerCall(
      (n) => {
        scanError = x.scanLoop(body.ptr, body.len, n);
      },
      approxNs,
      targetMs,
    );
    const route = timePerCall(
      (n) => {
        routeStatus = x.routeLoop(body.ptr, body.len, n);
      },
      approxNs,
      targetMs,
    );
    out.points.push({
      bytes,
      iterations: scan.iterations,
      scanUs: scan.us,
      routeUs: route.us,
      scanNsPerByte: (scan.us * 1000) / bytes,
      scanError,
      routeStatus,
    });
    x.release(body.ptr);
  }
  // Linear memory stays put while requests are routed (the GC reclaims per-request objects).
  const small = put(x, chatBody(1024, { maxTokens: 16 }));
  x.routeLoop(small.ptr, small.len, 1000);
  const before = x.memoryBytes();
  const routed = ctx.opts.smoke ? 10_000 : 100_000;
  x.routeLoop(small.ptr, small.len, routed);
  out.memory = { routed, bytesBefore: before, bytesAfter: x.memoryBytes() };
  return out;
}
