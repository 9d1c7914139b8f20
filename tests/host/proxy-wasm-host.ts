// An in-process proxy-wasm ABI 0.2.1 host in JavaScript that runs the real plugin (build/plugin.wasm)
// in Node's V8, the engine Envoy embeds, and records everything the plugin does to a stream: headers set
// and removed, body bytes after its edits, local replies, http calls, filter state, metrics, logs and
// the action each callback returned. Tests drive one HTTP stream phase by phase (as Higress tests its
// Go plugins with a mock host); the benchmarks use it to time and CPU-profile the plugin.
//
// It follows Envoy's Wasm host as of the 1.3x releases (source/extensions/common/wasm/context.cc, read from a
// recent main, not the 1.39.3 tag itself; proxy-wasm-cpp-host for shared data and exports):
//  - call order: context create, request headers, request body per chunk, response headers, response
//    body per chunk, then log, done, delete (the access log runs before the filters are destroyed);
//  - a body callback that returned Pause (StopIterationAndBuffer) has its chunk buffered: the next
//    callback sees everything buffered so far (decodeData adds the new chunk to the buffer first);
//    one that returned Continue sees only its own chunk;
//  - while a body callback's Pause (StopIterationAndBuffer) holds the body, other callbacks (a call's
//    answer, a tick) read and edit what Envoy buffered (Context::getBuffer: buffering_request_body_ gives the
//    decoding buffer); continue_stream then sends it on, ended if the client's body had ended;
//  - proxy_set_buffer_bytes is Buffer::copyFrom: start 0 drains `length` bytes then prepends, a start
//    at or past the end appends, anything else is BadArgument;
//  - header maps: lowercase keys; replace removes every value and appends one (HeaderMap::setCopy);
//    a map is only reachable while its filter callback paused on it (request_headers_ is reset once
//    decodeHeaders returns Continue), except in the log phase, which sees the final maps read-only;
//  - local replies run after the VM call: before any response header reached the filter they go
//    through its encode callbacks like any response; afterwards they go straight to the client
//    (FilterManager::sendLocalReply);
//  - http calls are made by the root context and answered on it (proxy_on_http_call_response with the
//    root's id), 0 headers meaning failure; set_effective_context lasts for one callback;
//  - gRPC calls (proxy_grpc_call, the service string a cluster name) likewise: a unary call's answer is
//    proxy_on_grpc_receive alone (its message in buffer 5, GrpcReceiveBuffer, during that callback), a
//    failure (the service's non-OK status, no healthy host, the timeout) is proxy_on_grpc_close with the
//    gRPC status, whose message proxy_get_status reads; an unknown cluster is ParseFailure; a cancelled
//    call is never answered. Call tokens as Envoy numbers them: http 4, 8, …; gRPC 5, 9, …;
//  - set_property writes the request's filter state ("wasm.<name>"); get_property reads attributes
//    first, then the filter state (the attempt stage reads the request stage's this way);
//  - shared data is per vm_id with compare-and-swap counters (cas 0 writes unconditionally), shared by
//    every VM (worker) of the same FakeEnvoy; metrics are process-wide, by full name.
// Where a behaviour is a guess rather than read from Envoy's source, the comment says so.
import { readFileSync } from "node:fs";
import { randomFillSync } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// LLM_GATEWAY_WASM: another build of the plugin, as for the harness (tests/harness/envoy.ts).
export const PLUGIN_WASM = process.env.LLM_GATEWAY_WASM ?? join(fileURLToPath(new URL("../..", import.meta.url)), "build", "plugin.wasm");

// proxy-wasm ABI 0.2.1 values.
export const enum Status {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  ParseFailure = 4,
  Empty = 7,
  CasMismatch = 8,
  Unimplemented = 12,
}
const WASI_ENOSYS = 52;
const enum Buf {
  RequestBody = 0,
  ResponseBody = 1,
  HttpCallResponseBody = 4,
  GrpcReceiveBuffer = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
}
const enum MapType {
  RequestHeaders = 0,
  RequestTrailers = 1,
  ResponseHeaders = 2,
  ResponseTrailers = 3,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}
export type MetricKind = "counter" | "gauge" | "histogram";
const METRIC_KINDS: MetricKind[] = ["counter", "gauge", "histogram"];
export type Action = "Continue" | "Pause";
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type Pairs = [string, string][];

interface PluginExports {
  memory: WebAssembly.Memory;
  malloc(size: number): number;
  _start?: () => void;
  proxy_on_context_create(id: number, parent: number): void;
  proxy_on_vm_start(id: number, size: number): number;
  proxy_on_configure(id: number, size: number): number;
  proxy_on_tick(id: number): void;
  proxy_on_request_headers(id: number, n: number, end: number): number;
  proxy_on_request_body(id: number, size: number, end: number): number;
  proxy_on_response_headers(id: number, n: number, end: number): number;
  proxy_on_response_body(id: number, size: number, end: number): number;
  proxy_on_http_call_response(id: number, token: number, headers: number, body: number, trailers: number): void;
  proxy_on_grpc_receive?: (id: number, token: number, size: number) => void;
  proxy_on_grpc_close?: (id: number, token: number, status: number) => void;
  proxy_on_log(id: number): void;
  proxy_on_done(id: number): number;
  proxy_on_delete(id: number): void;
}

// ---- what Envoy holds outside the VMs: clock, shared data, stats ---------------------------------

// Wall-clock time the plugin reads (proxy_get_current_time_nanoseconds, WASI clock_time_get); it only
// moves when a test moves it.
export class FakeClock {
  constructor(public ms: number = 1_700_000_000_000) {}
  nanos(): bigint {
    return BigInt(this.ms) * 1_000_000n;
  }
}

export interface MetricValue {
  kind: MetricKind;
  value: number;
  samples: number[];
}

// Envoy's stats: one per name, whichever VM defined it (Envoy's scope dedups by name).
export class Metrics {
  private byName = new Map<string, MetricValue>();
  readonly defined: { kind: MetricKind; name: string }[] = [];

  define(kind: MetricKind, name: string): MetricValue {
    this.defined.push({ kind, name });
    let m = this.byName.get(name);
    if (m === undefined) {
      m = { kind, value: 0, samples: [] };
      this.byName.set(name, m);
    }
    return m;
  }

  get(name: string): MetricValue | undefined {
    return this.byName.get(name);
  }
  names(): string[] {
    return [...this.byName.keys()];
  }

  // A counter's or gauge's value; 0 when never defined (like a Prometheus series not yet written).
  value(name: string): number {
    return this.byName.get(name)?.value ?? 0;
  }
  // A histogram's recorded values, in order.
  samples(name: string): number[] {
    return this.byName.get(name)?.samples ?? [];
  }
  // Every metric whose name ends with `suffix`, with its value (for asserting on label sets).
  endingWith(suffix: string): Map<string, MetricValue> {
    return new Map([...this.byName].filter(([n]) => n.endsWith(suffix)));
  }
}

