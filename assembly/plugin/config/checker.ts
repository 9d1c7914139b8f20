// Reading configuration fields with errors that name the JSON path and the offending value. Shared by
// the gateway settings (config.ts) and the fallback policy (fallback-config.ts).
import { JsonValue } from "../../json/value";
import { JsonType } from "../../json/reader";
import { jsonString } from "../../json/writer";
import { MAX_MODEL_NAME_BYTES } from "./gateway-config";

export class Checker {
  error: string = "";
  fail(path: string, message: string): void {
    if (this.error.length == 0) this.error = path + ": " + message;
  }
}

export function describe(v: JsonValue): string {
  switch (v.type) {
    case JsonType.Null: return "null";
    case JsonType.Bool: return v.boolValue ? "true" : "false";
    // As the operator wrote it: 0, not 0.0 (f64's toString adds a fraction).
    case JsonType.Number: return Math.floor(v.numValue) == v.numValue && Math.abs(v.numValue) < 9007199254740992 ? (<i64>v.numValue).toString() : v.numValue.toString();
    case JsonType.String: return jsonString(v.strValue.length > 64 ? v.strValue.substring(0, 64) + "…" : v.strValue);
    case JsonType.Array: return "an array";
    default: return "an object";
  }
}

export function readString(c: Checker, v: JsonValue, path: string, allowEmpty: bool): string {
  if (v.type != JsonType.String) { c.fail(path, "must be a string, got " + describe(v)); return ""; }
  if (!allowEmpty && v.strValue.length == 0) { c.fail(path, "must not be empty"); return ""; }
  return v.strValue;
}

export function readStringArray(c: Checker, v: JsonValue, path: string): Array<string> {
  const out = new Array<string>();
  if (v.type != JsonType.Array) { c.fail(path, "must be an array of strings, got " + describe(v)); return out; }
  for (let i = 0; i < v.items.length; i++) {
    out.push(readString(c, unchecked(v.items[i]), path + "[" + i.toString() + "]", false));
  }
  return out;
}

// Header names Envoy accepts: lowercase token characters.
export function isHeaderName(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    const ok = (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x30 && ch <= 0x39) || ch == 0x2d || ch == 0x5f || ch == 0x2e;
    if (!ok) return false;
  }
  return true;
}

export function isHeaderValue(s: string): bool {
  if (s.length == 0 || s.length > MAX_MODEL_NAME_BYTES) return false;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch < 0x21 || ch > 0x7e) return false;
  }
  return true;
}

export function unknownKeys(c: Checker, v: JsonValue, path: string, known: Array<string>): void {
  for (let i = 0; i < v.keys.length; i++) {
    const k = unchecked(v.keys[i]);
    if (!known.includes(k)) c.fail(path + "." + k, "unknown field (known: " + known.join(", ") + ")");
  }
}

export function readInt(c: Checker, v: JsonValue, path: string, key: string, min: f64, max: f64, current: i64): i64 {
  const f = v.get(key);
  if (f == null) return current;
  if (f.type != JsonType.Number || !f.isInteger || f.numValue < min || f.numValue > max) {
    c.fail(path + "." + key, "must be an integer between " + (<i64>min).toString() + " and " + (<i64>max).toString() + ", got " + describe(f));
    return current;
  }
  return <i64>f.numValue;
}

// A size in bytes at the top level of a configuration object, within [min, max].
export function readBytes(c: Checker, v: JsonValue, path: string, key: string, min: i32, max: i32, current: i32): i32 {
  const f = v.get(key);
  if (f == null) return current;
  if (f.type != JsonType.Number || !f.isInteger || f.numValue < <f64>min || f.numValue > <f64>max) {
    c.fail(path + key, "must be an integer between " + min.toString() + " and " + max.toString() + ", got " + describe(f));
    return current;
  }
  return <i32>f.numValue;
}

export function readBoolField(c: Checker, v: JsonValue, path: string, key: string, current: bool): bool {
  const f = v.get(key);
  if (f == null) return current;
  if (f.type != JsonType.Bool) {
    c.fail(path + key, "must be true or false, got " + describe(f));
    return current;
  }
  return f.boolValue;
}
