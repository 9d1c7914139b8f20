// What one upstream attempt's response says about token usage and generated content. Pure functions over
// bytes (no host calls), so the phase glue can test-drive them without Envoy.
//
// - readJsonResponse: a whole non-streamed body (`usage.*`, `model`).
// - SseUsageTracker: a streamed body fed chunk by chunk. Usage is the LAST non-null `usage` object (vLLM
//   with continuous_usage_stats sends a running total on every chunk, so summing would be wrong); the
//   first content-bearing event is reported for time-to-first-token; usage-only events (`choices: []`)
//   are located in the chunk so the glue can cut them out when the client did not ask for them.
// - estimatePromptTokens / completeUsage: estimates for when the upstream reports nothing.
import { JsonField, JsonScan, JsonType, scanJson, decodeString, keyEquals, scanString, specialBytes8, readInt } from "../../json/reader";
import { ArrayCursor, hex4, scanMember, skipValue } from "../../json/cursor";
import { SseHandler, SseReader } from "../../sse/reader";
import { Account } from "../../util/budget";

export const NOT_REPORTED: i64 = -1;
export const MAX_SERVED_MODEL_BYTES: i32 = 256;
// Prompt estimate: ~4 bytes of English text per token for BPE tokenizers (OpenAI's rule of thumb).
export const PROMPT_BYTES_PER_TOKEN: i64 = 4;

export class UsageRecord {
  promptTokens: i64 = NOT_REPORTED;
  completionTokens: i64 = NOT_REPORTED;
  totalTokens: i64 = NOT_REPORTED;
  cachedTokens: i64 = NOT_REPORTED; // usage.prompt_tokens_details.cached_tokens
  reasoningTokens: i64 = NOT_REPORTED; // usage.completion_tokens_details.reasoning_tokens
  reported: bool = false;  // the response had a usage object with at least one token count
  estimated: bool = false; // at least one count was estimated by completeUsage

  reset(): void { this.copyFrom(NO_USAGE); }

  copyFrom(o: UsageRecord): void {
    this.promptTokens = o.promptTokens;
    this.completionTokens = o.completionTokens;
    this.totalTokens = o.totalTokens;
    this.cachedTokens = o.cachedTokens;
    this.reasoningTokens = o.reasoningTokens;
    this.reported = o.reported;
    this.estimated = o.estimated;
  }
}

const NO_USAGE = new UsageRecord();

// A copy of `u` whose missing counts are filled from the estimates (pass NOT_REPORTED for none);
// `estimated` is set when any count came from an estimate. total = prompt + completion when absent.
export function completeUsage(u: UsageRecord, promptEstimate: i64, completionEstimate: i64): UsageRecord {
  const r = new UsageRecord();
  r.copyFrom(u);
  if (r.promptTokens < 0 && promptEstimate >= 0) { r.promptTokens = promptEstimate; r.estimated = true; }
  if (r.completionTokens < 0 && completionEstimate >= 0) { r.completionTokens = completionEstimate; r.estimated = true; }
  if (r.totalTokens < 0 && r.promptTokens >= 0 && r.completionTokens >= 0) r.totalTokens = r.promptTokens + r.completionTokens;
  return r;
}

// JsonScans are per VM and reused (a VM runs one callback at a time; scanJson is not reentrant).

const RESPONSE_KEYS: Array<string> = ["model", "usage", "choices"];
const F_MODEL: i32 = 0;
const F_USAGE: i32 = 1;
const F_CHOICES: i32 = 2;
const USAGE_KEYS: Array<string> = ["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"];
const DETAILS_KEYS: Array<string> = ["cached_tokens"];
const COMPLETION_DETAILS_KEYS: Array<string> = ["reasoning_tokens"];
const CHOICE_KEYS: Array<string> = ["delta", "text", "message"];
const DELTA_KEYS: Array<string> = ["content", "reasoning_content", "reasoning", "tool_calls"];
const REQUEST_KEYS: Array<string> = ["messages", "prompt"];
const TOOL_CALL_KEYS: Array<string> = ["function"];
const FUNCTION_KEYS: Array<string> = ["arguments"];