// proxy-wasm-cpp-host's SharedData: per vm_id, a value and a CAS counter that starts at 1 and never
// hands out 0.
export class SharedData {
  private maps = new Map<string, Map<string, { value: Buffer; cas: number }>>();
  private nextCas = 1;

  get(vmId: string, key: string): { value: Buffer; cas: number } | undefined {
    return this.maps.get(vmId)?.get(key);
  }

  set(vmId: string, key: string, value: Buffer, cas: number): Status {
    let m = this.maps.get(vmId);
    if (m === undefined) {
      m = new Map();
      this.maps.set(vmId, m);
    }
    const cur = m.get(key);
    if (cur !== undefined && cas !== 0 && cas !== cur.cas) return Status.CasMismatch;
    m.set(key, { value: Buffer.from(value), cas: this.takeCas() });
    return Status.Ok;
  }

  private takeCas(): number {
    const c = this.nextCas;
    this.nextCas = (this.nextCas + 1) >>> 0;
    if (this.nextCas === 0) this.nextCas = 1;
    return c;
  }

  entries(vmId: string): Map<string, string> {
    return new Map([...(this.maps.get(vmId) ?? new Map<string, { value: Buffer }>())].map(([k, v]) => [k, v.value.toString()]));
  }
}

export interface EnvoyOptions {
  // Clusters dispatch_http_call and dispatch_grpc_call may target; Envoy answers BadArgument (http) or
  // ParseFailure (gRPC) for any other. null: any.
  clusters?: string[] | null;
  clock?: FakeClock;
}

// One Envoy process: its clock, shared data and stats, and the VMs (one per worker) that share them.
export class FakeEnvoy {
  readonly clock: FakeClock;
  readonly sharedData = new SharedData();
  readonly metrics = new Metrics();
  readonly clusters: Set<string> | null;
  readonly vms: PluginVm[] = [];
  private module: Promise<WebAssembly.Module> | null = null;

  constructor(opts: EnvoyOptions = {}) {
    this.clock = opts.clock ?? new FakeClock();
    this.clusters = opts.clusters == null ? null : new Set(opts.clusters);
  }

  // A VM running `wasm` (default: the release build), as Envoy starts one per worker.
  async startVm(opts: { wasm?: Uint8Array; vmId?: string } = {}): Promise<PluginVm> {
    let module: WebAssembly.Module;
    const timings = { compileMs: 0, instantiateMs: 0, startMs: 0 };
    const t0 = nowMs();
    if (opts.wasm !== undefined) {
      module = await WebAssembly.compile(new Uint8Array(opts.wasm));
    } else {
      this.module ??= WebAssembly.compile(readFileSync(PLUGIN_WASM));
      module = await this.module;
    }
    timings.compileMs = nowMs() - t0;
    const vm = new PluginVm(this, opts.vmId ?? "llm-gateway");
    await vm.instantiate(module, timings);
    this.vms.push(vm);
    return vm;
  }

  // Moves the clock by `ms`, firing every root context's tick whose time comes (in time order).
  advance(ms: number): void {
    const end = this.clock.ms + ms;
    for (;;) {
      let next: { vm: PluginVm; rootId: number; at: number } | null = null;
      for (const vm of this.vms) {
        for (const [rootId, t] of vm.ticks)
          if (t.nextMs <= end && (next === null || t.nextMs < next.at)) next = { vm, rootId, at: t.nextMs };
      }
      if (next === null) break;
      this.clock.ms = Math.max(this.clock.ms, next.at);
      const t = next.vm.ticks.get(next.rootId);
      if (t !== undefined) t.nextMs = next.at + t.periodMs;
      next.vm.tick(next.rootId);
    }
    this.clock.ms = end;
  }
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

// ---- one VM ---------------------------------------------------------------------------------------

export interface LogLine {
  level: LogLevel;
  message: string;
  context: number;
}

export interface ConfigureOptions {
  // Where the filter runs (config `stage`): set into the configuration when given.
  stage?: "request" | "attempt";
}

// One Wasm instance: the plugin's module state (its roots, streams, memory budget, journal) lives here.
export class PluginVm {
  private x: PluginExports | null = null;
  readonly logs: LogLine[] = [];
  readonly timings = { compileMs: 0, instantiateMs: 0, startMs: 0 };
  readonly ticks = new Map<number, { periodMs: number; nextMs: number }>();
  readonly roots = new Map<number, PluginRoot>();
  readonly streams = new Map<number, HttpStream>();
  private nextId = 1;
  // The context host calls act on: the callback's own, or the effective one the plugin chose.
  private current = 0;
  private effective = 0;
  private configuring: Buffer | null = null;
  // proxy_on_http_call_response is running for this call (HttpCallResponse* read from it).
  private answering: HttpCall | null = null;
  // proxy_on_grpc_receive is running with this message (GrpcReceiveBuffer).
  private grpcReceived: Buffer | null = null;
  // What proxy_get_status reports: the last gRPC close's status and message.
  private status: { code: number; message: string } = { code: 0, message: "" };
  private afterCall: (() => void)[] = [];
  // Envoy's callout ids (proxy-wasm-cpp-host WasmBase): the low two bits say the kind of call.
  private nextHttpToken = 0;
  private nextGrpcToken = 1;

  constructor(
    readonly envoy: FakeEnvoy,
    readonly vmId: string,
  ) {}

  get exports(): PluginExports {
    if (this.x === null) throw new Error("proxy-wasm host: module not instantiated");
    return this.x;
  }

