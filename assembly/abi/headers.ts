// Header maps as the ABI serialises them: u32 count, count × (u32 key length, u32 value length), then each
// key and value followed by a NUL byte (spec "Serialization").

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
