// A JSON reader over raw bytes that never traps: malformed, truncated, too deep or wrongly typed input
// yields an error code, not an abort (an abort would kill the VM and every request on its worker).
//
// One linear pass validates the whole document (RFC 8259: strict grammar, UTF-8 in strings, no control
// characters, no NaN/Infinity) and reports the byte span of selected members of the root object, so a
// caller can rewrite a value in place without re-serialising the body. Nested members are read by
// scanning the span of their parent again. Keys are compared after unescaping, so "mod\u0065l" is
// "model", exactly as the upstream's parser will see it; a selected key given twice is an error, so two
// parsers can never disagree on which value counts.

export const enum JsonType { None = 0, Null = 1, Bool = 2, Number = 3, String = 4, Object = 5, Array = 6 }

export const enum JsonError {
  Ok = 0,
  Empty = 1,
  Syntax = 2,
  Truncated = 3,
  TooDeep = 4,
  TrailingData = 5,
  DuplicateKey = 6,
  BadString = 7,
}

export const MAX_DEPTH: i32 = 128;

const C_QUOTE: u8 = 0x22;
const C_BACKSLASH: u8 = 0x5c;
const C_LBRACE: u8 = 0x7b;
const C_RBRACE: u8 = 0x7d;
const C_LBRACKET: u8 = 0x5b;
const C_RBRACKET: u8 = 0x5d;
const C_COLON: u8 = 0x3a;
const C_COMMA: u8 = 0x2c;

// Span of one member's value: [start, end) in the scanned bytes.
export class JsonField {
  found: bool = false;
  type: JsonType = JsonType.None;
  start: i32 = 0;
  end: i32 = 0;

  reset(): void {
    this.found = false;
    this.type = JsonType.None;
    this.start = 0;
    this.end = 0;
  }
}

export class JsonScan {
  error: JsonError = JsonError.Ok;
  errorAt: i32 = 0;
  rootType: JsonType = JsonType.None;
  duplicateKey: string = "";
  fields: Array<JsonField>;

  constructor(public keys: Array<string>) {
    this.fields = new Array<JsonField>(keys.length);
    for (let i = 0; i < keys.length; i++) unchecked((this.fields[i] = new JsonField()));
  }

  field(i: i32): JsonField {
    // Callers index with constants they defined alongside the keys; guard anyway.
    if (i < 0 || i >= this.fields.length) return new JsonField();
    return unchecked(this.fields[i]);
  }

  ok(): bool { return this.error == JsonError.Ok; }
}

// Container kinds on the explicit stack (no recursion: depth is bounded by MAX_DEPTH, not the VM stack).
const K_OBJECT: u8 = 1;
const K_ARRAY: u8 = 2;
const stack = new StaticArray<u8>(MAX_DEPTH);

// States of the scanner loop.
const S_VALUE: i32 = 0;
const S_AFTER_VALUE: i32 = 1;
const S_KEY: i32 = 2;

@inline function isWs(c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

@inline function isDigit(c: u32): bool {
  return c - 0x30 < 10;
}

function skipWs(p: usize, pos: i32, len: i32): i32 {
  while (pos < len && isWs(<u32>load<u8>(p + <usize>pos))) pos++;
  return pos;
}

function hexVal(c: u32): i32 {
  if (c - 0x30 < 10) return <i32>(c - 0x30);
  const l = c | 0x20;
  if (l - 0x61 < 6) return <i32>(l - 0x61 + 10);
  return -1;
}

const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;

// Of the 8 bytes of x (little-endian: the first byte lowest), marks with its high bit each byte that a
// string reader must look at: a quote, a backslash, a control character (< 0x20) or non-ASCII (>= 0x80);
// 0 when none. SWAR: (v - ONES) & ~v & HIGHS marks the zero bytes of v and (x - 0x20 * ONES) & ~x & HIGHS
// the bytes below 0x20; a borrow can mark a byte above a true hit falsely, never below it, so the
// lowest mark is exact.
@inline export function specialBytes8(x: u64): u64 {
  const q = x ^ (ONES * 0x22);
  const b = x ^ (ONES * 0x5c);
  return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((x - ONES * 0x20) & ~x) | x) & HIGHS;
}