const responseScan = new JsonScan(RESPONSE_KEYS);
const usageScan = new JsonScan(USAGE_KEYS);
const detailsScan = new JsonScan(DETAILS_KEYS);
const completionDetailsScan = new JsonScan(COMPLETION_DETAILS_KEYS);
const choiceScan = new JsonScan(CHOICE_KEYS);
const deltaScan = new JsonScan(DELTA_KEYS);
const requestScan = new JsonScan(REQUEST_KEYS);
const toolCallScan = new JsonScan(TOOL_CALL_KEYS);
const functionScan = new JsonScan(FUNCTION_KEYS);
const scratchUsage = new UsageRecord();

// Reads a `usage` member into `out`; false (out untouched) when it is null, not an object or has no
// token count.
function readUsage(p: usize, f: JsonField, out: UsageRecord): bool {
  if (!scanMember(p, f, usageScan)) return false;
  const u = p + <usize>f.start;
  const r = scratchUsage;
  r.reset();
  r.promptTokens = readInt(u, usageScan.field(0));
  r.completionTokens = readInt(u, usageScan.field(1));
  r.totalTokens = readInt(u, usageScan.field(2));
  if (scanMember(u, usageScan.field(3), detailsScan)) {
    r.cachedTokens = readInt(u + <usize>usageScan.field(3).start, detailsScan.field(0));
  }
  if (scanMember(u, usageScan.field(4), completionDetailsScan)) {
    r.reasoningTokens = readInt(u + <usize>usageScan.field(4).start, completionDetailsScan.field(0));
  }
  if (r.promptTokens < 0 && r.completionTokens < 0 && r.totalTokens < 0) return false;
  r.reported = true;
  out.copyFrom(r);
  return true;
}

function readModel(p: usize, f: JsonField): string {
  if (!f.found || f.type != JsonType.String) return "";
  const s = decodeString(p, f.start, f.end, MAX_SERVED_MODEL_BYTES);
  return s == null ? "" : s;
}

export class JsonResponseUsage {
  usage: UsageRecord = new UsageRecord();
  model: string = ""; // the served model; "" when absent, not a string or too long
  valid: bool = false; // the body is a JSON object
  // Without usage: UTF-8 bytes of the generated text (message content and reasoning, tool-call
  // arguments, completions text), for the estimate; -1 when usage was reported.
  generatedBytes: i64 = -1;
}

// Usage and served model of a non-streamed response body.
export function readJsonResponse(p: usize, len: i32): JsonResponseUsage {
  const r = new JsonResponseUsage();
  scanJson(p, len, responseScan);
  if (!responseScan.ok() || responseScan.rootType != JsonType.Object) return r;
  r.valid = true;
  r.model = readModel(p, responseScan.field(F_MODEL));
  if (!readUsage(p, responseScan.field(F_USAGE), r.usage)) r.generatedBytes = generatedBytes(p, responseScan.field(F_CHOICES));
  return r;
}

// Estimated tokens of generated text: ceil(bytes / 4), as for prompts.
export function estimateTextTokens(bytes: i64): i64 {
  return ceilTokens(bytes, 0);
}

// UTF-8 bytes of what the choices of a non-streamed answer generated (not the JSON around it).
function generatedBytes(p: usize, choices: JsonField): i64 {
  let bytes: i64 = 0;
  outerCursor.reset(p, choices);
  while (outerCursor.next()) {
    const base = p + <usize>outerCursor.start;
    if (!scanMember(p, outerCursor.field(elementField), choiceScan)) continue;
    const text = choiceScan.field(1);
    if (text.type == JsonType.String) {
      stringStats(base, text);
      bytes += statBytes;
    }
    const message = choiceScan.field(2);
    if (!scanMember(base, message, deltaScan)) continue;
    const m = base + <usize>message.start;
    for (let k = 0; k < 3; k++) {
      stringStats(m, deltaScan.field(k));
      bytes += statBytes;
    }
    innerCursor.reset(m, deltaScan.field(3));
    while (innerCursor.next()) {
      const call = m + <usize>innerCursor.start;
      if (!scanMember(m, innerCursor.field(elementField), toolCallScan)) continue;
      const fn = toolCallScan.field(0);
      if (!scanMember(call, fn, functionScan)) continue;
      stringStats(call + <usize>fn.start, functionScan.field(0));
      bytes += statBytes;
    }
  }
  return bytes;
}

