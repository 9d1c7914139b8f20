// One wrapper per host call. None of them aborts: a non-OK status becomes a return value (false, null,
// an empty string) that the caller decides about. This is the only file besides exports.ts that talks
// to the host.
import * as env from "./imports";
import { Status, LogLevel, BufferType, MapType, StreamType, MetricType } from "./enums";
import { RET_PTR, RET_SIZE, RET_EXTRA, HostBytes, takeReturned, takeReturnedString, clearReturn } from "./memory";
import { HeaderPair, HeaderMapView, serializeHeaders, deserializeHeaders } from "./headers";

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

// ---- logging -------------------------------------------------------------------------------------

export function log(level: LogLevel, message: string): void {
  const b = utf8(message);
  env.proxy_log(<u32>level, changetype<usize>(b), <usize>b.byteLength);
}
export function logInfo(message: string): void {
  log(LogLevel.Info, message);
}
export function logWarn(message: string): void {
  log(LogLevel.Warn, message);
}
export function logError(message: string): void {
  log(LogLevel.Error, message);
}
export function logDebug(message: string): void {
  log(LogLevel.Debug, message);
}

// ---- time ----------------------------------------------------------------------------------------

// Wall-clock nanoseconds as Envoy's dispatcher sees it; 0 if the host refuses.
export function nowNanos(): u64 {
  store<u64>(RET_EXTRA, 0);
  if (env.proxy_get_current_time_nanoseconds(RET_EXTRA) != Status.Ok) return 0;
  return load<u64>(RET_EXTRA);
}

export function setTickPeriodMs(ms: u32): bool {
  return env.proxy_set_tick_period_milliseconds(ms) == Status.Ok;
}

// ---- buffers -------------------------------------------------------------------------------------

// Reads [start, start+length) of a buffer; null when the buffer is absent or the host refuses.
export function getBufferBytes(type: BufferType, start: u32, length: u32): HostBytes | null {
  clearReturn();
  if (length == 0) return new HostBytes(0, 0);
  if (env.proxy_get_buffer_bytes(<u32>type, start, length, RET_PTR, RET_SIZE) != Status.Ok) return null;
  return takeReturned();
}

export function getBufferString(type: BufferType, length: u32): string | null {
  clearReturn();
  if (length == 0) return "";
  if (env.proxy_get_buffer_bytes(<u32>type, 0, length, RET_PTR, RET_SIZE) != Status.Ok) return null;
  return takeReturnedString();
}

// Envoy supports three shapes only: start = 0 (drain `length` bytes, then prepend), start >= size
// (append), or a full replacement; edits in the middle are built from these (util/splice.ts).
export const APPEND: u32 = u32.MAX_VALUE;

export function setBufferBytes(type: BufferType, start: u32, length: u32, data: usize, size: usize): bool {
  return env.proxy_set_buffer_bytes(<u32>type, start, length, data, size) == Status.Ok;
}

// ---- header maps ---------------------------------------------------------------------------------

export function getHeader(map: MapType, name: string): string | null {
  const k = utf8(name);
  clearReturn();
  const st = env.proxy_get_header_map_value(<u32>map, changetype<usize>(k), <usize>k.byteLength, RET_PTR, RET_SIZE);
  if (st != Status.Ok) return null;
  return takeReturnedString();
}

export function replaceHeader(map: MapType, name: string, value: string): bool {
  const k = utf8(name);
  const v = utf8(value);
  return (
    env.proxy_replace_header_map_value(<u32>map, changetype<usize>(k), <usize>k.byteLength, changetype<usize>(v), <usize>v.byteLength) ==
    Status.Ok
  );
}

export function addHeader(map: MapType, name: string, value: string): bool {
  const k = utf8(name);
  const v = utf8(value);
  return (
    env.proxy_add_header_map_value(<u32>map, changetype<usize>(k), <usize>k.byteLength, changetype<usize>(v), <usize>v.byteLength) ==
    Status.Ok
  );
}

export function removeHeader(map: MapType, name: string): bool {
  const k = utf8(name);
  return env.proxy_remove_header_map_value(<u32>map, changetype<usize>(k), <usize>k.byteLength) == Status.Ok;
}