  async instantiate(module: WebAssembly.Module, timings: { compileMs: number }): Promise<void> {
    const imports: Record<string, Record<string, unknown>> = {};
    const env = this.envImports();
    const wasi = this.wasiImports();
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.kind !== "function") continue;
      const isWasi = imp.module.startsWith("wasi");
      const table: Record<string, unknown> = isWasi ? wasi : imp.module === "env" ? env : {};
      const missing = isWasi ? WASI_ENOSYS : Status.Unimplemented;
      (imports[imp.module] ??= {})[imp.name] = table[imp.name] ?? ((): number => missing);
    }
    const t0 = nowMs();
    const instance = await WebAssembly.instantiate(module, imports as WebAssembly.Imports);
    this.x = instance.exports as unknown as PluginExports;
    const t1 = nowMs();
    this.x._start?.();
    this.timings.compileMs = timings.compileMs;
    this.timings.instantiateMs = t1 - t0;
    this.timings.startMs = nowMs() - t1;
  }

  memoryBytes(): number {
    return this.exports.memory.buffer.byteLength;
  }

  // A root context for one plugin configuration: created, started and configured as Envoy does for
  // each filter config (and again on every reconfiguration).
  configure(config: unknown, opts: ConfigureOptions = {}): PluginRoot {
    let text: string;
    if (typeof config === "string") text = config;
    else text = JSON.stringify(opts.stage !== undefined ? { ...(config as Record<string, unknown>), stage: opts.stage } : config);
    const id = this.nextId++;
    const root = new PluginRoot(this, id);
    this.roots.set(id, root);
    const t0 = nowMs();
    this.call(id, () => this.exports.proxy_on_context_create(id, 0));
    this.call(id, () => this.exports.proxy_on_vm_start(id, 0));
    const t1 = nowMs();
    this.configuring = Buffer.from(text);
    try {
      root.configured = this.call(id, () => this.exports.proxy_on_configure(id, this.configuring?.length ?? 0)) !== 0;
    } finally {
      this.configuring = null;
    }
    root.timings = { vmStartMs: t1 - t0, configureMs: nowMs() - t1 };
    return root;
  }

  // Envoy's done + delete for a root (a replaced configuration).
  deleteRoot(root: PluginRoot): void {
    this.call(root.id, () => this.exports.proxy_on_done(root.id));
    this.call(root.id, () => this.exports.proxy_on_delete(root.id));
    this.roots.delete(root.id);
    this.ticks.delete(root.id);
  }

  newStream(root: PluginRoot, opts: StreamOptions): HttpStream {
    const id = this.nextId++;
    const s = new HttpStream(this, root, id, opts);
    this.streams.set(id, s);
    this.call(id, () => this.exports.proxy_on_context_create(id, root.id));
    return s;
  }

  forget(stream: HttpStream): void {
    this.streams.delete(stream.id);
  }

  tick(rootId: number): void {
    this.call(rootId, () => this.exports.proxy_on_tick(rootId));
  }

  // Envoy delivers an http call's answer (or failure) to the root that made it.
  answerCall(call: HttpCall): void {
    const a = call.answer;
    const headers = a === null ? 0 : a.headers.length;
    const body = a === null ? 0 : a.body.length;
    this.answering = call;
    try {
      this.call(call.rootId, () => this.exports.proxy_on_http_call_response(call.rootId, call.token, headers, body, 0));
    } finally {
      this.answering = null;
    }
  }

  // Envoy delivers a gRPC call's answer to the root that made it: the message (receive), or a failure
  // with its status (close).
  answerGrpc(call: GrpcCall, answer: GrpcAnswer): void {
    if (call.answered) throw new Error(`gRPC call ${call.token} already answered`);
    if (call.cancelled) throw new Error(`gRPC call ${call.token} was cancelled: Envoy answers nothing`);
    call.answered = true;
    call.answer = answer;
    call.stream?.callbacks.push({ callback: "message" in answer ? "grpc_receive" : "grpc_close", action: null });
    if ("message" in answer) {
      this.grpcReceived = answer.message;
      try {
        this.call(call.rootId, () => this.exports.proxy_on_grpc_receive?.(call.rootId, call.token, answer.message.length));
      } finally {
        this.grpcReceived = null;
      }
    } else {
      this.status = { code: answer.status, message: answer.statusMessage ?? "" };
      try {
        this.call(call.rootId, () => this.exports.proxy_on_grpc_close?.(call.rootId, call.token, answer.status));
      } finally {
        this.status = { code: 0, message: "" };
      }
    }
  }

  // One callback into the VM; host calls made during it act on `contextId` (or the effective
  // context the plugin sets), and actions Envoy defers (local replies) run after it returns.
  call<T>(contextId: number, f: () => T): T {
    const saved = [this.current, this.effective];
    this.current = contextId;
    this.effective = 0;
    let r: T;
    try {
      r = f();
    } finally {
      [this.current, this.effective] = saved as [number, number];
    }
    if (this.current === 0) {
      while (this.afterCall.length > 0) this.afterCall.shift()?.();
    }
    return r;
  }

  private contextId(): number {
    return this.effective !== 0 ? this.effective : this.current;
  }

  private stream(): HttpStream | null {
    return this.streams.get(this.contextId()) ?? null;
  }

  private rootOf(id: number): PluginRoot | null {
    return this.roots.get(id) ?? this.streams.get(id)?.root ?? null;
  }

  // ---- guest memory ----

  private mem(): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer);
  }
  private view(): DataView {
    return new DataView(this.exports.memory.buffer);
  }
  private bytes(ptr: number, len: number): Buffer {
    return Buffer.from(this.mem().subarray(ptr, ptr + len));
  }
  private text(ptr: number, len: number): string {
    return this.bytes(ptr, len).toString("utf8");
  }
  private u32(ptr: number, v: number): void {
    this.view().setUint32(ptr, v >>> 0, true);
  }

  // Copies bytes into guest memory as Envoy does: through the module's malloc, pointer and size
  // written to the two out-slots.
  private give(data: Buffer, retPtr: number, retSize: number): Status {
    const p = this.exports.malloc(data.length);
    if (p === 0 && data.length > 0) return Status.BadArgument; // a guess: Envoy reports InvalidMemoryAccess
    this.mem().set(data, p);
    this.u32(retPtr, p);
    this.u32(retSize, data.length);
    return Status.Ok;
  }

  // ---- the ABI ----

  private headerMap(type: number, write: boolean): Pairs | null {
    const s = this.stream();
    if (type === MapType.HttpCallResponseHeaders) return write ? null : (this.answering?.answer?.headers ?? null);
    if (type === MapType.HttpCallResponseTrailers) return write ? null : [];
    if (s === null) return null;
    return s.headerMap(type, write);
  }

  private buffer(type: number): BodyBuffer | null {
    if (type === Buf.PluginConfiguration) return this.configuring === null ? null : new BodyBuffer(this.configuring, true);
    if (type === Buf.VmConfiguration) return new BodyBuffer(Buffer.alloc(0), true);
    if (type === Buf.HttpCallResponseBody) {
      const a = this.answering?.answer;
      return a == null ? null : new BodyBuffer(a.body, true);
    }
    if (type === Buf.GrpcReceiveBuffer) return this.grpcReceived === null ? null : new BodyBuffer(this.grpcReceived, true);
    const s = this.stream();
    if (s === null) return null;
    return s.bodyBuffer(type);
  }

  private envImports(): Record<string, (...a: never[]) => number> {
    const n = (v: number | bigint | undefined): number => Number(v ?? 0);
    return {
      proxy_log: (level: number, p: number, s: number) => {
        this.logs.push({ level: LOG_LEVELS[level] ?? "critical", message: this.text(p, s), context: this.contextId() });
        return Status.Ok;
      },
      proxy_get_log_level: (ret: number) => {
        this.u32(ret, 2);
        return Status.Ok;
      }, // info, Envoy's default
      proxy_get_current_time_nanoseconds: (ret: number) => {
        this.view().setBigUint64(ret, this.envoy.clock.nanos(), true);
        return Status.Ok;
      },
      proxy_set_tick_period_milliseconds: (period: number) => {
        // Ticks belong to the root of whichever context asked (Envoy's setTickPeriod).
        const root = this.rootOf(this.contextId());
        if (root === null) return Status.BadArgument;
        if (period === 0) this.ticks.delete(root.id);
        else this.ticks.set(root.id, { periodMs: period, nextMs: this.envoy.clock.ms + period });
        return Status.Ok;
      },
      proxy_get_buffer_bytes: (type: number, start: number, length: number, retPtr: number, retSize: number) => {
        const b = this.buffer(type);
        if (b === null) return Status.NotFound;
        const size = b.data.length;
        // proxy-wasm-cpp-host clamps a read past the end; a zero-length read writes nothing.
        const from = Math.min(start >>> 0, size);
        const len = Math.min(length >>> 0, size - from);
        if (len === 0) return Status.Ok;
        return this.give(b.data.subarray(from, from + len), retPtr, retSize);
      },
      proxy_set_buffer_bytes: (type: number, start: number, length: number, ptr: number, size: number) => {
        const b = this.buffer(type);
        if (b === null) return Status.NotFound;
        if (b.readOnly) return Status.BadArgument;
        return b.copyFrom(
          start >>> 0,
          length >>> 0,
          this.bytes(ptr, size),
          type === Buf.RequestBody ? "request" : "response",
          this.stream(),
        );
      },
      proxy_get_header_map_pairs: (type: number, retPtr: number, retSize: number) => {
        // Envoy answers an unavailable map with an empty list here (headerMapToPairs of null).
        return this.give(serializePairs(this.headerMap(type, false) ?? []), retPtr, retSize);
      },
      proxy_set_header_map_pairs: (type: number, p: number, size: number) => {
        const m = this.headerMap(type, true);
        if (m === null) return Status.BadArgument;
        const pairs = deserializePairs(this.bytes(p, size));
        m.splice(0, m.length, ...pairs.map(([k, v]): [string, string] => [k.toLowerCase(), v]));
        this.stream()?.noteHeader(type, "set_pairs", "*", null);
        return Status.Ok;
      },
      proxy_get_header_map_value: (type: number, kp: number, ks: number, retPtr: number, retSize: number) => {
        const m = this.headerMap(type, false);
        if (m === null) return this.stream()?.inLog === true ? Status.NotFound : Status.BadArgument;
        const key = this.text(kp, ks).toLowerCase();
        const found = m.find(([k]) => k === key);
        return found === undefined ? Status.NotFound : this.give(Buffer.from(found[1]), retPtr, retSize);
      },
      proxy_add_header_map_value: (type: number, kp: number, ks: number, vp: number, vs: number) => {
        const m = this.headerMap(type, true);
        if (m === null) return Status.BadArgument;
        const key = this.text(kp, ks).toLowerCase();
        const value = this.text(vp, vs);
        m.push([key, value]);
        this.stream()?.noteHeader(type, "add", key, value);
        return Status.Ok;
      },
      proxy_replace_header_map_value: (type: number, kp: number, ks: number, vp: number, vs: number) => {
        const m = this.headerMap(type, true);
        if (m === null) return Status.BadArgument;
        const key = this.text(kp, ks).toLowerCase();
        const value = this.text(vp, vs);
        // HeaderMap::setCopy with http_set_copy_replace_all_headers (on by default): remove all, add one.
        m.splice(0, m.length, ...m.filter(([k]) => k !== key), [key, value]);
        this.stream()?.noteHeader(type, "replace", key, value);
        return Status.Ok;
      },
      proxy_remove_header_map_value: (type: number, kp: number, ks: number) => {
        const m = this.headerMap(type, true);
        if (m === null) return Status.BadArgument;
        const key = this.text(kp, ks).toLowerCase();
        m.splice(0, m.length, ...m.filter(([k]) => k !== key));
        this.stream()?.noteHeader(type, "remove", key, null);
        return Status.Ok;
      },
      proxy_get_property: (pp: number, ps: number, retPtr: number, retSize: number) => {
        const path = this.text(pp, ps);
        const s = this.stream();
        const v = s?.property(path) ?? this.rootProperty(path);
        return v === undefined ? Status.NotFound : this.give(v, retPtr, retSize);
      },
      proxy_set_property: (pp: number, ps: number, vp: number, vs: number) => {
        const s = this.stream();
        if (s === null) return Status.NotFound; // a root has no stream info
        s.filterState.set(this.text(pp, ps), this.bytes(vp, vs));
        return Status.Ok;
      },
      proxy_send_local_response: (
        status: number,
        dp: number,
        ds: number,
        bp: number,
        bs: number,
        hp: number,
        hs: number,
        _grpc: number,
      ) => {
        const s = this.stream();
        if (s === null) return Status.Ok; // Envoy: no decoder callbacks, nothing happens
        const reply: LocalReply = {
          status,
          details: this.text(dp, ds).replace(/\s/g, "_"),
          body: this.bytes(bp, bs),
          headers: deserializePairs(this.bytes(hp, hs)).map(([k, v]): [string, string] => [k.toLowerCase(), v]),
          direct: false,
        };
        this.afterCall.push(() => s.deliverLocalReply(reply));
        return Status.Ok;
      },
      proxy_continue_stream: (type: number) => {
        const s = this.stream();
        if (s !== null) this.afterCall.push(() => s.resume(type === 0 ? "request" : "response"));
        return Status.Ok;
      },
      proxy_close_stream: () => {
        const s = this.stream();
        if (s !== null) s.reset = true;
        return Status.Ok;
      },
      proxy_http_call: (
        cp: number,
        cs: number,
        hp: number,
        hs: number,
        bp: number,
        bs: number,
        _tp: number,
        _ts: number,
        timeout: number,
        tokenPtr: number,
      ) => {
        const cluster = this.text(cp, cs);
        const headers = deserializePairs(this.bytes(hp, hs)).map(([k, v]): [string, string] => [k.toLowerCase(), v]);
        if (this.envoy.clusters !== null && !this.envoy.clusters.has(cluster)) return Status.BadArgument;
        // Envoy refuses a call without these three (Context::httpCall).
        if (![":path", ":method", ":authority"].every((h) => headers.some(([k]) => k === h))) return Status.BadArgument;
        const root = this.rootOf(this.contextId());
        if (root === null) return Status.BadArgument;
        this.nextHttpToken += 4;
        const token = this.nextHttpToken;
        const call: HttpCall = {
          token,
          rootId: root.id,
          cluster,
          headers,
          body: this.bytes(bp, bs),
          timeoutMs: timeout,
          answer: null,
          answered: false,
          stream: this.stream(),
        };
        call.stream?.calls.push(call);
        root.calls.push(call);
        this.u32(tokenPtr, token);
        return Status.Ok;
      },
      proxy_grpc_call: (
        sp: number,
        ss: number,
        np: number,
        ns: number,
        mp: number,
        ms: number,
        hp: number,
        hs: number,
        bp: number,
        bs: number,
        timeout: number,
        tokenPtr: number,
      ) => {
        const cluster = this.text(sp, ss);
        // Envoy reads the service string as a serialized GrpcService first, else as a cluster name that
        // must exist (Context::grpcCall); these tests only use cluster names.
        if (this.envoy.clusters !== null && !this.envoy.clusters.has(cluster)) return Status.ParseFailure;
        const root = this.rootOf(this.contextId());
        if (root === null) return Status.BadArgument;
        this.nextGrpcToken += 4;
        const token = this.nextGrpcToken;
        const call: GrpcCall = {
          token,
          rootId: root.id,
          cluster,
          service: this.text(np, ns),
          method: this.text(mp, ms),
          metadata: deserializePairs(this.bytes(hp, hs)),
          message: this.bytes(bp, bs),
          timeoutMs: timeout,
          answer: null,
          answered: false,
          cancelled: false,
          stream: this.stream(),
        };
        call.stream?.grpcCalls.push(call);
        root.grpcCalls.push(call);
        this.u32(tokenPtr, token);
        return Status.Ok;
      },
      proxy_grpc_cancel: (token: number) => this.cancelGrpc(token),
      proxy_grpc_close: (token: number) => this.cancelGrpc(token),
      proxy_get_status: (codePtr: number, msgPtr: number, msgSize: number) => {
        this.u32(codePtr, this.status.code);
        return this.give(Buffer.from(this.status.message), msgPtr, msgSize);
      },
      proxy_get_shared_data: (kp: number, ks: number, retPtr: number, retSize: number, casPtr: number) => {
        const v = this.envoy.sharedData.get(this.vmId, this.text(kp, ks));
        if (v === undefined) return Status.NotFound;
        const st = this.give(v.value, retPtr, retSize);
        this.u32(casPtr, v.cas);
        return st;
      },
      proxy_set_shared_data: (kp: number, ks: number, vp: number, vs: number, cas: number) => {
        return this.envoy.sharedData.set(this.vmId, this.text(kp, ks), this.bytes(vp, vs), cas >>> 0);
      },
      proxy_define_metric: (type: number, np: number, ns: number, ret: number) => {
        const kind = METRIC_KINDS[type];
        if (kind === undefined) return Status.BadArgument;
        const name = this.text(np, ns);
        this.envoy.metrics.define(kind, name);
        // Envoy hands out a new id per definition, the type in the low two bits.
        const id = this.metricIds.length * 4 + type;
        this.metricIds.push(name);
        this.u32(ret, id);
        return Status.Ok;
      },
      proxy_increment_metric: (id: number, delta: bigint) => {
        const m = this.metricOf(id);
        if (m === undefined || m.kind === "histogram") return Status.NotFound;
        if (m.kind === "counter" && delta < 0n) return Status.BadArgument;
        m.value += n(delta);
        return Status.Ok;
      },
      proxy_record_metric: (id: number, value: bigint) => {
        const m = this.metricOf(id);
        if (m === undefined) return Status.NotFound;
        if (m.kind === "counter") m.value += n(value);
        else if (m.kind === "gauge") m.value = n(value);
        else m.samples.push(n(value));
        return Status.Ok;
      },
      proxy_get_metric: (id: number, ret: number) => {
        const m = this.metricOf(id);
        if (m === undefined) return Status.NotFound;
        if (m.kind === "histogram") return Status.BadArgument;
        this.view().setBigUint64(ret, BigInt(m.value), true);
        return Status.Ok;
      },
      proxy_set_effective_context: (id: number) => {
        if (!this.streams.has(id) && !this.roots.has(id)) return Status.BadArgument;
        this.effective = id;
        return Status.Ok;
      },
      proxy_done: () => Status.Ok,
    } as Record<string, (...a: never[]) => number>;
  }

  private metricIds: string[] = [];

  // A unary call cancelled or closed before its answer: Envoy forgets it (NotFound once answered).
  private cancelGrpc(token: number): Status {
    for (const root of this.roots.values()) {
      const call = root.grpcCalls.find((c) => c.token === token);
      if (call === undefined) continue;
      if (call.answered || call.cancelled) return Status.NotFound;
      call.cancelled = true;
      return Status.Ok;
    }
    return Status.NotFound;
  }

  private metricOf(id: number): MetricValue | undefined {
    const name = this.metricIds[id >>> 2];
    if (name === undefined || METRIC_KINDS[id & 3] === undefined) return undefined;
    const m = this.envoy.metrics.get(name);
    return m?.kind === METRIC_KINDS[id & 3] ? m : undefined;
  }

  private rootProperty(path: string): Buffer | undefined {
    if (path === "plugin_root_id") return Buffer.from("");
    if (path === "plugin_vm_id") return Buffer.from(this.vmId);
    return undefined;
  }

  private wasiImports(): Record<string, (...a: never[]) => number> {
    return {
      fd_write: (_fd: number, iovs: number, count: number, written: number) => {
        let total = 0;
        for (let i = 0; i < count; i++) {
          const ptr = this.view().getUint32(iovs + i * 8, true);
          const len = this.view().getUint32(iovs + i * 8 + 4, true);
          this.logs.push({ level: "error", message: this.text(ptr, len), context: this.contextId() });
          total += len;
        }
        this.u32(written, total);
        return 0;
      },
      clock_time_get: (_id: number, _precision: bigint, ret: number) => {
        this.view().setBigUint64(ret, this.envoy.clock.nanos(), true);
        return 0;
      },
      random_get: (ptr: number, len: number) => {
        randomFillSync(new Uint8Array(this.exports.memory.buffer, ptr, len));
        return 0;
      },
      proc_exit: (code: number) => {
        throw new Error(`proc_exit(${String(code)})`);
      },
    } as Record<string, (...a: never[]) => number>;
  }
}

