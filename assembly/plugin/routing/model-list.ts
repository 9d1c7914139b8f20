// GET …/v1/models and …/v1/models/{id} (the OpenAI clients' models.list and models.retrieve), answered
// from the configured models (the list itself is rendered at configure time: GatewayConfig.modelListBody).
import { jsonString } from "../../json/writer";
import { hasControl } from "../../util/ascii";
import { GatewayConfig } from "../config/gateway-config";

export const MODEL_LIST_SUFFIX = "/v1/models";
export const MODEL_RETRIEVE_INFIX = "/v1/models/";

// The model object for `id` (the path segment, percent-decoded), or null when no configured model
// (exact name or pattern) serves it.
export function modelObject(cfg: GatewayConfig, id: string): string | null {
  if (id.length == 0 || hasControl(id) || cfg.findRoute(id) == null) return null;
  return '{"id":' + jsonString(id) + ',"object":"model","created":0,"owned_by":' + jsonString(cfg.ownedBy) + "}";
}

// %XX escapes of a URL path segment (clients encode '/' in ids like "Qwen/Qwen2.5-1.5B"); null when
// malformed.
export function percentDecode(s: string): string | null {
  if (s.indexOf("%") < 0) return s;
  const bytes = new Uint8Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c != 0x25) {
      if (c > 0x7e) return null;
      bytes[n++] = <u8>c;
      continue;
    }
    if (i + 2 >= s.length) return null;
    const h = hexValue(s.charCodeAt(i + 1));
    const l = hexValue(s.charCodeAt(i + 2));
    if (h < 0 || l < 0) return null;
    bytes[n++] = <u8>((h << 4) | l);
    i += 2;
  }
  // Lenient decoding never aborts; bytes that are not UTF-8 make a name no configured model has.
  return String.UTF8.decodeUnsafe(bytes.dataStart, <usize>n);
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}
