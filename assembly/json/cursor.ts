// Walking validated JSON without allocating: the elements of an array, a member's object, \u escapes.
// Used by the readers that look into request and response bodies (usage, prompt estimate, prefix key).
import { JsonField, JsonScan, JsonType, scanJson, scanString } from "./reader";

// Scans the value at p[f.start..f.end) (a member found by an earlier scan) with `scan`; true when it
// is an object. Spans in `scan` are then relative to p + f.start.
export function scanMember(p: usize, f: JsonField, scan: JsonScan): bool {
  if (!f.found || f.type != JsonType.Object) return false;
  scanJson(p + <usize>f.start, f.end - f.start, scan);
  return scan.ok() && scan.rootType == JsonType.Object;
}

function isWs(c: u8): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

// End of the value starting at pos (validated JSON, so brackets balance); -1 if it does not end by `end`.
// A number or literal ends at a comma, whitespace or the closing bracket of what holds it, so `end` may
// lie past that container's end.
export function skipValue(p: usize, pos: i32, end: i32): i32 {
  const from = pos;
  let depth: i32 = 0;
  while (pos < end) {
    const c = load<u8>(p + <usize>pos);
    if (c == 0x22) {
      const r = scanString(p, pos, end);
      if (r < 0) return -1;
      pos = r;
      if (depth == 0) return pos;
      continue;
    }
    if (c == 0x7b || c == 0x5b) depth++;
    else if (c == 0x7d || c == 0x5d) {
      if (depth == 0) return pos > from ? pos : -1; // a scalar's end, or no value at all
      depth--;
      if (depth == 0) return pos + 1;
    } else if (depth == 0 && (c == 0x2c || isWs(c))) return pos;
    pos++;
  }
  return depth == 0 ? pos : -1;
}

// Walks the elements of an array span without allocating: reset, then next() until false.
export class ArrayCursor {
  private p: usize = 0;
  private pos: i32 = 0;
  private end: i32 = 0;
  start: i32 = 0; // current element: p[start..stop)
  stop: i32 = 0;
  type: JsonType = JsonType.None;

  reset(p: usize, f: JsonField): void {
    this.p = p;
    const ok = f.found && f.type == JsonType.Array && f.end - f.start >= 2;
    this.pos = ok ? f.start + 1 : 0;
    this.end = ok ? f.end - 1 : 0; // before the closing bracket
  }

  next(): bool {
    const p = this.p;
    while (this.pos < this.end) {
      const c = load<u8>(p + <usize>this.pos);
      if (!isWs(c) && c != 0x2c) break;
      this.pos++;
    }
    if (this.pos >= this.end) return false;
    const stop = skipValue(p, this.pos, this.end);
    if (stop < 0) {
      this.pos = this.end;
      return false;
    }
    const c = load<u8>(p + <usize>this.pos);
    this.type =
      c == 0x7b
        ? JsonType.Object
        : c == 0x5b
          ? JsonType.Array
          : c == 0x22
            ? JsonType.String
            : c == 0x6e
              ? JsonType.Null
              : c == 0x74 || c == 0x66
                ? JsonType.Bool
                : JsonType.Number;
    this.start = this.pos;
    this.stop = stop;
    this.pos = stop;
    return true;
  }

  // The current element as a field, for scanMember and friends.
  field(into: JsonField): JsonField {
    into.found = true;
    into.type = this.type;
    into.start = this.start;
    into.end = this.stop;
    return into;
  }
}

// The value of four hex digits at p (validated JSON).
export function hex4(p: usize): u32 {
  let v: u32 = 0;
  for (let k = 0; k < 4; k++) {
    const c = <u32>load<u8>(p + <usize>k);
    const d = c - 0x30 < 10 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
    v = (v << 4) | (d & 0xf);
  }
  return v;
}
