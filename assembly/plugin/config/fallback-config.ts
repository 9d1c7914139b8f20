// The `fallback` object of the configuration, read into a FallbackPolicy (fallback.ts).
import { JsonValue } from "../../json/value";
import { JsonType } from "../../json/reader";
import { Checker, describe, readBoolField, readInt, readString, unknownKeys } from "./checker";
import { FallbackPolicy, MECHANISM_DISPATCH, MECHANISM_ENVOY, StatusTrigger } from "../fallback/policy";
import { jsonString } from "../../json/writer";
import { parseDigits } from "../../util/digits";

export const FALLBACK_KEYS: Array<string> = ["enabled", "mechanism", "onStatus", "onUpstreamUnreachable", "maxAttempts", "attemptTimeoutMs",
  "slowFailureMs", "firstByteTimeoutMs", "cooldown", "clusterTemplate"];

export const COOLDOWN_KEYS: Array<string> = ["failures", "windowMs", "durationMs"];

// "5xx" (a class), or a status code as a number or a string ("503", 429).
function parseTrigger(c: Checker, v: JsonValue, path: string): StatusTrigger | null {
  if (v.type == JsonType.Number && v.isInteger && v.numValue >= 100 && v.numValue <= 599) return new StatusTrigger(<i32>v.numValue, false);
  if (v.type == JsonType.String) {
    const s = v.strValue;
    if (s.length == 3 && s.endsWith("xx")) {
      const d = s.charCodeAt(0) - 0x30;
      if (d >= 1 && d <= 5) return new StatusTrigger(d, true);
    }
    if (s.length == 3) {
      const n = <i32>parseDigits(s);
      if (n >= 100 && n <= 599) return new StatusTrigger(n, false);
    }
  }
  c.fail(path, "must be a status code (e.g. 503) or a class (e.g. \"5xx\"), got " + describe(v));
  return null;
}

export function parseFallback(c: Checker, v: JsonValue, base: FallbackPolicy, path: string): FallbackPolicy {
  const p = new FallbackPolicy();
  p.enabled = base.enabled;
  p.mechanism = base.mechanism;
  p.onStatus = base.onStatus;
  p.onLocalReply = base.onLocalReply;
  p.maxAttempts = base.maxAttempts;
  p.attemptTimeoutMs = base.attemptTimeoutMs;
  p.slowFailureMs = base.slowFailureMs;
  p.firstByteTimeoutMs = base.firstByteTimeoutMs;
  p.cooldownFailures = base.cooldownFailures;
  p.cooldownWindowMs = base.cooldownWindowMs;
  p.cooldownMs = base.cooldownMs;
  p.clusterTemplate = base.clusterTemplate;
  if (v.type != JsonType.Object) { c.fail(path, "must be an object, got " + describe(v)); return p; }
  unknownKeys(c, v, path, FALLBACK_KEYS);
  p.enabled = readBoolField(c, v, path + ".", "enabled", p.enabled);
  p.onLocalReply = readBoolField(c, v, path + ".", "onUpstreamUnreachable", p.onLocalReply);
  const os = v.get("onStatus");
  if (os != null) {
    if (os.type != JsonType.Array) c.fail(path + ".onStatus", "must be an array, got " + describe(os));
    else {
      const triggers = new Array<StatusTrigger>();
      for (let i = 0; i < os.items.length; i++) {
        const t = parseTrigger(c, unchecked(os.items[i]), path + ".onStatus[" + i.toString() + "]");
        if (t != null) triggers.push(t);
      }
      p.onStatus = triggers;
    }
  }
  p.maxAttempts = <i32>readInt(c, v, path, "maxAttempts", 1, 10, p.maxAttempts);
  p.attemptTimeoutMs = <u32>readInt(c, v, path, "attemptTimeoutMs", 1, 3600000, p.attemptTimeoutMs);
  p.slowFailureMs = readInt(c, v, path, "slowFailureMs", 0, 3600000, p.slowFailureMs);
  p.firstByteTimeoutMs = readInt(c, v, path, "firstByteTimeoutMs", 0, 3600000, p.firstByteTimeoutMs);
  const mech = v.get("mechanism");
  if (mech != null) {
    p.mechanism = readString(c, mech, path + ".mechanism", false);
    if (p.mechanism != MECHANISM_ENVOY && p.mechanism != MECHANISM_DISPATCH) {
      c.fail(path + ".mechanism", "must be \"envoy\" or \"dispatch\", got " + jsonString(p.mechanism));
    }
  }
  const ct = v.get("clusterTemplate");
  if (ct != null) p.clusterTemplate = readString(c, ct, path + ".clusterTemplate", false);
  const cd = v.get("cooldown");
  if (cd != null) {
    if (cd.type != JsonType.Object) c.fail(path + ".cooldown", "must be an object, got " + describe(cd));
    else {
      unknownKeys(c, cd, path + ".cooldown", COOLDOWN_KEYS);
      p.cooldownFailures = <i32>readInt(c, cd, path + ".cooldown", "failures", 0, 1000, p.cooldownFailures);
      p.cooldownWindowMs = readInt(c, cd, path + ".cooldown", "windowMs", 1, 86400000, p.cooldownWindowMs);
      p.cooldownMs = readInt(c, cd, path + ".cooldown", "durationMs", 1, 86400000, p.cooldownMs);
    }
  }
  return p;
}
