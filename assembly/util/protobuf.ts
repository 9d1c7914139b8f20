// Protocol Buffers wire format, the little gRPC calls need: a writer for small messages and a reader
// that checks every length against its input (bytes from the network must never trap the VM).
export const WIRE_VARINT: u32 = 0;
export const WIRE_I64: u32 = 1;
export const WIRE_LEN: u32 = 2;
export const WIRE_I32: u32 = 5;

export class ProtoWriter {
  bytes: Array<u8> = new Array<u8>();

  varint(v: u64): ProtoWriter {
    while (v >= 0x80) {
      this.bytes.push(<u8>(v | 0x80));
      v >>= 7;
    }
    this.bytes.push(<u8>v);
    return this;
  }

  uint(field: u32, v: u64): ProtoWriter {
    this.varint(((<u64>field) << 3) | WIRE_VARINT);
    return this.varint(v);
  }

  text(field: u32, s: string): ProtoWriter {
    const b = Uint8Array.wrap(String.UTF8.encode(s));
    this.varint(((<u64>field) << 3) | WIRE_LEN).varint(<u64>b.length);
    for (let i = 0; i < b.length; i++) this.bytes.push(unchecked(b[i]));
    return this;
  }

  message(field: u32, m: ProtoWriter): ProtoWriter {
    this.varint(((<u64>field) << 3) | WIRE_LEN).varint(<u64>m.bytes.length);
    for (let i = 0; i < m.bytes.length; i++) this.bytes.push(unchecked(m.bytes[i]));
    return this;
  }

  finish(): ArrayBuffer {
    const out = new ArrayBuffer(this.bytes.length);
    for (let i = 0; i < this.bytes.length; i++) store<u8>(changetype<usize>(out) + <usize>i, unchecked(this.bytes[i]));
    return out;
  }
}

// Walks the fields of one message in p[start..end): next() until false; `bad` when the input was
// malformed (then the walk stops).
export class ProtoReader {
  field: u32 = 0;
  wire: u32 = 0;
  value: u64 = 0; // varint fields
  start: i32 = 0; // length-delimited fields: p[start..stop)
  stop: i32 = 0;
  bad: bool = false;

  constructor(
    private p: usize,
    private pos: i32,
    private end: i32,
  ) {}

  next(): bool {
    if (this.bad || this.pos >= this.end) return false;
    const key = this.varint();
    if (this.bad) return false;
    this.field = <u32>(key >> 3);
    this.wire = <u32>(key & 7);
    if (this.wire == WIRE_VARINT) this.value = this.varint();
    else if (this.wire == WIRE_LEN) {
      const n = this.varint();
      if (!this.bad && n > <u64>(this.end - this.pos)) this.bad = true;
      if (!this.bad) {
        this.start = this.pos;
        this.pos += <i32>n;
        this.stop = this.pos;
      }
    } else if (this.wire == WIRE_I64) this.skip(8);
    else if (this.wire == WIRE_I32) this.skip(4);
    else this.bad = true;
    return !this.bad;
  }

  // A reader of the current length-delimited field.
  inner(): ProtoReader {
    return new ProtoReader(this.p, this.start, this.stop);
  }

  private skip(n: i32): void {
    if (this.end - this.pos < n) this.bad = true;
    else this.pos += n;
  }

  private varint(): u64 {
    let v: u64 = 0;
    for (let shift: u64 = 0; shift < 64; shift += 7) {
      if (this.pos >= this.end) break;
      const b = <u64>load<u8>(this.p + <usize>this.pos);
      this.pos++;
      v |= (b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    this.bad = true;
    return 0;
  }
}
