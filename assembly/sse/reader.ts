// Incremental reader of a text/event-stream body (WHATWG HTML, "Server-sent events", §9.2.6 parsing),
// fed the response body chunk by chunk as Envoy delivers it. An event may be split at any byte.
//
// Complete events are parsed in place in the caller's chunk; only the incomplete event at the end of a
// chunk is copied (into `carry`), and it is completed by copying the next chunk's bytes up to the
// event's end. Both buffers are bounded by `maxEventBytes`: an event larger than that stops the reader
// for the rest of the stream (`overflowed`), whether or not it was split, so the result never depends on
// where Envoy cut the body. Nothing here allocates per chunk once the buffers have grown, and nothing
// aborts.
//
// Line ends are CRLF, LF or a lone CR; an empty line ends an event. A CR that ends an event and is the
// last byte of a chunk is taken as the line end at once (no waiting for a possible LF), and an LF that
// starts the next chunk is then skipped as the second half of that CRLF.
import { BoundedBytes } from "./buffer";
import { Account } from "../util/budget";

export const DEFAULT_MAX_EVENT_BYTES: i32 = 1 << 20;
// Upper bound on any configured limit: keeps i32 arithmetic on sizes far from overflow.
export const MAX_EVENT_BYTES_LIMIT: i32 = 1 << 28;

const LF: u8 = 0x0a;
const CR: u8 = 0x0d;
const COLON: u8 = 0x3a;
const SPACE: u8 = 0x20;

// Receives the data of each dispatched event. The bytes are valid only during the call (they point into
// the caller's chunk or the reader's buffers). `[DONE]` is not passed on: it sets `sawDone` instead.
// A handler must not call feed/finish/reset of the reader that is calling it.
export abstract class SseHandler {
  abstract onEvent(dataPtr: usize, dataLen: i32): void;
}

export class SseReader {
  // Totals over the stream.
  events: i32 = 0; // events passed to the handler
  comments: i32 = 0; // comment lines (":" first), e.g. keep-alives
  sawDone: bool = false; // a `data: [DONE]` event arrived
  overflowed: bool = false; // an event exceeded maxEventBytes; the rest of the stream is not parsed
  finished: bool = false;
  retryMs: i64 = -1; // last valid `retry:` field (parsed for completeness; the gateway ignores it)
  sawId: bool = false; // an `id:` field was set

  // Where the event being dispatched lies; valid during onEvent. Offsets are relative to the chunk
  // passed to the current feed(). An event that began in an earlier chunk has eventStart 0 and
  // eventCarried > 0 (its first eventCarried bytes arrived in earlier chunks).
  eventStart: i32 = 0;
  eventEnd: i32 = 0;
  eventCarried: i32 = 0;

  private carry: BoundedBytes; // the incomplete event from earlier chunks
  private joined: BoundedBytes; // multi-line data joined with LF
  private maxEventBytes: i32;
  private atLineStart: bool = true; // the previous byte ended a line (or the stream just began)
  private prevCR: bool = false; // the previous byte was a CR: an LF now completes that CRLF
  private firstRegion: bool = true; // a UTF-8 BOM is stripped from the start of the stream only
  private partialAtFinish: bool = false;
  private typePtr: usize = 0; // `event:` value of the event being dispatched
  private typeLen: i32 = 0;

  // `handler` may be set after construction (an owner that is itself the handler cannot pass `this`
  // before its own fields are set); without one, events are only counted.
  // maxEventBytes <= 0 means DEFAULT_MAX_EVENT_BYTES. (A named constant as the default value would be
  // resolved in the caller's module by asc 0.28, so the default is spelled as 0.)
  // `account`: charged for the event buffers (null: unmetered).
  constructor(
    public handler: SseHandler | null,
    maxEventBytes: i32 = 0,
    account: Account | null = null,
  ) {
    let max = maxEventBytes <= 0 ? DEFAULT_MAX_EVENT_BYTES : maxEventBytes;
    if (max > MAX_EVENT_BYTES_LIMIT) max = MAX_EVENT_BYTES_LIMIT;
    this.maxEventBytes = max;
    this.carry = new BoundedBytes(max, account);
    this.joined = new BoundedBytes(max, account);
  }

