// Usage accounting (assembly/plugin/usage.ts): JSON bodies, streamed vLLM responses fed at every split,
// usage-only event removal, content detection for TTFT, estimates, and malformed input.
import { XorShift, hold, randomCuts } from "./helpers";
import {
  SseUsageTracker,
  UsageRecord,
  readJsonResponse,
  estimatePromptTokens,
  completeUsage,
  NOT_REPORTED,
} from "../../assembly/plugin/response/usage";

// Recorded from tests/backends/vllm-wire.ts (planStream), one event per element.
const CHAT_EVENTS: Array<string> = [
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":"qwen2-1-5b"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" lima"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" mike"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" november"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[],"usage":{"prompt_tokens":7,"total_tokens":11,"completion_tokens":4}}\n\n',
  "data: [DONE]\n\n",
];
const CHAT_USAGE_EVENT: i32 = 5;

const COMPLETION_EVENTS: Array<string> = [
  'data: {"id":"cmpl-b1f0c2","object":"text_completion","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"text":"qwen2-1-5b","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n',
  'data: {"id":"cmpl-b1f0c2","object":"text_completion","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"text":" lima","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n',
  'data: {"id":"cmpl-b1f0c2","object":"text_completion","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"text":" mike","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n',
  'data: {"id":"cmpl-b1f0c2","object":"text_completion","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"text":" november","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n',
  'data: {"id":"cmpl-b1f0c2","object":"text_completion","created":1732600000,"model":"qwen2-1-5b","choices":[],"usage":{"prompt_tokens":5,"total_tokens":9,"completion_tokens":4}}\n\n',
  "data: [DONE]\n\n",
];
const COMPLETION_USAGE_EVENT: i32 = 4;

// include_usage off: no usage anywhere.
const NO_USAGE_EVENTS: Array<string> = [
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":"qwen2-1-5b"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" lima"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" mike"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}\n\n',
  "data: [DONE]\n\n",
];

// continuous_usage_stats: a running total on every chunk, then the usage-only chunk.
const CONTINUOUS_EVENTS: Array<string> = [
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":7,"total_tokens":7,"completion_tokens":0,"completion_tokens_details":null},"prompt_token_ids":null,"prompt_text":null}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":"qwen2-1-5b"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":7,"total_tokens":8,"completion_tokens":1,"completion_tokens_details":null}}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"delta":{"content":" lima"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],"usage":{"prompt_tokens":7,"total_tokens":9,"completion_tokens":2,"completion_tokens_details":null}}\n\n',
  'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[],"usage":{"prompt_tokens":7,"total_tokens":9,"completion_tokens":2}}\n\n',
  "data: [DONE]\n\n",
];

// Malformed events between good ones: the stream keeps being read.
const MALFORMED_EVENTS: Array<string> = [
  "data: {not json}\n\n",
  "data: 42\n\n",
  "data:\n\n",
  'data: {"choices": [}\n\n',
  'data: {"choices":[{"delta":{"content":"ok"}}],"usage":{"prompt_tokens":"3"}}\n\n',
  'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}\n\n',
];

function joinAll(events: Array<string>): string {
  return events.join("");
}

function without(events: Array<string>, skip: i32): string {
  let s = "";
  for (let i = 0; i < events.length; i++) if (i != skip) s += events[i];
  return s;
}

// Logs each event's data before the tracker sees it.
class RecordingTracker extends SseUsageTracker {
  log: Array<string> = new Array<string>();
  onEvent(p: usize, n: i32): void {
    this.log.push(String.UTF8.decodeUnsafe(p, <usize>n));
    super.onEvent(p, n);
  }
}

class Outcome {
  summary: string = "";
  glued: string = ""; // output of a glue that withholds pending bytes and cuts usage-only events
  gluedBlocked: i32 = 0; // drops the withholding glue could not apply (must stay 0)
  naive: string = ""; // output of a glue that forwards at once and cuts only in-chunk events
  firstContentFlags: i32 = 0; // feeds that reported firstContentInChunk
  tracker: RecordingTracker = new RecordingTracker();
}

