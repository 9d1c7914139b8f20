// The wire format of Envoy's rate-limit service (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit)
// as far as the plugin uses it: protobuf encoding of RateLimitRequest and RateLimitResponse, gRPC's
// length-prefixed framing, and a unary call over node:http2. Field numbers from envoyproxy's protos
// (service/ratelimit/v3/rls.proto, extensions/common/ratelimit/v3/ratelimit.proto), checked against the
// generated Go code the pinned envoyproxy/ratelimit builds with.
import { connect, constants, type ClientHttp2Session } from "node:http2";

export const SHOULD_RATE_LIMIT_PATH = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";
export const SERVICE_NAME = "envoy.service.ratelimit.v3.RateLimitService";
export const METHOD_NAME = "ShouldRateLimit";

// envoy.type.v3.RateLimitUnit (a descriptor's `limit` override) and RateLimitResponse.RateLimit.Unit
// agree on these four.
export const UNITS = { SECOND: 1, MINUTE: 2, HOUR: 3, DAY: 4 } as const;
export type UnitName = keyof typeof UNITS;
export const UNIT_SECONDS: Record<number, number> = { 1: 1, 2: 60, 3: 3600, 4: 86400 };

export const enum Code {
  Unknown = 0,
  Ok = 1,
  OverLimit = 2,
}

export interface Descriptor {
  entries: [string, string][];
  limit?: { requestsPerUnit: number; unit: number };
  // google.protobuf.UInt64Value: undefined = absent (the request's hits_addend applies), 0 = check only.
  hitsAddend?: number;
}

export interface RateLimitRequest {
  domain: string;
  descriptors: Descriptor[];
  hitsAddend: number;
}

export interface DescriptorStatus {
  code: number;
  currentLimit: { requestsPerUnit: number; unit: number; name: string } | null;
  limitRemaining: number;
  durationUntilResetMs: number | null;
}

export interface RateLimitResponse {
  overallCode: number;
  statuses: DescriptorStatus[];
}

// ---- protobuf, the subset these messages need ---------------------------------------------------

function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

const tag = (field: number, wire: number): Buffer => varint((field << 3) | wire);
const lenField = (field: number, body: Buffer): Buffer => Buffer.concat([tag(field, 2), varint(body.length), body]);
const intField = (field: number, v: number): Buffer => (v === 0 ? Buffer.alloc(0) : Buffer.concat([tag(field, 0), varint(v)]));
const strField = (field: number, s: string): Buffer => (s === "" ? Buffer.alloc(0) : lenField(field, Buffer.from(s)));

export function encodeRequest(r: RateLimitRequest): Buffer {
  const parts: Buffer[] = [strField(1, r.domain)];
  for (const d of r.descriptors) {
    const dp: Buffer[] = d.entries.map(([k, v]) => lenField(1, Buffer.concat([strField(1, k), strField(2, v)])));
    if (d.limit !== undefined) dp.push(lenField(2, Buffer.concat([intField(1, d.limit.requestsPerUnit), intField(2, d.limit.unit)])));
    // A present wrapper with value 0 is an empty message: presence is what says "check only".
    if (d.hitsAddend !== undefined) dp.push(lenField(3, intField(1, d.hitsAddend)));
    parts.push(lenField(2, Buffer.concat(dp)));
  }
  parts.push(intField(3, r.hitsAddend));
  return Buffer.concat(parts);
}

interface Field {
  field: number;
  wire: number;
  int: bigint; // varint / fixed values
  bytes: Buffer; // length-delimited values
}

function* fields(b: Buffer): Generator<Field> {
  let at = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (at >= b.length) throw new Error("protobuf: truncated varint");
      const byte = b[at++] ?? 0;
      v |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  while (at < b.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { field, wire, int: readVarint(), bytes: Buffer.alloc(0) };
    else if (wire === 2) {
      const n = Number(readVarint());
      if (at + n > b.length) throw new Error("protobuf: truncated field");
      yield { field, wire, int: 0n, bytes: b.subarray(at, at + n) };
      at += n;
    } else if (wire === 1) {
      yield { field, wire, int: b.readBigUInt64LE(at), bytes: Buffer.alloc(0) };
      at += 8;
    } else if (wire === 5) {
      yield { field, wire, int: BigInt(b.readUInt32LE(at)), bytes: Buffer.alloc(0) };
      at += 4;
    } else throw new Error(`protobuf: wire type ${wire} not supported`);
  }
}

export function decodeRequest(b: Buffer): RateLimitRequest {
  const r: RateLimitRequest = { domain: "", descriptors: [], hitsAddend: 0 };
  for (const f of fields(b)) {
    if (f.field === 1 && f.wire === 2) r.domain = f.bytes.toString("utf8");
    else if (f.field === 3 && f.wire === 0) r.hitsAddend = Number(f.int);
    else if (f.field === 2 && f.wire === 2) {
      const d: Descriptor = { entries: [] };
      for (const g of fields(f.bytes)) {
        if (g.field === 1 && g.wire === 2) {
          let k = "";
          let v = "";
          for (const e of fields(g.bytes)) {
            if (e.field === 1 && e.wire === 2) k = e.bytes.toString("utf8");
            if (e.field === 2 && e.wire === 2) v = e.bytes.toString("utf8");
          }
          d.entries.push([k, v]);
        } else if (g.field === 2 && g.wire === 2) {
          const limit = { requestsPerUnit: 0, unit: 0 };
          for (const e of fields(g.bytes)) {
            if (e.field === 1 && e.wire === 0) limit.requestsPerUnit = Number(e.int);
            if (e.field === 2 && e.wire === 0) limit.unit = Number(e.int);
          }
          d.limit = limit;
        } else if (g.field === 3 && g.wire === 2) {
          d.hitsAddend = 0;
          for (const e of fields(g.bytes)) if (e.field === 1 && e.wire === 0) d.hitsAddend = Number(e.int);
        }
      }
      r.descriptors.push(d);
    }
  }
  return r;
}