// Validates a string starting at the opening quote; returns the index after the closing quote, or a
// negative JsonError.
export function scanString(p: usize, pos: i32, len: i32): i32 {
  pos++; // opening quote
  while (pos < len) {
    // Prompts are mostly plain ASCII: skip 8 such bytes at a time (make bench: the body scans are the
    // routing phase's largest cost, and this one loop runs over every byte of every string).
    if (pos + 8 <= len) {
      const m = specialBytes8(load<u64>(p + <usize>pos));
      if (m == 0) {
        pos += 8;
        continue;
      }
      pos += <i32>(ctz(m) >> 3); // straight to the first byte that needs a look
    }
    const c = <u32>load<u8>(p + <usize>pos);
    if (c == C_QUOTE) return pos + 1;
    if (c == C_BACKSLASH) {
      if (pos + 1 >= len) return -JsonError.Truncated;
      const e = <u32>load<u8>(p + <usize>pos + 1);
      if (e == 0x75) { // \uXXXX
        // Judge the digits that are there first: "\u00" followed by a quote is bad, not merely cut short.
        for (let i = 2; i < 6; i++) {
          if (pos + i >= len) return -JsonError.Truncated;
          if (hexVal(<u32>load<u8>(p + <usize>(pos + i))) < 0) return -JsonError.BadString;
        }
        pos += 6;
        continue;
      }
      if (e == 0x22 || e == 0x5c || e == 0x2f || e == 0x62 || e == 0x66 || e == 0x6e || e == 0x72 || e == 0x74) {
        pos += 2;
        continue;
      }
      return -JsonError.BadString;
    }
    if (c < 0x20) return -JsonError.BadString;
    if (c < 0x80) { pos++; continue; }
    // UTF-8 multi-byte sequence (RFC 3629, section 4). The allowed range of the second byte is what
    // rules out overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4); every byte is
    // judged as soon as it is there, so a sequence cut by the end of the input is Truncated only when
    // more bytes could still complete it.
    let need = 0;
    let lo: u32 = 0x80;
    let hi: u32 = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c == 0xe0) lo = 0xa0;
      else if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c == 0xf0) lo = 0x90;
      else if (c == 0xf4) hi = 0x8f;
    } else return -JsonError.BadString; // stray continuation byte, C0/C1 overlong lead, F5..FF
    for (let i = 1; i <= need; i++) {
      if (pos + i >= len) return -JsonError.Truncated;
      const cc = <u32>load<u8>(p + <usize>(pos + i));
      if (cc < lo || cc > hi) return -JsonError.BadString;
      lo = 0x80;
      hi = 0xbf;
    }
    pos += need + 1;
  }
  return -JsonError.Truncated;
}

// Validates a number; returns the index after it, or a negative JsonError.
function scanNumber(p: usize, pos: i32, len: i32): i32 {
  if (pos < len && load<u8>(p + <usize>pos) == 0x2d) pos++;
  if (pos >= len) return -JsonError.Truncated;
  let c = <u32>load<u8>(p + <usize>pos);
  if (c == 0x30) {
    pos++;
    // "01" is not a number with a leading zero: say so, rather than "data after the value" at the root.
    if (pos < len && isDigit(<u32>load<u8>(p + <usize>pos))) return -JsonError.Syntax;
  } else if (isDigit(c)) {
    while (pos < len && isDigit(<u32>load<u8>(p + <usize>pos))) pos++;
  } else {
    return -JsonError.Syntax;
  }
  if (pos < len && load<u8>(p + <usize>pos) == 0x2e) {
    pos++;
    if (pos >= len) return -JsonError.Truncated;
    if (!isDigit(<u32>load<u8>(p + <usize>pos))) return -JsonError.Syntax;
    while (pos < len && isDigit(<u32>load<u8>(p + <usize>pos))) pos++;
  }
  if (pos < len) {
    c = <u32>load<u8>(p + <usize>pos) | 0x20;
    if (c == 0x65) {
      pos++;
      if (pos < len) {
        const s = <u32>load<u8>(p + <usize>pos);
        if (s == 0x2b || s == 0x2d) pos++;
      }
      if (pos >= len) return -JsonError.Truncated;
      if (!isDigit(<u32>load<u8>(p + <usize>pos))) return -JsonError.Syntax;
      while (pos < len && isDigit(<u32>load<u8>(p + <usize>pos))) pos++;
    }
  }
  return pos;
}