function usageText(u: UsageRecord): string {
  return (
    u.promptTokens.toString() +
    "/" +
    u.completionTokens.toString() +
    "/" +
    u.totalTokens.toString() +
    "/" +
    u.cachedTokens.toString() +
    (u.reported ? "/reported" : "") +
    (u.estimated ? "/estimated" : "")
  );
}

// Feeds `input` cut at `cuts` through a fresh tracker (each piece from a scratch buffer wiped after the
// call) and simulates both glue strategies on the same feeds.
function track(input: ArrayBuffer, cuts: Array<i32>): Outcome {
  const o = new Outcome();
  const t = o.tracker;
  const len = input.byteLength;
  const base = changetype<usize>(input);
  const scratch = new ArrayBuffer(len);
  const sp = changetype<usize>(scratch);
  const glued = new Array<string>();
  const naive = new Array<string>();
  const drops = new Array<string>();
  let emitted: i32 = 0; // the withholding glue has decided every byte before this
  let from: i32 = 0;
  for (let k = 0; k <= cuts.length; k++) {
    const to = k < cuts.length ? cuts[k] : len;
    const n = to - from;
    memory.copy(sp, base + <usize>from, <usize>n);
    t.feed(sp, n);
    memory.fill(sp, 0xaa, <usize>len);
    if (t.firstContentInChunk) o.firstContentFlags++;
    let naiveFrom = from;
    for (let d = 0; d < t.dropCount(); d++) {
      const s = from + t.dropStart(d) - t.dropCarried(d);
      const e = from + t.dropEnd(d);
      drops.push(s.toString() + "-" + e.toString());
      if (s < emitted) o.gluedBlocked++;
      else {
        glued.push(slice(base, emitted, s));
        emitted = e;
      }
      if (t.dropCarried(d) == 0) {
        naive.push(slice(base, naiveFrom, from + t.dropStart(d)));
        naiveFrom = e;
      }
    }
    naive.push(slice(base, naiveFrom, to));
    const hold = to - t.reader.pendingBytes;
    if (hold > emitted) {
      glued.push(slice(base, emitted, hold));
      emitted = hold;
    }
    from = to;
  }
  const partial = t.finish();
  glued.push(slice(base, emitted, len)); // a cut stream: forward what was held
  o.glued = glued.join("");
  o.naive = naive.join("");
  o.summary =
    t.log.join("\u0001") +
    "|usage=" +
    usageText(t.usage) +
    "|model=" +
    t.model +
    "|first=" +
    t.firstContentEvent.toString() +
    "|content=" +
    t.contentEvents.toString() +
    "/" +
    t.contentBytes.toString() +
    "/" +
    t.contentChars.toString() +
    "|usageEvents=" +
    t.usageEvents.toString() +
    "|usageOnly=" +
    t.usageOnlyEvents.toString() +
    "|malformed=" +
    t.malformedEvents.toString() +
    "|drops=" +
    drops.join(",") +
    "|done=" +
    t.reader.sawDone.toString() +
    "|partial=" +
    partial.toString() +
    "|flags=" +
    o.firstContentFlags.toString();
  return o;
}

function slice(base: usize, s: i32, e: i32): string {
  return e > s ? String.UTF8.decodeUnsafe(base + <usize>s, <usize>(e - s)) : "";
}

function trackText(s: string): RecordingTracker {
  return track(String.UTF8.encode(s), new Array<i32>()).tracker;
}

const rng = new XorShift(0x9e3779b9);

