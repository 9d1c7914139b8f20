// A model of one vLLM replica (the V1 engine: continuous batching, chunked prefill, automatic prefix
// caching), so the stub can stand in for a fleet of GPU servers in load-balancing tests and benchmarks.
// What it models, after vLLM's sources (vllm/v1/core/sched/scheduler.py, kv_cache_manager.py,
// block_pool.py, kv_cache_utils.py):
// - KV cache: `numBlocks` blocks of BLOCK_SIZE tokens. A full block is identified by a hash of its
//   parent block's hash and its tokens (a hash chain), so a block is reused only under the same prefix.
//   Blocks of finished (or preempted) requests stay cached in a free queue and are evicted least
//   recently used first; a request's blocks go back tail first, so its last blocks are evicted first.
// - Prefix hits: the longest chain of cached full blocks, never the whole prompt (the last prompt token
//   is always computed, as vLLM caps hits at prompt length - 1).
// - Scheduler, once per engine step: running requests first (one decode token each, or the next chunk
//   of an unfinished prefill), then waiting requests in FIFO order while there are fewer than
//   maxNumSeqs running, the step's token budget lasts and free blocks suffice. A decode that finds no
//   free block preempts the most recently admitted running request (its blocks stay cached; it goes
//   back to the front of the queue and is recomputed), as vLLM's default recompute preemption does.
// - Step time: stepBaseUs + decodeUsPerSeq × decoding requests + prefillUsPerToken × prefill tokens
//   scheduled in the step (docs/replica-routing.md gives the numbers and their sources). The first
//   token comes at the end of the step that finishes the prompt; each later step adds one token.
// - Generated tokens enter the cache too (their full blocks), so the next turn of a chat that re-sends
//   the answer hits on it.
// Simulated time: a step lasts its simulated duration / speed on the wall clock, but the engine keeps its
// own clock that advances by exactly the step's duration, whatever the event loop's lateness; a request
// is stamped on it when it arrives, so its TTFT on that clock (Sequence.ttftMs) is the model's, not the
// busy machine's. Wall-clock lateness still delays the answer the client sees.
// Deviations (small next to the effects measured): free blocks that never held a full block are used
// before any cached block is evicted; step costs are linear (attention's growth with context is not
// modelled); no speculative decoding, no CUDA-graph batch sizes.
import { createHash } from "node:crypto";

export const BLOCK_SIZE = 16;

export interface ReplicaParams {
  /** KV-cache blocks of BLOCK_SIZE tokens (vLLM's "GPU KV cache size" / 16). */
  numBlocks: number;
  /** vLLM --max-num-seqs. */
  maxNumSeqs: number;
  /** vLLM --max-num-batched-tokens: prefill and decode tokens per step. */
  maxBatchedTokens: number;
  /** GPU time per prompt token computed (not cached). */
  prefillUsPerToken: number;
  /** Fixed part of every step (kernel launches, sampling, scheduler). */
  stepBaseUs: number;
  /** Added per decoding request in a step (its attention, sampling and bookkeeping, as measured in bulk). */
  decodeUsPerSeq: number;
  /** Simulated time runs this many times faster than the wall clock (1: real time). */
  speed: number;
}

/** What the model's clock and timers are; tests pass a virtual one. */
export interface Clock {
  now(): number; // ms
  sleep(ms: number): Promise<void>;
}

export const WALL_CLOCK: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

export interface ReplicaStats {
  running: number;
  waiting: number;
  /** 1 - free/total, as vLLM's kv_cache_usage_perc (cached blocks no request holds count as free). */
  kvCacheUsage: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  /** Cached (full, hashed) blocks, in use or free. */
  cachedBlocks: number;
  requestsStarted: number;
  requestsFinished: number;
  preemptions: number;
  steps: number;
  /** Simulated GPU time spent in steps, ms. */
  busyMs: number;
}

interface Block {
  hash: string | null;
  refs: number;
}

/** One request in the engine. */
export class Sequence {
  /** Prompt tokens found in the prefix cache when first scheduled (usage.prompt_tokens_details). */
  cachedTokens = 0;
  /** Tokens generated so far. */
  generated = 0;
  finished = false;
  cancelled = false;
  /** Tokens whose KV is computed (prompt, then generated). */
  computed = 0;
  /** On the engine's simulated clock (ms): arrival, and the first token's time minus it. */
  arrivalMs = 0;
  ttftMs: number | null = null;
  blocks: Block[] = [];
  admittedOnce = false;
  private waiters: { n: number; resolve: () => void }[] = [];

  constructor(
    readonly tokens: readonly string[], // prompt then output token ids
    readonly promptTokens: number,
    readonly outputTokens: number,
    readonly hashes: readonly string[], // hash of each full block of `tokens`
  ) {}

  /** Resolves once `n` tokens are generated (or the request ended). */
  waitFor(n: number): Promise<void> {
    if (this.generated >= n || this.finished || this.cancelled) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  notify(): void {
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.generated >= w.n || this.finished || this.cancelled) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }
}

