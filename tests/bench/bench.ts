// `make bench`: measures the plugin in one run on this machine and writes
// results/bench-<timestamp>/{report.md, results.json, chart.png}. Sections (see each file):
//   1 nonstreaming.ts  throughput and latency vs plain Envoy (+ the probes that show where time goes)
//   2 streaming.ts     TTFT, cost per SSE chunk, tokens/s at 1/16/64 streams
//   3 bodysize.ts      1 KB–4 MB bodies: the plugin's time per request must grow linearly
//   4 memory.ts        Envoy's memory after 10,000 and 100,000 requests
//   5 startup.ts       plugin.wasm size, VM start and configure time
//   6 fallback.ts      TTFT through a fallback: the backup's own vs after a 503 / a refused primary
//   7 quota.ts         the added cost of a quota check: no quotas vs local vs cluster (envoyproxy/ratelimit)
//   + profile.ts       the parsers alone in V8 (Node); plugin-node.ts the whole plugin in V8 with a
//                      mock host (time per phase, CPU profile); calibration.ts picks the fixed backend
// Options: environment variables, see options.ts. Everything it starts is stopped, also on failure.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT, WASM_PATH } from "../harness/envoy.ts";
import { bodySizeRepeat, type BodySizeRepeat } from "./bodysize.ts";
import { calibrateBackends, startChosen } from "./calibration.ts";
import type { BenchContext } from "./context.ts";
import { fallbackSection } from "./fallback.ts";
import { buildProbes } from "./gateways.ts";
import { machine, wasmFile } from "./machine.ts";
import { memorySection } from "./memory.ts";
import { nginxBinary, type FixedBackend } from "./nginx.ts";
import { nonStreamingRepeat, type NonStreamingRepeat } from "./nonstreaming.ts";
import { benchOptions, type BenchOptions } from "./options.ts";
import { perfAvailable } from "./perf.ts";
import { cpuCount, pin, tasksetAvailable } from "./procs.ts";
import { profileSection } from "./profile.ts";
import { quotaSection } from "./quota.ts";
import { runPluginNode } from "./plugin-node.ts";
import { renderReport } from "./report.ts";
import { startupSection } from "./startup.ts";
import { streamingRepeat, type StreamingRepeat } from "./streaming.ts";
import { SCHEMA, summarize, type RawResults } from "./summary.ts";

export interface BenchOutput {
  dir: string;
  report: string;
  json: string;
  chart: string | null;
  failed: string[]; // sections that threw
}

function stampOf(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace("T", "-")
    .replace(/\.\d+Z$/, "Z");
}

function checkPrerequisites(): void {
  const missing: string[] = [];
  if (!existsSync(WASM_PATH)) missing.push("build/plugin.wasm (make build)");
  try {
    execFileSync("wrk", ["-v"], { stdio: "ignore" });
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") missing.push("wrk (bash tests/bench/install-deps.sh)");
  }
  if (nginxBinary() === null) missing.push("nginx (bash tests/bench/install-deps.sh)");
  if (missing.length > 0) throw new Error(`bench: missing ${missing.join(", ")}`);
}

// Envoy on one core, everything else (wrk, backends, this process and its streaming client) on the
// other: the load generator cannot steal Envoy's CPU, and each side's use is measured.
function planCpu(opts: BenchOptions): { envoyCores: string | null; text: string } {
  const n = cpuCount();
  if (!opts.pin || n < 2 || !tasksetAvailable()) {
    return {
      envoyCores: null,
      text: `Not pinned (${!opts.pin ? "BENCH_PIN=0" : n < 2 ? "one core" : "no taskset"}): the scheduler shares ${n} core(s) among Envoy, wrk, the backends and the client.`,
    };
  }
  pin(process.pid, opts.loadCores);
  return {
    envoyCores: opts.envoyCores,
    text:
      `Pinned with taskset: every Envoy thread (--concurrency 1: one worker, plus the main and helper threads) on core ${opts.envoyCores}; ` +
      `wrk (one thread), the backend (nginx, one process / the vLLM stubs) and this Node process (streaming client, probes) on core ${opts.loadCores}. ` +
      "Start-up timings run unpinned Envoys on an idle machine.",
  };
}