// The property: whole, byte by byte, every single cut and `randomRuns` random multi-cuts give the same
// events, usage, first-content index, counts and drop spans; the withholding glue always removes the
// usage-only events exactly; the forwarding glue removes them or leaves them whole. Returns the number
// of split variants checked.
function checkSplits(events: Array<string>, usageEvent: i32, randomRuns: i32): i32 {
  const text = joinAll(events);
  const input = String.UTF8.encode(text);
  const len = input.byteLength;
  const stripped = usageEvent >= 0 ? without(events, usageEvent) : text;
  const ref = track(input, new Array<i32>());
  expect(ref.glued).toBe(stripped, "whole: withholding glue");
  expect(ref.naive).toBe(stripped, "whole: forwarding glue");
  expect(ref.firstContentFlags).toBe(ref.tracker.firstContentEvent >= 0 ? 1 : 0, "one feed reports first content");
  let checked = 0;
  for (let variant = -1; variant < len - 1 + randomRuns; variant++) {
    const cuts = new Array<i32>();
    if (variant == -1)
      for (let i = 1; i < len; i++) cuts.push(i); // byte by byte
    else if (variant < len - 1)
      cuts.push(variant + 1); // one cut
    else {
      const r = randomCuts(rng, len, 24);
      for (let i = 0; i < r.length; i++) cuts.push(r[i]);
    }
    const o = track(input, cuts);
    checked++;
    const at = "cuts " + (cuts.length > 30 ? "byte by byte" : cuts.join(","));
    if (o.summary != ref.summary) expect(o.summary).toBe(ref.summary, at);
    if (o.glued != stripped) expect(o.glued).toBe(stripped, at + ": withholding glue");
    if (o.gluedBlocked != 0) expect(o.gluedBlocked).toBe(0, at);
    if (o.naive != stripped && o.naive != text) expect(o.naive).toBe(stripped, at + ": forwarding glue corrupted");
  }
  return checked;
}

describe("readJsonResponse", () => {
  it("reads usage and the served model of a vLLM chat body", () => {
    // Held in a global while the reader allocates (a buffer reachable only through a usize is invisible to the GC).
    const body = String.UTF8.encode(
      '{"id":"chatcmpl-b1f0c2","object":"chat.completion","created":1732600000,"model":"qwen2-1-5b","choices":[{"index":0,"message":{"role":"assistant","content":"hello world","refusal":null,"annotations":null,"audio":null,"function_call":null,"reasoning":null},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":null,"routed_experts":null}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":9,"total_tokens":11,"completion_tokens":2,"prompt_tokens_details":null,"completion_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":null,"prompt_text":null,"kv_transfer_params":null,"ec_transfer_params":null,"metrics":null}',
    );
    const r = readJsonResponse(hold(body), body.byteLength);
    expect(r.valid).toBe(true);
    expect(r.model).toBe("qwen2-1-5b");
    expect(usageText(r.usage)).toBe("9/2/11/-1/reported");
  });
});

class JsonCase {
  constructor(
    public body: string,
    public valid: bool,
    public usage: string,
    public model: string,
  ) {}
}

function readText(s: string): string {
  const b = String.UTF8.encode(s);
  const r = readJsonResponse(changetype<usize>(b), b.byteLength);
  return r.valid.toString() + " " + usageText(r.usage) + " " + r.model;
}