// A root context: one plugin configuration in a VM.
export class PluginRoot {
  configured = false;
  timings = { vmStartMs: 0, configureMs: 0 };
  readonly calls: HttpCall[] = [];
  readonly grpcCalls: GrpcCall[] = [];

  constructor(
    readonly vm: PluginVm,
    readonly id: number,
  ) {}

  stream(opts: StreamOptions = {}): HttpStream {
    return this.vm.newStream(this, opts);
  }

  // The gRPC calls no one answered or cancelled yet, oldest first.
  pendingGrpc(): GrpcCall[] {
    return this.grpcCalls.filter((c) => !c.answered && !c.cancelled);
  }

  answerGrpc(call: GrpcCall, answer: GrpcAnswer): void {
    this.vm.answerGrpc(call, answer);
  }
}

// A body buffer the plugin reads and edits: proxy_set_buffer_bytes as Envoy's Buffer::copyFrom.
class BodyBuffer {
  constructor(
    public data: Buffer,
    readonly readOnly: boolean,
    private onChange?: (b: Buffer) => void,
  ) {}

  copyFrom(start: number, length: number, bytes: Buffer, which: "request" | "response", stream: HttpStream | null): Status {
    const size = this.data.length;
    let next: Buffer;
    if (start === 0)
      next = Buffer.concat([bytes, this.data.subarray(Math.min(length, size))]); // drain, then prepend
    else if (start >= size)
      next = Buffer.concat([this.data, bytes]); // append
    else return Status.BadArgument;
    stream?.bufferEdits.push({ body: which, start, length, bytes: bytes.length });
    this.data = next;
    this.onChange?.(next);
    return Status.Ok;
  }
}

