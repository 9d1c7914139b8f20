// A growable byte buffer with a hard ceiling. Appends past the ceiling are refused (false), never
// aborted: the SSE reader turns a refusal into `overflowed`. Capacity is kept between uses, so a stream
// of events allocates only while its largest event grows the buffer. With an account, each growth is
// charged to the VM's memory budget first; a growth the budget refuses is refused like one past the
// ceiling.
import { Account } from "../util/budget";

const INITIAL_CAPACITY: i32 = 1024;

export class BoundedBytes {
  private data: ArrayBuffer = new ArrayBuffer(0);
  private used: i32 = 0;

  // account null: unmetered (unit tests, and buffers whose owner charges for them itself).
  constructor(
    public readonly limit: i32,
    private account: Account | null = null,
  ) {}

  get length(): i32 {
    return this.used;
  }

  get ptr(): usize {
    return changetype<usize>(this.data);
  }

  clear(): void {
    this.used = 0;
  }

  // Drops the storage too (after an overflow the stream is no longer parsed, so give the memory back).
  release(): void {
    this.data = new ArrayBuffer(0);
    this.used = 0;
  }

  // Appends src[0..n); false (and nothing appended) when the result would exceed `limit`.
  append(src: usize, n: i32): bool {
    if (n <= 0) return n == 0;
    if (n > this.limit - this.used) return false;
    const need = this.used + n;
    if (need > this.data.byteLength && !this.grow(need)) return false;
    memory.copy(changetype<usize>(this.data) + <usize>this.used, src, <usize>n);
    this.used = need;
    return true;
  }

  appendByte(b: u8): bool {
    if (this.used >= this.limit) return false;
    const need = this.used + 1;
    if (need > this.data.byteLength && !this.grow(need)) return false;
    store<u8>(changetype<usize>(this.data) + <usize>this.used, b);
    this.used = need;
    return true;
  }

  // need <= limit is checked by the callers, so the new capacity stays within the limit. False when
  // the memory budget refuses the new capacity.
  private grow(need: i32): bool {
    let cap = this.data.byteLength < INITIAL_CAPACITY ? INITIAL_CAPACITY : this.data.byteLength;
    while (cap < need) cap = cap > this.limit >> 1 ? this.limit : cap << 1;
    if (cap > this.limit) cap = this.limit;
    const account = this.account;
    if (account != null && !account.take(<i64>cap)) return false;
    const next = new ArrayBuffer(cap);
    if (this.used > 0) memory.copy(changetype<usize>(next), changetype<usize>(this.data), <usize>this.used);
    this.data = next;
    return true;
  }
}
