// Header maps as the ABI serialises them: u32 count, count × (u32 key length, u32 value length), then each
// key and value followed by a NUL byte (spec "Serialization").
import { HostBytes } from "./memory";

export class HeaderPair {
  constructor(
    public key: string,
    public value: string,
  ) {}
}

export function serializeHeaders(pairs: Array<HeaderPair>): ArrayBuffer {
  const n = pairs.length;
  const keys = new Array<ArrayBuffer>(n);
  const values = new Array<ArrayBuffer>(n);
  let size = 4 + 8 * n;
  for (let i = 0; i < n; i++) {
    const p = unchecked(pairs[i]);
    const k = String.UTF8.encode(p.key);
    const v = String.UTF8.encode(p.value);
    unchecked((keys[i] = k));
    unchecked((values[i] = v));
    size += k.byteLength + v.byteLength + 2;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, <u32>n);
  let off: usize = 4;
  for (let i = 0; i < n; i++) {
    store<u32>(base + off, <u32>unchecked(keys[i]).byteLength);
    store<u32>(base + off + 4, <u32>unchecked(values[i]).byteLength);
    off += 8;
  }
  for (let i = 0; i < n; i++) {
    const k = unchecked(keys[i]);
    memory.copy(base + off, changetype<usize>(k), <usize>k.byteLength);
    off += <usize>k.byteLength + 1; // NUL already zero
    const v = unchecked(values[i]);
    memory.copy(base + off, changetype<usize>(v), <usize>v.byteLength);
    off += <usize>v.byteLength + 1;
  }
  return out;
}

// Parses a serialised map at ptr/len. Malformed input (sizes running past the end) yields the pairs that
// were complete instead of reading out of bounds.
export function deserializeHeaders(ptr: usize, len: i32): Array<HeaderPair> {
  const out = new Array<HeaderPair>();
  if (len < 4) return out;
  const n = <i32>load<u32>(ptr);
  if (n < 0 || <i64>n * 8 + 4 > <i64>len) return out;
  let data: i64 = 4 + <i64>n * 8;
  for (let i = 0; i < n; i++) {
    const kl = <i64>load<u32>(ptr + 4 + <usize>i * 8);
    const vl = <i64>load<u32>(ptr + 8 + <usize>i * 8);
    if (data + kl + vl + 2 > <i64>len) break;
    const k = String.UTF8.decodeUnsafe(ptr + <usize>data, <usize>kl);
    data += kl + 1;
    const v = String.UTF8.decodeUnsafe(ptr + <usize>data, <usize>vl);
    data += vl + 1;
    out.push(new HeaderPair(k, v));
  }
  return out;
}

// A header map read from the host in one call (get_header_map_pairs), looked up in place. On Envoy a host
// call is the larger part of what a read costs (about 2 µs each, docs/benchmarks.md), and a request's
// headers are read four or five times per phase: one serialised copy, searched without decoding the
// pairs, replaces those calls. Only the values asked for become strings. Valid within one callback
// (release() gives the host's copy back); the host's map may change after it was taken.
export class HeaderMapView {
  constructor(private bytes: HostBytes) {}

  // The first value of `name` (as get_header_map_value answers), null when absent. Names compare
  // ASCII-case-insensitively: Envoy's maps hold them lower-cased.
  get(name: string): string | null {
    const at = this.find(name);
    if (at < 0) return null;
    const ptr = this.bytes.ptr;
    const vl = <usize>load<u32>(ptr + 8 + <usize>(at >>> 32) * 8);
    return String.UTF8.decodeUnsafe(ptr + <usize>(at & 0xffffffff), vl);
  }

  has(name: string): bool {
    return this.find(name) >= 0;
  }

  release(): void {
    this.bytes.release();
  }

  // (pair index << 32) | value offset, or -1. Sizes running past the end stop the search, as in
  // deserializeHeaders.
  private find(name: string): i64 {
    const ptr = this.bytes.ptr;
    const len = <i64>this.bytes.len;
    if (len < 4) return -1;
    const n = <i64>load<u32>(ptr);
    if (n * 8 + 4 > len) return -1;
    const want = name.length;
    let data: i64 = 4 + n * 8;
    for (let i: i64 = 0; i < n; i++) {
      const kl = <i64>load<u32>(ptr + 4 + <usize>i * 8);
      const vl = <i64>load<u32>(ptr + 8 + <usize>i * 8);
      if (data + kl + vl + 2 > len) return -1;
      if (kl == <i64>want && sameName(ptr + <usize>data, name)) return (i << 32) | (data + kl + 1);
      data += kl + vl + 2;
    }
    return -1;
  }
}

function sameName(at: usize, name: string): bool {
  for (let j = 0; j < name.length; j++) {
    let c = <i32>load<u8>(at + <usize>j);
    let w = name.charCodeAt(j);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (w >= 0x41 && w <= 0x5a) w |= 0x20;
    if (c != w) return false;
  }
  return true;
}
