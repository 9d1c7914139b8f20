// Quotas without a host: configuration checks, windows and reset texts, the ticket's decisions and
// headers, and the rate-limit service's protobuf messages (including hostile bytes, which must never trap).
import { parseConfig } from "../../assembly/plugin/config/gateway-config";
import { KIND_REQUESTS, KIND_TOTAL, QuotaRule } from "../../assembly/plugin/config/quota-policy";
import { admissionRequest, admitFromResponse } from "../../assembly/plugin/quota/cluster-store";
import { readRlsResponse } from "../../assembly/plugin/quota/rls-proto";
import { AppliedRule, QuotaTicket } from "../../assembly/plugin/quota/ticket";
import { resetMs, resetText, windowStartSec } from "../../assembly/plugin/quota/window";
import { ProtoReader, ProtoWriter } from "../../assembly/util/protobuf";
import { bytesOf, hold } from "./helpers";

function refusal(text: string): string {
  const res = parseConfig(text);
  return res.error;
}

function rulesOf(text: string): Array<QuotaRule> {
  const res = parseConfig(text);
  expect<string>(res.error).toBe("", text);
  return res.config!.global.quotas.rules;
}

const M = '"models":[{"name":"qwen"}],';

describe("quota configuration", () => {
  it("reads rules with their defaults", () => {
    const rules = rulesOf(
      "{" + M + '"quotas":{"rules":[{"name":"team-a","consumerHeader":"x-mse-consumer","totalTokens":1000,"window":"hour"}]}}',
    );
    expect<i32>(rules.length).toBe(1);
    expect<i64>(rules[0].windowSeconds).toBe(3600);
    expect<i64>(rules[0].limits[KIND_TOTAL]).toBe(1000);
    expect<i64>(rules[0].limits[KIND_REQUESTS]).toBe(0);
    expect<bool>(rules[0].models.matches("anything")).toBe(true);
  });

  it("refuses rules without a limit, duplicate names, odd names and a missing service", () => {
    expect<string>(refusal("{" + M + '"quotas":{"rules":[{"name":"a"}]}}')).toBe(
      "quotas.rules[0]: sets no limit: give requests, inputTokens, outputTokens or totalTokens",
    );
    expect<string>(refusal("{" + M + '"quotas":{"rules":[{"name":"a","requests":1},{"name":"a","requests":2}]}}')).toBe(
      "quotas.rules[1].name: duplicate rule name a",
    );
    expect<string>(refusal("{" + M + '"quotas":{"rules":[{"name":"a b","requests":1}]}}')).toBe(
      "quotas.rules[0].name: must be 1 to 64 letters, digits, '.', '_' or '-'",
    );
    expect<string>(refusal("{" + M + '"quotas":{"mode":"cluster","rules":[{"name":"a","requests":1}]}}')).toBe(
      "quotas.service.cluster: is required when quotas.mode is cluster",
    );
    expect<string>(refusal("{" + M + '"quotas":{"rules":[{"name":"a","requests":-1}]}}')).toBe(
      "quotas.rules[0].requests: must be an integer between 0 and 4294967295, got -1",
    );
    expect<string>(refusal("{" + M + '"quotas":{"rules":[{"name":"a","requests":1,"colour":1}]}}')).toBe(
      "quotas.rules[0].colour: unknown field (known: name, consumerHeader, apiKeyHeader, models, perModel, window, requests, inputTokens, outputTokens, totalTokens)",
    );
  });
});

describe("quota windows", () => {
  it("align to the clock and say their reset as OpenAI does", () => {
    expect<i64>(windowStartSec(125_500, 60)).toBe(120);
    expect<i64>(resetMs(125_500, 60)).toBe(54_500);
    expect<string>(resetText(250)).toBe("250ms");
    expect<string>(resetText(12_000)).toBe("12s");
    expect<string>(resetText(11_001)).toBe("12s");
    expect<string>(resetText(90_000)).toBe("1m30s");
    expect<string>(resetText(360_000)).toBe("6m0s");
    expect<string>(resetText(3_600_000)).toBe("1h0m0s");
  });
});

function rule(name: string, requests: i64, total: i64): QuotaRule {
  const r = new QuotaRule();
  r.name = name;
  r.window = "minute";
  r.windowSeconds = 60;
  r.limits[KIND_REQUESTS] = requests;
  r.limits[KIND_TOTAL] = total;
  return r;
}

function header(t: QuotaTicket, name: string): string {
  const h = t.headers();
  for (let i = 0; i < h.length; i++) if (h[i].key == name) return h[i].value;
  return "(absent)";
}

