// Reading a configuration object against the field table (schema-table.ts): type and range checks,
// unknown keys and defaults all come from the table, and errors name the JSON path and the offending
// value. A rule (`_rules_` entry) is read over a copy of the global settings, so whatever it leaves out
// keeps the global value, field by field (also inside `fallback`).
import { JsonValue, parseJson } from "../../json/value";
import { JsonType } from "../../json/reader";
import { jsonString } from "../../json/writer";
import { isHeaderName, isHeaderValue } from "../../util/ascii";
import { parseDigits } from "../../util/digits";
import { Field, Kind } from "./field";
import { FIELDS } from "./schema-table";

export class Checker {
  error: string = "";
  fail(path: string, message: string): void {
    if (this.error.length == 0) this.error = path + ": " + message;
  }
}

export function describe(v: JsonValue): string {
  switch (v.type) {
    case JsonType.Null:
      return "null";
    case JsonType.Bool:
      return v.boolValue ? "true" : "false";
    case JsonType.Number:
      return v.numText; // as the operator wrote it
    case JsonType.String:
      return jsonString(v.strValue.length > 64 ? v.strValue.substring(0, 64) + "…" : v.strValue);
    case JsonType.Array:
      return "an array";
    default:
      return "an object";
  }
}

export function joinPath(path: string, key: string): string {
  return path.length > 0 ? path + "." + key : key;
}

function fieldIndex(key: string): i32 {
  for (let i = 0; i < FIELDS.length; i++) if (unchecked(FIELDS[i]).key == key) return i;
  return -1;
}

// The value of each table field (by index), or null: absent and without a default.
export class Settings {
  values: Array<JsonValue | null> = new Array<JsonValue | null>(FIELDS.length);

  copy(): Settings {
    const s = new Settings();
    for (let i = 0; i < this.values.length; i++) unchecked((s.values[i] = unchecked(this.values[i])));
    return s;
  }

  value(key: string): JsonValue | null {
    const i = fieldIndex(key);
    return i >= 0 ? unchecked(this.values[i]) : null;
  }

  text(key: string): string {
    const v = this.value(key);
    return v != null ? v.strValue : "";
  }

  int(key: string): i64 {
    const v = this.value(key);
    return v != null ? <i64>v.numValue : 0;
  }

  flag(key: string): bool {
    const v = this.value(key);
    return v != null && v.boolValue;
  }

  textList(key: string): Array<string> {
    const v = this.value(key);
    return v != null ? texts(v) : new Array<string>();
  }

  // Array items (statusList, groupList), or none.
  items(key: string): Array<JsonValue> {
    const v = this.value(key);
    return v != null ? v.items : new Array<JsonValue>();
  }
}

let defaults: Settings | null = null;

// The table's defaults, parsed once per VM.
export function defaultSettings(): Settings {
  let d = defaults;
  if (d != null) return d;
  d = new Settings();
  for (let i = 0; i < FIELDS.length; i++) {
    const json = unchecked(FIELDS[i]).defaultJson;
    if (json.length > 0) unchecked((d.values[i] = parseJson(json).value));
  }
  defaults = d;
  return d;
}

// The keys one level below `parent` ("" = top level), in table order, for "unknown field" messages.
function childKeys(parent: string): Array<string> {
  const out = new Array<string>();
  const prefix = parent.length > 0 ? parent + "." : "";
  for (let i = 0; i < FIELDS.length; i++) {
    const key = unchecked(FIELDS[i]).key;
    if (isChild(key, prefix)) out.push(key.substring(prefix.length));
  }
  return out;
}

function isChild(key: string, prefix: string): bool {
  if (!key.startsWith(prefix)) return false;
  const rest = key.substring(prefix.length);
  return rest.length > 0 && rest.indexOf(".") < 0;
}

// Reads the fields below `parent` from the object `v` (at JSON path `path`) into `s`. At the top level,
// keys starting with '_' are Higress's (`_rules_`, `_match_*_`) and skipped.
export function readObject(c: Checker, v: JsonValue, s: Settings, parent: string, path: string): void {
  const prefix = parent.length > 0 ? parent + "." : "";
  for (let i = 0; i < v.keys.length; i++) {
    const k = unchecked(v.keys[i]);
    if (parent.length == 0 && k.startsWith("_")) continue;
    const at = fieldIndex(prefix + k);
    if (at < 0 || !isChild(prefix + k, prefix) || k.endsWith("[]")) {
      c.fail(joinPath(path, k), "unknown field (known: " + childKeys(parent).join(", ") + ")");
    }
  }
  for (let i = 0; i < FIELDS.length; i++) {
    const f = unchecked(FIELDS[i]);
    if (!isChild(f.key, prefix)) continue;
    const name = f.key.substring(prefix.length);
    if (name.endsWith("[]")) continue;
    const fv = v.get(name);
    const fpath = joinPath(path, name);
    if (fv == null) {
      if (f.required && f.kind != Kind.GroupList) c.fail(fpath, "is required");
      continue;
    }
    if (f.kind == Kind.Group) {
      if (fv.type != JsonType.Object) c.fail(fpath, "must be an object, got " + describe(fv));
      else readObject(c, fv, s, f.key, fpath);
      continue;
    }
    if (checkValue(c, f, fv, fpath)) unchecked((s.values[i] = fv));
  }
}

