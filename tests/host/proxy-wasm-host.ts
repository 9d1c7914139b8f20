// A minimal proxy-wasm ABI 0.2.1 host in JavaScript, enough to run the plugin's whole request
// lifecycle in Node (V8, the engine Envoy embeds) where it can be timed and CPU-profiled; Envoy offers
// neither for Wasm code. It follows Envoy's call order (context create, request headers, request body
// in chunks, response headers, response body per chunk, log, done, delete) and answers host calls as
// Envoy does for a routed request that reached its upstream. Only for measuring: it checks nothing.
import { randomFillSync } from "node:crypto";

const OK = 0;
const NOT_FOUND = 1;
const WASI_ENOSYS = 52;

const enum Buf { RequestBody = 0, ResponseBody = 1, VmConfiguration = 6, PluginConfiguration = 7 }
const enum HeaderMap { RequestHeaders = 0, ResponseHeaders = 2 }

interface PluginExports {
  memory: WebAssembly.Memory;
  malloc(size: number): number;
  _start?: () => void;
  proxy_on_context_create(id: number, parent: number): void;
  proxy_on_vm_start(id: number, size: number): number;
  proxy_on_configure(id: number, size: number): number;
  proxy_on_request_headers(id: number, n: number, end: number): number;
  proxy_on_request_body(id: number, size: number, end: number): number;
  proxy_on_response_headers(id: number, n: number, end: number): number;
  proxy_on_response_body(id: number, size: number, end: number): number;
  proxy_on_log(id: number): void;
  proxy_on_done(id: number): number;
  proxy_on_delete(id: number): void;
}

export type Pairs = [string, string][];

export interface Exchange {
  requestHeaders: Pairs;
  requestBody: Buffer;
  requestChunkBytes?: number;     // Envoy hands the body over in reads of about this size
  responseHeaders: Pairs;
  responseChunks: Buffer[];       // one proxy_on_response_body call each
  properties: Record<string, Buffer>; // "response\0code" → bytes
}

export interface ExchangeOutcome {
  localReplyStatus: number | null;
  routedTo: string | null;        // the routing header the plugin set
}

export class MockHost {
  private x: PluginExports | null = null;
  private config: Buffer = Buffer.alloc(0);
  private current: Exchange | null = null;
  private body: Buffer = Buffer.alloc(0);  // the buffer the current body callback sees
  private headers = new Map<number, Pairs>();
  private localReply: number | null = null;
  private metricIds = 1;
  private nextContext = 2;
  readonly logs: string[] = [];
  readonly timings = { compileMs: 0, instantiateMs: 0, startMs: 0, vmStartMs: 0, configureMs: 0 };
  configured = false;

  private get exports(): PluginExports {
    if (this.x === null) throw new Error("mock host: module not instantiated");
    return this.x;
  }

  private bytes(ptr: number, len: number): Buffer {
    return Buffer.from(this.exports.memory.buffer, ptr, len);
  }

  private view(): DataView {
    return new DataView(this.exports.memory.buffer);
  }

  // Copies bytes into guest memory the way Envoy does: through the module's malloc.
  private give(data: Buffer, retPtr: number, retSize: number): number {
    const p = this.exports.malloc(data.length);
    if (p === 0 && data.length > 0) return NOT_FOUND;
    new Uint8Array(this.exports.memory.buffer, p, data.length).set(data);
    this.view().setUint32(retPtr, p, true);
    this.view().setUint32(retSize, data.length, true);
    return OK;
  }

  private text(ptr: number, len: number): string {
    return this.bytes(ptr, len).toString("utf8");
  }

  private map(type: number): Pairs {
    let m = this.headers.get(type);
    if (m === undefined) { m = []; this.headers.set(type, m); }
    return m;
  }

  private buffer(type: number): Buffer | null {
    if (type === Buf.PluginConfiguration) return this.config;
    if (type === Buf.VmConfiguration) return Buffer.alloc(0);
    if (type === Buf.RequestBody || type === Buf.ResponseBody) return this.body;
    return null;
  }

