// What the plugin does with an upstream response body as it streams through: feeds it to the usage
// readers, times the first generated token, removes the usage-only SSE event the client did not ask
// for, and tells the client when a stream ended without [DONE]. Bytes are never held back, except the
// incomplete tail of an SSE event while usage chunks are being removed (an SSE client acts only on
// complete events, so holding a partial one delays nothing it can see).
import { BufferType } from "../../abi/enums";
import * as host from "../../abi/host";
import { BoundedBytes } from "../../sse/buffer";
import { AttemptFacts } from "../request-facts";
import { SseUsageTracker, estimateTextTokens, readJsonResponse } from "./usage";
import { Account } from "../../util/budget";
import { Edit, HostBufferSink, Splice } from "../../util/splice";

const APPEND = host.APPEND;

// Sent to the client when a 200 stream ends cleanly but without [DONE]: the answer is cut, and a client
// must learn that instead of taking a truncated answer for a complete one.
export const CUT_STREAM_EVENT =
  'data: {"error":{"message":"The model server ended the stream before the answer was complete.","type":"server_error","param":null,"code":"stream_incomplete"}}\n\n';

export class ResponseObserver {
  private tracker: SseUsageTracker | null = null;
  private held: BoundedBytes | null = null; // incomplete event bytes not yet sent (only when dropping)
  private json: BoundedBytes | null = null; // a non-streamed body, for its usage
  private dropUsage: bool = false;

  // `account`: the request's, charged for every buffer this observer grows.
  constructor(
    private attempt: AttemptFacts,
    maxSseEventBytes: i32,
    private maxResponseBytes: i32,
    dropUsage: bool,
    private account: Account,
  ) {
    if (attempt.isStream) {
      this.tracker = new SseUsageTracker(maxSseEventBytes, account);
      this.dropUsage = dropUsage;
      if (dropUsage) this.held = new BoundedBytes(maxSseEventBytes, account);
    }
  }

  // One chunk of the response body (Envoy hands each chunk once; we return Continue).
  // The clock is read only for a chunk that stamps something (first token, first answer, the end):
  // one host call per chunk fewer on a long stream.
  onChunk(size: u32, endOfStream: bool): void {
    let stamped: u64 = 0;
    if (this.attempt.isStream) stamped = this.onSseChunk(size, endOfStream);
    else this.onJsonChunk(size, endOfStream);
    if (endOfStream) {
      this.attempt.ended = true;
      this.attempt.endNs = stamped != 0 ? stamped : host.nowNanos();
    }
  }

  // Returns the time read for this chunk's stamps, or 0 when none was needed.
  private onSseChunk(size: u32, endOfStream: bool): u64 {
    let nowNs: u64 = 0;
    const t = this.tracker;
    if (t == null) return nowNs;
    const a = this.attempt;
    const chunk = size > 0 ? host.getBufferBytes(BufferType.HttpResponseBody, 0, size) : null;
    if (chunk != null && !t.reader.overflowed) {
      t.feed(chunk.ptr, chunk.len);
      const firstToken = t.firstContentInChunk && a.firstTokenNs == 0;
      const firstAnswer = t.firstAnswerInChunk && a.firstAnswerNs == 0;
      if (firstToken || firstAnswer) nowNs = host.nowNanos();
      if (firstToken) a.firstTokenNs = nowNs;
      if (firstAnswer) a.firstAnswerNs = nowNs;
      if (t.reader.overflowed) a.unparsed = true;
      if (this.dropUsage) this.rewriteChunk(chunk.ptr, chunk.len, t);
    }
    if (chunk != null) chunk.release();
    if (!endOfStream) return nowNs;
    const partial = t.finish(); // the stream ended inside an event
    a.sawDone = t.reader.sawDone;
    this.flushHeld();
    takeCounts(this.attempt, t);
    if (a.status == 200 && !a.sawDone && !a.unparsed) {
      // An event cut short is ended first, so that the error is an event of its own: glued to the
      // partial one, it would make one unparseable event and the client would never see it.
      const e = String.UTF8.encode(partial ? "\n\n" + CUT_STREAM_EVENT : CUT_STREAM_EVENT);
      host.setBufferBytes(BufferType.HttpResponseBody, APPEND, 0, changetype<usize>(e), <usize>e.byteLength);
      a.signalledCut = true;
    }
    return nowNs;
  }

  // The request ends (Envoy's log phase). A stream that never ended (client gone, upstream reset) is
  // counted as far as it got: its last usage, else one token per content event that went through.
  settle(): void {
    const t = this.tracker;
    if (t == null || this.attempt.ended) return;
    this.attempt.sawDone = t.reader.sawDone;
    takeCounts(this.attempt, t);
  }