export function getHeaders(map: MapType): Array<HeaderPair> {
  clearReturn();
  if (env.proxy_get_header_map_pairs(<u32>map, RET_PTR, RET_SIZE) != Status.Ok) return new Array<HeaderPair>();
  const raw = takeReturned();
  const pairs = deserializeHeaders(raw.ptr, raw.len);
  raw.release();
  return pairs;
}

// The whole map in one host call, for several reads within one callback; release() it before returning.
// An empty view when the host refuses (every read then finds nothing, as getHeader would).
export function viewHeaders(map: MapType): HeaderMapView {
  clearReturn();
  if (env.proxy_get_header_map_pairs(<u32>map, RET_PTR, RET_SIZE) != Status.Ok) return new HeaderMapView(new HostBytes(0, 0));
  return new HeaderMapView(takeReturned());
}

// The serialised map as the host returns it, undecoded (decode later with deserializeHeaders, if ever).
export function getHeadersRaw(map: MapType): HostBytes | null {
  clearReturn();
  if (env.proxy_get_header_map_pairs(<u32>map, RET_PTR, RET_SIZE) != Status.Ok) return null;
  return takeReturned();
}

export function setHeaders(map: MapType, pairs: Array<HeaderPair>): bool {
  const b = serializeHeaders(pairs);
  return env.proxy_set_header_map_pairs(<u32>map, changetype<usize>(b), <usize>b.byteLength) == Status.Ok;
}

// ---- properties ----------------------------------------------------------------------------------

// Property paths are segments joined by NUL, e.g. ["response", "code_details"].
function encodePath(segments: Array<string>): ArrayBuffer {
  return utf8(segments.join("\0"));
}

export function getPropertyBytes(segments: Array<string>): HostBytes | null {
  const p = encodePath(segments);
  clearReturn();
  if (env.proxy_get_property(changetype<usize>(p), <usize>p.byteLength, RET_PTR, RET_SIZE) != Status.Ok) return null;
  return takeReturned();
}

export function getProperty(segments: Array<string>): string | null {
  const p = encodePath(segments);
  clearReturn();
  if (env.proxy_get_property(changetype<usize>(p), <usize>p.byteLength, RET_PTR, RET_SIZE) != Status.Ok) return null;
  return takeReturnedString();
}

// Integer properties (e.g. response.code) come back as 8 little-endian bytes.
export function getPropertyU64(segments: Array<string>): i64 {
  const b = getPropertyBytes(segments);
  if (b == null) return -1;
  let v: i64 = -1;
  if (b.len >= 8) v = load<i64>(b.ptr);
  b.release();
  return v;
}

export function setProperty(segments: Array<string>, value: string): bool {
  const p = encodePath(segments);
  const v = utf8(value);
  return env.proxy_set_property(changetype<usize>(p), <usize>p.byteLength, changetype<usize>(v), <usize>v.byteLength) == Status.Ok;
}

// ---- stream control ------------------------------------------------------------------------------

export function sendLocalResponse(status: u32, details: string, body: string, headers: Array<HeaderPair>): bool {
  const d = utf8(details);
  const b = utf8(body);
  const h = serializeHeaders(headers);
  return (
    env.proxy_send_local_response(
      status,
      changetype<usize>(d),
      <usize>d.byteLength,
      changetype<usize>(b),
      <usize>b.byteLength,
      changetype<usize>(h),
      <usize>h.byteLength,
      -1,
    ) == Status.Ok
  );
}

// Same, with a body already in linear memory (no string round trip for bytes we relay).
export function sendLocalResponseBytes(status: u32, details: string, body: usize, bodyLen: usize, headers: Array<HeaderPair>): bool {
  const d = utf8(details);
  const h = serializeHeaders(headers);
  return (
    env.proxy_send_local_response(
      status,
      changetype<usize>(d),
      <usize>d.byteLength,
      body,
      bodyLen,
      changetype<usize>(h),
      <usize>h.byteLength,
      -1,
    ) == Status.Ok
  );
}

export function continueStream(type: StreamType): bool {
  return env.proxy_continue_stream(<u32>type) == Status.Ok;
}

export function closeStream(type: StreamType): bool {
  return env.proxy_close_stream(<u32>type) == Status.Ok;
}

export function setEffectiveContext(id: u32): bool {
  return env.proxy_set_effective_context(id) == Status.Ok;
}

// ---- metrics -------------------------------------------------------------------------------------

// Returns the metric id, or u32.MAX_VALUE when the host refuses (callers treat that as "no metric").
export const NO_METRIC: u32 = u32.MAX_VALUE;