  private envImports(): Record<string, (...a: number[]) => number> {
    const n = (v: number | undefined): number => v ?? 0;
    return {
      proxy_log: (_l, p, s) => { this.logs.push(this.text(n(p), n(s))); return OK; },
      proxy_get_log_level: (ret) => { this.view().setUint32(n(ret), 2, true); return OK; },
      proxy_get_current_time_nanoseconds: (ret) => { this.view().setBigUint64(n(ret), BigInt(Date.now()) * 1_000_000n, true); return OK; },
      proxy_set_tick_period_milliseconds: () => OK,
      proxy_get_buffer_bytes: (type, start, length, retPtr, retSize) => {
        const b = this.buffer(n(type));
        if (b === null) return NOT_FOUND;
        return this.give(b.subarray(n(start), n(start) + n(length)), n(retPtr), n(retSize));
      },
      proxy_set_buffer_bytes: (type, start, length, ptr, size) => {
        if (n(type) !== Buf.RequestBody && n(type) !== Buf.ResponseBody) return NOT_FOUND;
        const data = Buffer.from(this.bytes(n(ptr), n(size)));
        const s = n(start) >>> 0;
        if (s === 0) this.body = Buffer.concat([data, this.body.subarray(n(length))]);
        else this.body = Buffer.concat([this.body, data]); // start >= size: append
        return OK;
      },
      proxy_get_header_map_pairs: (type, retPtr, retSize) => this.give(serialize(this.map(n(type))), n(retPtr), n(retSize)),
      proxy_set_header_map_pairs: () => OK,
      proxy_get_header_map_value: (type, kp, ks, retPtr, retSize) => {
        const key = this.text(n(kp), n(ks));
        const found = this.map(n(type)).find(([k]) => k === key);
        return found === undefined ? NOT_FOUND : this.give(Buffer.from(found[1]), n(retPtr), n(retSize));
      },
      proxy_add_header_map_value: (type, kp, ks, vp, vs) => { this.map(n(type)).push([this.text(n(kp), n(ks)), this.text(n(vp), n(vs))]); return OK; },
      proxy_replace_header_map_value: (type, kp, ks, vp, vs) => {
        const key = this.text(n(kp), n(ks));
        const m = this.map(n(type)).filter(([k]) => k !== key);
        m.push([key, this.text(n(vp), n(vs))]);
        this.headers.set(n(type), m);
        return OK;
      },
      proxy_remove_header_map_value: (type, kp, ks) => {
        const key = this.text(n(kp), n(ks));
        this.headers.set(n(type), this.map(n(type)).filter(([k]) => k !== key));
        return OK;
      },
      proxy_get_property: (pp, ps, retPtr, retSize) => {
        const v = this.current?.properties[this.text(n(pp), n(ps))];
        return v === undefined ? NOT_FOUND : this.give(v, n(retPtr), n(retSize));
      },
      proxy_set_property: () => OK,
      proxy_send_local_response: (status) => { this.localReply = n(status); return OK; },
      proxy_continue_stream: () => OK,
      proxy_close_stream: () => OK,
      proxy_http_call: (...a) => { this.view().setUint32(n(a[9]), 1, true); return OK; },
      proxy_get_shared_data: () => NOT_FOUND,
      proxy_set_shared_data: () => OK,
      proxy_define_metric: (_t, _p, _s, ret) => { this.view().setUint32(n(ret), this.metricIds++, true); return OK; },
      proxy_increment_metric: () => OK,
      proxy_record_metric: () => OK,
      proxy_get_metric: (_id, ret) => { this.view().setBigUint64(n(ret), 0n, true); return OK; },
      proxy_set_effective_context: () => OK,
      proxy_done: () => OK,
    };
  }

  private wasiImports(): Record<string, (...a: (number | bigint)[]) => number> {
    return {
      fd_write: (_fd, iovs, count, written) => {
        let total = 0;
        for (let i = 0; i < Number(count); i++) {
          const ptr = this.view().getUint32(Number(iovs) + i * 8, true);
          const len = this.view().getUint32(Number(iovs) + i * 8 + 4, true);
          this.logs.push(this.text(ptr, len));
          total += len;
        }
        this.view().setUint32(Number(written), total, true);
        return OK;
      },
      clock_time_get: (_id, _precision, ret) => { this.view().setBigUint64(Number(ret), BigInt(Date.now()) * 1_000_000n, true); return OK; },
      random_get: (ptr, len) => { randomFillSync(new Uint8Array(this.exports.memory.buffer, Number(ptr), Number(len))); return OK; },
      proc_exit: (code) => { throw new Error(`proc_exit(${String(code)})`); },
    };
  }

