// The VM's memory budget. Everything the plugin keeps that grows with input size or with requests in
// flight (per-request state, SSE event buffers, JSON answers read in pieces, request bodies held for a
// dispatched fallback) is charged here first; a charge that does not fit is refused, and the caller
// degrades (sheds the request, stops parsing a stream, sends a request on without fallback) instead of
// allocating. So linear memory stays under the budget plus what one callback may hold transiently
// (one request or response body, bounded by maxBodyBytes / maxResponseBytes), and an allocation can
// never fail: a failed memory.grow is an abort in AssemblyScript, which kills the VM and every request
// on its worker.

// proxy-wasm-cpp-host (Envoy, Higress) caps a VM's linear memory at 1 GiB (limits.h). The configuration's
// ranges (config.ts) keep budget + one transient body + 64 MiB for the runtime under that cap.

// Charged for each request the plugin tracks (its context, request and attempt facts, labels):
// an upper estimate of what one request's objects take.
export const REQUEST_STATE_BYTES: i64 = 4 * 1024;

export class MemoryBudget {
  limit: i64 = 0; // set from the configuration (memoryBudgetBytes) when a root context is configured
  used: i64 = 0;
  peak: i64 = 0;

  fits(n: i64): bool {
    return n >= 0 && this.used + n <= this.limit;
  }

  reserve(n: i64): bool {
    if (!this.fits(n)) return false;
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
    return true;
  }

  // Whether linear memory could grow by n and stay within the budget plus `fixed` (what the VM keeps
  // whatever the load: runtime, static data, the body arena). Charges count live bytes; this also counts
  // what fragmentation costs, for the allocations that are large enough to matter.
  roomInMemory(n: i64, fixed: i64): bool {
    return ((<i64>memory.size()) << 16) + n <= this.limit + fixed;
  }

  give(n: i64): void {
    this.used -= n;
    if (this.used < 0) this.used = 0;
  }
}

// One per VM: a VM runs one callback at a time, so no locking.
export const vmBudget = new MemoryBudget();

// What one request has charged, given back in one step when the request ends (its owner calls settle
// from onDelete, which Envoy always sends). Buffers replaced while growing stay charged until then:
// they are garbage only after the next collection.
export class Account {
  charged: i64 = 0;

  take(n: i64): bool {
    if (!vmBudget.reserve(n)) return false;
    this.charged += n;
    return true;
  }

  // Returns part of the charge early (a held body released before the request ends).
  giveBack(n: i64): void {
    const k = n < this.charged ? n : this.charged;
    vmBudget.give(k);
    this.charged -= k;
  }

  settle(): void {
    vmBudget.give(this.charged);
    this.charged = 0;
  }
}