// The first four bytes of each literal as a little-endian u32.
const LIT_TRUE: u32 = 0x65757274; // "true"
const LIT_FALS: u32 = 0x736c6166; // "fals"
const LIT_NULL: u32 = 0x6c6c756e; // "null"

function matchLiteral(p: usize, pos: i32, len: i32, lit: string, first4: u32): i32 {
  const n = lit.length;
  // Whole literal in the input: its first four bytes as one load (streamed chunks carry several nulls
  // each, and a character-by-character compare showed in make bench's profile).
  if (pos + n <= len) {
    if (load<u32>(p + <usize>pos) != first4) return -JsonError.Syntax;
    if (n == 5 && <u32>load<u8>(p + <usize>(pos + 4)) != <u32>lit.charCodeAt(4)) return -JsonError.Syntax;
    return pos + n;
  }
  for (let i = 0; i < n; i++) {
    if (pos + i >= len) return -JsonError.Truncated;
    if (<u32>load<u8>(p + <usize>(pos + i)) != <u32>lit.charCodeAt(i)) return -JsonError.Syntax;
  }
  return pos + n;
}

// Compares a raw key (span including quotes, already validated) with an ASCII name, unescaping as it goes.
export function keyEquals(p: usize, start: i32, end: i32, name: string): bool {
  let i = start + 1;
  const stop = end - 1;
  let j = 0;
  const n = name.length;
  // An escape only makes a key shorter than its raw bytes: a shorter raw key never matches. Most keys
  // of an object fail here, before the comparison loop.
  if (stop - i < n) return false;
  while (i < stop) {
    let unit: u32 = <u32>load<u8>(p + <usize>i);
    if (unit == C_BACKSLASH) {
      const e = <u32>load<u8>(p + <usize>i + 1);
      if (e == 0x75) {
        unit = <u32>((hexVal(load<u8>(p + <usize>i + 2)) << 12) | (hexVal(load<u8>(p + <usize>i + 3)) << 8) |
          (hexVal(load<u8>(p + <usize>i + 4)) << 4) | hexVal(load<u8>(p + <usize>i + 5)));
        i += 6;
      } else {
        unit = unescapeChar(e);
        i += 2;
      }
    } else {
      // A raw non-ASCII byte can never equal an ASCII name.
      if (unit >= 0x80) return false;
      i++;
    }
    if (j >= n || unit != <u32>name.charCodeAt(j)) return false;
    j++;
  }
  return j == n;
}

export function unescapeChar(e: u32): u32 {
  if (e == 0x62) return 0x08;
  if (e == 0x66) return 0x0c;
  if (e == 0x6e) return 0x0a;
  if (e == 0x72) return 0x0d;
  if (e == 0x74) return 0x09;
  return e; // " \ /
}

function fail(scan: JsonScan, code: i32, at: i32): void {
  scan.error = <JsonError>code;
  scan.errorAt = at;
}