// ---- one HTTP stream ------------------------------------------------------------------------------

export interface StreamOptions {
  // Attributes get_property answers, by path with segments joined by NUL ("response\0code_details"),
  // e.g. route_name, cluster_name (Higress's names) or xds\0route_name (upstream Envoy's).
  properties?: Record<string, string | Buffer>;
  // The request's filter state, shared with another stream (the attempt stage reads the request
  // stage's); a new one by default.
  filterState?: Map<string, Buffer>;
}

export interface LocalReply {
  status: number;
  details: string;
  body: Buffer;
  headers: Pairs; // the ones the plugin added
  direct: boolean; // sent straight to the client, bypassing the filter's encode callbacks
}

export interface HttpCall {
  token: number;
  rootId: number;
  cluster: string;
  headers: Pairs;
  body: Buffer;
  timeoutMs: number;
  answer: { headers: Pairs; body: Buffer } | null;
  answered: boolean;
  stream: HttpStream | null; // the stream whose callback made it
}

// A unary gRPC call the plugin made (dispatch_grpc_call).
export interface GrpcCall {
  token: number;
  rootId: number;
  cluster: string; // the service string: an Envoy cluster name
  service: string; // e.g. envoy.service.ratelimit.v3.RateLimitService
  method: string;
  metadata: Pairs;
  message: Buffer; // the serialized request, without gRPC framing
  timeoutMs: number;
  answer: GrpcAnswer | null;
  answered: boolean;
  cancelled: boolean;
  stream: HttpStream | null; // the stream whose callback made it
}