  // Compiles, instantiates, runs _start, creates root context 1 and configures it; timed per step.
  async start(wasm: Uint8Array, config: string): Promise<void> {
    const bytes = new Uint8Array(wasm); // a plain-ArrayBuffer copy, made before timing
    this.config = Buffer.from(config);
    const now = (): number => Number(process.hrtime.bigint()) / 1e6;
    const t0 = now();
    const module = await WebAssembly.compile(bytes);
    const t1 = now();
    const env = this.envImports();
    const wasi = this.wasiImports();
    const imports: Record<string, Record<string, unknown>> = {};
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.kind !== "function") continue;
      const isWasi = imp.module.startsWith("wasi");
      const table: Record<string, unknown> = isWasi ? wasi : imp.module === "env" ? env : {};
      const fallback = isWasi ? WASI_ENOSYS : NOT_FOUND;
      (imports[imp.module] ??= {})[imp.name] = table[imp.name] ?? ((): number => fallback);
    }
    const instance = await WebAssembly.instantiate(module, imports as WebAssembly.Imports);
    this.x = instance.exports as unknown as PluginExports;
    const t2 = now();
    this.x._start?.();
    const t3 = now();
    this.x.proxy_on_context_create(1, 0);
    this.x.proxy_on_vm_start(1, 0);
    const t4 = now();
    this.configured = this.x.proxy_on_configure(1, this.config.length) !== 0;
    const t5 = now();
    this.timings.compileMs = t1 - t0;
    this.timings.instantiateMs = t2 - t1;
    this.timings.startMs = t3 - t2;
    this.timings.vmStartMs = t4 - t3;
    this.timings.configureMs = t5 - t4;
  }

  // Another root context configured like the first (each Envoy worker, each reconfiguration).
  configureAnotherRoot(): boolean {
    const id = this.nextContext++;
    this.exports.proxy_on_context_create(id, 0);
    this.exports.proxy_on_vm_start(id, 0);
    return this.exports.proxy_on_configure(id, this.config.length) !== 0;
  }

  memoryBytes(): number {
    return this.exports.memory.buffer.byteLength;
  }

  // One request through the plugin, in Envoy's order. With `phases`, adds each callback's time (ns).
  exchange(e: Exchange, phases?: PhaseTimes): ExchangeOutcome {
    const x = this.exports;
    const id = this.nextContext++;
    const clock = phases === undefined ? null : new PhaseClock(phases);
    this.current = e;
    this.localReply = null;
    this.headers.set(HeaderMap.RequestHeaders, e.requestHeaders.map(([k, v]) => [k, v]));
    this.headers.set(HeaderMap.ResponseHeaders, e.responseHeaders.map(([k, v]) => [k, v]));
    clock?.start();
    x.proxy_on_context_create(id, 1);
    x.proxy_on_request_headers(id, e.requestHeaders.length, 0);
    clock?.lap("requestHeaders");
    if (this.localReply === null) {
      const chunk = e.requestChunkBytes ?? e.requestBody.length;
      // Envoy buffers while the filter pauses: each call sees everything received so far.
      for (let got = Math.min(chunk, e.requestBody.length); ; got = Math.min(got + chunk, e.requestBody.length)) {
        this.body = e.requestBody.subarray(0, got);
        const end = got >= e.requestBody.length;
        x.proxy_on_request_body(id, got, end ? 1 : 0);
        if (end || this.localReply !== null) break;
      }
    }
    clock?.lap("requestBody");
    const routed = this.map(HeaderMap.RequestHeaders).find(([k]) => k === "x-higress-llm-model")?.[1] ?? null;
    if (this.localReply === null) {
      x.proxy_on_response_headers(id, e.responseHeaders.length, 0);
      clock?.lap("responseHeaders");
      e.responseChunks.forEach((c, i) => {
        this.body = c;
        x.proxy_on_response_body(id, c.length, i === e.responseChunks.length - 1 ? 1 : 0);
      });
      clock?.lap("responseBody");
    }
    x.proxy_on_log(id);
    clock?.lap("log");
    x.proxy_on_done(id);
    x.proxy_on_delete(id);
    clock?.lap("doneDelete");
    this.current = null;
    this.body = Buffer.alloc(0);
    return { localReplyStatus: this.localReply, routedTo: routed };
  }
}

// Time per phase of an exchange, summed over exchanges (ns): context create + request headers,
// request body, response headers, response body (all chunks), log, done + delete.
export type Phase = "requestHeaders" | "requestBody" | "responseHeaders" | "responseBody" | "log" | "doneDelete";
export type PhaseTimes = Record<Phase, number>;

export function phaseTimes(): PhaseTimes {
  return { requestHeaders: 0, requestBody: 0, responseHeaders: 0, responseBody: 0, log: 0, doneDelete: 0 };
}

class PhaseClock {
  private t = 0n;

  constructor(private into: PhaseTimes) {}

  start(): void {
    this.t = process.hrtime.bigint();
  }

  lap(phase: Phase): void {
    const now = process.hrtime.bigint();
    this.into[phase] += Number(now - this.t);
    this.t = now;
  }
}

function serialize(pairs: Pairs): Buffer {
  const keys = pairs.map(([k]) => Buffer.from(k));
  const values = pairs.map(([, v]) => Buffer.from(v));
  const size = 4 + 8 * pairs.length + keys.reduce((a, k, i) => a + k.length + (values[i]?.length ?? 0) + 2, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(pairs.length, 0);
  let off = 4;
  keys.forEach((k, i) => {
    out.writeUInt32LE(k.length, off);
    out.writeUInt32LE(values[i]?.length ?? 0, off + 4);
    off += 8;
  });
  keys.forEach((k, i) => {
    k.copy(out, off);
    off += k.length + 1;
    const v = values[i] ?? Buffer.alloc(0);
    v.copy(out, off);
    off += v.length + 1;
  });
  return out;
}

// Envoy's encoding of an integer property: 8 bytes, little-endian.
export function int64Property(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(v));
  return b;
}