// Scans the document at p[0..len) and fills `scan` (its error, the root type and the selected members
// of the root object).
export function scanJson(p: usize, len: i32, scan: JsonScan): void {
  scan.error = JsonError.Ok;
  scan.errorAt = 0;
  scan.rootType = JsonType.None;
  scan.duplicateKey = "";
  const keys = scan.keys;
  // `keys` is a public array: if a caller grew it after construction, fields has fewer slots, and the
  // unchecked accesses below must stay inside fields.
  const nkeys = min(keys.length, scan.fields.length);
  for (let i = 0; i < nkeys; i++) unchecked(scan.fields[i]).reset();

  let pos = skipWs(p, 0, len);
  if (pos >= len) { fail(scan, JsonError.Empty, pos); return; }

  let depth = 0;
  let state = S_VALUE;
  let pending = -1;       // index of the selected root member whose value is being scanned
  let pendingStart = 0;
  let pendingType = JsonType.None;

  while (true) {
    if (state == S_VALUE) {
      if (pos >= len) { fail(scan, JsonError.Truncated, pos); return; }
      const c = load<u8>(p + <usize>pos);
      let t = JsonType.None;
      if (c == C_LBRACE || c == C_LBRACKET) {
        if (depth >= MAX_DEPTH) { fail(scan, JsonError.TooDeep, pos); return; }
        t = c == C_LBRACE ? JsonType.Object : JsonType.Array;
        if (depth == 0) scan.rootType = t;
        if (depth == 1 && pending >= 0) pendingType = t;
        unchecked((stack[depth] = c == C_LBRACE ? K_OBJECT : K_ARRAY));
        depth++;
        pos = skipWs(p, pos + 1, len);
        if (pos >= len) { fail(scan, JsonError.Truncated, pos); return; }
        const n = load<u8>(p + <usize>pos);
        if (c == C_LBRACE) {
          if (n == C_RBRACE) { depth--; pos++; state = S_AFTER_VALUE; }
          else state = S_KEY;
        } else {
          if (n == C_RBRACKET) { depth--; pos++; state = S_AFTER_VALUE; }
          // else stay in S_VALUE for the first element
        }
        continue;
      }
      let r: i32;
      if (c == C_QUOTE) { r = scanString(p, pos, len); t = JsonType.String; }
      else if (c == 0x74) { r = matchLiteral(p, pos, len, "true", LIT_TRUE); t = JsonType.Bool; }
      else if (c == 0x66) { r = matchLiteral(p, pos, len, "false", LIT_FALS); t = JsonType.Bool; }
      else if (c == 0x6e) { r = matchLiteral(p, pos, len, "null", LIT_NULL); t = JsonType.Null; }
      else if (c == 0x2d || isDigit(<u32>c)) { r = scanNumber(p, pos, len); t = JsonType.Number; }
      else { fail(scan, JsonError.Syntax, pos); return; }
      if (r < 0) { fail(scan, -r, pos); return; }
      if (depth == 0) scan.rootType = t;
      if (depth == 1 && pending >= 0) pendingType = t;
      pos = r;
      state = S_AFTER_VALUE;
      continue;
    }

    if (state == S_AFTER_VALUE) {
      // A selected root member's value ends here, whatever its kind.
      if (depth == 1 && pending >= 0) {
        const f = unchecked(scan.fields[pending]);
        f.found = true;
        f.type = pendingType;
        f.start = pendingStart;
        f.end = pos;
        pending = -1;
      }
      pos = skipWs(p, pos, len);
      if (depth == 0) {
        if (pos != len) fail(scan, JsonError.TrailingData, pos);
        return;
      }
      if (pos >= len) { fail(scan, JsonError.Truncated, pos); return; }
      const c = load<u8>(p + <usize>pos);
      const kind = unchecked(stack[depth - 1]);
      if (c == C_COMMA) {
        pos = skipWs(p, pos + 1, len);
        state = kind == K_OBJECT ? S_KEY : S_VALUE;
        continue;
      }
      if ((kind == K_OBJECT && c == C_RBRACE) || (kind == K_ARRAY && c == C_RBRACKET)) {
        depth--;
        pos++;
        continue; // still S_AFTER_VALUE: the container itself was a value
      }
      fail(scan, JsonError.Syntax, pos);
      return;
    }

    // S_KEY
    if (pos >= len) { fail(scan, JsonError.Truncated, pos); return; }
    if (load<u8>(p + <usize>pos) != C_QUOTE) { fail(scan, JsonError.Syntax, pos); return; }
    const keyStart = pos;
    const r = scanString(p, pos, len);
    if (r < 0) { fail(scan, -r, pos); return; }
    if (depth == 1) {
      for (let i = 0; i < nkeys; i++) {
        if (keyEquals(p, keyStart, r, unchecked(keys[i]))) {
          if (unchecked(scan.fields[i]).found) {
            scan.duplicateKey = unchecked(keys[i]);
            fail(scan, JsonError.DuplicateKey, keyStart);
            return;
          }
          pending = i;
          break;
        }
      }
    }
    pos = skipWs(p, r, len);
    if (pos >= len) { fail(scan, JsonError.Truncated, pos); return; }
    if (load<u8>(p + <usize>pos) != C_COLON) { fail(scan, JsonError.Syntax, pos); return; }
    pos = skipWs(p, pos + 1, len);
    if (depth == 1 && pending >= 0) pendingStart = pos;
    state = S_VALUE;
  }
}

