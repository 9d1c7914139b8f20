// SSE reader: spec line handling, bounds, and split-invariance (every split of a stream yields the same
// events at the same byte positions as the whole stream).
import { XorShift, randomCuts } from "./helpers";
import { SseReader, SseHandler } from "../../assembly/sse/reader";

const LF: u8 = 0x0a;
const CR: u8 = 0x0d;

// Recorded from tests/backends/vllm-wire.ts (planStream): chat with include_usage, 4 tokens, [DONE].
const VLLM_CHAT =
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n' +
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":"qwen2-1-5b"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n' +
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" lima"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n' +
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" mike"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n' +
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" november"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}\n\n' +
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[],"usage":{"prompt_tokens":7,"total_tokens":11,"completion_tokens":4}}\n\n' +
  "data: [DONE]\n\n";

// The same shapes with the line-end and field variants a non-vLLM server (or a proxy) may produce.
const MIXED =
  "\uFEFF: keep-alive\r\n\r\n" +
  'event: message\r\nid: 1\r\nretry: 2500\r\ndata:{"a":1}\r\n\r\n' +
  "data: line one\ndata:line two\r\ndata:\rdata:  four\n\n" +
  "data: x\r\rdata: y\r\r\n" +
  ": comment\ndata\nfoo: bar\n\n" +
  "data: \u00e9t\u00e9 \u{1F600}\n\r\n" +
  "event: only-fields\n\n" +
  "data:[DONE]\r\n\r\n" +
  "data: after-done\n\n" +
  "data: unterminated";

const MIXED_EVENTS: Array<string> = ['{"a":1}', "line one\nline two\n\n four", "x", "y", "", "\u00e9t\u00e9 \u{1F600}", "after-done"];

class Recorder extends SseHandler {
  reader: SseReader | null = null;
  input: usize = 0; // the whole stream, to normalise spans
  chunkOffset: i32 = 0; // absolute offset of the chunk being fed
  chunkPtr: usize = 0;
  chunkLen: i32 = 0;
  log: Array<string> = new Array<string>();
  inPlace: i32 = 0; // events whose data pointer lay inside the caller's chunk
  typed: i32 = 0; // events seen with `event: message`

  onEvent(p: usize, n: i32): void {
    const r = this.reader!;
    const start = this.chunkOffset + r.eventStart - r.eventCarried;
    let end = this.chunkOffset + r.eventEnd;
    // A final CRLF's LF may come in the next chunk; compare spans without it.
    if (end >= 2 && load<u8>(this.input + <usize>end - 1) == LF && load<u8>(this.input + <usize>end - 2) == CR) end--;
    this.log.push(String.UTF8.decodeUnsafe(p, <usize>n) + "@" + start.toString() + "-" + end.toString());
    if (p >= this.chunkPtr && p + <usize>n <= this.chunkPtr + <usize>this.chunkLen) this.inPlace++;
    if (r.eventTypeIs("message")) this.typed++;
  }
}

class Run {
  log: string = "";
  events: i32 = 0;
  done: bool = false;
  overflowed: bool = false;
  partial: bool = false;
  comments: i32 = 0;
  inPlace: i32 = 0;
  typed: i32 = 0;
  retry: i64 = -1;

  summary(): string {
    return (
      this.log +
      "|done=" +
      this.done.toString() +
      "|overflow=" +
      this.overflowed.toString() +
      "|partial=" +
      this.partial.toString() +
      "|comments=" +
      this.comments.toString() +
      "|typed=" +
      this.typed.toString() +
      "|retry=" +
      this.retry.toString()
    );
  }
}

// Feeds `input` cut at the absolute offsets in `cuts` (ascending). Each piece is copied into a scratch
// buffer that is wiped after the call, so a reader that kept a pointer into an old chunk would fail.
function run(input: ArrayBuffer, cuts: Array<i32>, maxEventBytes: i32): Run {
  const len = input.byteLength;
  const base = changetype<usize>(input);
  const scratch = new ArrayBuffer(len);
  const sp = changetype<usize>(scratch);
  const rec = new Recorder();
  const reader = new SseReader(rec, maxEventBytes);
  rec.reader = reader;
  rec.input = base;
  let from: i32 = 0;
  for (let k = 0; k <= cuts.length; k++) {
    const to = k < cuts.length ? cuts[k] : len;
    const n = to - from;
    memory.copy(sp, base + <usize>from, <usize>n);
    rec.chunkOffset = from;
    rec.chunkPtr = sp;
    rec.chunkLen = n;
    reader.feed(sp, n);
    memory.fill(sp, 0xaa, <usize>len);
    from = to;
  }
  const r = new Run();
  r.partial = reader.finish();
  r.log = rec.log.join("\u0001");
  r.events = reader.events;
  r.done = reader.sawDone;
  r.overflowed = reader.overflowed;
  r.comments = reader.comments;
  r.inPlace = rec.inPlace;
  r.typed = rec.typed;
  r.retry = reader.retryMs;
  return r;
}

