// Memory shared with the host. The host returns values by calling our exported `malloc` and writing the
// pointer/size into two out-slots; whatever it allocated is ours to free afterwards.

// Out-slots for host calls. Static, so no host call allocates just to receive a pointer.
export const RET_PTR: usize = memory.data(8);
export const RET_SIZE: usize = memory.data(8);
export const RET_EXTRA: usize = memory.data(8);

// Linear memory the module never grows past: below proxy-wasm-cpp-host's 1 GiB cap, with room for the
// allocator's own bookkeeping. See util/budget.ts for why it is never reached in practice.
const HOST_ALLOC_CEILING: usize = 960 * 1024 * 1024;

// Exported as `malloc` (see main.ts). Raw TLSF memory, not GC-managed: the GC must not move or free it
// while the host writes into it. Returns 0 on failure as the spec requires: heap.alloc aborts (killing
// the VM) when memory cannot grow, so an allocation that might need memory past the ceiling is refused
// here instead, and the host call that asked for it fails cleanly.
export function hostAlloc(size: usize): usize {
  if (size > HOST_ALLOC_CEILING) return 0;
  const top = (<usize>memory.size()) << 16;
  if (top + size > HOST_ALLOC_CEILING) return 0;
  return heap.alloc(size == 0 ? 1 : size);
}

// Set when a request that held much memory ends, so its garbage is collected right away instead of
// after the next few requests (see abi/exports.ts).
let collectWanted = false;

export function collectSoon(): void { collectWanted = true; }

export function takeCollectRequest(): bool {
  const w = collectWanted;
  collectWanted = false;
  return w;
}

// Bytes the host handed us: a pointer into linear memory that we own until release().
// Readers (JSON, SSE) work directly on ptr/len, so a body is copied into the VM exactly once.
export class HostBytes {
  constructor(public ptr: usize, public len: i32) {}

  release(): void {
    if (this.ptr != 0) heap.free(this.ptr);
    this.ptr = 0;
    this.len = 0;
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
  heap.free(ptr);
  return s;
}

export function clearReturn(): void {
  store<usize>(RET_PTR, 0);
  store<u32>(RET_SIZE, 0);
}