describe("readJsonResponse: table", () => {
  it("handles usage present, absent, null, partial, cached and malformed", () => {
    const cases: Array<JsonCase> = [
      new JsonCase('{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}', true, "3/4/7/-1/reported", "m"),
      new JsonCase('{"model":"m","choices":[{"text":"hi"}]}', true, "-1/-1/-1/-1", "m"),
      new JsonCase('{"model":"m","usage":null}', true, "-1/-1/-1/-1", "m"),
      new JsonCase('{"usage":{}}', true, "-1/-1/-1/-1", ""),
      new JsonCase('{"usage":{"completion_tokens":5}}', true, "-1/5/-1/-1/reported", ""),
      new JsonCase(
        '{"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":8}}}',
        true,
        "10/1/11/8/reported",
        "",
      ),
      new JsonCase('{"usage":{"prompt_tokens":10,"prompt_tokens_details":{"audio_tokens":1}}}', true, "10/-1/-1/-1/reported", ""),
      new JsonCase('{"usage":{"prompt_tokens":1.5,"completion_tokens":-2,"total_tokens":"3"}}', true, "-1/-1/-1/-1", ""),
      new JsonCase('{"usage":{"prompt_tokens":1,"prompt_tokens":2}}', true, "-1/-1/-1/-1", ""),
      new JsonCase('{"model":7,"usage":{"prompt_tokens":1}}', true, "1/-1/-1/-1/reported", ""),
      new JsonCase('{"error":{"message":"boom","type":"BadRequestError","param":null,"code":400}}', true, "-1/-1/-1/-1", ""),
      new JsonCase('{"usage":{"prompt_tokens":1}', false, "-1/-1/-1/-1", ""),
      new JsonCase("[1,2]", false, "-1/-1/-1/-1", ""),
      new JsonCase("", false, "-1/-1/-1/-1", ""),
      new JsonCase("data: {}\n\n", false, "-1/-1/-1/-1", ""),
    ];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      expect(readText(c.body)).toBe(c.valid.toString() + " " + c.usage + " " + c.model, c.body);
    }
  });
});

describe("SseUsageTracker: recorded vLLM streams", () => {
  it("chat: usage from the usage-only chunk, first content after the role chunk", () => {
    const t = trackText(joinAll(CHAT_EVENTS));
    expect(usageText(t.usage)).toBe("7/4/11/-1/reported");
    expect(t.model).toBe("qwen2-1-5b");
    expect(t.firstContentEvent).toBe(1);
    expect(t.contentEvents).toBe(4);
    expect(t.contentBytes).toBe(<i64>String.UTF8.byteLength("qwen2-1-5b lima mike november"));
    expect(t.usageEvents).toBe(1);
    expect(t.usageOnlyEvents).toBe(1);
    expect(t.malformedEvents).toBe(0);
    expect(t.reader.sawDone).toBe(true);
  });

  it("chat: reports the usage-only event's exact bytes for removal", () => {
    const text = joinAll(CHAT_EVENTS);
    const b = String.UTF8.encode(text);
    const t = new SseUsageTracker();
    t.feed(changetype<usize>(b), b.byteLength);
    expect(t.dropCount()).toBe(1);
    const start = text.indexOf(
      'data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[]',
    );
    expect(t.dropStart(0)).toBe(start);
    expect(t.dropEnd(0)).toBe(start + CHAT_EVENTS[CHAT_USAGE_EVENT].length);
    expect(t.dropCarried(0)).toBe(0);
    expect(t.dropStart(1)).toBe(-1);
  });

  it("completions: first content is the first chunk", () => {
    const t = trackText(joinAll(COMPLETION_EVENTS));
    expect(usageText(t.usage)).toBe("5/4/9/-1/reported");
    expect(t.firstContentEvent).toBe(0);
    expect(t.contentEvents).toBe(4);
    expect(t.usageOnlyEvents).toBe(1);
  });

  it("no usage: counts content chunks for the estimate", () => {
    const t = trackText(joinAll(NO_USAGE_EVENTS));
    expect(t.usage.reported).toBe(false);
    expect(t.contentEvents).toBe(3);
    expect(t.firstContentEvent).toBe(1);
    expect(t.usageOnlyEvents).toBe(0);
    const u = completeUsage(t.usage, 12, <i64>t.contentEvents);
    expect(usageText(u)).toBe("12/3/15/-1/estimated");
  });

  it("continuous usage: the last usage wins, it is not summed", () => {
    const t = trackText(joinAll(CONTINUOUS_EVENTS));
    expect(usageText(t.usage)).toBe("7/2/9/-1/reported");
    expect(t.usageEvents).toBe(4);
    expect(t.usageOnlyEvents).toBe(1);
    expect(t.firstContentEvent).toBe(1);
  });
});

