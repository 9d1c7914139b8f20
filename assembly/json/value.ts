// A small JSON tree for trusted-but-checked input (the plugin configuration, read once at configure
// time). Like reader.ts it never aborts: errors come back in `ParseResult`. Request and response bodies
// never go through here; they use the span scanner in reader.ts.
import { JsonType, JsonError, JsonScan, scanJson, scanString, decodeString, MAX_DEPTH } from "./reader";

export class JsonValue {
  type: JsonType = JsonType.Null;
  boolValue: bool = false;
  numValue: f64 = 0;
  isInteger: bool = false;
  numText: string = ""; // a number as written (for messages: no float printer in the module)
  strValue: string = "";
  items: Array<JsonValue> = new Array<JsonValue>();
  keys: Array<string> = new Array<string>();

  // Member lookup for objects; null when absent (never aborts like Map.get would).
  get(key: string): JsonValue | null {
    for (let i = 0; i < this.keys.length; i++) {
      if (unchecked(this.keys[i]) == key) return unchecked(this.items[i]);
    }
    return null;
  }

  has(key: string): bool {
    return this.get(key) != null;
  }
}

export class ParseResult {
  value: JsonValue | null = null;
  error: string = "";
}

const EMPTY_KEYS = new Array<string>();

// Parses `text`. The document is validated by the span scanner first, so the tree builder below only
// ever sees well-formed input.
export function parseJson(text: string): ParseResult {
  const res = new ParseResult();
  const buf = String.UTF8.encode(text);
  const p = changetype<usize>(buf);
  const len = buf.byteLength;
  const scan = new JsonScan(EMPTY_KEYS);
  scanJson(p, len, scan);
  if (scan.error != JsonError.Ok) {
    res.error = "invalid JSON at byte " + scan.errorAt.toString() + ": " + reason(scan.error);
    return res;
  }
  const b = new Builder(p, len);
  const v = b.value(0);
  if (v == null || b.failed) {
    res.error = "invalid JSON at byte " + b.pos.toString();
    return res;
  }
  // Duplicate keys in configuration are ambiguous: refuse them.
  const dup = findDuplicateKey(v, "");
  if (dup.length > 0) {
    res.error = "duplicate key " + dup;
    return res;
  }
  res.value = v;
  return res;
}

// What went wrong, in words that fit a configuration (errorText in reader.ts speaks of request bodies).
function reason(e: JsonError): string {
  switch (e) {
    case JsonError.Empty:
      return "the document is empty";
    case JsonError.Truncated:
      return "the document ends too early";
    case JsonError.TooDeep:
      return "nesting deeper than " + MAX_DEPTH.toString() + " levels";
    case JsonError.TrailingData:
      return "data after the JSON value";
    case JsonError.BadString:
      return "an invalid string (bad escape, control character or UTF-8)";
    default:
      return "not valid JSON";
  }
}

// The path of the first duplicated key, in the form configuration errors use ("models[0].name"), or "".
function findDuplicateKey(v: JsonValue, path: string): string {
  if (v.type == JsonType.Object) {
    for (let i = 0; i < v.keys.length; i++) {
      const k = unchecked(v.keys[i]);
      const here = path.length > 0 ? path + "." + k : k;
      for (let j = 0; j < i; j++) if (unchecked(v.keys[j]) == k) return here;
      const d = findDuplicateKey(unchecked(v.items[i]), here);
      if (d.length > 0) return d;
    }
  } else if (v.type == JsonType.Array) {
    for (let i = 0; i < v.items.length; i++) {
      const d = findDuplicateKey(unchecked(v.items[i]), path + "[" + i.toString() + "]");
      if (d.length > 0) return d;
    }
  }
  return "";
}

class Builder {
  pos: i32 = 0;
  failed: bool = false;
  constructor(
    public p: usize,
    public len: i32,
  ) {}