// A reply message (status OK), or a failure: the service's status, 14 Unavailable for no healthy host or
// a refused connection, 4 DeadlineExceeded for the call's timeout.
export type GrpcAnswer = { message: Buffer } | { status: number; statusMessage?: string };

export const GRPC_STATUS = { Ok: 0, Unknown: 2, DeadlineExceeded: 4, Internal: 13, Unavailable: 14 } as const;

export type Callback =
  | "request_headers"
  | "request_body"
  | "response_headers"
  | "response_body"
  | "http_call_response"
  | "grpc_receive"
  | "grpc_close"
  | "log"
  | "done"
  | "delete";
export interface CallbackRecord {
  callback: Callback;
  action: Action | null;
  size?: number;
  endOfStream?: boolean;
}
export interface HeaderEdit {
  map: "request" | "response" | "other";
  op: "add" | "replace" | "remove" | "set_pairs";
  key: string;
  value: string | null;
}

// What left Envoy in one direction: headers (null until sent) and the body bytes, in order.
export interface Sent {
  headers: Pairs | null;
  readonly body: Buffer;
  chunks: Buffer[];
  ended: boolean;
}

// The body is joined from the chunks when read: joining on every chunk made a long stream quadratic
// in the host, which swamped the plugin's own time per chunk in make bench.
class SentStream implements Sent {
  headers: Pairs | null = null;
  chunks: Buffer[] = [];
  ended = false;
  private joined: Buffer = Buffer.alloc(0);
  private joinedCount = 0;
  private joinedFrom: Buffer[] = this.chunks;

  get body(): Buffer {
    if (this.joinedFrom !== this.chunks || this.joinedCount !== this.chunks.length) {
      this.joined = Buffer.concat(this.chunks);
      this.joinedFrom = this.chunks;
      this.joinedCount = this.chunks.length;
    }
    return this.joined;
  }
}

export interface ResponseOptions {
  // response.code_details: "via_upstream" for an upstream's answer, Envoy's reason for its own.
  details?: string;
  endOfStream?: boolean;
}

export class HttpStream {
  readonly callbacks: CallbackRecord[] = [];
  readonly headerEdits: HeaderEdit[] = [];
  readonly bufferEdits: { body: "request" | "response"; start: number; length: number; bytes: number }[] = [];
  readonly calls: HttpCall[] = [];
  readonly grpcCalls: GrpcCall[] = [];
  readonly filterState: Map<string, Buffer>;
  readonly localReplies: LocalReply[] = [];
  // What Envoy sent upstream and to the client, after the plugin's edits.
  readonly upstream: Sent = new SentStream();
  readonly client: Sent = new SentStream();
  reset = false;
  inLog = false;
  private properties = new Map<string, Buffer>();
  private requestHeaders: Pairs = [];
  private responseHeaders: Pairs = [];
  // Whether the filter may still reach each header map (it paused on it, or it is the log phase).
  private requestHeadersOpen = false;
  private responseHeadersOpen = false;
  private requestStopped = false; // iteration stopped: nothing has gone upstream since
  private responseStopped = false;
  private requestBuffered: Buffer = Buffer.alloc(0); // Envoy's buffer while the filter pauses on the body
  private responseBuffered: Buffer = Buffer.alloc(0);
  private requestBufferingNext = false;
  private requestEndSeen = false; // the client's body ended (its last chunk went through the filter)
  private responseBufferingNext = false;
  private current: BodyBuffer | null = null;
  private currentType: Buf | null = null;
  private responseStarted = false; // response headers entered the filter's encode path
  private finished = false;
  private logged = false;

  constructor(
    readonly vm: PluginVm,
    readonly root: PluginRoot,
    readonly id: number,
    opts: StreamOptions,
  ) {
    this.filterState = opts.filterState ?? new Map();
    for (const [k, v] of Object.entries(opts.properties ?? {})) this.properties.set(k, typeof v === "string" ? Buffer.from(v) : v);
  }

  get localReply(): LocalReply | null {
    return this.localReplies[0] ?? null;
  }
  get answered(): boolean {
    return this.localReplies.length > 0;
  }

  // Sets or replaces an attribute (e.g. xds\0upstream_host_metadata\0…).
  setProperty(path: string, value: string | Buffer): void {
    this.properties.set(path, typeof value === "string" ? Buffer.from(value) : value);
  }

  // The request's final headers, as Envoy holds them now.
  get request(): Pairs {
    return this.requestHeaders;
  }
  get response(): Pairs {
    return this.responseHeaders;
  }

  // ---- driving the stream ----

