// Shared helpers for the specs: documents as bytes, scans of them, and readable names for messages.
import { JsonError, JsonField, JsonScan, JsonType, scanJson } from "../../assembly/json/reader";

export const NO_KEYS: Array<string> = [];

// The scanner takes a raw pointer. A buffer reachable only through a usize is invisible to the GC, so
// the buffer under test is kept in a global while code that allocates (decodeString, routing) runs.
let held: ArrayBuffer = new ArrayBuffer(0);

export function hold(buf: ArrayBuffer): usize {
  held = buf;
  return changetype<usize>(buf);
}

export function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

// Raw bytes, for input that is not valid UTF-8 (a string literal would always encode validly).
export function bytesOf(values: Array<i32>): ArrayBuffer {
  const buf = new ArrayBuffer(values.length);
  for (let i = 0; i < values.length; i++) store<u8>(changetype<usize>(buf) + <usize>i, <u8>values[i]);
  return buf;
}

export function concat(a: ArrayBuffer, b: ArrayBuffer): ArrayBuffer {
  const out = new ArrayBuffer(a.byteLength + b.byteLength);
  memory.copy(changetype<usize>(out), changetype<usize>(a), <usize>a.byteLength);
  memory.copy(changetype<usize>(out) + <usize>a.byteLength, changetype<usize>(b), <usize>b.byteLength);
  return out;
}

// `before`, the raw bytes, then `after`: e.g. a JSON string whose content is an invalid UTF-8 sequence.
export function around(before: string, raw: Array<i32>, after: string): ArrayBuffer {
  return concat(concat(utf8(before), bytesOf(raw)), utf8(after));
}

export function scanBuf(buf: ArrayBuffer, keys: Array<string>): JsonScan {
  const scan = new JsonScan(keys);
  scanJson(hold(buf), buf.byteLength, scan);
  return scan;
}

// Scans only the first `len` bytes of `buf` (a truncated document).
export function scanPrefix(buf: ArrayBuffer, len: i32, keys: Array<string>): JsonScan {
  const scan = new JsonScan(keys);
  scanJson(hold(buf), len, scan);
  return scan;
}

export function scanText(text: string, keys: Array<string>): JsonScan {
  return scanBuf(utf8(text), keys);
}

// The text of bytes [start, end) of `buf` (a span the scanner reported).
export function spanText(buf: ArrayBuffer, start: i32, end: i32): string {
  if (start < 0 || end > buf.byteLength || start > end) return "<span out of range>";
  return String.UTF8.decodeUnsafe(changetype<usize>(buf) + <usize>start, <usize>(end - start));
}

export function fieldText(buf: ArrayBuffer, f: JsonField): string {
  return spanText(buf, f.start, f.end);
}

// A printable rendering of bytes for assertion messages: ASCII as is, everything else as \xNN.
export function show(buf: ArrayBuffer): string {
  const hex = "0123456789abcdef";
  const n = buf.byteLength < 120 ? buf.byteLength : 120;
  let s = "";
  for (let i = 0; i < n; i++) {
    const c = <i32>load<u8>(changetype<usize>(buf) + <usize>i);
    if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += "\\x" + hex.charAt(c >> 4) + hex.charAt(c & 15);
  }
  if (n < buf.byteLength) s += "…(" + buf.byteLength.toString() + " bytes)";
  return s;
}

export function errorName(e: JsonError): string {
  switch (e) {
    case JsonError.Ok:
      return "Ok";
    case JsonError.Empty:
      return "Empty";
    case JsonError.Syntax:
      return "Syntax";
    case JsonError.Truncated:
      return "Truncated";
    case JsonError.TooDeep:
      return "TooDeep";
    case JsonError.TrailingData:
      return "TrailingData";
    case JsonError.DuplicateKey:
      return "DuplicateKey";
    case JsonError.BadString:
      return "BadString";
    default:
      return "JsonError(" + (<i32>e).toString() + ")";
  }
}

export function typeName(t: JsonType): string {
  switch (t) {
    case JsonType.None:
      return "None";
    case JsonType.Null:
      return "Null";
    case JsonType.Bool:
      return "Bool";
    case JsonType.Number:
      return "Number";
    case JsonType.String:
      return "String";
    case JsonType.Object:
      return "Object";
    case JsonType.Array:
      return "Array";
    default:
      return "JsonType(" + (<i32>t).toString() + ")";
  }
}

export function repeat(s: string, n: i32): string {
  return n <= 0 ? "" : s.repeat(n);
}

// A seeded xorshift32, so "random" splits are the same on every run.
export class XorShift {
  constructor(public state: u32) {}

  next(): u32 {
    let s = this.state;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    this.state = s;
    return s;
  }
}

// 1..maxCuts distinct cut points in (0, len), ascending: where a stream is split between chunks.
export function randomCuts(rng: XorShift, len: i32, maxCuts: u32): Array<i32> {
  const k = <i32>(rng.next() % maxCuts) + 1;
  const cuts = new Array<i32>();
  for (let i = 0; i < k; i++) cuts.push(<i32>(rng.next() % <u32>(len - 1)) + 1);
  cuts.sort();
  const out = new Array<i32>();
  for (let i = 0; i < cuts.length; i++) if (out.length == 0 || out[out.length - 1] != cuts[i]) out.push(cuts[i]);
  return out;
}