// ---- value readers over a span ---------------------------------------------------------------------

// Decodes a validated JSON string span (including quotes) into a string. maxBytes bounds the work for
// hostile input; a longer value yields null.
export function decodeString(p: usize, start: i32, end: i32, maxBytes: i32): string | null {
  if (end - start < 2 || end - start - 2 > maxBytes) return null;
  if (load<u8>(p + <usize>start) != C_QUOTE || load<u8>(p + <usize>(end - 1)) != C_QUOTE) return null;
  // Fast path: no escapes, so the raw bytes are the UTF-8 text.
  let hasEscape = false;
  for (let i = start + 1; i < end - 1; i++) {
    if (load<u8>(p + <usize>i) == C_BACKSLASH) { hasEscape = true; break; }
  }
  if (!hasEscape) return String.UTF8.decodeUnsafe(p + <usize>start + 1, <usize>(end - start - 2));
  const units = new Array<u16>();
  let i = start + 1;
  const stop = end - 1;
  while (i < stop) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c == C_BACKSLASH) {
      const e = <u32>load<u8>(p + <usize>i + 1);
      if (e == 0x75) {
        units.push(<u16>((hexVal(load<u8>(p + <usize>i + 2)) << 12) | (hexVal(load<u8>(p + <usize>i + 3)) << 8) |
          (hexVal(load<u8>(p + <usize>i + 4)) << 4) | hexVal(load<u8>(p + <usize>i + 5))));
        i += 6;
      } else {
        units.push(<u16>unescapeChar(e));
        i += 2;
      }
      continue;
    }
    // Copy one UTF-8 run up to the next escape through the std decoder.
    let j = i;
    while (j < stop && load<u8>(p + <usize>j) != C_BACKSLASH) j++;
    const chunk = String.UTF8.decodeUnsafe(p + <usize>i, <usize>(j - i));
    for (let k = 0; k < chunk.length; k++) units.push(<u16>chunk.charCodeAt(k));
    i = j;
  }
  let s = "";
  // Build from code units; small strings only (bounded by maxBytes).
  const buf = new ArrayBuffer(units.length << 1);
  for (let k = 0; k < units.length; k++) store<u16>(changetype<usize>(buf) + (<usize>k << 1), unchecked(units[k]));
  s = String.UTF16.decode(buf);
  return s;
}

// true/false of a validated Bool span; `fallback` for anything else.
export function readBool(p: usize, f: JsonField, fallback: bool): bool {
  if (!f.found || f.type != JsonType.Bool) return fallback;
  return load<u8>(p + <usize>f.start) == 0x74;
}

// Non-negative integer of a validated Number span; -1 when it is not a plain integer or too large.
export function readInt(p: usize, f: JsonField): i64 {
  if (!f.found || f.type != JsonType.Number) return -1;
  let v: i64 = 0;
  for (let i = f.start; i < f.end; i++) {
    const c = <u32>load<u8>(p + <usize>i);
    if (!isDigit(c)) return -1; // sign, fraction or exponent
    v = v * 10 + <i64>(c - 0x30);
    if (v > 0x1F_FFFF_FFFF_FFFF) return -1;
  }
  return v;
}

export function errorText(e: JsonError): string {
  switch (e) {
    case JsonError.Empty: return "the body is empty";
    case JsonError.Syntax: return "the body is not valid JSON";
    case JsonError.Truncated: return "the body is truncated JSON";
    case JsonError.TooDeep: return "the body nests deeper than " + MAX_DEPTH.toString() + " levels";
    case JsonError.TrailingData: return "the body has data after the JSON value";
    case JsonError.DuplicateKey: return "a key appears twice";
    case JsonError.BadString: return "the body has an invalid string (bad escape, control character or UTF-8)";
    default: return "ok";
  }
}