  sendRequestHeaders(headers: Pairs, endOfStream = false): Action {
    this.requestHeaders = headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]);
    this.requestHeadersOpen = true;
    const action = this.enter(
      "request_headers",
      () => this.vm.exports.proxy_on_request_headers(this.id, this.requestHeaders.length, endOfStream ? 1 : 0),
      { endOfStream },
    );
    if (action === "Continue") {
      this.requestHeadersOpen = false; // Envoy drops request_headers_ once the filter continues
      this.forwardRequestHeaders(endOfStream);
    } else {
      this.requestStopped = true;
    }
    return action;
  }

  // One chunk of request body as it arrives from the client.
  sendRequestData(chunk: Buffer | string, endOfStream: boolean): Action | null {
    if (this.answered || this.reset) return null; // Envoy stops decoding after a local reply
    const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (endOfStream) this.requestEndSeen = true;
    let seen: Buffer;
    if (this.requestBufferingNext) {
      this.requestBuffered = Buffer.concat([this.requestBuffered, data]);
      seen = this.requestBuffered;
    } else {
      seen = data;
    }
    const buf = new BodyBuffer(seen, false, (b) => {
      if (this.requestBufferingNext) this.requestBuffered = b;
    });
    const action = this.withBuffer(buf, Buf.RequestBody, () =>
      this.enter("request_body", () => this.vm.exports.proxy_on_request_body(this.id, seen.length, endOfStream ? 1 : 0), {
        size: seen.length,
        endOfStream,
      }),
    );
    if (action === "Pause") {
      // StopIterationAndBuffer: Envoy keeps the (possibly edited) bytes and hands them over again.
      this.requestBuffered = buf.data;
      this.requestBufferingNext = true;
      this.requestStopped = true;
      return action;
    }
    this.requestBufferingNext = false;
    this.requestBuffered = Buffer.alloc(0);
    if (this.requestStopped) this.forwardRequestHeaders(false);
    this.requestStopped = false;
    this.upstream.chunks.push(buf.data);
    this.upstream.ended = endOfStream;
    return action;
  }

  // A whole request: headers, then the body in chunks of `chunkBytes` (default: one chunk), or at the
  // sizes given; stops feeding once the plugin answered.
  sendRequest(headers: Pairs, body: Buffer | string | null, opts: { chunkBytes?: number; chunks?: number[] } = {}): void {
    const b = body === null ? null : typeof body === "string" ? Buffer.from(body) : body;
    this.sendRequestHeaders(headers, b === null || b.length === 0);
    if (b === null || b.length === 0) return;
    for (const c of splitBody(b, opts)) {
      if (this.answered) return;
      this.sendRequestData(c.data, c.end);
    }
  }

  // The upstream's (or Envoy's own) response headers; `:status` and details become response.code and
  // response.code_details.
  sendResponseHeaders(headers: Pairs, opts: ResponseOptions = {}): Action | null {
    if (this.answered) return null;
    this.responseHeaders = headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]);
    const status = Number(this.responseHeaders.find(([k]) => k === ":status")?.[1] ?? "0");
    this.properties.set("response\0code", int64Property(status));
    this.properties.set("response\0code_details", Buffer.from(opts.details ?? "via_upstream"));
    return this.encodeHeaders(opts.endOfStream ?? false);
  }

  sendResponseData(chunk: Buffer | string, endOfStream: boolean): Action | null {
    if (this.answered && !this.encodingLocalReply) return null;
    const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    let seen: Buffer;
    if (this.responseBufferingNext) {
      this.responseBuffered = Buffer.concat([this.responseBuffered, data]);
      seen = this.responseBuffered;
    } else {
      seen = data;
    }
    const buf = new BodyBuffer(seen, false, (b) => {
      if (this.responseBufferingNext) this.responseBuffered = b;
    });
    const action = this.withBuffer(buf, Buf.ResponseBody, () =>
      this.enter("response_body", () => this.vm.exports.proxy_on_response_body(this.id, seen.length, endOfStream ? 1 : 0), {
        size: seen.length,
        endOfStream,
      }),
    );
    if (action === "Pause") {
      this.responseBuffered = buf.data;
      this.responseBufferingNext = true;
      this.responseStopped = true;
      return action;
    }
    this.responseBufferingNext = false;
    this.responseBuffered = Buffer.alloc(0);
    if (this.responseStopped) this.forwardResponseHeaders();
    this.responseStopped = false;
    this.emit(buf.data, endOfStream);
    return action;
  }

  // A whole response: headers, then each chunk as one body callback (the last one ends the stream).
  sendResponse(headers: Pairs, chunks: (Buffer | string)[], opts: ResponseOptions = {}): void {
    this.sendResponseHeaders(headers, { ...opts, endOfStream: chunks.length === 0 });
    chunks.forEach((c, i) => this.sendResponseData(c, i === chunks.length - 1));
  }

  // Envoy's own answer (no healthy upstream, a reset, its buffer limit): a local reply Envoy generated,
  // text/plain, through the filter's encode callbacks.
  sendEnvoyReply(status: number, details: string, body = "upstream connect error or disconnect/reset before headers"): void {
    const b = Buffer.from(body);
    this.sendResponseHeaders(
      [
        [":status", String(status)],
        ["content-length", String(b.length)],
        ["content-type", "text/plain"],
      ],
      { details, endOfStream: b.length === 0 },
    );
    if (b.length > 0) this.sendResponseData(b, true);
  }

  // Answers an http call the plugin made; `headers` must include :status. null: the call failed
  // (connection failure, reset, timeout), which Envoy reports with 0 headers.
  answerCall(call: HttpCall, answer: { status: number; headers?: Pairs; body?: Buffer | string } | null): void {
    if (call.answered) throw new Error(`http call ${call.token} already answered`);
    call.answered = true;
    call.answer =
      answer === null
        ? null
        : {
            headers: [
              [":status", String(answer.status)],
              ...(answer.headers ?? []).map(([k, v]): [string, string] => [k.toLowerCase(), v]),
            ],
            body: typeof answer.body === "string" ? Buffer.from(answer.body) : (answer.body ?? Buffer.alloc(0)),
          };
    this.callbacks.push({ callback: "http_call_response", action: null });
    this.vm.answerCall(call);
  }

  // The access log phase (proxy_on_log): the maps are the final ones, read-only.
  log(): void {
    if (this.logged) return;
    this.logged = true;
    this.inLog = true;
    try {
      this.enter(
        "log",
        () => {
          this.vm.exports.proxy_on_log(this.id);
          return 0;
        },
        {},
        false,
      );
    } finally {
      this.inLog = false;
    }
  }

  // The end of the stream: the access log unless already written, then done and delete.
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.log();
    this.enter("done", () => this.vm.exports.proxy_on_done(this.id), {}, false);
    this.enter(
      "delete",
      () => {
        this.vm.exports.proxy_on_delete(this.id);
        return 0;
      },
      {},
      false,
    );
    this.vm.forget(this);
  }

  // ---- reading what happened ----

  // A header of the request as Envoy holds it now (what went, or will go, upstream).
  requestHeader(name: string): string | undefined {
    return this.requestHeaders.find(([k]) => k === name)?.[1];
  }
  // A header of the response as the client got it (or will).
  clientHeader(name: string): string | undefined {
    return (this.client.headers ?? []).find(([k]) => k === name)?.[1];
  }
  clientStatus(): number {
    return Number(this.clientHeader(":status") ?? "0");
  }
  clientJson(): unknown {
    return JSON.parse(this.client.body.toString("utf8"));
  }
  // The filter state value set_property wrote under `name`.
  state(name: string): string | undefined {
    return this.filterState.get(name)?.toString("utf8");
  }
  actions(callback: Callback): (Action | null)[] {
    return this.callbacks.filter((c) => c.callback === callback).map((c) => c.action);
  }

  // ---- host side ----

  property(path: string): Buffer | undefined {
    return this.properties.get(path) ?? this.filterState.get(path);
  }

  headerMap(type: number, write: boolean): Pairs | null {
    if (this.inLog)
      return write
        ? null
        : type === MapType.RequestHeaders
          ? this.requestHeaders
          : type === MapType.ResponseHeaders
            ? this.responseHeaders
            : null;
    if (type === MapType.RequestHeaders) return this.requestHeadersOpen ? this.requestHeaders : null;
    if (type === MapType.ResponseHeaders) return this.responseHeadersOpen ? this.responseHeaders : null;
    return null; // trailers: none in these streams
  }

  bodyBuffer(type: number): BodyBuffer | null {
    if (this.currentType === type) return this.current;
    // Outside its body callbacks, a request body the filter stopped on is Envoy's buffer.
    if (this.currentType === null && type === Buf.RequestBody && this.requestBufferingNext)
      return new BodyBuffer(this.requestBuffered, false, (b) => {
        this.requestBuffered = b;
      });
    return null;
  }

  noteHeader(type: number, op: HeaderEdit["op"], key: string, value: string | null): void {
    const map = type === MapType.RequestHeaders ? "request" : type === MapType.ResponseHeaders ? "response" : "other";
    this.headerEdits.push({ map, op, key, value });
  }

  private encodingLocalReply = false;

  // Envoy's FilterManager::sendLocalReply: through the filter chain when no response has started,
  // else straight to the client.
  deliverLocalReply(reply: LocalReply): void {
    if (this.answered) return; // a second reply on the same stream is dropped (a guess: Envoy asserts)
    const headers: Pairs = [[":status", String(reply.status)], ...reply.headers];
    if (reply.body.length > 0) {
      headers.push(["content-length", String(reply.body.length)]);
      if (!headers.some(([k]) => k === "content-type")) headers.push(["content-type", "text/plain"]);
    }
    reply.direct = this.responseStarted;
    this.localReplies.push(reply);
    if (reply.direct) {
      this.client.headers = headers;
      this.client.chunks = reply.body.length > 0 ? [reply.body] : [];
      this.client.ended = true;
      return;
    }
    this.encodingLocalReply = true;
    try {
      this.responseHeaders = headers;
      this.properties.set("response\0code", int64Property(reply.status));
      this.properties.set("response\0code_details", Buffer.from(reply.details));
      this.encodeHeaders(reply.body.length === 0);
      if (reply.body.length > 0) this.sendResponseData(reply.body, true);
    } finally {
      this.encodingLocalReply = false;
    }
  }

  resume(direction: "request" | "response"): void {
    if (direction === "request" && this.requestStopped) {
      this.forwardRequestHeaders(false);
      this.requestStopped = false;
      if (this.requestBufferingNext) {
        // continueDecoding: the buffered body follows the headers.
        this.requestBufferingNext = false;
        this.upstream.chunks.push(this.requestBuffered);
        this.upstream.ended = this.requestEndSeen;
        this.requestBuffered = Buffer.alloc(0);
      }
    }
    if (direction === "response" && this.responseStopped) {
      this.forwardResponseHeaders();
      this.responseStopped = false;
    }
  }

  private encodeHeaders(endOfStream: boolean): Action {
    this.responseStarted = true;
    this.responseHeadersOpen = true;
    const action = this.enter(
      "response_headers",
      () => this.vm.exports.proxy_on_response_headers(this.id, this.responseHeaders.length, endOfStream ? 1 : 0),
      { endOfStream },
    );
    if (action === "Continue") {
      this.responseHeadersOpen = false;
      this.forwardResponseHeaders();
      if (endOfStream) this.client.ended = true;
    } else {
      this.responseStopped = true;
    }
    return action;
  }

  private forwardRequestHeaders(endOfStream: boolean): void {
    if (this.upstream.headers !== null) return;
    this.upstream.headers = this.requestHeaders.map(([k, v]): [string, string] => [k, v]);
    if (endOfStream) this.upstream.ended = true;
  }

  private forwardResponseHeaders(): void {
    if (this.client.headers !== null || (this.answered && this.localReply?.direct === true)) return;
    this.client.headers = this.responseHeaders.map(([k, v]): [string, string] => [k, v]);
  }

  private emit(data: Buffer, endOfStream: boolean): void {
    if (this.answered && this.localReply?.direct === true) return; // the reply replaced this response
    this.client.chunks.push(data);
    if (endOfStream) this.client.ended = true;
  }

  private withBuffer<T>(buf: BodyBuffer, type: Buf, f: () => T): T {
    const saved = [this.current, this.currentType] as const;
    this.current = buf;
    this.currentType = type;
    try {
      return f();
    } finally {
      [this.current, this.currentType] = saved;
    }
  }

  private enter(callback: Callback, f: () => number, extra: { size?: number; endOfStream?: boolean }, hasAction = true): Action {
    const rec: CallbackRecord = { callback, action: null, ...extra };
    this.callbacks.push(rec);
    const r = this.vm.call(this.id, f);
    const action: Action = hasAction && r === 1 ? "Pause" : "Continue";
    if (hasAction) rec.action = action;
    return action;
  }
}