describe("SseUsageTracker: every split gives the same result", () => {
  it("chat stream", () => {
    const n = checkSplits(CHAT_EVENTS, CHAT_USAGE_EVENT, 300);
    expect(n).toBe(String.UTF8.byteLength(joinAll(CHAT_EVENTS)) + 300);
  });
  it("completions stream", () => {
    checkSplits(COMPLETION_EVENTS, COMPLETION_USAGE_EVENT, 300);
  });
  it("stream without usage", () => {
    checkSplits(NO_USAGE_EVENTS, -1, 300);
  });
  it("continuous usage stream", () => {
    checkSplits(CONTINUOUS_EVENTS, 3, 300);
  });
  it("malformed events", () => {
    checkSplits(MALFORMED_EVENTS, 5, 300);
  });
});

class ContentCase {
  constructor(
    public data: string,
    public content: bool,
    public bytes: i64,
    public chars: i64,
  ) {}
}

describe("SseUsageTracker: content detection", () => {
  it("tells generated content from role, finish and empty chunks", () => {
    const cases: Array<ContentCase> = [
      new ContentCase('{"choices":[{"delta":{"role":"assistant","content":""}}]}', false, 0, 0),
      new ContentCase('{"choices":[{"delta":{"role":"assistant"}}]}', false, 0, 0),
      new ContentCase('{"choices":[{"delta":{},"finish_reason":"stop"}]}', false, 0, 0),
      new ContentCase('{"choices":[{"delta":{"content":null}}]}', false, 0, 0),
      new ContentCase('{"choices":[{"text":""}]}', false, 0, 0),
      new ContentCase('{"choices":[{"delta":{"content":"hi"}}]}', true, 2, 2),
      new ContentCase('{"choices":[{"delta":{"role":"assistant","content":"hi"}}]}', true, 2, 2),
      new ContentCase('{"choices":[{"delta":{"reasoning_content":"hmm"}}]}', true, 3, 3),
      new ContentCase('{"choices":[{"delta":{"reasoning":"hmm"}}]}', true, 3, 3),
      new ContentCase('{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}', true, 0, 0),
      new ContentCase('{"choices":[{"text":"a"}]}', true, 1, 1),
      new ContentCase('{"choices":[{"delta":{}},{"delta":{"content":"b"}}]}', true, 1, 1),
      new ContentCase('{"choices":[{"delta":{"content":"h\u00e9llo"}}]}', true, 6, 5),
      new ContentCase('{"choices":[{"delta":{"content":"\\u00e9\\n\\"x"}}]}', true, 5, 4),
      new ContentCase('{"choices":[{"delta":{"content":"\\ud83d\\ude00\u{1F600}"}}]}', true, 8, 2),
      new ContentCase('{"choices":"nope"}', false, 0, 0),
      new ContentCase('{"choices":[1,"x",null]}', false, 0, 0),
    ];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      const t = trackText("data: " + c.data + "\n\n");
      expect(t.firstContentEvent).toBe(c.content ? 0 : -1, c.data);
      expect(t.contentEvents).toBe(c.content ? 1 : 0, c.data);
      expect(t.contentBytes).toBe(c.bytes, c.data);
      expect(t.contentChars).toBe(c.chars, c.data);
      expect(t.malformedEvents).toBe(0, c.data);
    }
  });
});

