// The Envoy configurations the benchmark compares, all from the harness's one config generator:
//   plain        the same listener without the Wasm filter, a static route to the backend (the limit)
//   wasm-min     + a Wasm filter that only writes a fixed routing header (probe-min: the cost of any
//                Wasm filter; without the header the header-matched routes would answer 404)
//   wasm-buffer  + holding headers, buffering the body, copying it into the VM, routing by header
//                (probe-buffer: what routing by body costs before any parsing)
//   plugin       + build/plugin.wasm, the seed scenario's configuration
//   plugin-no-fallback  the same without the seed's fallback chain (section 1 only): no aggregate
//                cluster, no retry policy, no attempt stage (the plugin as an upstream filter on every
//                attempt), so the difference is what the fallback feature costs each request
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { startGateway, ROOT, type Gateway } from "../harness/envoy.ts";
import { seedPluginConfig, SEED_MODELS } from "../harness/seed.ts";
import type { BackendTarget } from "../harness/envoy-config.ts";
import { pin } from "./procs.ts";

export type Variant = "plain" | "wasm-min" | "wasm-buffer" | "plugin" | "plugin-no-fallback";
export const VARIANTS: readonly Variant[] = ["plain", "wasm-min", "wasm-buffer", "plugin", "plugin-no-fallback"];

export const BENCH_BUILD = join(ROOT, "build/bench");

export interface Probes {
  plugin: string; // the plugin as this run measures it (a copy of build/plugin.wasm taken at the start)
  min: string | null; // wasm path, or null when it did not compile
  buffer: string | null;
  errors: string[];
}

// Newest modification time among the AssemblyScript sources a bench module is built from.
function newestSourceMs(): number {
  let newest = 0;
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(ROOT, "assembly"));
  walk(join(ROOT, "tests/bench/as"));
  newest = Math.max(newest, statSync(join(ROOT, "asconfig.json")).mtimeMs);
  return newest;
}

// Compiles an AssemblyScript entry into build/bench/ unless the output is newer than every source.
export function compileAs(entry: string, out: string, args: string[]): void {
  mkdirSync(BENCH_BUILD, { recursive: true });
  if (existsSync(out) && statSync(out).mtimeMs > newestSourceMs()) return;
  execFileSync(join(ROOT, "node_modules/.bin/asc"), [entry, ...args, "--outFile", out], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
}

// Compiles the probe filters with the plugin's own asconfig (release target, WASI shim) into
// build/bench/. A probe that does not compile (the ABI layer is changing) is left out, with the reason.
export function buildProbes(plugin: string): Probes {
  const out: Probes = { plugin, min: null, buffer: null, errors: [] };
  for (const name of ["min", "buffer"] as const) {
    const file = join(BENCH_BUILD, `probe-${name}.wasm`);
    try {
      compileAs(`tests/bench/as/probe-${name}.ts`, file, ["--config", "asconfig.json", "--target", "release"]);
      if (existsSync(file)) out[name] = file;
    } catch (e) {
      out.errors.push(`probe-${name}: ${String((e as { stderr?: Buffer }).stderr ?? e).slice(0, 2000)}`);
    }
  }
  return out;
}

export function wasmPathOf(v: Variant, probes: Probes): string | null {
  switch (v) {
    case "plain":
      return probes.plugin; // unused: no filter
    case "wasm-min":
      return probes.min;
    case "wasm-buffer":
      return probes.buffer;
    case "plugin":
    case "plugin-no-fallback":
      return probes.plugin;
  }
}

// Both seed models' clusters point at the one backend: the plugin routes qwen2-1-5b there, plain
// Envoy's static route goes to the first (qwen) cluster.
export function backendTargets(port: number): BackendTarget[] {
  return SEED_MODELS.map((model) => ({ model, host: "127.0.0.1", port }));
}

export async function startVariant(
  v: Variant,
  probes: Probes,
  backendPort: number,
  envoyCores: string | null,
  logLevel?: string,
): Promise<Gateway> {
  const wasmPath = wasmPathOf(v, probes);
  if (wasmPath === null) throw new Error(`variant ${v}: its probe did not compile`);
  const g = await startGateway({
    backends: backendTargets(backendPort),
    pluginConfig: v === "plugin-no-fallback" ? withoutFallback(seedPluginConfig()) : seedPluginConfig(),
    plugin: v !== "plain",
    wasmPath,
    concurrency: 1,
    ...(logLevel !== undefined ? { logLevel } : {}),
  });
  if (envoyCores !== null) pin(g.pid, envoyCores);
  return g;
}

// The seed's configuration with every model's `fallback` taken out.
function withoutFallback(config: Record<string, unknown>): Record<string, unknown> {
  const models = config["models"];
  if (!Array.isArray(models)) return config;
  return {
    ...config,
    models: models.map((m: unknown) => {
      if (typeof m !== "object" || m === null) return m;
      const { fallback: _dropped, ...rest } = m as Record<string, unknown>;
      return rest;
    }),
  };
}

export function availableVariants(probes: Probes): Variant[] {
  return VARIANTS.filter((v) => wasmPathOf(v, probes) !== null);
}

// A stat's value from Envoy's admin (counters and gauges print as "name: value"); null if absent.
export async function statValue(g: Gateway, name: string): Promise<number | null> {
  const r = await fetch(`${g.adminUrl}/stats?filter=^${name.replace(/[.|]/g, (c) => `\\${c}`)}$`);
  const m = /:\s*(\d+)\s*$/m.exec(await r.text());
  return m?.[1] !== undefined ? Number(m[1]) : null;
}

// The plugin's VM linear-memory gauge, if the plugin defines one (any stat named *vm_memory_bytes).
export async function wasmMemoryGauge(g: Gateway): Promise<number | null> {
  const r = await fetch(`${g.adminUrl}/stats?filter=vm_memory_bytes`);
  const m = /vm_memory_bytes[^:]*:\s*(\d+)\s*$/m.exec(await r.text());
  return m?.[1] !== undefined ? Number(m[1]) : null;
}

export async function stopAll(gateways: Iterable<Gateway>): Promise<void> {
  for (const g of gateways) await g.stop().catch(() => undefined);
}