describe("quota ticket", () => {
  it("admits under the limits and reports the tightest of each family", () => {
    const t = new QuotaTicket("qwen");
    const a = new AppliedRule(rule("a", 10, 1000), "alice", "");
    const b = new AppliedRule(rule("b", 100, 500), "alice", "");
    t.applied.push(a);
    t.applied.push(b);
    expect<bool>(t.note(a, KIND_REQUESTS, 3, 30_000)).toBe(true);
    expect<bool>(t.note(a, KIND_TOTAL, 100, 30_000)).toBe(true);
    expect<bool>(t.note(b, KIND_REQUESTS, 3, 30_000)).toBe(true);
    expect<bool>(t.note(b, KIND_TOTAL, 450, 30_000)).toBe(true);
    expect<string>(header(t, "x-ratelimit-limit-requests")).toBe("10");
    expect<string>(header(t, "x-ratelimit-remaining-requests")).toBe("7");
    expect<string>(header(t, "x-ratelimit-limit-tokens")).toBe("500");
    expect<string>(header(t, "x-ratelimit-remaining-tokens")).toBe("50");
    expect<string>(header(t, "x-ratelimit-reset-tokens")).toBe("30s");
    expect<string>(header(t, "retry-after")).toBe("(absent)");
    expect<bool>(t.refusal == null).toBe(true);
  });

  it("refuses when tokens reached the limit or requests passed it, and says which", () => {
    const t = new QuotaTicket("qwen");
    const a = new AppliedRule(rule("team-a", 0, 1000), "alice", "");
    expect<bool>(t.note(a, KIND_TOTAL, 1000, 1500)).toBe(false);
    expect<string>(t.refusalReply().body()).toBe(
      '{"error":{"message":"Rate limit reached for qwen on total_tokens per minute (rule team-a): limit 1000, used 1000. Please try again in 2s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}',
    );
    expect<u32>(t.refusalReply().status).toBe(429);
    expect<string>(header(t, "x-ratelimit-remaining-tokens")).toBe("0");
    expect<string>(header(t, "retry-after")).toBe("2");
    expect<string>(header(t, "retry-after-ms")).toBe("1500");
    const r = new QuotaTicket("qwen");
    const b = new AppliedRule(rule("rpm", 2, 0), "bob", "");
    expect<bool>(r.note(b, KIND_REQUESTS, 2, 1000)).toBe(true);
    expect<bool>(r.note(b, KIND_REQUESTS, 3, 1000)).toBe(false);
    expect<bool>(r.refusalReply().body().includes('"type":"requests"')).toBe(true);
  });
});

describe("rate-limit service messages", () => {
  it("encode one descriptor per limited kind, with limit overrides and hits_addend", () => {
    const rules = rulesOf(
      "{" +
        M +
        '"quotas":{"mode":"cluster","service":{"cluster":"rls"},"rules":[{"name":"a","requests":5,"totalTokens":100,"perModel":true}]}}',
    );
    const t = new QuotaTicket("qwen");
    t.applied.push(new AppliedRule(rules[0], "k-0011", "qwen"));
    const cfg = parseConfig("{" + M + '"quotas":{"mode":"cluster","service":{"cluster":"rls"},"rules":[{"name":"a","requests":5}]}}')
      .config!.global.quotas;
    const msg = admissionRequest(cfg, t);
    const p = hold(msg);
    const r = new ProtoReader(p, 0, msg.byteLength);
    let domain = "";
    let descriptors = 0;
    while (r.next()) {
      if (r.field == 1) domain = String.UTF8.decodeUnsafe(p + <usize>r.start, <usize>(r.stop - r.start));
      if (r.field == 2) descriptors++;
    }
    expect<bool>(r.bad).toBe(false);
    expect<string>(domain).toBe("llm-gateway");
    expect<i32>(descriptors).toBe(2);
    expect<i32>(t.sent.length).toBe(2);
  });

  it("read statuses, and turn them into decisions", () => {
    // overall OVER_LIMIT; statuses: requests OK remaining 4; tokens OVER_LIMIT remaining 0, reset 42.5 s
    const w = new ProtoWriter().uint(1, 2);
    w.message(2, new ProtoWriter().uint(1, 1).uint(3, 4).message(4, new ProtoWriter().uint(1, 42).uint(2, 500_000_000)));
    w.message(2, new ProtoWriter().uint(1, 2).uint(3, 0));
    const msg = w.finish();
    const resp = readRlsResponse(hold(msg), msg.byteLength);
    expect<bool>(resp.bad).toBe(false);
    expect<u32>(resp.overall).toBe(2);
    expect<i32>(resp.statuses.length).toBe(2);
    expect<i64>(resp.statuses[0].resetMs).toBe(42_500);
    const t = new QuotaTicket("qwen");
    const a = new AppliedRule(rule("a", 5, 100), "x", "");
    t.applied.push(a);
    t.sent.push(0 * 4 + KIND_REQUESTS);
    t.sent.push(0 * 4 + KIND_TOTAL);
    expect<bool>(admitFromResponse(t, resp, 0)).toBe(false);
    expect<i32>(t.refusal!.kind).toBe(KIND_TOTAL);
    expect<string>(header(t, "x-ratelimit-remaining-requests")).toBe("4");
  });

  it("never trap on hostile bytes", () => {
    const cases: Array<Array<i32>> = [
      [0x12, 0xff, 0xff, 0xff, 0xff, 0x0f], // a length far past the end
      [0x12, 0x05, 0x08], // a nested message cut short
      [0x08], // a varint cut short
      [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // a varint too long
      [0x0b, 0x00], // a group start (unsupported wire type)
      [0x12, 0x02, 0x22, 0x7f], // a duration whose length is past its parent
      [],
    ];
    for (let i = 0; i < cases.length; i++) {
      const b = bytesOf(cases[i]);
      const r = readRlsResponse(hold(b), b.byteLength);
      expect<bool>(r.bad || r.overall == 0).toBe(true, "case " + i.toString());
    }
    // and random bytes
    let seed: u32 = 12345;
    for (let n = 0; n < 2000; n++) {
      const len = <i32>(seed % 40);
      const vals = new Array<i32>(len);
      for (let i = 0; i < len; i++) {
        seed = seed * 1103515245 + 12345;
        vals[i] = <i32>((seed >> 16) & 0xff);
      }
      const b = bytesOf(vals);
      readRlsResponse(hold(b), b.byteLength);
    }
    expect<bool>(true).toBe(true);
  });
});