const outerCursor = new ArrayCursor();
const innerCursor = new ArrayCursor();
const elementField = new JsonField();

// Decoded size of a validated JSON string span, without decoding it: UTF-8 bytes and code points.
let statBytes: i64 = 0;
let statChars: i64 = 0;

function stringStats(p: usize, f: JsonField): void {
  statBytes = 0;
  statChars = 0;
  if (!f.found || f.type != JsonType.String) return;
  countString(p, f.start, f.end);
}

// Counts into statBytes/statChars the validated string that starts (its opening quote) at p[pos], and
// returns the index after its closing quote: counting also finds the end, so a string is read once.
function countString(p: usize, pos: i32, end: i32): i32 {
  let i = pos + 1;
  while (i < end) {
    if (i + 8 <= end) {
      // Plain ASCII runs 8 bytes at a time (see scanString); the closing quote stops a run.
      const m = specialBytes8(load<u64>(p + <usize>i));
      const plain = m == 0 ? 8 : <i32>(ctz(m) >> 3);
      statBytes += plain;
      statChars += plain;
      i += plain;
      if (plain == 8) continue;
    }
    const c = load<u8>(p + <usize>i);
    if (c == 0x22) return i + 1;
    if (c != 0x5c) {
      statBytes++;
      if ((c & 0xc0) != 0x80) statChars++;
      i++;
      continue;
    }
    if (i + 1 >= end || load<u8>(p + <usize>i + 1) != 0x75 || i + 6 > end) { statBytes++; statChars++; i += 2; continue; }
    const u = hex4(p + <usize>i + 2);
    i += 6;
    statChars++;
    if (u >= 0xd800 && u < 0xdc00 && i + 6 <= end && load<u8>(p + <usize>i) == 0x5c &&
      load<u8>(p + <usize>i + 1) == 0x75 && (hex4(p + <usize>i + 2) & 0xfc00) == 0xdc00) {
      statBytes += 4; // a surrogate pair: one code point of four UTF-8 bytes
      i += 6;
    } else {
      statBytes += u < 0x80 ? 1 : u < 0x800 ? 2 : 3;
    }
  }
  return end;
}

// Text bytes of chat messages, walked once: for each message object, its `content` string, or the
// `text` strings of its content parts. Everything else is skipped without being counted. The body
// was validated by the routing scan, so the walk only needs to find boundaries.
let walkBytes: i64 = 0;

function messagesBytes(p: usize, messages: JsonField): i64 {
  walkBytes = 0;
  if (messages.found && messages.type == JsonType.Array) walkArray(p, messages.start, messages.end, true);
  return walkBytes;
}

// Walks the array at p[pos] (its `[`): messages, or (messages false) a message's content parts. Returns
// the index after its `]`, or -1.
function walkArray(p: usize, pos: i32, end: i32, messages: bool): i32 {
  pos++;
  while (true) {
    pos = skipSeparators(p, pos, end);
    if (pos >= end) return -1;
    const c = load<u8>(p + <usize>pos);
    if (c == 0x5d) return pos + 1;
    pos = c == 0x7b ? walkObject(p, pos, end, messages) : skipValue(p, pos, end);
    if (pos < 0) return -1;
  }
}

// Walks the object at p[pos] (its `{`), counting its `content` (a message: parts allowed) or `text`
// (a part) string; returns the index after its `}`, or -1.
function walkObject(p: usize, pos: i32, end: i32, message: bool): i32 {
  pos++;
  while (true) {
    pos = skipSeparators(p, pos, end);
    if (pos >= end) return -1;
    const c = load<u8>(p + <usize>pos);
    if (c == 0x7d) return pos + 1;
    if (c != 0x22) return -1;
    const keyEnd = scanString(p, pos, end);
    if (keyEnd < 0) return -1;
    const counted = keyEquals(p, pos, keyEnd, message ? "content" : "text");
    pos = skipSeparators(p, keyEnd, end);
    if (pos >= end || load<u8>(p + <usize>pos) != 0x3a) return -1;
    pos = skipSeparators(p, pos + 1, end);
    if (pos >= end) return -1;
    const v = load<u8>(p + <usize>pos);
    if (counted && v == 0x22) {
      statBytes = 0;
      statChars = 0;
      pos = countString(p, pos, end);
      walkBytes += statBytes;
    } else if (counted && message && v == 0x5b) {
      pos = walkArray(p, pos, end, false);
    } else {
      pos = skipValue(p, pos, end);
    }
    if (pos < 0) return -1;
  }
}

