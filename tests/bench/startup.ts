// Section 5: plugin.wasm's size, and what the plugin adds to start-up:
//   Envoy   spawn → listener answering (the harness's readiness, polled every 50 ms), and from Envoy's
//           own log (ms timestamps): init manager start → listener added on the main thread (the
//           Wasm VM is created, _start run and the plugin configured in between), workers started
//           → the worker's VM configured; plain Envoy and the null probe for comparison;
//   V8      the same steps timed in Node (V8, the engine Envoy embeds) on the module alone.
import { spawn } from "node:child_process";
import { readFileSync, rmSync, existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../harness/envoy.ts";
import { seedPluginConfig } from "../harness/seed.ts";
import type { BenchContext } from "./context.ts";
import { availableVariants, startVariant, statValue, type Variant } from "./gateways.ts";
import { rssBytes } from "./procs.ts";
import type { VmStartTimes } from "./vm-start.ts";

export const STARTUP_VARIANTS: readonly Variant[] = ["plain", "wasm-min", "plugin"];

export interface EnvoyStart {
  variant: Variant;
  readyMs: number; // spawn → listener answering (50 ms polling)
  mainListenerMs: number | null; // log: "initializing init manager" → "add/update listener"
  workerVmMs: number | null; // log: "starting workers" → the worker's "configured" line
  initToLoopMs: number | null; // log: "initializing epoch 0" → "starting main dispatch loop"
  rssBytes: number;
  memoryAllocated: number | null;
}

export interface StartupResult {
  wasmBytes: number;
  envoy: EnvoyStart[];
  v8: VmStartTimes[]; // Node's defaults: lazy compilation, Liftoff first
  v8Eager: VmStartTimes[]; // --no-liftoff --no-wasm-lazy-compilation: every function optimised up front
  v8Error?: string;
}

// V8 flags for an eager, optimising compile of the whole module before it runs.
export const EAGER_V8_FLAGS = ["--no-liftoff", "--no-wasm-lazy-compilation"];

// "[2026-11-26 07:50:04.917][6405][info][main] ..." → ms since the epoch (local time, consistent
// within one log).
function stamp(line: string | undefined): number | null {
  const m = /^\[(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3})\]/.exec(line ?? "");
  if (m === null) return null;
  const [, y, mo, d, h, mi, s, ms] = m.map(Number);
  return new Date(y ?? 0, (mo ?? 1) - 1, d, h, mi, s, ms).getTime();
}

function between(lines: string[], from: RegExp, to: RegExp, last = false): number | null {
  const a = stamp(lines.find((l) => from.test(l)));
  const matches = lines.filter((l) => to.test(l));
  const b = stamp(last ? matches[matches.length - 1] : matches[0]);
  return a === null || b === null ? null : b - a;
}

export function parseStartLog(log: string): Pick<EnvoyStart, "mainListenerMs" | "workerVmMs" | "initToLoopMs"> {
  const lines = log.split("\n");
  const workerConfigured = lines.filter((l) => /llm-gateway: configured /.test(l)).length > 0;
  return {
    mainListenerMs: between(lines, /initializing init manager/, /lds: add\/update listener/),
    workerVmMs: workerConfigured ? between(lines, /starting workers/, /llm-gateway: configured /, true) : null,
    initToLoopMs: between(lines, /initializing epoch 0/, /starting main dispatch loop/),
  };
}

async function envoyStart(ctx: BenchContext, v: Variant): Promise<EnvoyStart> {
  const t0 = process.hrtime.bigint();
  // The backend port is never used: nothing is sent through these Envoys.
  const g = await startVariant(v, ctx.probes, 9, null, "info");
  const readyMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const rss = rssBytes(g.pid);
  const allocated = await statValue(g, "server.memory_allocated");
  // Envoy writes its log file on exit: keep the work dir through stop() to read it.
  const keep = process.env.KEEP_ENVOY_DIR;
  process.env.KEEP_ENVOY_DIR = "1";
  try {
    await g.stop();
  } finally {
    if (keep === undefined) delete process.env.KEEP_ENVOY_DIR;
    else process.env.KEEP_ENVOY_DIR = keep;
  }
  const logPath = join(g.workDir, "envoy.log");
  const log = existsSync(logPath) ? readFileSync(logPath, "utf8") : "";
  if (keep === undefined) rmSync(g.workDir, { recursive: true, force: true });
  return { variant: v, readyMs, ...parseStartLog(log), rssBytes: rss, memoryAllocated: allocated };
}

function v8Start(wasm: string, flags: string[]): Promise<VmStartTimes> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...flags, "--import", "tsx", join(ROOT, "tests/bench/vm-start.ts"), wasm, JSON.stringify(seedPluginConfig())],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 30000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`vm-start exited ${String(code)}: ${err}`);
        resolve(JSON.parse(out) as VmStartTimes);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

export async function startupSection(ctx: BenchContext): Promise<StartupResult> {
  const variants = availableVariants(ctx.probes).filter((v) => STARTUP_VARIANTS.includes(v));
  const out: StartupResult = { wasmBytes: readFileSync(ctx.probes.plugin).length, envoy: [], v8: [], v8Eager: [] };
  for (let i = 0; i < ctx.opts.startups; i++) {
    for (const v of variants) out.envoy.push(await envoyStart(ctx, v));
  }
  try {
    for (let i = 0; i < ctx.opts.v8Starts; i++) {
      out.v8.push(await v8Start(ctx.probes.plugin, []));
      out.v8Eager.push(await v8Start(ctx.probes.plugin, EAGER_V8_FLAGS));
    }
  } catch (e) {
    out.v8Error = String((e as Error).message ?? e);
  }
  return out;
}