function whole(s: string, max: i32 = 1 << 20): Run {
  return run(String.UTF8.encode(s), new Array<i32>(), max);
}

function eventsOf(r: Run): Array<string> {
  const out = new Array<string>();
  if (r.log.length == 0) return out;
  const parts = r.log.split("\u0001");
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    out.push(p.substring(0, p.lastIndexOf("@")));
  }
  return out;
}

const rng = new XorShift(0x2545f491);

// Whole, byte by byte, every single cut and `randomRuns` random multi-cuts: all equal to the whole run.
// Returns the number of split variants checked.
function checkSplits(s: string, max: i32, randomRuns: i32): i32 {
  const input = String.UTF8.encode(s);
  const len = input.byteLength;
  const expected = run(input, new Array<i32>(), max).summary();
  let checked = 0;
  const bytewise = new Array<i32>();
  for (let i = 1; i < len; i++) bytewise.push(i);
  expect(run(input, bytewise, max).summary()).toBe(expected, "byte by byte");
  checked++;
  for (let i = 1; i < len; i++) {
    const one = new Array<i32>();
    one.push(i);
    const got = run(input, one, max).summary();
    if (got != expected) expect(got).toBe(expected, "single cut at " + i.toString());
    checked++;
  }
  for (let i = 0; i < randomRuns; i++) {
    const cuts = randomCuts(rng, len, 16);
    const got = run(input, cuts, max).summary();
    if (got != expected) expect(got).toBe(expected, "cuts " + cuts.join(","));
    checked++;
  }
  return checked;
}

describe("SseReader: line and field handling", () => {
  it("dispatches LF-terminated events and strips one space after data:", () => {
    const r = whole("data: a\n\ndata:b\n\ndata:  c\n\n");
    expect(eventsOf(r).join(",")).toBe("a,b, c");
  });

  it("accepts CRLF, lone CR and mixed line ends", () => {
    expect(eventsOf(whole("data: a\r\n\r\ndata: b\r\n\r\n")).join(",")).toBe("a,b");
    expect(eventsOf(whole("data: a\r\rdata: b\r\r")).join(",")).toBe("a,b");
    expect(eventsOf(whole("data: a\r\n\ndata: b\n\r\ndata: c\r\r\ndata: d\n\n")).join(",")).toBe("a,b,c,d");
  });

  it("joins multi-line data with LF, keeping empty data lines", () => {
    expect(eventsOf(whole("data: a\ndata: b\ndata:\ndata: c\n\n"))[0]).toBe("a\nb\n\nc");
  });

  it("skips comments and counts them", () => {
    const r = whole(": ping\n\ndata: x\n:comment\n\n");
    expect(eventsOf(r).join(",")).toBe("x");
    expect(r.comments).toBe(2);
  });

  it("parses event, id and retry without dispatching field-only events", () => {
    const r = whole("event: message\nid: 7\nretry: 3000\ndata: x\n\nevent: other\n\nretry: 12a\ndata: y\n\n");
    expect(eventsOf(r).join(",")).toBe("x,y");
    expect(r.typed).toBe(1);
    expect(r.retry).toBe(3000);
  });

  it("dispatches a bare `data` line as an empty event and ignores unknown fields", () => {
    expect(eventsOf(whole("data\n\nfoo: bar\ndata: y\n\n")).join(",")).toBe(",y");
  });

  it("recognises [DONE] with or without the space and does not pass it on", () => {
    const a = whole("data: [DONE]\n\n");
    expect(a.done).toBe(true);
    expect(a.events).toBe(0);
    expect(whole("data:[DONE]\r\n\r\n").done).toBe(true);
    const b = whole("data: [DONE] \n\ndata: [done]\n\n");
    expect(b.done).toBe(false);
    expect(b.events).toBe(2);
  });

  it("strips a UTF-8 BOM at the start of the stream only", () => {
    expect(eventsOf(whole("\uFEFFdata: a\n\n")).join(",")).toBe("a");
    expect(eventsOf(whole("data: a\n\n\uFEFFdata: b\n\n")).join(",")).toBe("a");
  });

  it("does not dispatch a final event without its empty line and reports the tail", () => {
    const r = whole("data: a\n\ndata: b\n");
    expect(eventsOf(r).join(",")).toBe("a");
    expect(r.partial).toBe(true);
    expect(whole("data: a").events).toBe(0);
    expect(whole("data: a\n\n").partial).toBe(false);
  });

  it("parses the mixed stream as the spec says", () => {
    const r = whole(MIXED);
    expect(eventsOf(r).join("|")).toBe(MIXED_EVENTS.join("|"));
    expect(r.done).toBe(true);
    expect(r.partial).toBe(true);
    expect(r.comments).toBe(2);
    expect(r.typed).toBe(1);
    expect(r.retry).toBe(2500);
  });
});

