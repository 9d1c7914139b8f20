// Spec for the ORCA load report header (orca-report.ts): Python's float repr and vLLM's two formats.
// Expected strings are what CPython 3 prints (repr, json.dumps) for the same doubles.
// Run: node --import tsx --test tests/backends/orca-report.test.ts
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { orcaLoadReport, pythonFloatRepr } from "./orca-report.ts";
import { metricsText } from "./vllm-metrics.ts";
import { parsePrometheus } from "../harness/metrics.ts";
import type { ReplicaStats } from "./replica.ts";

describe("pythonFloatRepr", () => {
  it("writes floats as Python's repr does", () => {
    const cases: [number, string][] = [
      [0, "0.0"],
      [-0, "-0.0"],
      [2, "2.0"],
      [3, "3.0"],
      [0.25, "0.25"],
      [0.123456789, "0.123456789"],
      [0.1 + 0.2, "0.30000000000000004"],
      [1 / 3, "0.3333333333333333"],
      [1 - 999 / 1000, "0.0010000000000000009"],
      [0.0001, "0.0001"],
      [0.00001, "1e-05"],
      [2.5e-5, "2.5e-05"],
      [1.5e-7, "1.5e-07"],
      [5e-324, "5e-324"],
      [1e15, "1000000000000000.0"],
      [9999999999999998, "9999999999999998.0"],
      [1e16, "1e+16"],
      [123456789012345678, "1.2345678901234568e+17"],
      [1e22, "1e+22"],
      [-1.5, "-1.5"],
      [NaN, "nan"],
      [Infinity, "inf"],
      [-Infinity, "-inf"],
    ];
    for (const [n, expected] of cases) assert.equal(pythonFloatRepr(n), expected, String(n));
  });
});

describe("orcaLoadReport", () => {
  const stats = { waiting: 3, kvCacheUsage: 0.25 };

  it("TEXT: named_metrics.NAME=repr pairs joined by ', ', waiting first as vLLM's snapshot lists them", () => {
    assert.equal(orcaLoadReport("TEXT", stats), "TEXT named_metrics.num_requests_waiting=3.0, named_metrics.kv_cache_usage_perc=0.25");
    assert.equal(
      orcaLoadReport("text", { waiting: 0, kvCacheUsage: 0.00001 }),
      "TEXT named_metrics.num_requests_waiting=0.0, named_metrics.kv_cache_usage_perc=1e-05",
    );
  });

  it("JSON: json.dumps with its default separators", () => {
    assert.equal(orcaLoadReport("JSON", stats), 'JSON {"named_metrics": {"num_requests_waiting": 3.0, "kv_cache_usage_perc": 0.25}}');
    assert.equal(
      orcaLoadReport("json", { waiting: 0, kvCacheUsage: 0 }),
      'JSON {"named_metrics": {"num_requests_waiting": 0.0, "kv_cache_usage_perc": 0.0}}',
    );
    assert.equal(
      orcaLoadReport("json", { waiting: 0, kvCacheUsage: NaN }),
      'JSON {"named_metrics": {"num_requests_waiting": 0.0, "kv_cache_usage_perc": NaN}}',
    );
  });

  it("compares the format case-insensitively; no report for an absent, empty or unknown format", () => {
    assert.equal(orcaLoadReport("Text", stats), orcaLoadReport("TEXT", stats));
    assert.equal(orcaLoadReport("jSoN", stats), orcaLoadReport("JSON", stats));
    for (const format of [undefined, "", "xml", "proto", " text", "text,json"])
      assert.equal(orcaLoadReport(format, stats), null, String(format));
  });

  it("reports the values /metrics shows for the same gauges", () => {
    const snapshot: ReplicaStats = {
      running: 1,
      waiting: 2,
      kvCacheUsage: 1 - 997 / 1000,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      cachedBlocks: 0,
      requestsStarted: 3,
      requestsFinished: 0,
      preemptions: 0,
      steps: 1,
      busyMs: 5,
    };
    const samples = parsePrometheus(metricsText("m", snapshot, 0));
    const value = (name: string): number | undefined => samples.find((s) => s.name === name)?.value;
    const report = orcaLoadReport("JSON", snapshot);
    assert.ok(report !== null);
    const named = (JSON.parse(report.slice("JSON ".length)) as { named_metrics: Record<string, number> }).named_metrics;
    assert.deepEqual(named, {
      num_requests_waiting: value("vllm:num_requests_waiting"),
      kv_cache_usage_perc: value("vllm:kv_cache_usage_perc"),
    });
  });
});
