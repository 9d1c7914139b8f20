// `make bench` in miniature (BENCH_SMOKE=1: every section, tiny durations): it must finish and leave a
// well-formed report.md, results.json and chart.png. No assertion is about speed: figures from a
// seconds-long run on a shared machine mean nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../harness/envoy.ts";
import type { VariantRun } from "./nonstreaming.ts";
import { FALLBACK_BACKUP, FALLBACK_PRIMARY, FALLBACK_SERIES, type FallbackSeries } from "./fallback.ts";
import { FALLBACK_KINDS, SCHEMA, type RawResults, type Summary } from "./summary.ts";
import { QUOTA_VARIANTS } from "./quota.ts";

const TARGET_IDS = ["throughput", "throughput-vs-minimal", "latency", "ttft", "sse-chunk", "linear", "memory", "size", "fallback-ttft"];
const REPORT_HEADINGS = [
  "## CPU split",
  "## Targets",
  "## 1. Non-streaming requests",
  "## 2. Streaming",
  "## 3. Scaling with body size",
  "## 4. Memory",
  "## 5. Start-up and size",
  "## 6. TTFT through a fallback",
  "## 7. Quota check",
  "## What limits the missed targets",
  "## Every repeat",
];

function runSmoke(out: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "tests/bench/bench.ts")], {
      cwd: ROOT,
      env: { ...process.env, BENCH_SMOKE: "1", BENCH_OUT: out },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), 240_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test("a smoke run of the benchmark writes a well-formed report, results.json and chart", { timeout: 300_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "llm-gw-bench-smoke-"));
  try {
    const { code, output } = await runSmoke(out);
    assert.equal(code, 0, `bench exited ${String(code)}:\n${output.slice(-6000)}`);
    const runs = readdirSync(out).filter((d) => d.startsWith("bench-"));
    assert.equal(runs.length, 1, `one run folder in ${out}: ${runs.join(", ")}`);
    const dir = join(out, runs[0] ?? "");
    assert.match(output, /bench: report .*report\.md/);

    const results = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as RawResults & { summary: Summary };
    assert.equal(results.schema, SCHEMA);
    assert.equal(results.options.smoke, true);
    assert.deepEqual(results.errors, [], "no section failed");
    assert.ok(results.plugin.bytes > 0 && /^[0-9a-f]{64}$/.test(results.plugin.sha256), "the measured plugin is named");
    assert.ok(results.machine.nproc >= 1 && results.machine.cpuModel.length > 0);

    // Section 1: both ends of the comparison ran and every request succeeded.
    const ns = results.nonStreaming[0];
    assert.ok(ns !== undefined, "non-streaming ran");
    for (const v of ["plain", "plugin"] as const) {
      const run: VariantRun | undefined = ns.runs[v];
      assert.ok(run !== undefined, `non-streaming ${v} ran`);
      assert.ok(run.saturation.requests > 0 && run.latency.requests > 0, `${v} served requests`);
      assert.equal(run.saturation.errors + run.latency.errors, 0, `${v}: no failed requests`);
    }
    // Section 2: TTFT from every target, tokens from every concurrency.
    const st = results.streaming[0];
    assert.ok(st !== undefined, "streaming ran");
    for (const t of ["direct", "plain", "plugin"] as const) {
      assert.ok((st.ttft[t]?.n ?? 0) > 0, `TTFT samples for ${t}`);
      assert.equal(st.ttft[t]?.failures, 0, `no failed streams for ${t}`);
    }
    assert.deepEqual(
      st.load.map((l) => l.concurrency),
      results.options.concurrencies,
    );
    for (const l of st.load) assert.ok((l.runs.plugin?.tokens ?? 0) > 0, `tokens through the plugin at ${l.concurrency}`);
    // Section 3: every size measured with and without the plugin.
    assert.deepEqual(
      results.bodySize[0]?.points.map((p) => p.bytes),
      results.options.sizes,
    );
    for (const p of results.bodySize[0]?.points ?? [])
      assert.ok((p.runs.plugin?.latency.requests ?? 0) > 0 && (p.runs.plain?.latency.requests ?? 0) > 0);
    // Section 4: readings after start, warm-up and each checkpoint, the last one past its count.
    const cps = results.memory?.checkpoints ?? [];
    assert.equal(cps.length, 2 + results.options.memoryCheckpoints.length);
    assert.ok((cps[cps.length - 1]?.requests ?? 0) >= (results.options.memoryCheckpoints.at(-1) ?? Infinity));
    assert.ok(cps.every((c) => c.rssBytes > 0));
    // Section 5 and the V8 runs.
    assert.ok((results.startup?.envoy.length ?? 0) > 0 && (results.startup?.v8.length ?? 0) > 0);
    assert.ok((results.profile?.points.length ?? 0) > 0 && results.pluginNode !== null);
    assert.equal(results.pluginNode?.checks.routedTo, "qwen2-1-5b", "the plugin routed the mock host's request");
    // Section 6 (its fast variant: BENCH_SMOKE's few streams, short TTFT): every stream of every series
    // answered with content by the backup, the fallback series through a failed primary attempt.
    const fb = results.fallback;
    assert.ok(fb !== null, "the fallback section ran");
    assert.equal(fb.requestsPerSeries, results.options.fallbackRequests);
    for (const name of FALLBACK_SERIES) {
      const x: FallbackSeries = fb.series[name];
      assert.equal(x.sent, fb.requestsPerSeries, `${name}: every stream sent`);
      assert.equal(x.errors, 0, `${name}: no failed stream`);
      assert.equal(x.notFromBackup, 0, `${name}: served by ${FALLBACK_BACKUP}`);
      assert.equal(x.n, x.sent, `${name}: every stream timed`);
      assert.equal(x.fallbackFrom, name === "backup" ? 0 : x.sent, `${name}: x-llm-gateway-fallback-from`);
    }
    assert.equal(fb.primaryAttempts.received, fb.primaryAttempts.expected, "every 503 stream tried the primary first");
    const counters = fb.envoyCounters.afterPhase2;
    assert.ok(
      (counters[`fallback.to.${FALLBACK_BACKUP}.reason.status_503`] ?? 0) >= fb.requestsPerSeries,
      "the plugin counted the 503 fallbacks",
    );
    assert.ok(
      (counters[`fallback.to.${FALLBACK_BACKUP}.reason.upstream_unreachable`] ?? 0) >= fb.requestsPerSeries,
      "and the refused ones",
    );
    assert.ok((counters[`${FALLBACK_PRIMARY}.upstream_cx_connect_fail`] ?? 0) >= fb.requestsPerSeries, "Envoy saw the refused connections");
    const fs = results.summary.fallback;
    assert.ok(fs !== null && fs.allFellBack && fs.primaryTriedFirst && fs.errors === 0);
    for (const k of FALLBACK_KINDS)
      assert.ok(Number.isFinite(fs.addedMs[k].p50) && Number.isFinite(fs.addedMs[k].p95), `added TTFT for ${k}`);
    // Section 7: every variant ran without a failed request, and every request was checked and charged.
    for (const v of QUOTA_VARIANTS) {
      const q = results.quota?.runs[v];
      assert.ok(q !== undefined && q.saturation.requests > 0, `quota ${v} ran`);
      assert.equal(q.saturation.errors + q.latency.errors, 0, `quota ${v}: no failed requests`);
      if (v !== "none")
        assert.ok(
          Object.values(results.quota?.counters[v] ?? { missing: 1 }).every((n) => n === 0),
          `quota ${v}: nothing unchecked`,
        );
    }

    assert.deepEqual(
      results.summary.targets.map((t) => t.id),
      TARGET_IDS,
    );
    const report = readFileSync(join(dir, "report.md"), "utf8");
    for (const h of REPORT_HEADINGS) assert.ok(report.includes(`\n${h}\n`), `report has "${h}"`);
    for (const id of TARGET_IDS) assert.match(report, new RegExp(`^\\| ${id} \\| .* \\| (yes|\\*\\*no\\*\\*|n/a) \\|$`, "m"));
    assert.ok(report.includes("![latency percentiles and ratios](chart.png)"));
    assert.doesNotMatch(report, /undefined|\[object Object\]/);

    const chart = join(dir, "chart.png");
    assert.ok(existsSync(chart), "chart.png written");
    const png = readFileSync(chart);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG");
    assert.ok(png.length > 20_000, "the chart has content");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