function splitBody(b: Buffer, opts: { chunkBytes?: number; chunks?: number[] }): { data: Buffer; end: boolean }[] {
  const sizes = opts.chunks ?? [];
  const out: { data: Buffer; end: boolean }[] = [];
  let at = 0;
  let i = 0;
  while (at < b.length) {
    const size = sizes[i++] ?? opts.chunkBytes ?? b.length;
    const end = Math.min(b.length, at + Math.max(1, size));
    out.push({ data: b.subarray(at, end), end: end >= b.length });
    at = end;
  }
  return out;
}

// Header maps as the ABI serialises them: count, (key length, value length) per pair, then each key
// and value followed by a NUL.
export function serializePairs(pairs: Pairs): Buffer {
  const enc = pairs.map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as const);
  const size = 4 + 8 * enc.length + enc.reduce((a, [k, v]) => a + k.length + v.length + 2, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(enc.length, 0);
  let off = 4;
  for (const [k, v] of enc) {
    out.writeUInt32LE(k.length, off);
    out.writeUInt32LE(v.length, off + 4);
    off += 8;
  }
  for (const [k, v] of enc) {
    k.copy(out, off);
    off += k.length + 1;
    v.copy(out, off);
    off += v.length + 1;
  }
  return out;
}

export function deserializePairs(b: Buffer): Pairs {
  if (b.length < 4) return [];
  const n = b.readUInt32LE(0);
  const out: Pairs = [];
  let data = 4 + 8 * n;
  for (let i = 0; i < n; i++) {
    const kl = b.readUInt32LE(4 + 8 * i);
    const vl = b.readUInt32LE(8 + 8 * i);
    const k = b.subarray(data, data + kl).toString("utf8");
    data += kl + 1;
    const v = b.subarray(data, data + vl).toString("utf8");
    data += vl + 1;
    out.push([k, v]);
  }
  return out;
}

// Envoy's encoding of an integer attribute: 8 bytes, little-endian.
export function int64Property(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(v));
  return b;
}

// A configured plugin in a fresh Envoy with one VM: the usual start of a test.
export async function startPlugin(
  config: unknown,
  opts: ConfigureOptions & EnvoyOptions & { envoy?: FakeEnvoy } = {},
): Promise<PluginRoot> {
  const envoy = opts.envoy ?? new FakeEnvoy(opts);
  const vm = await envoy.startVm();
  const root = vm.configure(config, opts);
  if (!root.configured) throw new Error(`the plugin refused its configuration: ${vm.logs.map((l) => l.message).join(" | ")}`);
  return root;
}