// Whether `v` is a valid value of `f`; reports the first problem.
function checkValue(c: Checker, f: Field, v: JsonValue, path: string): bool {
  switch (f.kind) {
    case Kind.Flag:
      if (v.type == JsonType.Bool) return true;
      c.fail(path, "must be true or false, got " + describe(v));
      return false;
    case Kind.Integer:
      if (v.type == JsonType.Number && v.isInteger && v.numValue >= f.min && v.numValue <= f.max) return true;
      c.fail(path, "must be an integer between " + (<i64>f.min).toString() + " and " + (<i64>f.max).toString() + ", got " + describe(v));
      return false;
    case Kind.TextList:
    case Kind.NonEmptyTextList:
      return checkTextList(c, v, path, f.kind == Kind.NonEmptyTextList);
    case Kind.StatusList: {
      if (v.type != JsonType.Array) {
        c.fail(path, "must be an array, got " + describe(v));
        return false;
      }
      let ok = true;
      for (let i = 0; i < v.items.length; i++) {
        const item = unchecked(v.items[i]);
        if (statusTrigger(item) < 0) {
          c.fail(path + "[" + i.toString() + "]", 'must be a status code (e.g. 503) or a class (e.g. "5xx"), got ' + describe(item));
          ok = false;
        }
      }
      return ok;
    }
    case Kind.GroupList:
      if (v.type == JsonType.Array) return true; // entries are read by whoever compiles them (readObject)
      c.fail(path, "must be an array, got " + describe(v));
      return false;
    default:
      return checkString(c, f, v, path);
  }
}

// An array of non-empty strings (`nonEmpty`: with at least one); reports the first problem.
export function checkTextList(c: Checker, v: JsonValue, path: string, nonEmpty: bool): bool {
  if (v.type != JsonType.Array) {
    c.fail(path, "must be an array of strings, got " + describe(v));
    return false;
  }
  if (nonEmpty && v.items.length == 0) {
    c.fail(path, "must not be empty");
    return false;
  }
  let ok = true;
  for (let i = 0; i < v.items.length; i++) {
    if (!checkText(c, unchecked(v.items[i]), path + "[" + i.toString() + "]")) ok = false;
  }
  return ok;
}

// The strings of an array checkTextList accepted.
export function texts(v: JsonValue): Array<string> {
  const out = new Array<string>();
  for (let i = 0; i < v.items.length; i++) out.push(unchecked(v.items[i]).strValue);
  return out;
}

function checkText(c: Checker, v: JsonValue, path: string): bool {
  if (v.type != JsonType.String) {
    c.fail(path, "must be a string, got " + describe(v));
    return false;
  }
  if (v.strValue.length == 0) {
    c.fail(path, "must not be empty");
    return false;
  }
  return true;
}

function checkString(c: Checker, f: Field, v: JsonValue, path: string): bool {
  if (!checkText(c, v, path)) return false;
  const s = v.strValue;
  switch (f.kind) {
    case Kind.HeaderName:
      if (isHeaderName(s)) return true;
      c.fail(path, "must be a lowercase header name, got " + jsonString(s));
      return false;
    case Kind.HeaderValue:
      if (isHeaderValue(s)) return true;
      c.fail(path, "must be printable ASCII (it becomes a header value)");
      return false;
    case Kind.ModelName: {
      const star = s.indexOf("*");
      if (star < 0 || star == s.length - 1) return true;
      c.fail(path, "only a trailing '*' is supported, got " + jsonString(s));
      return false;
    }
    case Kind.Choice: {
      // choices "a|b|c" (no split(): std's costs module size).
      const choices = f.choices;
      let listed = "";
      let from = 0;
      while (from <= choices.length) {
        let to = choices.indexOf("|", from);
        if (to < 0) to = choices.length;
        const choice = choices.substring(from, to);
        if (choice == s) return true;
        listed += (from == 0 ? "" : to == choices.length ? " or " : ", ") + jsonString(choice);
        from = to + 1;
      }
      c.fail(path, "must be " + listed + ", got " + jsonString(s));
      return false;
    }
    default:
      return true;
  }
}

// A status trigger as a number: a code (100..599), or a class 1..5 ("5xx"); -1 when invalid.
export function statusTrigger(v: JsonValue): i32 {
  if (v.type == JsonType.Number && v.isInteger && v.numValue >= 100 && v.numValue <= 599) return <i32>v.numValue;
  if (v.type != JsonType.String || v.strValue.length != 3) return -1;
  const s = v.strValue;
  if (s.endsWith("xx")) {
    const d = s.charCodeAt(0) - 0x30;
    return d >= 1 && d <= 5 ? d : -1;
  }
  const n = <i32>parseDigits(s);
  return n >= 100 && n <= 599 ? n : -1;
}