export function defineMetric(type: MetricType, name: string): u32 {
  const n = utf8(name);
  store<u32>(RET_EXTRA, 0);
  if (env.proxy_define_metric(<u32>type, changetype<usize>(n), <usize>n.byteLength, RET_EXTRA) != Status.Ok) return NO_METRIC;
  return load<u32>(RET_EXTRA);
}

export function incrementMetric(id: u32, delta: i64): bool {
  if (id == NO_METRIC) return false;
  return env.proxy_increment_metric(id, delta) == Status.Ok;
}

export function recordMetric(id: u32, value: u64): bool {
  if (id == NO_METRIC) return false;
  return env.proxy_record_metric(id, value) == Status.Ok;
}

// Reads a metric's value; -1 when unknown.
export function getMetric(id: u32): i64 {
  if (id == NO_METRIC) return -1;
  store<u64>(RET_EXTRA, 0);
  if (env.proxy_get_metric(id, RET_EXTRA) != Status.Ok) return -1;
  return load<i64>(RET_EXTRA);
}

// ---- http calls ----------------------------------------------------------------------------------

// Starts a call to `cluster`; returns its token, or 0 when the host refuses (unknown cluster, missing
// :authority/:method/:path).
export function httpCall(cluster: string, headers: Array<HeaderPair>, body: usize, bodyLen: usize, timeoutMs: u32): u32 {
  const c = utf8(cluster);
  const h = serializeHeaders(headers);
  store<u32>(RET_EXTRA, 0);
  const st = env.proxy_http_call(
    changetype<usize>(c),
    <usize>c.byteLength,
    changetype<usize>(h),
    <usize>h.byteLength,
    body,
    bodyLen,
    0,
    0,
    timeoutMs,
    RET_EXTRA,
  );
  if (st != Status.Ok) return 0;
  const token = load<u32>(RET_EXTRA);
  return token == 0 ? u32.MAX_VALUE : token;
}

// ---- gRPC calls ----------------------------------------------------------------------------------

const NO_METADATA = serializeHeaders(new Array<HeaderPair>());

// Starts a unary gRPC call; `service` is an Envoy cluster name (Envoy's own gRPC client, over that
// cluster's HTTP/2). The message is the serialized request (no gRPC framing: Envoy adds it). Returns
// the token, or 0 when the host refuses (unknown cluster).
export function grpcCall(service: string, serviceName: string, method: string, message: ArrayBuffer, timeoutMs: u32): u32 {
  const c = utf8(service);
  const s = utf8(serviceName);
  const m = utf8(method);
  store<u32>(RET_EXTRA, 0);
  const st = env.proxy_grpc_call(
    changetype<usize>(c),
    <usize>c.byteLength,
    changetype<usize>(s),
    <usize>s.byteLength,
    changetype<usize>(m),
    <usize>m.byteLength,
    changetype<usize>(NO_METADATA),
    <usize>NO_METADATA.byteLength,
    changetype<usize>(message),
    <usize>message.byteLength,
    timeoutMs,
    RET_EXTRA,
  );
  if (st != Status.Ok) return 0;
  const token = load<u32>(RET_EXTRA);
  return token == 0 ? u32.MAX_VALUE : token;
}

// ---- shared data ---------------------------------------------------------------------------------

export class SharedValue {
  constructor(
    public value: string,
    public cas: u32,
  ) {}
}

// Shared by every VM (worker thread) of the plugin; null when absent.
export function getSharedData(key: string): SharedValue | null {
  const k = utf8(key);
  clearReturn();
  store<u32>(RET_EXTRA, 0);
  if (env.proxy_get_shared_data(changetype<usize>(k), <usize>k.byteLength, RET_PTR, RET_SIZE, RET_EXTRA) != Status.Ok) return null;
  const cas = load<u32>(RET_EXTRA);
  return new SharedValue(takeReturnedString(), cas);
}

// Compare-and-swap write: cas 0 writes unconditionally. Returns the status so callers can retry on
// CasMismatch.
export function setSharedData(key: string, value: string, cas: u32): Status {
  const k = utf8(key);
  const v = utf8(value);
  return <Status>env.proxy_set_shared_data(changetype<usize>(k), <usize>k.byteLength, changetype<usize>(v), <usize>v.byteLength, cas);
}