describe("SseReader: chunk handling", () => {
  it("parses complete events in place and copies only the tail", () => {
    const input = String.UTF8.encode(VLLM_CHAT);
    const r = run(input, new Array<i32>(), 1 << 20);
    expect(r.events).toBe(6);
    expect(r.inPlace).toBe(6);
    expect(r.done).toBe(true);
  });

  it("keeps just the incomplete event between chunks", () => {
    const rec = new Recorder();
    const reader = new SseReader(rec, 1024);
    rec.reader = reader;
    const a = String.UTF8.encode("data: one\n\ndata: tw");
    reader.feed(changetype<usize>(a), a.byteLength);
    expect(reader.pendingBytes).toBe(8);
    expect(reader.hasPartialTail).toBe(true);
    const b = String.UTF8.encode("o\n\n");
    reader.feed(changetype<usize>(b), b.byteLength);
    expect(reader.pendingBytes).toBe(0);
    expect(reader.events).toBe(2);
  });

  it("reports where each event lies in the chunk, and the bytes carried from earlier chunks", () => {
    const rec = new Recorder();
    const reader = new SseReader(rec, 1024);
    rec.reader = reader;
    const a = String.UTF8.encode("data: a\r\n\r");
    rec.input = changetype<usize>(a);
    reader.feed(changetype<usize>(a), a.byteLength);
    expect(reader.eventStart).toBe(0);
    expect(reader.eventEnd).toBe(10); // ends at the CR; its LF comes next
    const b = String.UTF8.encode("\ndata: b\r\n\r\ndata: c");
    reader.feed(changetype<usize>(b), b.byteLength);
    expect(reader.eventStart).toBe(1); // the LF completing the CRLF is skipped
    expect(reader.eventEnd).toBe(12);
    expect(reader.eventCarried).toBe(0);
    const c = String.UTF8.encode("\n\n");
    reader.feed(changetype<usize>(c), c.byteLength);
    expect(reader.eventStart).toBe(0);
    expect(reader.eventEnd).toBe(2);
    expect(reader.eventCarried).toBe(7);
    expect(reader.events).toBe(3);
  });

  it("ignores empty feeds and anything after finish; reset starts over", () => {
    const reader = new SseReader(null, 64);
    reader.feed(0, 0);
    const a = String.UTF8.encode("data: a\n\ndata: b");
    reader.feed(changetype<usize>(a), a.byteLength);
    expect(reader.finish()).toBe(true);
    expect(reader.hasPartialTail).toBe(true);
    reader.feed(changetype<usize>(a), a.byteLength);
    expect(reader.events).toBe(1);
    expect(reader.finish()).toBe(true);
    reader.reset();
    reader.feed(changetype<usize>(a), a.byteLength);
    expect(reader.events).toBe(1);
    expect(reader.finished).toBe(false);
  });
});

describe("SseReader: bounds", () => {
  it("accepts an event of exactly maxEventBytes and stops at one byte more", () => {
    // "data: " + 56 bytes + "\n\n" = 64 bytes.
    const ok = "data: " + "x".repeat(56) + "\n\n";
    const exact = whole(ok, 64);
    expect(exact.overflowed).toBe(false);
    expect(exact.events).toBe(1);
    const over = whole("data: a\n\n" + "data: " + "x".repeat(57) + "\n\ndata: after\n\n", 64);
    expect(over.overflowed).toBe(true);
    expect(eventsOf(over).join(",")).toBe("a");
  });

  it("stops when an unterminated tail outgrows the bound", () => {
    const r = whole("data: a\n\ndata: " + "y".repeat(100), 64);
    expect(r.overflowed).toBe(true);
    expect(r.events).toBe(1);
  });

  it("bounds each event, not the stream", () => {
    let s = "";
    for (let i = 0; i < 100; i++) s += "data: event-" + i.toString() + "\n\n";
    const r = whole(s, 32);
    expect(r.overflowed).toBe(false);
    expect(r.events).toBe(100);
  });

  it("counts a CRLF event's size without the final LF, however it is split", () => {
    // 61 bytes up to the last CR, 62 with its LF: fits 61 whether or not the LF is in the same chunk.
    const s = "data: " + "z".repeat(52) + "\r\n\r\n";
    expect(whole(s, 60).overflowed).toBe(true);
    expect(whole(s, 61).overflowed).toBe(false);
    checkSplits(s, 61, 20);
  });
});

describe("SseReader: every split yields the same events", () => {
  it("vLLM chat stream: whole, byte by byte, every cut, 300 random multi-cuts", () => {
    const n = checkSplits(VLLM_CHAT, 1 << 20, 300);
    expect(n).toBe(String.UTF8.byteLength(VLLM_CHAT) + 300);
  });

  it("mixed line ends, comments, fields, BOM, [DONE] and a partial tail", () => {
    checkSplits(MIXED, 1 << 20, 300);
  });

  it("overflow happens at the same event for every split", () => {
    checkSplits("data: a\n\ndata: " + "q".repeat(70) + "\n\ndata: b\n\n", 64, 200);
    checkSplits("data: a\r\n\r\ndata: " + "q".repeat(70), 64, 200);
  });
});
