// envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit, the messages quotas.mode "cluster"
// sends to envoyproxy/ratelimit (Envoy's rate-limit service API, rls.proto) and reads back. Limits
// travel in each descriptor's `limit` override, so the service's own configuration needs only the
// domain; a per-descriptor `hits_addend` of 0 asks without counting (admission of token limits).
import { ProtoReader, ProtoWriter } from "../../util/protobuf";

export const RLS_SERVICE = "envoy.service.ratelimit.v3.RateLimitService";
export const RLS_METHOD = "ShouldRateLimit";

export const CODE_OK: u32 = 1;
export const CODE_OVER_LIMIT: u32 = 2;

// envoy.type.v3.RateLimitUnit of a window in seconds.
function unitOf(windowSec: i64): u64 {
  if (windowSec == 1) return 1; // SECOND
  if (windowSec == 3600) return 3; // HOUR
  if (windowSec == 86400) return 4; // DAY
  return 2; // MINUTE
}

export class RlsRequest {
  private w: ProtoWriter = new ProtoWriter();

  constructor(domain: string) {
    this.w.text(1, domain);
  }

  // One descriptor: its entries (key, value pairs), its limit and how much this call adds.
  descriptor(keys: Array<string>, values: Array<string>, limit: i64, windowSec: i64, hits: i64): void {
    const d = new ProtoWriter();
    for (let i = 0; i < keys.length; i++) d.message(1, new ProtoWriter().text(1, unchecked(keys[i])).text(2, unchecked(values[i])));
    d.message(2, new ProtoWriter().uint(1, <u64>limit).uint(2, unitOf(windowSec)));
    // google.protobuf.UInt64Value: present even when 0 (0 = check only). A zero value is the empty message.
    const addend = new ProtoWriter();
    if (hits > 0) addend.uint(1, <u64>hits);
    d.message(3, addend);
    this.w.message(2, d);
  }

  finish(): ArrayBuffer {
    return this.w.finish();
  }
}

export class DescriptorStatus {
  code: u32 = 0;
  remaining: i64 = 0;
  resetMs: i64 = -1; // -1: not given
  limited: bool = false; // current_limit present: the service applied a limit (none for a domain it lacks)
}

export class RlsResponse {
  overall: u32 = 0;
  statuses: Array<DescriptorStatus> = new Array<DescriptorStatus>();
  bad: bool = false;
}

// The service judged every descriptor sent. One it answers without a limit means it lacks the domain
// (a misconfigured service, not a verdict), so the caller treats the answer as unavailable.
export function answersAll(r: RlsResponse, sent: i32): bool {
  if (r.bad || r.overall == 0 || r.statuses.length != sent) return false;
  for (let i = 0; i < sent; i++) if (!unchecked(r.statuses[i]).limited) return false;
  return true;
}

export function readRlsResponse(p: usize, len: i32): RlsResponse {
  const out = new RlsResponse();
  const r = new ProtoReader(p, 0, len);
  while (r.next()) {
    if (r.field == 1 && r.wire == 0) out.overall = <u32>r.value;
    else if (r.field == 2 && r.wire == 2) out.statuses.push(readStatus(r.inner(), out));
  }
  if (r.bad) out.bad = true;
  return out;
}

function readStatus(r: ProtoReader, out: RlsResponse): DescriptorStatus {
  const s = new DescriptorStatus();
  while (r.next()) {
    if (r.field == 1 && r.wire == 0) s.code = <u32>r.value;
    else if (r.field == 2 && r.wire == 2) s.limited = true;
    else if (r.field == 3 && r.wire == 0) s.remaining = <i64>(r.value & 0xffffffff);
    else if (r.field == 4 && r.wire == 2) {
      // google.protobuf.Duration
      const d = r.inner();
      let ms: i64 = 0;
      while (d.next()) {
        if (d.field == 1 && d.wire == 0) ms += <i64>(d.value & 0xffffffffff) * 1000;
        else if (d.field == 2 && d.wire == 0) ms += <i64>(d.value & 0x7fffffff) / 1000000;
      }
      if (d.bad) out.bad = true;
      s.resetMs = ms;
    }
  }
  if (r.bad) out.bad = true;
  return s;
}