export function encodeResponse(r: RateLimitResponse): Buffer {
  const parts: Buffer[] = [intField(1, r.overallCode)];
  for (const s of r.statuses) {
    const sp: Buffer[] = [intField(1, s.code)];
    if (s.currentLimit !== null)
      sp.push(
        lenField(
          2,
          Buffer.concat([intField(1, s.currentLimit.requestsPerUnit), intField(2, s.currentLimit.unit), strField(3, s.currentLimit.name)]),
        ),
      );
    sp.push(intField(3, s.limitRemaining));
    if (s.durationUntilResetMs !== null) {
      const secs = Math.floor(s.durationUntilResetMs / 1000);
      const nanos = (s.durationUntilResetMs % 1000) * 1_000_000;
      sp.push(lenField(4, Buffer.concat([intField(1, secs), intField(2, nanos)])));
    }
    parts.push(lenField(2, Buffer.concat(sp)));
  }
  return Buffer.concat(parts);
}

export function decodeResponse(b: Buffer): RateLimitResponse {
  const r: RateLimitResponse = { overallCode: 0, statuses: [] };
  for (const f of fields(b)) {
    if (f.field === 1 && f.wire === 0) r.overallCode = Number(f.int);
    else if (f.field === 2 && f.wire === 2) {
      const s: DescriptorStatus = { code: 0, currentLimit: null, limitRemaining: 0, durationUntilResetMs: null };
      for (const g of fields(f.bytes)) {
        if (g.field === 1 && g.wire === 0) s.code = Number(g.int);
        else if (g.field === 3 && g.wire === 0) s.limitRemaining = Number(g.int);
        else if (g.field === 2 && g.wire === 2) {
          const l = { requestsPerUnit: 0, unit: 0, name: "" };
          for (const e of fields(g.bytes)) {
            if (e.field === 1 && e.wire === 0) l.requestsPerUnit = Number(e.int);
            if (e.field === 2 && e.wire === 0) l.unit = Number(e.int);
            if (e.field === 3 && e.wire === 2) l.name = e.bytes.toString("utf8");
          }
          s.currentLimit = l;
        } else if (g.field === 4 && g.wire === 2) {
          let secs = 0;
          let nanos = 0;
          for (const e of fields(g.bytes)) {
            if (e.field === 1 && e.wire === 0) secs = Number(e.int);
            if (e.field === 2 && e.wire === 0) nanos = Number(e.int);
          }
          s.durationUntilResetMs = secs * 1000 + Math.floor(nanos / 1_000_000);
        }
      }
      r.statuses.push(s);
    }
  }
  return r;
}

// ---- gRPC ---------------------------------------------------------------------------------------

// One gRPC message: compressed flag (0), 4-byte big-endian length, the message.
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export function grpcUnframe(b: Buffer): Buffer {
  if (b.length < 5) throw new Error(`gRPC: ${b.length} bytes, no message frame`);
  const n = b.readUInt32BE(1);
  return b.subarray(5, 5 + n);
}

export interface RateLimitClient {
  shouldRateLimit(r: RateLimitRequest): Promise<RateLimitResponse>;
  close(): void;
}

// A unary gRPC client for the real service, to check what the plugin relies on (tests) without Envoy.
export function rateLimitClient(grpcAddress: string): RateLimitClient {
  let session: ClientHttp2Session | null = null;
  const open = (): ClientHttp2Session => {
    if (session === null || session.closed || session.destroyed) {
      session = connect(`http://${grpcAddress}`);
      session.on("error", () => {
        session = null;
      });
    }
    return session;
  };
  return {
    shouldRateLimit(r) {
      return new Promise((resolve, reject) => {
        const req = open().request({
          [constants.HTTP2_HEADER_METHOD]: "POST",
          [constants.HTTP2_HEADER_PATH]: SHOULD_RATE_LIMIT_PATH,
          "content-type": "application/grpc",
          te: "trailers",
        });
        req.setTimeout(5000, () => req.close(constants.NGHTTP2_CANCEL));
        const chunks: Buffer[] = [];
        let status: string | undefined;
        let message = "";
        const takeStatus = (h: Record<string, unknown>): void => {
          if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
          if (h["grpc-message"] !== undefined) message = String(h["grpc-message"]);
        };
        req.on("response", takeStatus);
        req.on("trailers", takeStatus);
        req.on("data", (d: Buffer) => chunks.push(d));
        req.on("error", reject);
        req.on("close", () => {
          if (status !== "0") {
            reject(new Error(`gRPC status ${status ?? "none"}: ${decodeURIComponent(message)}`));
            return;
          }
          try {
            resolve(decodeResponse(grpcUnframe(Buffer.concat(chunks))));
          } catch (e) {
            reject(e as Error);
          }
        });
        req.end(grpcFrame(encodeRequest(r)));
      });
    },
    close() {
      session?.close();
      session = null;
    },
  };
}