  // Bytes of an incomplete event held over to the next chunk.
  get pendingBytes(): i32 {
    return this.carry.length;
  }

  // True during onEvent when the event has an `event:` field equal to `name` (ASCII).
  eventTypeIs(name: string): bool {
    if (this.typeLen != name.length) return false;
    for (let i = 0; i < this.typeLen; i++) {
      if (<i32>load<u8>(this.typePtr + <usize>i) != name.charCodeAt(i)) return false;
    }
    return true;
  }

  // Parses chunk[0..len): dispatches every event completed in it and keeps the incomplete tail.
  feed(ptr: usize, len: i32): void {
    if (this.overflowed || this.finished || len <= 0) return;
    let regionStart: i32 = 0; // start of the current event in this chunk
    let i: i32 = 0;
    while (i < len) {
      const c = load<u8>(ptr + <usize>i);
      if (c == LF && this.prevCR) {
        this.prevCR = false;
        // The LF of a CRLF whose CR ended an event at the end of the previous chunk.
        if (i == regionStart && this.carry.length == 0) regionStart = i + 1;
        i++;
        continue;
      }
      if (c != LF && c != CR) {
        this.atLineStart = false;
        this.prevCR = false;
        i++;
        continue;
      }
      this.prevCR = c == CR;
      if (!this.atLineStart) {
        this.atLineStart = true;
        i++;
        continue;
      }
      // An empty line: the event ends with this byte. Its size excludes the LF of a final CRLF, which
      // may arrive in the next chunk.
      const core = this.carry.length + (i + 1 - regionStart);
      let end = i + 1;
      if (c == CR && end < len && load<u8>(ptr + <usize>end) == LF) {
        end++;
        this.prevCR = false;
      }
      if (core > this.maxEventBytes) {
        this.overflow();
        return;
      }
      if (!this.dispatchRegion(ptr, regionStart, i + 1, end)) return;
      regionStart = end;
      i = end;
    }
    if (regionStart < len && !this.carry.append(ptr + <usize>regionStart, len - regionStart)) this.overflow();
  }

  // End of stream. An event without its closing empty line is discarded, as the spec says; returns
  // whether there was one (bytes after the last complete event).
  finish(): bool {
    if (this.finished) return this.partialAtFinish;
    this.partialAtFinish = this.carry.length > 0;
    this.finished = true;
    this.carry.clear();
    return this.partialAtFinish;
  }

  // Bytes after the last complete event: so far, or at finish() once finished.
  get hasPartialTail(): bool {
    return this.finished ? this.partialAtFinish : this.carry.length > 0;
  }

  // Makes the reader ready for another stream, keeping its buffers.
  reset(): void {
    this.events = 0;
    this.comments = 0;
    this.sawDone = false;
    this.overflowed = false;
    this.finished = false;
    this.partialAtFinish = false;
    this.retryMs = -1;
    this.sawId = false;
    this.carry.clear();
    this.joined.clear();
    this.atLineStart = true;
    this.prevCR = false;
    this.firstRegion = true;
  }

  private overflow(): void {
    this.overflowed = true;
    this.carry.release();
    this.joined.release();
  }

  // The event occupying chunk[start..end) plus whatever was carried; its empty line ends at coreEnd
  // (end is one further when a CRLF's LF follows). false when the reader stopped.
  private dispatchRegion(ptr: usize, start: i32, coreEnd: i32, end: i32): bool {
    const carried = this.carry.length;
    if (carried == 0) {
      this.parseEvent(ptr, start, coreEnd, start, end, 0);
      return !this.overflowed;
    }
    // Cannot fail: the caller checked carried + (coreEnd - start) against the same limit.
    if (!this.carry.append(ptr + <usize>start, coreEnd - start)) {
      this.overflow();
      return false;
    }
    this.parseEvent(this.carry.ptr, 0, this.carry.length, start, end, carried);
    this.carry.clear();
    return !this.overflowed;
  }

