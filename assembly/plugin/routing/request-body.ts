// Request-body helpers of the routing phase: the declared size check and the rewrite in place.
import { BufferType } from "../../abi/enums";
import { HostBytes } from "../../abi/memory";
import { parseDigits } from "../../util/digits";
import { HostBufferSink, Splice } from "../../util/splice";

// content-length larger than the limit (a malformed value is left to Envoy's codec).
export function declaredTooLarge(value: string, limit: i32): bool {
  return parseDigits(value) > <i64>limit;
}

// Rewrites the buffered body from slices of the copy we already hold plus the edits' texts (no second
// copy of the body is built). Returns the body's new length.
export function applyEdits(body: HostBytes, edits: Splice): i32 {
  edits.writeTo(new HostBufferSink(BufferType.HttpRequestBody, <u32>body.len), body.ptr, body.len, 0, 0, body.len);
  return edits.resultLength(body.len);
}