  // Sends what is complete, minus usage-only events; keeps an incomplete tail for the next chunk.
  // Coordinates: V = held ++ chunk; drops are [held + start - carried, held + end) in V.
  private rewriteChunk(p: usize, len: i32, t: SseUsageTracker): void {
    const held = this.held!;
    const heldLen = held.length;
    const drops = t.dropCount();
    let pending = t.reader.overflowed ? 0 : t.reader.pendingBytes;
    if (drops == 0 && pending == 0 && heldLen == 0) return; // the common case: pass the chunk as is
    const total = heldLen + len;
    if (pending > total) pending = total;
    const sendEnd = total - pending;
    // The outgoing chunk: V[0, sendEnd) without the drops, written over this chunk.
    const splice = new Splice();
    for (let i = 0; i < drops; i++) splice.add(new Edit(heldLen + t.dropStart(i) - t.dropCarried(i), heldLen + t.dropEnd(i), ""));
    splice.writeTo(new HostBufferSink(BufferType.HttpResponseBody, <u32>len), held.ptr, heldLen, p, len, sendEnd);
    // The new tail: the last `pending` bytes of V.
    const tail = new BoundedBytes(held.limit, this.account);
    const tailStart = total - pending;
    const cStart = tailStart > heldLen ? tailStart - heldLen : 0;
    let kept = true;
    if (tailStart < heldLen) kept = tail.append(held.ptr + <usize>tailStart, heldLen - tailStart);
    if (kept) kept = tail.append(p + <usize>cStart, len - cStart);
    if (!kept) {
      // The budget refused the tail: send it now rather than lose it (the usage-only event it may end
      // in then reaches the client, which ignores an event with empty choices), and stop removing.
      if (tailStart < heldLen)
        host.setBufferBytes(BufferType.HttpResponseBody, APPEND, 0, held.ptr + <usize>tailStart, <usize>(heldLen - tailStart));
      host.setBufferBytes(BufferType.HttpResponseBody, APPEND, 0, p + <usize>cStart, <usize>(len - cStart));
      tail.clear();
      this.dropUsage = false;
      this.attempt.unparsed = true;
    }
    this.held = tail;
  }

  private flushHeld(): void {
    const held = this.held;
    if (held == null || held.length == 0) return;
    host.setBufferBytes(BufferType.HttpResponseBody, APPEND, 0, held.ptr, <usize>held.length);
    held.clear();
  }

  private onJsonChunk(size: u32, endOfStream: bool): void {
    const a = this.attempt;
    if (a.unparsed) return;
    const chunk = size > 0 ? host.getBufferBytes(BufferType.HttpResponseBody, 0, size) : null;
    let acc = this.json;
    // One chunk that is the whole body (the usual case): parse it in place.
    if (endOfStream && acc == null) {
      if (chunk != null) {
        readInto(a, chunk.ptr, chunk.len);
        chunk.release();
      }
      return;
    }
    if (acc == null) {
      acc = new BoundedBytes(this.maxResponseBytes, this.account);
      this.json = acc;
    }
    if (chunk != null) {
      if (!acc.append(chunk.ptr, chunk.len)) {
        a.unparsed = true;
        acc.release();
      }
      chunk.release();
    }
    if (endOfStream && !a.unparsed) {
      readInto(a, acc.ptr, acc.length);
      acc.release();
    }
  }
}

// What a stream told about usage and the served model; without usage, one token per content event.
function takeCounts(a: AttemptFacts, t: SseUsageTracker): void {
  a.usage.copyFrom(t.usage);
  a.completionEstimate = t.contentEvents;
  a.servedModel = t.model;
}

function readInto(a: AttemptFacts, p: usize, len: i32): void {
  const r = readJsonResponse(p, len);
  a.usage.copyFrom(r.usage);
  a.servedModel = r.model;
  // No usage in a JSON answer: estimate the completion from the text it generated (not the JSON
  // around it); a body that is not a JSON object, from its size.
  if (!r.usage.reported) a.completionEstimate = r.generatedBytes >= 0 ? estimateTextTokens(r.generatedBytes) : <i64>((len + 3) / 4);
}

// A whole response body at once (a backup's answer, which an http call delivers in one piece): the
// same accounting as the streamed path, and the body without usage-only events when the client did
// not ask for them (null: send it unchanged).
// The caller has charged `account` for the body; the edited copy is charged here (null, and the body
// sent unchanged, when the budget refuses it).
export function observeWholeBody(
  a: AttemptFacts,
  p: usize,
  len: i32,
  maxSseEventBytes: i32,
  dropUsage: bool,
  nowNs: u64,
  account: Account,
): ArrayBuffer | null {
  a.ended = true;
  a.arrivedWhole = true;
  a.endNs = nowNs;
  if (!a.isStream) {
    readInto(a, p, len);
    return null;
  }
  const t = new SseUsageTracker(maxSseEventBytes, account);
  t.feed(p, len);
  t.finish();
  a.sawDone = t.reader.sawDone;
  a.unparsed = t.reader.overflowed;
  takeCounts(a, t);
  // The stream arrived whole: its first token reached us now.
  if (t.firstContentEvent >= 0) a.firstTokenNs = nowNs;
  if (t.answerEvents > 0) a.firstAnswerNs = nowNs;
  const drops = t.dropCount();
  if (!dropUsage || drops == 0 || a.unparsed) return null;
  const splice = new Splice();
  for (let i = 0; i < drops; i++) splice.add(new Edit(t.dropStart(i), t.dropEnd(i), ""));
  if (!account.take(<i64>splice.resultLength(len))) return null;
  return splice.apply(p, len);
}
