// The `quotas` object in its runtime form: rules checked at configure time (unique names, a limit
// each, a service cluster in cluster mode), windows in seconds.
import { JsonValue } from "../../json/value";
import { JsonType } from "../../json/reader";
import { ModelPatterns } from "./model-patterns";
import { Checker, Settings, defaultSettings, describe, joinPath, readObject } from "./settings";

export const QUOTA_LOCAL = "local";
export const QUOTA_CLUSTER = "cluster";

// What a limit counts; indexes QuotaRule.limits and KIND_NAMES.
export const KIND_REQUESTS: i32 = 0;
export const KIND_INPUT: i32 = 1;
export const KIND_OUTPUT: i32 = 2;
export const KIND_TOTAL: i32 = 3;
export const KINDS: i32 = 4;
// As they appear in refusals and in the rate-limit service's descriptors.
export const KIND_NAMES: StaticArray<string> = ["requests", "input_tokens", "output_tokens", "total_tokens"];

export class QuotaRule {
  name: string = "";
  consumerHeader: string = "";
  apiKeyHeader: string = "";
  models: ModelPatterns = new ModelPatterns([]);
  perModel: bool = false;
  window: string = "";
  windowSeconds: i64 = 0;
  // Per kind; 0 = no limit of that kind.
  limits: StaticArray<i64> = new StaticArray<i64>(KINDS);

  limitsTokens(): bool {
    return this.limits[KIND_INPUT] > 0 || this.limits[KIND_OUTPUT] > 0 || this.limits[KIND_TOTAL] > 0;
  }
}

export class QuotaPolicy {
  mode: string = QUOTA_LOCAL;
  localSlots: i32 = 0;
  cluster: string = "";
  domain: string = "";
  timeoutMs: u32 = 0;
  denyWhenUnavailable: bool = false;
  rules: Array<QuotaRule> = new Array<QuotaRule>();

  get enabled(): bool {
    return this.rules.length > 0;
  }
}

export function windowSeconds(window: string): i64 {
  if (window == "second") return 1;
  if (window == "hour") return 3600;
  if (window == "day") return 86400;
  return 60;
}

const LIMIT_KEYS: StaticArray<string> = [
  "quotas.rules[].requests",
  "quotas.rules[].inputTokens",
  "quotas.rules[].outputTokens",
  "quotas.rules[].totalTokens",
];

function isRuleName(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d;
    if (!ok) return false;
  }
  return s.length > 0 && s.length <= 64;
}

function compileRule(c: Checker, v: JsonValue, path: string): QuotaRule {
  const r = new QuotaRule();
  if (v.type != JsonType.Object) {
    c.fail(path, "must be an object, got " + describe(v));
    return r;
  }
  const s = defaultSettings().copy();
  readObject(c, v, s, "quotas.rules[]", path);
  r.name = s.text("quotas.rules[].name");
  if (r.name.length > 0 && !isRuleName(r.name)) c.fail(path + ".name", "must be 1 to 64 letters, digits, '.', '_' or '-'");
  r.consumerHeader = s.text("quotas.rules[].consumerHeader");
  r.apiKeyHeader = s.text("quotas.rules[].apiKeyHeader");
  r.models = new ModelPatterns(s.textList("quotas.rules[].models"));
  r.perModel = s.flag("quotas.rules[].perModel");
  r.window = s.text("quotas.rules[].window");
  r.windowSeconds = windowSeconds(r.window);
  let any = false;
  for (let k = 0; k < KINDS; k++) {
    const n = s.int(LIMIT_KEYS[k]);
    r.limits[k] = n;
    if (n > 0) any = true;
  }
  if (!any) c.fail(path, "sets no limit: give requests, inputTokens, outputTokens or totalTokens");
  return r;
}

export function compileQuotas(c: Checker, s: Settings, path: string): QuotaPolicy {
  const p = new QuotaPolicy();
  p.mode = s.text("quotas.mode");
  p.localSlots = <i32>s.int("quotas.localSlots");
  p.cluster = s.text("quotas.service.cluster");
  p.domain = s.text("quotas.service.domain");
  p.timeoutMs = <u32>s.int("quotas.service.timeoutMs");
  p.denyWhenUnavailable = s.text("quotas.service.onUnavailable") == "deny";
  const items = s.items("quotas.rules");
  const rpath = joinPath(path, "quotas.rules");
  for (let i = 0; i < items.length; i++) {
    const at = rpath + "[" + i.toString() + "]";
    const r = compileRule(c, unchecked(items[i]), at);
    for (let j = 0; j < p.rules.length; j++) {
      if (unchecked(p.rules[j]).name == r.name) c.fail(at + ".name", "duplicate rule name " + r.name);
    }
    p.rules.push(r);
  }
  if (p.mode == QUOTA_CLUSTER && p.rules.length > 0 && p.cluster.length == 0) {
    c.fail(joinPath(path, "quotas.service.cluster"), "is required when quotas.mode is cluster");
  }
  return p;
}