/** sha256 chain over full blocks, as vLLM's prefix caching hashes (parent hash, block tokens). */
export function blockHashes(tokens: readonly string[]): string[] {
  const out: string[] = [];
  let parent = "";
  for (let end = BLOCK_SIZE; end <= tokens.length; end += BLOCK_SIZE) {
    const h = createHash("sha256");
    h.update(parent);
    for (let i = end - BLOCK_SIZE; i < end; i++) h.update(`\u0001${tokens[i] ?? ""}`);
    parent = h.digest("base64");
    out.push(parent);
  }
  return out;
}

export class Replica {
  private readonly cache = new Map<string, Block>(); // hash -> block
  private readonly freeCached = new Map<string, Block>(); // LRU order: first = evicted next
  private freeEmpty: number;
  private readonly running: Sequence[] = [];
  private readonly waiting: Sequence[] = [];
  private loop: Promise<void> | null = null;
  // The simulated clock: during a step, between its start and end; when idle, the wall clock × speed
  // from where the last step ended.
  private step: { simStart: number; simEnd: number; wallStart: number } | null = null;
  private idleSim = 0;
  private idleWall: number;
  private readonly stats = {
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    requestsStarted: 0,
    requestsFinished: 0,
    preemptions: 0,
    steps: 0,
    busyMs: 0,
  };

