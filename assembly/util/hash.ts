// FNV-1a 64: a fast, well-spread hash for keys that are not secrets' protection (prefix keys, counter
// slots, API-key identities that must not be shown as they are).
export const FNV_OFFSET: u64 = 0xcbf29ce484222325;
export const FNV_PRIME: u64 = 0x100000001b3;

export function fnvByte(h: u64, b: u32): u64 {
  return (h ^ (<u64>(b & 0xff))) * FNV_PRIME;
}

// Over the string's UTF-8 bytes.
export function fnv1a64(s: string): u64 {
  let h = FNV_OFFSET;
  const b = String.UTF8.encode(s);
  const p = changetype<usize>(b);
  for (let i = 0; i < b.byteLength; i++) h = fnvByte(h, load<u8>(p + <usize>i));
  return h;
}

// 16 lowercase hex digits.
export function hex16(v: u64): string {
  let out = "";
  for (let k = 0; k < 16; k++) {
    const d = <i32>((v >> 60) & 0xf);
    out += String.fromCharCode(d < 10 ? 0x30 + d : 0x57 + d);
    v <<= 4;
  }
  return out;
}