  ws(): void {
    while (this.pos < this.len) {
      const c = load<u8>(this.p + <usize>this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  peek(): u32 {
    return this.pos < this.len ? <u32>load<u8>(this.p + <usize>this.pos) : 0;
  }

  value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) {
      this.failed = true;
      return null;
    }
    this.ws();
    const c = this.peek();
    const v = new JsonValue();
    if (c == 0x7b) {
      v.type = JsonType.Object;
      this.pos++;
      this.ws();
      if (this.peek() == 0x7d) {
        this.pos++;
        return v;
      }
      while (!this.failed) {
        this.ws();
        const k = this.str();
        if (k == null) {
          this.failed = true;
          return null;
        }
        this.ws();
        this.pos++; // ':' (validated)
        const item = this.value(depth + 1);
        if (item == null) {
          this.failed = true;
          return null;
        }
        v.keys.push(k);
        v.items.push(item);
        this.ws();
        const n = this.peek();
        this.pos++;
        if (n == 0x7d) return v;
        if (n != 0x2c) {
          this.failed = true;
          return null;
        }
      }
      return null;
    }
    if (c == 0x5b) {
      v.type = JsonType.Array;
      this.pos++;
      this.ws();
      if (this.peek() == 0x5d) {
        this.pos++;
        return v;
      }
      while (!this.failed) {
        const item = this.value(depth + 1);
        if (item == null) {
          this.failed = true;
          return null;
        }
        v.items.push(item);
        this.ws();
        const n = this.peek();
        this.pos++;
        if (n == 0x5d) return v;
        if (n != 0x2c) {
          this.failed = true;
          return null;
        }
      }
      return null;
    }
    if (c == 0x22) {
      const s = this.str();
      if (s == null) {
        this.failed = true;
        return null;
      }
      v.type = JsonType.String;
      v.strValue = s;
      return v;
    }
    if (c == 0x74) {
      v.type = JsonType.Bool;
      v.boolValue = true;
      this.pos += 4;
      return v;
    }
    if (c == 0x66) {
      v.type = JsonType.Bool;
      v.boolValue = false;
      this.pos += 5;
      return v;
    }
    if (c == 0x6e) {
      v.type = JsonType.Null;
      this.pos += 4;
      return v;
    }
    // number
    const start = this.pos;
    let integer = true;
    while (this.pos < this.len) {
      const d = <u32>load<u8>(this.p + <usize>this.pos);
      if (d == 0x2e || d == 0x65 || d == 0x45) integer = false;
      if (!((d >= 0x30 && d <= 0x39) || d == 0x2d || d == 0x2b || d == 0x2e || d == 0x65 || d == 0x45)) break;
      this.pos++;
    }
    if (this.pos == start) {
      this.failed = true;
      return null;
    }
    v.type = JsonType.Number;
    v.numValue = decimalValue(this.p, start, this.pos);
    v.isInteger = integer;
    v.numText = String.UTF8.decodeUnsafe(this.p + <usize>start, <usize>(this.pos - start));
    return v;
  }

  str(): string | null {
    if (this.peek() != 0x22) return null;
    const start = this.pos;
    const end = scanString(this.p, this.pos, this.len);
    if (end < 0) return null;
    this.pos = end;
    return decodeString(this.p, start, end, this.len);
  }
}

// The value of a validated JSON number. Configuration numbers are sizes, counts and milliseconds;
// digit-by-digit arithmetic is exact for integers up to 2^53 and close enough for the rest (which
// the config refuses anyway), and it keeps std's float parser (~2 KB) out of the module.
function decimalValue(p: usize, start: i32, end: i32): f64 {
  let i = start;
  let negative = false;
  if (i < end && load<u8>(p + <usize>i) == 0x2d) {
    negative = true;
    i++;
  }
  let v: f64 = 0;
  while (i < end) {
    const d = <i32>load<u8>(p + <usize>i) - 0x30;
    if (d < 0 || d > 9) break;
    v = v * 10 + <f64>d;
    i++;
  }
  if (i < end && load<u8>(p + <usize>i) == 0x2e) {
    i++;
    let scale: f64 = 1;
    while (i < end) {
      const d = <i32>load<u8>(p + <usize>i) - 0x30;
      if (d < 0 || d > 9) break;
      scale *= 10;
      v += <f64>d / scale;
      i++;
    }
  }
  if (i < end && (load<u8>(p + <usize>i) | 0x20) == 0x65) {
    i++;
    let expNegative = false;
    if (i < end) {
      const c = load<u8>(p + <usize>i);
      if (c == 0x2d || c == 0x2b) {
        expNegative = c == 0x2d;
        i++;
      }
    }
    let e: i32 = 0;
    while (i < end && e < 400) {
      const d = <i32>load<u8>(p + <usize>i) - 0x30;
      if (d < 0 || d > 9) break;
      e = e * 10 + d;
      i++;
    }
    for (let k = 0; k < e; k++) v = expNegative ? v / 10 : v * 10;
  }
  return negative ? -v : v;
}