describe("SseUsageTracker: usage and malformed events", () => {
  it("takes the last non-null usage and ignores usage: null", () => {
    const t = trackText(
      'data: {"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n' +
        'data: {"choices":[{"delta":{"content":"b"}}],"usage":null}\n\n' +
        'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":4}}}\n\n' +
        'data: {"choices":[],"usage":null}\n\n',
    );
    expect(usageText(t.usage)).toBe("5/3/8/4/reported");
    expect(t.usageEvents).toBe(2);
    expect(t.usageOnlyEvents).toBe(1); // choices [] with usage null is not usage-only
    expect(t.contentEvents).toBe(2);
  });

  it("counts malformed events and keeps reading", () => {
    const t = trackText(joinAll(MALFORMED_EVENTS));
    expect(t.malformedEvents).toBe(4);
    expect(t.contentEvents).toBe(1);
    expect(usageText(t.usage)).toBe("2/1/3/-1/reported");
  });

  it("stops tracking after an oversized event and says so", () => {
    const t = new SseUsageTracker(64);
    const b = String.UTF8.encode(
      'data: {"choices":[{"delta":{"content":"' + "x".repeat(80) + '"}}]}\n\ndata: {"choices":[{"delta":{"content":"y"}}]}\n\n',
    );
    t.feed(changetype<usize>(b), b.byteLength);
    expect(t.reader.overflowed).toBe(true);
    expect(t.contentEvents).toBe(0);
  });

  it("reports a drop of an event begun in an earlier chunk with its carried length", () => {
    const text = joinAll(CHAT_EVENTS);
    const b = String.UTF8.encode(text);
    const p = changetype<usize>(b);
    const cut = text.indexOf('"choices":[]');
    const t = new SseUsageTracker();
    t.feed(p, cut);
    expect(t.dropCount()).toBe(0);
    const pending = t.reader.pendingBytes;
    t.feed(p + <usize>cut, b.byteLength - cut);
    expect(t.dropCount()).toBe(1);
    expect(t.dropStart(0)).toBe(0);
    expect(t.dropCarried(0)).toBe(pending);
    expect(cut - pending).toBe(
      text.indexOf('data: {"id":"chatcmpl-b1f0c2","object":"chat.completion.chunk","created":1732600000,"model":"qwen2-1-5b","choices":[]'),
    );
  });
});

class PromptCase {
  constructor(
    public body: string,
    public tokens: i64,
  ) {}
}

describe("estimatePromptTokens", () => {
  it("is ceil(content bytes / 4), at least 1; token ids count one each", () => {
    const cases: Array<PromptCase> = [
      new PromptCase('{"model":"m","messages":[{"role":"system","content":"0123456789"},{"role":"user","content":"abcdefg"}]}', 5),
      new PromptCase(
        '{"messages":[{"role":"user","content":[{"type":"text","text":"12345678"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"9"}]}]}',
        3,
      ),
      new PromptCase('{"messages":[{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","content":"\\u00e9\\u00e9"}]}', 1),
      new PromptCase('{"messages":[]}', 1),
      // Members around the counted ones of every kind (numbers just before a closing brace, nested
      // containers, non-object messages and parts, a nested `text` that is not a part's), only
      // content and part texts count: 4 + 4 + 2 bytes.
      new PromptCase(
        '{"messages":[{"role":"user","name":"x","content":"abcd","n":12},{"content":[{"type":"text","text":"efgh","extra":[1,{"text":"zzzz"}]},' +
          '{"type":"image_url","image_url":{"url":"http://x/text"}},3,{"text":"ij"}],"weight":1.5e3},7,"str",null,{"role":"tool","content":null,"tool_call_id":"c"}]}',
        3,
      ),
      new PromptCase('{ "messages" : [ { "content" : "abcdefghi" } , { "role" : "user" , "content" : [ { "text" : "j" } ] } ] }', 3),
      new PromptCase('{"messages":[{"cont\\u0065nt":"abcdefgh"}]}', 2),
      new PromptCase('{"messages":[{"content":5,"x":"abcdefghabcdefgh"}]}', 1),
      // Long ASCII runs (read 8 bytes at a time) around escapes and multi-byte characters: 10 + 2 + 2
      // + 1 + 13 = 28 bytes, and 29 with one more ASCII byte.
      new PromptCase('{"messages":[{"role":"user","content":"aaaaaaaaaa\\u00e9é\\nbbbbbbbbbbbbb"}]}', 7),
      new PromptCase('{"messages":[{"role":"user","content":"aaaaaaaaaa\\u00e9é\\nbbbbbbbbbbbbbc"}]}', 8),
      new PromptCase('{"prompt":"0123456789abcdef"}', 4),
      new PromptCase('{"prompt":["abcd","efgh1"]}', 3),
      new PromptCase('{"prompt":[1,2,3]}', 3),
      new PromptCase('{"prompt":[[1,2],[3]]}', 3),
      new PromptCase('{"model":"m"}', 1),
      new PromptCase("not json at all", 4),
    ];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      const b = String.UTF8.encode(c.body);
      expect(estimatePromptTokens(changetype<usize>(b), b.byteLength)).toBe(c.tokens, c.body);
    }
    expect(estimatePromptTokens(0, 0)).toBe(1);
  });
});