// Whitespace and commas (which the validated input has only between values).
function skipSeparators(p: usize, pos: i32, end: i32): i32 {
  while (pos < end) {
    const c = load<u8>(p + <usize>pos);
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09 && c != 0x2c) break;
    pos++;
  }
  return pos;
}

@inline function nonEmptyString(f: JsonField): bool {
  return f.found && f.type == JsonType.String && f.end - f.start > 2;
}

// Estimated prompt tokens of a request body when the upstream reports none: ceil(B / 4), at least 1,
// where B is the UTF-8 bytes of every chat message's text content (a string, or the `text` of content
// parts), or of the completions `prompt` (text or list of texts). Token-id prompts count one token per
// id. Chat template tokens are not counted. A body that is not a JSON object counts its own length.
export function estimatePromptTokens(p: usize, len: i32): i64 {
  if (len <= 0) return 1;
  scanJson(p, len, requestScan);
  if (!requestScan.ok() || requestScan.rootType != JsonType.Object) return ceilTokens(<i64>len, 0);
  return estimateFromMembers(p, requestScan.field(0), requestScan.field(1));
}

// The same from the `messages` and `prompt` members of a body already scanned (the routing scan), so
// the body is not scanned a second time.
export function estimateFromMembers(p: usize, messages: JsonField, prompt: JsonField): i64 {
  let bytes: i64 = messagesBytes(p, messages);
  let tokens: i64 = 0;
  if (prompt.type == JsonType.String) {
    stringStats(p, prompt);
    bytes += statBytes;
  }
  outerCursor.reset(p, prompt);
  while (outerCursor.next()) {
    const t = outerCursor.type;
    if (t == JsonType.String) { stringStats(p, outerCursor.field(elementField)); bytes += statBytes; }
    else if (t == JsonType.Number) tokens++;
    else if (t == JsonType.Array) {
      innerCursor.reset(p, outerCursor.field(elementField));
      while (innerCursor.next()) tokens++;
    }
  }
  return ceilTokens(bytes, tokens);
}

function ceilTokens(bytes: i64, tokens: i64): i64 {
  const t = tokens + (bytes + PROMPT_BYTES_PER_TOKEN - 1) / PROMPT_BYTES_PER_TOKEN;
  return t < 1 ? 1 : t;
}

const ANSWER: i32 = 1;
const REASONING: i32 = 2;

// One per upstream attempt. Glue per response-body chunk: feed(chunk); if firstContentInChunk, stamp
// TTFT; to hide usage-only events, send (bytes held from earlier chunks + chunk) minus every drop span
// minus the last reader.pendingBytes bytes, which are held for the next chunk; at end of stream send
// what is held. A drop span is [dropStart - dropCarried, dropEnd) relative to the chunk, so its
// carried part lies in the held bytes. Holding back an incomplete event delays nothing a client can
// see (SSE clients act on complete events only). A glue that does not hold back can drop only spans
// with dropCarried == 0 and must leave the others whole. The tests simulate both.
// Estimated completion tokens = content-bearing events: vLLM sends one chunk per decoding step, one
// token per sequence (several with speculative decoding or a stream interval > 1: a lower bound).
export class SseUsageTracker extends SseHandler {
  readonly reader: SseReader;
  usage: UsageRecord = new UsageRecord(); // from the last event with a non-null usage object
  model: string = "";                     // `model` of the first event that has one
  usageEvents: i32 = 0;                   // events carrying usage
  usageOnlyEvents: i32 = 0;               // of which `choices: []`
  contentEvents: i32 = 0;                 // events with generated content (see isContent)
  answerEvents: i32 = 0;                  // of which with answer content (not reasoning only)
  contentBytes: i64 = 0;                  // UTF-8 bytes of content, reasoning and completion text
  contentChars: i64 = 0;                  // the same in code points
  firstContentEvent: i32 = -1;            // handler index (0-based, [DONE] excluded) of the first one
  malformedEvents: i32 = 0;               // data that is not a JSON object
  firstContentInChunk: bool = false;
  firstAnswerInChunk: bool = false;       // the chunk fed last holds the first answer event
  private drops: Array<i32> = new Array<i32>(); // (start, end, carried) per usage-only event in the chunk

