// One way to edit bytes in passing: a splice is a list of edits (byte range of the source -> text,
// "" to delete), applied in a single pass that copies only the slices between edits. The source may be
// two pieces (bytes held from the previous chunk ++ the new chunk) and the result goes to a sink: a host
// buffer (Envoy's set_buffer_bytes replaces a prefix, then appends) or a new buffer in memory.
// Used for the request's model and stream_options edits, a backup call's body, the usage-only SSE
// events removed from a stream and the attempt stage's model rewrite.
import { BufferType } from "../abi/enums";
import * as host from "../abi/host";

export class Edit {
  constructor(
    public start: i32,
    public end: i32,
    public text: string,
  ) {}
}

export abstract class Sink {
  abstract write(p: usize, len: i32): void;
  finish(): void {}
}

// Writes into an Envoy buffer: the first write replaces its first `replaceLen` bytes (Envoy drains
// them, then prepends), later writes append at the buffer's end. So `replaceLen` must be the whole
// buffer (a body or a chunk); to replace only a prefix, build it in memory (apply) and set it once.
// A result of nothing still drains them (finish).
export class HostBufferSink extends Sink {
  private written: bool = false;
  constructor(
    private buffer: BufferType,
    private replaceLen: u32,
  ) {
    super();
  }

  write(p: usize, len: i32): void {
    if (len <= 0) return;
    if (!this.written) host.setBufferBytes(this.buffer, 0, this.replaceLen, p, <usize>len);
    else host.setBufferBytes(this.buffer, host.APPEND, 0, p, <usize>len);
    this.written = true;
  }

  finish(): void {
    if (!this.written) host.setBufferBytes(this.buffer, 0, this.replaceLen, 0, 0);
    this.written = true;
  }
}

// Writes into a new buffer of the result's size.
export class MemorySink extends Sink {
  out: ArrayBuffer;
  private at: usize = 0;
  constructor(size: i32) {
    super();
    this.out = new ArrayBuffer(size);
  }

  write(p: usize, len: i32): void {
    if (len <= 0) return;
    memory.copy(changetype<usize>(this.out) + this.at, p, <usize>len);
    this.at += <usize>len;
  }
}

export class Splice {
  edits: Array<Edit> = new Array<Edit>();

  // Keeps edits in source order (they are few: an insertion sort, std's sort costs module size).
  add(e: Edit): void {
    const edits = this.edits;
    edits.push(e);
    let j = edits.length - 2;
    while (j >= 0 && unchecked(edits[j]).start > e.start) {
      unchecked((edits[j + 1] = unchecked(edits[j])));
      j--;
    }
    unchecked((edits[j + 1] = e));
  }

  get isEmpty(): bool {
    return this.edits.length == 0;
  }

  // The result's length for a source of `len` bytes.
  resultLength(len: i32): i32 {
    let n = len;
    for (let i = 0; i < this.edits.length; i++) {
      const e = unchecked(this.edits[i]);
      n += String.UTF8.byteLength(e.text) - (e.end - e.start);
    }
    return n;
  }

  // Writes the first `end` bytes of the source a ++ b, edited, to `sink`. Edits past `end` are ignored.
  writeTo(sink: Sink, a: usize, aLen: i32, b: usize, bLen: i32, end: i32): void {
    let from: i32 = 0;
    for (let i = 0; i < this.edits.length; i++) {
      const e = unchecked(this.edits[i]);
      if (e.start > end) break;
      writeSource(sink, a, aLen, b, from, e.start);
      if (e.text.length > 0) {
        const t = String.UTF8.encode(e.text);
        sink.write(changetype<usize>(t), t.byteLength);
      }
      from = e.end;
    }
    if (from < end) writeSource(sink, a, aLen, b, from, end);
    sink.finish();
  }

  // The whole one-piece source [p, p + len), edited, as a new buffer.
  apply(p: usize, len: i32): ArrayBuffer {
    const sink = new MemorySink(this.resultLength(len));
    this.writeTo(sink, p, len, 0, 0, len);
    return sink.out;
  }
}

// Source bytes [from, to) of a ++ b.
function writeSource(sink: Sink, a: usize, aLen: i32, b: usize, from: i32, to: i32): void {
  if (to <= from) return;
  if (from < aLen) {
    const aEnd = to < aLen ? to : aLen;
    sink.write(a + <usize>from, aEnd - from);
    from = aEnd;
  }
  if (to > from) sink.write(b + <usize>(from - aLen), to - from);
}
