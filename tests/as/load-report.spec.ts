// vLLM's load report (assembly/plugin/routing/load-report.ts, its numbers read by util/digits.ts
// parseDecimal) and the replica table's stored form
// (replica-table.ts decode): exact values for what vLLM prints, null or skipped lines for anything else.
import { parseLoadReport } from "../../assembly/plugin/routing/load-report";
import { parseDecimal } from "../../assembly/util/digits";
import { decode } from "../../assembly/plugin/routing/replica-table";

function dec(s: string): f64 {
  return parseDecimal(s, 0, s.length);
}

describe("load report", () => {
  it("reads vLLM's TEXT report", () => {
    const r = parseLoadReport("TEXT named_metrics.kv_cache_usage_perc=0.25, named_metrics.num_requests_waiting=3.0")!;
    expect<i32>(r.kvPermille).toBe(250);
    expect<i32>(r.waiting).toBe(3);
  });
  it("takes either metric alone, in any order, ignoring others", () => {
    const r = parseLoadReport("TEXT cpu_utilization=0.3, named_metrics.num_requests_waiting=7.0")!;
    expect<i32>(r.waiting).toBe(7);
    expect<i32>(r.kvPermille).toBe(0);
    expect<i32>(parseLoadReport("TEXT named_metrics.kv_cache_usage_perc=1e-05")!.kvPermille).toBe(0);
    expect<i32>(parseLoadReport("TEXT named_metrics.kv_cache_usage_perc=0.9996")!.kvPermille).toBe(1000);
  });
  it("refuses what is not a TEXT report with one of them", () => {
    expect<bool>(parseLoadReport("") == null).toBe(true);
    expect<bool>(parseLoadReport("TEXT") == null).toBe(true);
    expect<bool>(parseLoadReport('JSON {"named_metrics": {"num_requests_waiting": 1.0}}') == null).toBe(true);
    expect<bool>(parseLoadReport("TEXT named_metrics.num_requests_waiting=x") == null).toBe(true);
    expect<bool>(parseLoadReport("TEXT named_metrics.num_requests_waiting=-1.0") == null).toBe(true);
    expect<bool>(parseLoadReport("TEXT ,,,==, =") == null).toBe(true);
  });
  it("clamps huge values", () => {
    const r = parseLoadReport("TEXT named_metrics.num_requests_waiting=1e999, named_metrics.kv_cache_usage_perc=7.5")!;
    expect<i32>(r.waiting).toBe(1000000000);
    expect<i32>(r.kvPermille).toBe(1000);
  });
  it("parses decimals as Python prints them", () => {
    expect<f64>(dec("0.0")).toBe(0);
    expect<f64>(dec("3")).toBe(3);
    expect<f64>(dec(" 2.5E+3 ")).toBe(2500);
    expect<f64>(dec("1e-05")).toBeCloseTo(0.00001);
    expect<bool>(Math.abs(dec("123456789012345678901234") / 1.2345678901234568e23 - 1) < 1e-12).toBe(true);
    expect<bool>(isNaN(dec(""))).toBe(true);
    expect<bool>(isNaN(dec("."))).toBe(true);
    expect<bool>(isNaN(dec("1e"))).toBe(true);
    expect<bool>(isNaN(dec("1.2.3"))).toBe(true);
    expect<bool>(isNaN(dec("nan"))).toBe(true);
  });
});

describe("replica table", () => {
  it("reads back its lines and skips the ones that do not", () => {
    const t = decode(
      "10.0.0.1:8080 0 250 1700000000000 1700000000001 0 1699999999000\nbad line\n10.0.0.2:8080 x 1 2 3 4 5\n" +
        "[::1]:80 2 1001 5 5 5 5\n[::1]:81 2 999 5 6 7 8\n10.0.0.3:1 0 0 1\n",
    );
    expect<i32>(t.length).toBe(2);
    expect<string>(t[0].address).toBe("10.0.0.1:8080");
    expect<i32>(t[0].kvPermille).toBe(250);
    expect<i64>(t[0].seenMs).toBe(1700000000000);
    expect<i64>(t[0].loadMs).toBe(1700000000001);
    expect<i64>(t[1].scrapedMs).toBe(7);
    expect<i64>(t[1].addedMs).toBe(8);
    expect<string>(t[1].address).toBe("[::1]:81");
    expect<i32>(t[1].waiting).toBe(2);
  });
});