  // Parses the lines of one complete event at mem[s..e) and dispatches it.
  private parseEvent(mem: usize, s: i32, e: i32, chunkStart: i32, chunkEnd: i32, carried: i32): void {
    let i = s;
    if (this.firstRegion) {
      this.firstRegion = false;
      if (e - s >= 3 && load<u8>(mem + <usize>s) == 0xef && load<u8>(mem + <usize>s + 1) == 0xbb && load<u8>(mem + <usize>s + 2) == 0xbf)
        i += 3;
    }
    let dataLines: i32 = 0;
    let dataPtr: usize = 0;
    let dataLen: i32 = 0;
    this.typePtr = 0;
    this.typeLen = 0;
    this.joined.clear();
    while (i < e) {
      let j = i;
      while (j < e) {
        const b = load<u8>(mem + <usize>j);
        if (b == LF || b == CR) break;
        j++;
      }
      const lineStart = i;
      const lineEnd = j;
      if (j < e && load<u8>(mem + <usize>j) == CR && j + 1 < e && load<u8>(mem + <usize>j + 1) == LF) i = j + 2;
      else i = j + 1;
      if (lineEnd == lineStart) continue; // the empty line that ends the event
      if (load<u8>(mem + <usize>lineStart) == COLON) {
        this.comments++;
        continue;
      }
      let colon = lineStart;
      while (colon < lineEnd && load<u8>(mem + <usize>colon) != COLON) colon++;
      let vs = colon < lineEnd ? colon + 1 : lineEnd;
      if (vs < lineEnd && load<u8>(mem + <usize>vs) == SPACE) vs++;
      const name = mem + <usize>lineStart;
      const nameLen = colon - lineStart;
      const value = mem + <usize>vs;
      const valueLen = lineEnd - vs;
      if (isField(name, nameLen, FIELD_DATA)) {
        if (dataLines == 0) {
          dataPtr = value;
          dataLen = valueLen;
        } else {
          // Bounded: the joined data is never longer than the event, which fits maxEventBytes.
          if (dataLines == 1 && !this.joined.append(dataPtr, dataLen)) {
            this.overflow();
            return;
          }
          if (!this.joined.appendByte(LF) || !this.joined.append(value, valueLen)) {
            this.overflow();
            return;
          }
        }
        dataLines++;
      } else if (isField(name, nameLen, FIELD_EVENT)) {
        this.typePtr = value;
        this.typeLen = valueLen;
      } else if (isField(name, nameLen, FIELD_ID)) {
        if (!hasNul(value, valueLen)) this.sawId = true;
      } else if (isField(name, nameLen, FIELD_RETRY)) {
        const r = parseRetry(value, valueLen);
        if (r >= 0) this.retryMs = r;
      }
      // Any other field is ignored, as the spec says.
    }
    if (dataLines == 0) return; // comments or fields only: nothing to dispatch
    if (dataLines > 1) {
      dataPtr = this.joined.ptr;
      dataLen = this.joined.length;
    }
    if (isDone(dataPtr, dataLen)) {
      this.sawDone = true;
      return;
    }
    this.eventStart = chunkStart;
    this.eventEnd = chunkEnd;
    this.eventCarried = carried;
    this.events++;
    const h = this.handler;
    if (h != null) h.onEvent(dataPtr, dataLen);
  }
}

const FIELD_DATA = "data";
const FIELD_EVENT = "event";
const FIELD_ID = "id";
const FIELD_RETRY = "retry";
const DONE = "[DONE]";

// Field names are compared byte for byte (case-sensitive, as in the spec).
function isField(p: usize, n: i32, name: string): bool {
  if (n != name.length) return false;
  for (let i = 0; i < n; i++) if (<i32>load<u8>(p + <usize>i) != name.charCodeAt(i)) return false;
  return true;
}

function isDone(p: usize, n: i32): bool {
  return isField(p, n, DONE);
}

function hasNul(p: usize, n: i32): bool {
  for (let i = 0; i < n; i++) if (load<u8>(p + <usize>i) == 0) return true;
  return false;
}

// `retry:` must be ASCII digits only; -1 otherwise. Capped so a long run of digits cannot overflow.
function parseRetry(p: usize, n: i32): i64 {
  if (n == 0) return -1;
  let v: i64 = 0;
  for (let i = 0; i < n; i++) {
    const d = <i32>load<u8>(p + <usize>i) - 0x30;
    if (d < 0 || d > 9) return -1;
    if (v < 1_000_000_000_000) v = v * 10 + <i64>d;
  }
  return v;
}