  constructor(
    readonly params: ReplicaParams,
    private readonly clock: Clock = WALL_CLOCK,
  ) {
    for (const [k, v] of Object.entries(params)) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`replica: ${k} must be a finite number >= 0, got ${v}`);
    }
    if (params.numBlocks < 1 || params.maxNumSeqs < 1 || params.maxBatchedTokens < 1 || params.speed <= 0) {
      throw new Error("replica: numBlocks, maxNumSeqs, maxBatchedTokens must be >= 1 and speed > 0");
    }
    this.freeEmpty = params.numBlocks;
    this.idleWall = clock.now();
  }

  /** The engine's simulated time, ms. */
  simNow(): number {
    const wall = this.clock.now();
    if (this.step !== null) return Math.min(this.step.simStart + (wall - this.step.wallStart) * this.params.speed, this.step.simEnd);
    return this.idleSim + (wall - this.idleWall) * this.params.speed;
  }

  /** Queues a request: `prompt` and `output` are token ids (output: what it will generate). */
  submit(prompt: readonly string[], output: readonly string[]): Sequence {
    const tokens = [...prompt, ...output];
    const seq = new Sequence(tokens, prompt.length, output.length, blockHashes(tokens));
    seq.arrivalMs = this.simNow();
    this.waiting.push(seq);
    this.stats.requestsStarted += 1;
    this.loop ??= this.run();
    return seq;
  }

  /** The client left: the request stops at the next step and frees its blocks. */
  cancel(seq: Sequence): void {
    if (seq.finished || seq.cancelled) return;
    seq.cancelled = true;
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    const r = this.running.indexOf(seq);
    if (r >= 0) {
      this.running.splice(r, 1);
      this.release(seq);
    }
    seq.notify();
  }

  snapshot(): ReplicaStats {
    const free = this.freeEmpty + this.freeCached.size;
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvCacheUsage: 1 - free / this.params.numBlocks,
      cachedBlocks: this.cache.size,
      ...this.stats,
    };
  }

  /** Idle: nothing running or waiting (tests wait for it). */
  idle(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  // The engine loop. It clears `loop` in the same tick as it sees no work, so a request submitted
  // right after the last one finished starts a new loop instead of joining one that is ending.
  private async run(): Promise<void> {
    try {
      while (this.running.length > 0 || this.waiting.length > 0) {
        const plan = this.schedule();
        const stepMs = plan.us / 1000;
        this.stats.steps += 1;
        this.stats.busyMs += stepMs;
        const simStart = this.step?.simEnd ?? this.simNow();
        const step = { simStart, simEnd: simStart + stepMs, wallStart: this.clock.now() };
        this.step = step;
        await this.clock.sleep(stepMs / this.params.speed);
        this.complete(plan, step.simEnd);
      }
    } finally {
      this.idleSim = this.step?.simEnd ?? this.idleSim;
      this.idleWall = this.clock.now();
      this.step = null;
      this.loop = null;
    }
  }

  private freeBlocks(): number {
    return this.freeEmpty + this.freeCached.size;
  }

  // One block for a request: an empty one, else the least recently used cached one (evicted).
  private allocate(): Block | null {
    if (this.freeEmpty > 0) {
      this.freeEmpty -= 1;
      return { hash: null, refs: 1 };
    }
    const first = this.freeCached.entries().next();
    if (first.done === true) return null;
    const [hash] = first.value;
    this.freeCached.delete(hash);
    this.cache.delete(hash);
    return { hash: null, refs: 1 };
  }

  // Blocks go back tail first: the end of a sequence is the least likely to be shared.
  private release(seq: Sequence): void {
    for (let i = seq.blocks.length - 1; i >= 0; i--) {
      const b = seq.blocks[i]!;
      b.refs -= 1;
      if (b.refs > 0) continue;
      if (b.hash !== null && this.cache.get(b.hash) === b) this.freeCached.set(b.hash, b);
      else this.freeEmpty += 1;
    }
    seq.blocks = [];
  }

  // Blocks needed to hold `tokens` tokens of `seq`, beyond what it holds.
  private blocksNeeded(seq: Sequence, tokens: number): number {
    return Math.max(0, Math.ceil(tokens / BLOCK_SIZE) - seq.blocks.length);
  }

  private grow(seq: Sequence, tokens: number): boolean {
    const need = this.blocksNeeded(seq, tokens);
    if (need > this.freeBlocks()) return false;
    for (let i = 0; i < need; i++) seq.blocks.push(this.allocate()!);
    return true;
  }

  // The longest run of cached full blocks at the start of the prompt, capped below the prompt's end.
  private matchPrefix(seq: Sequence): Block[] {
    const maxBlocks = Math.floor((seq.promptTokens - 1) / BLOCK_SIZE);
    const hit: Block[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const b = this.cache.get(seq.hashes[i]!);
      if (b === undefined) break;
      hit.push(b);
    }
    return hit;
  }

  private preemptLast(): boolean {
    const victim = this.running.pop();
    if (victim === undefined) return false;
    this.release(victim);
    victim.computed = 0;
    this.waiting.unshift(victim);
    this.stats.preemptions += 1;
    return true;
  }

  private schedule(): Plan {
    let budget = this.params.maxBatchedTokens;
    const work: { seq: Sequence; tokens: number }[] = [];
    let decoding = 0;
    let prefill = 0;
    // Running requests: a decode token each, or their prefill's next chunk.
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i]!;
      const target = seq.promptTokens + seq.generated; // tokens whose KV the next token needs
      const want = Math.min(budget, Math.max(1, target - seq.computed));
      let ok = this.grow(seq, seq.computed + want);
      while (!ok && this.running[this.running.length - 1] !== seq && this.preemptLast()) ok = this.grow(seq, seq.computed + want);
      if (!ok) {
        // Nothing left to preempt but itself.
        this.running.splice(i, 1);
        this.release(seq);
        seq.computed = 0;
        this.waiting.unshift(seq);
        this.stats.preemptions += 1;
        i -= 1;
        continue;
      }
      work.push({ seq, tokens: want });
      budget -= want;
      if (target - seq.computed <= 1 && seq.generated > 0) decoding += 1;
      else prefill += want;
    }
    // Waiting requests, first come first served; the head blocks the rest when it does not fit.
    while (this.waiting.length > 0 && this.running.length < this.params.maxNumSeqs && budget > 0) {
      const seq = this.waiting[0]!;
      const hit = this.matchPrefix(seq);
      const cached = hit.length * BLOCK_SIZE;
      const target = seq.promptTokens + seq.generated;
      const want = Math.min(budget, target - cached);
      const fresh = Math.ceil((cached + want) / BLOCK_SIZE) - hit.length;
      const reusable = hit.filter((b) => b.refs === 0).length; // cached blocks it takes off the free queue
      if (fresh > this.freeBlocks() - reusable) break;
      this.waiting.shift();
      for (const b of hit) {
        if (b.refs === 0 && b.hash !== null) this.freeCached.delete(b.hash);
        b.refs += 1;
      }
      seq.blocks = [...hit];
      seq.computed = cached;
      if (!seq.admittedOnce) {
        seq.admittedOnce = true;
        seq.cachedTokens = cached;
        this.stats.prefixCacheQueries += seq.promptTokens;
        this.stats.prefixCacheHits += cached;
      }
      this.grow(seq, cached + want);
      this.running.push(seq);
      work.push({ seq, tokens: want });
      budget -= want;
      prefill += want;
    }
    const us = this.params.stepBaseUs + this.params.decodeUsPerSeq * decoding + this.params.prefillUsPerToken * prefill;
    return { work, us };
  }

  // The step ran: KV computed, full blocks cached, tokens sampled, finished requests out.
  private complete(plan: Plan, simEnd: number): void {
    for (const { seq, tokens } of plan.work) {
      if (seq.cancelled || !this.running.includes(seq)) continue;
      seq.computed += tokens;
      this.cacheFullBlocks(seq);
      // A token is sampled once every known token is computed (prompt, and all generated so far).
      if (seq.computed >= seq.promptTokens + seq.generated) {
        seq.generated += 1;
        seq.ttftMs ??= simEnd - seq.arrivalMs;
        if (seq.generated >= seq.outputTokens) {
          seq.finished = true;
          this.running.splice(this.running.indexOf(seq), 1);
          this.release(seq);
          this.stats.requestsFinished += 1;
        }
        seq.notify();
      }
    }
  }

  private cacheFullBlocks(seq: Sequence): void {
    const full = Math.min(Math.floor(seq.computed / BLOCK_SIZE), seq.blocks.length, seq.hashes.length);
    for (let i = 0; i < full; i++) {
      const b = seq.blocks[i]!;
      if (b.hash !== null) continue;
      const hash = seq.hashes[i]!;
      if (this.cache.has(hash)) continue; // another request computed it meanwhile; keep theirs
      b.hash = hash;
      this.cache.set(hash, b);
    }
  }
}

interface Plan {
  work: { seq: Sequence; tokens: number }[];
  us: number;
}