export async function runBench(opts: BenchOptions, log: (m: string) => void = (m) => process.stdout.write(m + "\n")): Promise<BenchOutput> {
  checkPrerequisites();
  const started = new Date();
  const t0 = process.hrtime.bigint();
  const dir = join(opts.outRoot, `bench-${stampOf(started)}`);
  mkdirSync(dir, { recursive: true });
  const workDir = mkdtempSync(join(tmpdir(), "llm-gw-bench-"));
  const cpu = planCpu(opts);
  const errors: string[] = [];
  const failed: string[] = [];
  const attempt = async <T>(name: string, f: () => Promise<T>): Promise<T | null> => {
    try {
      return await f();
    } catch (e) {
      const msg = `${name}: ${String((e as Error).stack ?? e)}`;
      errors.push(msg);
      failed.push(name);
      log(`  FAILED ${msg.split("\n")[0] ?? ""}`);
      return null;
    }
  };

  log(`bench: ${opts.smoke ? "SMOKE " : ""}run into ${relative(ROOT, dir) || dir}`);
  log(`  ${cpu.text}`);
  // Measure one plugin build throughout, even if build/plugin.wasm is rebuilt meanwhile.
  const plugin = join(workDir, "plugin.wasm");
  copyFileSync(WASM_PATH, plugin);
  const probes = buildProbes(plugin);
  const ctx: BenchContext = { opts, workDir, probes, envoyCores: cpu.envoyCores, log };
  const nonStreaming: NonStreamingRepeat[] = [];
  const streaming: StreamingRepeat[] = [];
  const bodySize: BodySizeRepeat[] = [];
  let raw: RawResults | null = null;
  let backend: FixedBackend | null = null;
  try {
    log("calibrating the fixed-response backend");
    const calibration = (await attempt("calibration", () => calibrateBackends(ctx))) ?? { runs: [], chosen: "nginx" };
    backend = await startChosen(calibration.chosen);
    const withPerf = opts.perf && perfAvailable();
    for (let i = 0; i < opts.repeats; i++) {
      log(`repeat ${i + 1}/${opts.repeats}`);
      const b = backend;
      const n = await attempt(`non-streaming #${i + 1}`, () => nonStreamingRepeat(ctx, i, b, withPerf && i === 0));
      if (n !== null) nonStreaming.push(n);
      const s = await attempt(`body size #${i + 1}`, () => bodySizeRepeat(ctx, i, b));
      if (s !== null) bodySize.push(s);
      const t = await attempt(`streaming #${i + 1}`, () => streamingRepeat(ctx, i));
      if (t !== null) streaming.push(t);
    }
    log("memory");
    const b = backend;
    const memory = await attempt("memory", () => memorySection(ctx, b));
    log("quota check");
    const quota = await attempt("quota", () => quotaSection(ctx, b));
    await backend.stop();
    backend = null;
    log("TTFT through a fallback");
    const fallback = await attempt("fallback", () => fallbackSection(ctx));
    log("start-up");
    const startup = await attempt("start-up", () => startupSection(ctx));
    log("parsers in V8 (Node)");
    const profile = await attempt("profile", () => profileSection(ctx));
    log("the plugin in V8 with a mock host (Node)");
    const pluginNode = await attempt("plugin in V8", () => runPluginNode(ctx));
    raw = {
      schema: SCHEMA,
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      durationS: Number(process.hrtime.bigint() - t0) / 1e9,
      machine: machine(),
      plugin: { ...wasmFile(plugin), path: "build/plugin.wasm" },
      options: opts,
      cpuPlan: cpu.text,
      probeErrors: probes.errors,
      calibration,
      nonStreaming,
      streaming,
      bodySize,
      memory,
      startup,
      profile,
      pluginNode,
      fallback,
      quota,
      errors,
    };
  } finally {
    if (backend !== null) await backend.stop();
    rmSync(workDir, { recursive: true, force: true });
  }

  if (raw === null) throw new Error("bench: no results");
  const summary = summarize(raw);
  const json = join(dir, "results.json");
  writeFileSync(json, JSON.stringify({ ...raw, summary }, null, 2) + "\n");
  const chart = join(dir, "chart.png");
  const py = join(ROOT, ".venv/bin/python");
  const drawn = spawnSync(existsSync(py) ? py : "python3", [join(ROOT, "tests/bench/chart.py"), json, chart], {
    encoding: "utf8",
    timeout: 120000,
  });
  const chartOk = drawn.status === 0 && existsSync(chart);
  if (!chartOk) {
    errors.push(`chart: ${(drawn.stderr || drawn.error?.message || "failed").trim().split("\n").pop() ?? ""}`);
    writeFileSync(json, JSON.stringify({ ...raw, summary }, null, 2) + "\n");
  }
  const report = join(dir, "report.md");
  writeFileSync(report, renderReport(raw, summary, chartOk ? "chart.png" : null));
  for (const t of summary.targets) log(`  ${t.met === null ? "n/a " : t.met ? "met " : "MISS"} ${t.id}: ${t.measured}`);
  log(`bench: report ${relative(ROOT, report) || report}`);
  return { dir, report, json, chart: chartOk ? chart : null, failed };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Ctrl-C / SIGTERM: exit through process.exit so the harness's and our exit hooks stop Envoy,
  // the backends and wrk.
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => process.exit(130));
  process.setMaxListeners(64); // the harness adds an exit hook per Envoy it starts
  runBench(benchOptions()).then(
    (out) => {
      process.exit(out.failed.length > 0 ? 1 : 0);
    },
    (e: unknown) => {
      process.stderr.write(`${String((e as Error).stack ?? e)}\n`);
      process.exit(2);
    },
  );
}