describe("completeUsage", () => {
  it("keeps reported counts and fills only what is missing", () => {
    const u = new UsageRecord();
    u.promptTokens = 9;
    u.completionTokens = 2;
    u.totalTokens = 11;
    u.reported = true;
    expect(usageText(completeUsage(u, 100, 100))).toBe("9/2/11/-1/reported");
    const partial = new UsageRecord();
    partial.completionTokens = 5;
    partial.reported = true;
    expect(usageText(completeUsage(partial, 3, NOT_REPORTED))).toBe("3/5/8/-1/reported/estimated");
    expect(usageText(completeUsage(new UsageRecord(), NOT_REPORTED, NOT_REPORTED))).toBe("-1/-1/-1/-1");
  });
});

describe("reasoning and answers", () => {
  it("reads completion_tokens_details.reasoning_tokens from JSON and SSE usage", () => {
    const body = String.UTF8.encode(
      '{"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":40,"total_tokens":45,"completion_tokens_details":{"reasoning_tokens":32}}}',
    );
    expect(readJsonResponse(hold(body), body.byteLength).usage.reasoningTokens).toBe(32);
    const none = String.UTF8.encode('{"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}');
    expect(readJsonResponse(hold(none), none.byteLength).usage.reasoningTokens).toBe(NOT_REPORTED);
    const t = trackText(
      'data: {"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"completion_tokens_details":{"reasoning_tokens":2}}}\n\n',
    );
    expect(t.usage.reasoningTokens).toBe(2);
  });

  it("tells the first answer event from the first reasoning event", () => {
    const t = new SseUsageTracker();
    const reasoning = String.UTF8.encode(
      'data: {"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\ndata: {"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}\n\n',
    );
    t.feed(hold(reasoning), reasoning.byteLength);
    expect(t.firstContentInChunk).toBe(true, "reasoning is a generated token");
    expect(t.firstAnswerInChunk).toBe(false, "but not an answer");
    const answer = String.UTF8.encode(
      'data: {"model":"m","choices":[{"index":0,"delta":{"reasoning":"more"}}]}\n\ndata: {"model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
    );
    t.feed(hold(answer), answer.byteLength);
    expect(t.firstContentInChunk).toBe(false);
    expect(t.firstAnswerInChunk).toBe(true);
    expect(t.contentEvents).toBe(3);
    expect(t.answerEvents).toBe(1);
    const tools = String.UTF8.encode('data: {"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}\n\n');
    const u = new SseUsageTracker();
    u.feed(hold(tools), tools.byteLength);
    expect(u.firstAnswerInChunk).toBe(true, "a tool call is an answer");
  });

  it("without usage, counts the bytes the choices generated, not the JSON around them", () => {
    const body = String.UTF8.encode(
      '{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"héllo","reasoning_content":"abc","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\\"a\\":1}"}}]},"finish_reason":"stop"},{"index":1,"text":"xyz"}]}',
    );
    const r = readJsonResponse(hold(body), body.byteLength);
    // "héllo" 6 bytes + "abc" 3 + {"a":1} 7 + "xyz" 3
    expect(r.generatedBytes).toBe(19);
    const withUsage = String.UTF8.encode('{"model":"m","choices":[{"message":{"content":"hello"}}],"usage":{"completion_tokens":1}}');
    expect(readJsonResponse(hold(withUsage), withUsage.byteLength).generatedBytes).toBe(-1, "not computed when reported");
  });
});
