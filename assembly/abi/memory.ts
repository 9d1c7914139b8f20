// Memory shared with the host. The host returns values by calling our exported `malloc` and writing the
// pointer/size into two out-slots; whatever it allocated is ours to free afterwards.

// Out-slots for host calls. Static, so no host call allocates just to receive a pointer.
export const RET_PTR: usize = memory.data(8);
export const RET_SIZE: usize = memory.data(8);
export const RET_EXTRA: usize = memory.data(8);

// Linear memory the module never grows past: below proxy-wasm-cpp-host's 1 GiB cap, with room for the
// allocator's own bookkeeping. See util/budget.ts for why it is never reached in practice.
const HOST_ALLOC_CEILING: usize = 960 * 1024 * 1024;

// Large values the host hands over (request and response bodies) go into one reusable block, the
// arena, instead of a new allocation each: they are copied in, read and released within one callback,
// and a VM runs one callback at a time. Allocating each anew lets small objects settle in the hole a
// released body leaves, so the next body no longer fits there and memory grows by a body at a time
// (a burst of 10 MB prompts grew a VM to 4x what it held). The arena grows to the next power of two
// of the largest value seen; a second large value while it is in use gets an allocation of its own.
const ARENA_MIN: usize = 256 * 1024;
let arena: usize = 0;
let arenaSize: usize = 0;
let arenaInUse = false;

// Exported as `malloc` (see main.ts). Raw TLSF memory, not GC-managed: the GC must not move or free it
// while the host writes into it. Returns 0 on failure as the spec requires: heap.alloc aborts (killing
// the VM) when memory cannot grow, so an allocation that might need memory past the ceiling is refused
// here instead, and the host call that asked for it fails cleanly.
export function hostAlloc(size: usize): usize {
  if (size > HOST_ALLOC_CEILING) return 0;
  if (size >= ARENA_MIN && !arenaInUse) {
    if (size > arenaSize) {
      let want: usize = ARENA_MIN;
      while (want < size) want <<= 1;
      if (arena != 0) heap.free(arena);
      arena = 0;
      arenaSize = 0;
      const p = rawAlloc(want);
      if (p == 0) return rawAlloc(size);
      arena = p;
      arenaSize = want;
    }
    arenaInUse = true;
    return arena;
  }
  return rawAlloc(size);
}

function rawAlloc(size: usize): usize {
  const top = (<usize>memory.size()) << 16;
  if (top + size > HOST_ALLOC_CEILING) return 0;
  return heap.alloc(size == 0 ? 1 : size);
}

// Bytes of linear memory the arena takes (it is kept for the VM's life).
export function arenaBytes(): usize {
  return arenaSize;
}

// Frees what hostAlloc returned.
export function hostFree(ptr: usize): void {
  if (ptr == 0) return;
  if (ptr == arena) {
    arenaInUse = false;
    return;
  }
  heap.free(ptr);
}

// Set when a request that held much memory ends, so its garbage is collected right away instead of
// after the next few requests (see abi/exports.ts).
let collectWanted = false;

export function collectSoon(): void {
  collectWanted = true;
}

export function takeCollectRequest(): bool {
  const w = collectWanted;
  collectWanted = false;
  return w;
}

// Bytes the host handed us: a pointer into linear memory that we own until release().
// Readers (JSON, SSE) work directly on ptr/len, so a body is copied into the VM exactly once.
export class HostBytes {
  constructor(
    public ptr: usize,
    public len: i32,
  ) {}

  release(): void {
    hostFree(this.ptr);
    this.ptr = 0;
    this.len = 0;
  }

  // Moves the bytes into an allocation of their own, so that they can be kept past this callback (the
  // arena is reused by the next large value). False, and the bytes left where they are, when memory is
  // refused.
  keep(): bool {
    if (this.ptr == 0 || this.ptr != arena) return true;
    const p = rawAlloc(<usize>this.len);
    if (p == 0) return false;
    memory.copy(p, this.ptr, <usize>this.len);
    hostFree(this.ptr);
    this.ptr = p;
    return true;
  }

  toString(): string {
    return String.UTF8.decodeUnsafe(this.ptr, <usize>this.len);
  }
}

// Takes ownership of what the host wrote into RET_PTR/RET_SIZE.
export function takeReturned(): HostBytes {
  return new HostBytes(load<usize>(RET_PTR), load<i32>(RET_SIZE));
}

// Takes what the host returned as a string and frees the host copy.
export function takeReturnedString(): string {
  const ptr = load<usize>(RET_PTR);
  const len = load<u32>(RET_SIZE);
  if (ptr == 0) return "";
  const s = String.UTF8.decodeUnsafe(ptr, <usize>len);
  hostFree(ptr);
  return s;
}

export function clearReturn(): void {
  store<usize>(RET_PTR, 0);
  store<u32>(RET_SIZE, 0);
}