  // maxEventBytes <= 0: the reader's DEFAULT_MAX_EVENT_BYTES.
  constructor(maxEventBytes: i32 = 0, account: Account | null = null) {
    super();
    this.reader = new SseReader(null, maxEventBytes, account);
    this.reader.handler = this;
  }

  feed(ptr: usize, len: i32): void {
    this.drops.length = 0;
    this.firstContentInChunk = false;
    this.firstAnswerInChunk = false;
    this.reader.feed(ptr, len);
  }

  // End of stream; true when an incomplete event was left (a cut stream).
  finish(): bool { return this.reader.finish(); }

  dropCount(): i32 { return this.drops.length / 3; }
  dropStart(i: i32): i32 { return this.dropPart(i, 0); }
  dropEnd(i: i32): i32 { return this.dropPart(i, 1); }
  dropCarried(i: i32): i32 { return this.dropPart(i, 2); }

  private dropPart(i: i32, k: i32): i32 {
    const at = i * 3 + k;
    if (i < 0 || at >= this.drops.length) return -1;
    return unchecked(this.drops[at]);
  }

  onEvent(p: usize, n: i32): void {
    const index = this.reader.events - 1;
    scanJson(p, n, responseScan);
    if (!responseScan.ok() || responseScan.rootType != JsonType.Object) { this.malformedEvents++; return; }
    // Copy what is needed from responseScan before the nested scans below.
    const usage = responseScan.field(F_USAGE);
    const hasUsage = readUsage(p, usage, this.usage);
    if (hasUsage) this.usageEvents++;
    if (this.model.length == 0) this.model = readModel(p, responseScan.field(F_MODEL));
    const choices = responseScan.field(F_CHOICES);
    if (choices.found && choices.type == JsonType.Array) {
      outerCursor.reset(p, choices);
      if (!outerCursor.next()) {
        // Usage-only: `choices: []` with a non-null usage object.
        if (usage.found && usage.type == JsonType.Object) this.recordDrop();
        return;
      }
      let kinds = 0;
      do {
        kinds |= this.isContent(p + <usize>outerCursor.start, outerCursor.field(elementField));
      } while (outerCursor.next());
      if (kinds == 0) return;
      this.contentEvents++;
      if (this.firstContentEvent < 0) {
        this.firstContentEvent = index;
        this.firstContentInChunk = true;
      }
      if ((kinds & ANSWER) != 0 && this.answerEvents++ == 0) this.firstAnswerInChunk = true;
    }
  }

  private recordDrop(): void {
    this.usageOnlyEvents++;
    this.drops.push(this.reader.eventStart);
    this.drops.push(this.reader.eventEnd);
    this.drops.push(this.reader.eventCarried);
  }

  // What one choice (at base, spanning choice) generated: ANSWER for a non-empty delta.content, any
  // delta.tool_calls or a non-empty completions `text`; REASONING for delta.reasoning_content /
  // delta.reasoning; 0 for none (the role-only first chat chunk, `content: ""`). Counts the text's size.
  private isContent(base: usize, choice: JsonField): i32 {
    if (choice.type != JsonType.Object) return 0;
    scanJson(base, choice.end - choice.start, choiceScan);
    if (!choiceScan.ok()) return 0;
    let kinds = 0;
    const text = choiceScan.field(1);
    if (nonEmptyString(text)) { this.countText(base, text); kinds |= ANSWER; }
    const delta = choiceScan.field(0);
    if (!scanMember(base, delta, deltaScan)) return kinds;
    const d = base + <usize>delta.start;
    for (let k = 0; k < 3; k++) {
      const f = deltaScan.field(k);
      if (nonEmptyString(f)) { this.countText(d, f); kinds |= k == 0 ? ANSWER : REASONING; }
    }
    const tools = deltaScan.field(3);
    if (tools.found && tools.type != JsonType.Null) kinds |= ANSWER;
    return kinds;
  }

  private countText(p: usize, f: JsonField): void {
    stringStats(p, f);
    this.contentBytes += statBytes;
    this.contentChars += statChars;
  }
}
