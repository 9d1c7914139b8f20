// `make bench-lb` in miniature (8 simulated seconds, no sensitivity runs): it must finish and leave a
// well-formed results.json, report.md and chart.png, with every policy answered. No assertion is about
// which policy wins or how fast: a seconds-long run on a shared machine says nothing about that.
// Run: node --import tsx --test tests/bench/lb/smoke.test.ts
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../harness/envoy.ts";
import { POLICIES } from "./bench-lb.ts";
import type { LbRawResults } from "./report.ts";
import { achievableHitRate, DEFAULT_WORKLOAD, planWorkload } from "./workload.ts";

test("the workload is the same for the same seed, and its achievable hit rate is a share", () => {
  const spec = { ...DEFAULT_WORKLOAD, durationS: 10, rate: 5 };
  const a = planWorkload(spec);
  const b = planWorkload(spec);
  assert.deepEqual(a, b);
  assert.notDeepEqual(planWorkload({ ...spec, seed: spec.seed + 1 }), a);
  const kinds = new Set(a.map((r) => r.kind));
  assert.deepEqual([...kinds].sort(), ["chat", "unique"]);
  // A later turn re-sends the earlier ones: its prompt starts with the first turn's messages.
  const second = a.find((r) => r.kind === "chat" && r.turn === 1);
  const first = a.find((r) => r.kind === "chat" && r.turn === 0 && r.conversation === second?.conversation);
  assert.ok(second !== undefined && first !== undefined);
  assert.deepEqual(second.body.messages.slice(0, first.body.messages.length), first.body.messages);
  const rate = achievableHitRate(a, spec.model);
  assert.ok(rate > 0 && rate < 1, String(rate));
  assert.equal(
    achievableHitRate(
      a.filter((r) => r.kind === "unique"),
      spec.model,
    ),
    0,
    "one-off prompts share nothing",
  );
});

test("bench-lb runs every policy and writes results.json, report.md and chart.png", { timeout: 300_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "bench-lb-smoke-"));
  try {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "tests/bench/lb/bench-lb.ts")], {
        cwd: ROOT,
        env: { ...process.env, BENCH_LB_OUT: out, BENCH_LB_DURATION_S: "8", BENCH_LB_WARMUP_S: "2" },
        stdio: ["ignore", "ignore", "inherit"],
      });
      child.on("exit", resolve);
    });
    assert.equal(code, 0);
    const [dir] = readdirSync(out);
    assert.ok(dir !== undefined && /^lb-\d{8}-\d{6}Z$/.test(dir));
    const raw = JSON.parse(readFileSync(join(out, dir, "results.json"), "utf8")) as LbRawResults;
    assert.deepEqual(
      raw.policies.map((p) => p.policy),
      POLICIES.map((p) => p.name),
    );
    for (const p of raw.policies) {
      assert.equal(p.errors, 0, p.policy);
      assert.ok(p.requests > 0 && Number.isFinite(p.ttft_p90_ms) && p.ttft_p90_ms >= p.ttft_p50_ms, p.policy);
      assert.ok(p.prefix_cache_hit_rate >= 0 && p.prefix_cache_hit_rate <= 1, p.policy);
      assert.ok(p.max_replica_load_ratio >= 1, p.policy);
    }
    assert.ok(raw.workload.achievable_hit_rate > 0 && raw.workload.achievable_hit_rate < 1);
    const report = readFileSync(join(out, dir, "report.md"), "utf8");
    for (const heading of ["## Targets", "## Policies", "## Workload", "## Fidelity"]) assert.ok(report.includes(heading), heading);
    assert.ok(existsSync(join(out, dir, "chart.png")));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
