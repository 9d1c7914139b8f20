// Request-body helpers of the routing phase: the declared size check and the in-place rewrite.
import { BufferType } from "../../abi/enums";
import * as host from "../../abi/host";
import { HostBytes } from "../../abi/memory";
import { BodyEdit } from "./route-request";
import { parseDigits } from "../../util/digits";

const APPEND: u32 = u32.MAX_VALUE; // start offset meaning "append" to Envoy

// content-length larger than the limit (a malformed value is left to Envoy's codec).
export function declaredTooLarge(value: string, limit: i32): bool {
  return parseDigits(value) > <i64>limit;
}

// Rewrites the buffered body from slices of the copy we already hold plus the edits' texts: Envoy's
// set_buffer_bytes only prepends (after draining) or appends, and this avoids building a second copy.
// Returns the body's new length.
export function applyEdits(body: HostBytes, edits: Array<BodyEdit>): i32 {
  let from: i32 = 0;
  let length = body.len;
  for (let i = 0; i < edits.length; i++) {
    const e = unchecked(edits[i]);
    if (i == 0) host.setBufferBytes(BufferType.HttpRequestBody, 0, <u32>body.len, body.ptr, <usize>e.start);
    else host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, body.ptr + <usize>from, <usize>(e.start - from));
    const t = String.UTF8.encode(e.text);
    host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, changetype<usize>(t), <usize>t.byteLength);
    length += t.byteLength - (e.end - e.start);
    from = e.end;
  }
  host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, body.ptr + <usize>from, <usize>(body.len - from));
  return length;
}
