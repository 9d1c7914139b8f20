// Who a quota rule counts a request against: an auth plugin's consumer header, else a hash of an API
// key (the key itself never reaches counters, metrics, logs or the rate-limit service), else everybody.
import { MapType } from "../../abi/enums";
import * as host from "../../abi/host";
import { QuotaRule } from "../config/quota-policy";
import { asciiLower } from "../../util/ascii";
import { fnv1a64, hex16 } from "../../util/hash";

export const EVERYBODY = "*";
export const ANONYMOUS = "anonymous";
// Longer consumer names are hashed too, so a counter key stays short.
const MAX_CONSUMER_LENGTH: i32 = 64;

export function identityOf(rule: QuotaRule): string {
  if (rule.consumerHeader.length > 0) {
    const v = host.getHeader(MapType.HttpRequestHeaders, rule.consumerHeader);
    if (v == null || v.length == 0) return ANONYMOUS;
    return v.length <= MAX_CONSUMER_LENGTH && isPlain(v) ? v : "c-" + hex16(fnv1a64(v));
  }
  if (rule.apiKeyHeader.length > 0) {
    let v = host.getHeader(MapType.HttpRequestHeaders, rule.apiKeyHeader);
    if (v == null || v.length == 0) return ANONYMOUS;
    if (v.length > 7 && asciiLower(v.substring(0, 7)) == "bearer ") v = v.substring(7);
    return "k-" + hex16(fnv1a64(v));
  }
  return EVERYBODY;
}

// Letters, digits and "._-@": safe inside counter keys, descriptors and metric labels.
function isPlain(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d || c == 0x40;
    if (!ok) return false;
  }
  return true;
}
