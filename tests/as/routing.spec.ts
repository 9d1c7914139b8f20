// Routing by the body's `model` (assembly/plugin/routing.ts): where a request goes, which local replies
// the plugin gives instead, and the body edits it asks Envoy to make (checked by applying them).
import { JsonScan, decodeString } from "../../assembly/json/reader";
import { GatewayConfig, parseConfig } from "../../assembly/plugin/config/gateway-config";
import { F_MODEL, REQUEST_KEYS, RoutingResult, modelSpan, routeRequest } from "../../assembly/plugin/routing/route-request";
import { modelObject, percentDecode } from "../../assembly/plugin/routing/model-list";
import { Edit } from "../../assembly/util/splice";
import { jsonString } from "../../assembly/json/writer";
import { NO_KEYS, concat, errorName, fieldText, hold, scanBuf, utf8 } from "./helpers";

const MODELS =
  '"models":[{"name":"gpt-4o","route":"openai-pool","upstreamModel":"gpt-4o-2024-08-06"},' +
  '{"name":"qwen2-7b"},{"name":"qwen*"},{"name":"qwen2-*","route":"qwen2-pool"},' +
  '{"name":"llama-3","upstreamModel":"meta/llama-3"}]';

function config(text: string): GatewayConfig {
  const res = parseConfig(text);
  expect<string>(res.error).toBe("", text);
  return res.config!.global;
}

const PLAIN = config("{" + MODELS + "}");
const WITH_DEFAULT = config("{" + MODELS + ',"defaultModel":"qwen2-7b"}');
const DEFAULT_UPSTREAM = config("{" + MODELS + ',"defaultModel":"llama-3"}');
const NO_USAGE = config("{" + MODELS + ',"injectStreamUsage":false}');

// One scan reused across requests, as gateway.ts does.
const scan = new JsonScan(REQUEST_KEYS);
let lastBody: ArrayBuffer = new ArrayBuffer(0);

function route(cfg: GatewayConfig, body: string, wantsUsage: bool = false): RoutingResult {
  lastBody = utf8(body);
  return routeRequest(cfg, hold(lastBody), lastBody.byteLength, scan, wantsUsage);
}

// The body after the edits, as Envoy would forward it. Edits must be sorted, disjoint and inside the body.
function edited(r: RoutingResult): string {
  let out = new ArrayBuffer(0);
  let pos = 0;
  for (let i = 0; i < r.splice.edits.length; i++) {
    const e: Edit = r.splice.edits[i];
    expect<bool>(e.start >= pos && e.end >= e.start && e.end <= lastBody.byteLength).toBe(
      true,
      "edit " + i.toString() + " in order and in bounds",
    );
    out = concat(concat(out, lastBody.slice(pos, e.start)), utf8(e.text));
    pos = e.end;
  }
  out = concat(out, lastBody.slice(pos));
  return String.UTF8.decode(out);
}

function expectRouted(r: RoutingResult, model: string, routeValue: string, what: string): void {
  expect<bool>(r.reply == null).toBe(true, what + ": no local reply" + (r.reply != null ? " (" + r.reply!.message + ")" : ""));
  expect<string>(r.model).toBe(model, what);
  expect<string>(r.routeValue).toBe(routeValue, what);
  expect<bool>(r.route != null).toBe(true, what);
}

function expectReply(r: RoutingResult, status: u32, code: string, what: string): void {
  expect<bool>(r.reply != null).toBe(true, what + ": a local reply");
  const reply = r.reply!;
  expect<u32>(reply.status).toBe(status, what);
  expect<string>(reply.code).toBe(code, what);
  expect<i32>(r.splice.edits.length).toBe(0, what + ": no edits with a reply");
  // Clients parse the reply: it must be valid JSON.
  expect<string>(errorName(scanBuf(utf8(reply.body()), NO_KEYS).error)).toBe("Ok", reply.body());
}

// The model the upstream will read from the edited body.
function upstreamModel(body: string): string {
  const buf = utf8(body);
  const s = scanBuf(buf, REQUEST_KEYS);
  expect<string>(errorName(s.error)).toBe("Ok", body);
  const f = s.field(F_MODEL);
  const m = decodeString(hold(buf), f.start, f.end, 1000);
  return m == null ? "<none>" : m;
}

class RouteCase {
  constructor(
    public body: string,
    public model: string,
    public routeValue: string,
  ) {}
}

class ReplyCase {
  constructor(
    public body: string,
    public status: u32,
    public code: string,
  ) {}
}

describe("routeRequest: routes", () => {
  it("routes exact names, then prefix patterns longest first, to their routing header value", () => {
    const cases: Array<RouteCase> = [
      new RouteCase('{"model":"qwen2-7b"}', "qwen2-7b", "qwen2-7b"),
      new RouteCase('{"model":"gpt-4o","messages":[]}', "gpt-4o", "openai-pool"),
      new RouteCase('{"model":"qwen2-72b"}', "qwen2-72b", "qwen2-pool"),
      new RouteCase('{"model":"qwen2-"}', "qwen2-", "qwen2-pool"),
      new RouteCase('{"model":"qwen1.5-14b"}', "qwen1.5-14b", "qwen1.5-14b"),
      new RouteCase('{"model":"qwen"}', "qwen", "qwen"),
      new RouteCase('{"model":"qw\\u0065n2-7b"}', "qwen2-7b", "qwen2-7b"),
      new RouteCase('\n  {"messages":[{"role":"user","content":"model"}],\n  "model" : "llama-3"}\n', "llama-3", "llama-3"),
      new RouteCase('{"model":"qwen' + "x".repeat(252) + '"}', "qwen" + "x".repeat(252), "qwen" + "x".repeat(252)),
    ];
    for (let i = 0; i < cases.length; i++) {
      const r = route(PLAIN, cases[i].body);
      expectRouted(r, cases[i].model, cases[i].routeValue, cases[i].body);
    }
  });

  it("leaves the body alone when the upstream serves the requested name", () => {
    const bodies: Array<string> = ['{"model":"qwen2-7b"}', '{"model":"qwen2-72b"}', '{"model":"qw\\u0065n2-7b"}'];
    for (let i = 0; i < bodies.length; i++) expect<i32>(route(PLAIN, bodies[i]).splice.edits.length).toBe(0, bodies[i]);
  });

  it("rewrites the model's exact span to upstreamModel", () => {
    const r = route(PLAIN, '{"messages":[], "model": "gpt-4o", "n":1}');
    expectRouted(r, "gpt-4o", "openai-pool", "gpt-4o");
    expect<i32>(r.splice.edits.length).toBe(1);
    expect<i32>(r.splice.edits[0].start).toBe(25);
    expect<i32>(r.splice.edits[0].end).toBe(33);
    expect<string>(r.splice.edits[0].text).toBe('"gpt-4o-2024-08-06"');
    expect<string>(edited(r)).toBe('{"messages":[], "model": "gpt-4o-2024-08-06", "n":1}');
    const escaped = route(PLAIN, '{"model":"ll\\u0061ma-3"}');
    expect<string>(edited(escaped)).toBe('{"model":"meta/llama-3"}');
  });

  it("reads the stream flag: only a literal true streams", () => {
    const bodies: Array<string> = [
      '{"model":"qwen2-7b","stream":true}',
      '{"model":"qwen2-7b","stream":false}',
      '{"model":"qwen2-7b"}',
      '{"model":"qwen2-7b","stream":"true"}',
      '{"model":"qwen2-7b","stream":1}',
      '{"model":"qwen2-7b","stream":null}',
      '{"model":"qwen2-7b","o":{"stream":true}}',
    ];
    const want: Array<bool> = [true, false, false, false, false, false, false];
    for (let i = 0; i < bodies.length; i++) expect<bool>(route(PLAIN, bodies[i]).stream).toBe(want[i], bodies[i]);
  });
});

describe("routeRequest: default model", () => {
  it("inserts the default model when the body has none, also into {} and after leading whitespace", () => {
    const bodies: Array<string> = [
      '{"messages":[]}',
      "{}",
      "{ }",
      '  \n\t{"messages":[]}',
      "\r\n{\n}\n",
      '{"stream":false,"o":{"model":"x"}}',
    ];
    const want: Array<string> = [
      '{"model":"qwen2-7b","messages":[]}',
      '{"model":"qwen2-7b"}',
      '{"model":"qwen2-7b" }',
      '  \n\t{"model":"qwen2-7b","messages":[]}',
      '\r\n{"model":"qwen2-7b"\n}\n',
      '{"model":"qwen2-7b","stream":false,"o":{"model":"x"}}',
    ];
    for (let i = 0; i < bodies.length; i++) {
      const r = route(WITH_DEFAULT, bodies[i]);
      expectRouted(r, "qwen2-7b", "qwen2-7b", bodies[i]);
      const out = edited(r);
      expect<string>(out).toBe(want[i], bodies[i]);
      expect<string>(upstreamModel(out)).toBe("qwen2-7b", out);
    }
  });

  it("replaces a null model with the default", () => {
    const r = route(WITH_DEFAULT, '{"model": null, "messages":[]}');
    expectRouted(r, "qwen2-7b", "qwen2-7b", "null model");
    expect<i32>(r.splice.edits.length).toBe(1);
    expect<i32>(r.splice.edits[0].start).toBe(10);
    expect<i32>(r.splice.edits[0].end).toBe(14);
    expect<string>(edited(r)).toBe('{"model": "qwen2-7b", "messages":[]}');
  });

  it("inserts the upstream name of the default model", () => {
    const r = route(DEFAULT_UPSTREAM, '{"messages":[]}');
    expectRouted(r, "llama-3", "llama-3", "default with upstreamModel");
    expect<string>(edited(r)).toBe('{"model":"meta/llama-3","messages":[]}');
    const n = route(DEFAULT_UPSTREAM, '{"model":null}');
    expect<string>(edited(n)).toBe('{"model":"meta/llama-3"}');
  });

  it("does not use the default for a model that is present but wrong", () => {
    expectReply(route(WITH_DEFAULT, '{"model":""}'), 400, "invalid_value", "empty model with a default");
    expectReply(route(WITH_DEFAULT, '{"model":7}'), 400, "invalid_type", "number model with a default");
    expectReply(route(WITH_DEFAULT, '{"model":"nope"}'), 404, "model_not_found", "unknown model with a default");
  });
});

describe("routeRequest: stream usage", () => {
  it("asks for include_usage on streamed requests that do not, editing the least bytes", () => {
    const bodies: Array<string> = [
      '{"model":"qwen2-7b","stream":true}',
      '{"model":"qwen2-7b","stream":true,"stream_options":null}',
      '{"model":"qwen2-7b","stream":true,"stream_options":{}}',
      '{"model":"qwen2-7b","stream":true,"stream_options":{ "include_usage" : false }}',
      '{"model":"qwen2-7b","stream":true,"stream_options":{"x":1}}',
      '{"stream_options":{"include_usage":null},"model":"gpt-4o","stream":true}',
    ];
    const want: Array<string> = [
      '{"stream_options":{"include_usage":true},"model":"qwen2-7b","stream":true}',
      '{"model":"qwen2-7b","stream":true,"stream_options":{"include_usage":true}}',
      '{"model":"qwen2-7b","stream":true,"stream_options":{"include_usage":true}}',
      '{"model":"qwen2-7b","stream":true,"stream_options":{ "include_usage" : true }}',
      '{"model":"qwen2-7b","stream":true,"stream_options":{"include_usage":true,"x":1}}',
      '{"stream_options":{"include_usage":true},"model":"gpt-4o-2024-08-06","stream":true}',
    ];
    for (let i = 0; i < bodies.length; i++) {
      const r = route(PLAIN, bodies[i], true);
      expect<bool>(r.reply == null).toBe(true, bodies[i]);
      expect<bool>(r.usageInjected).toBe(true, bodies[i]);
      expect<string>(edited(r)).toBe(want[i], bodies[i]);
    }
  });

  it("leaves requests alone that already ask, do not stream, are on other paths, or when disabled", () => {
    const cases: Array<string> = [
      '{"model":"qwen2-7b","stream":true,"stream_options":{"include_usage":true}}',
      '{"model":"qwen2-7b","stream":false}',
      '{"model":"qwen2-7b"}',
      '{"model":"qwen2-7b","stream":true,"stream_options":"yes"}',
    ];
    for (let i = 0; i < cases.length; i++) {
      const r = route(PLAIN, cases[i], true);
      expect<bool>(r.usageInjected).toBe(false, cases[i]);
      expect<i32>(r.splice.edits.length).toBe(0, cases[i]);
    }
    const body = '{"model":"qwen2-7b","stream":true}';
    expect<i32>(route(PLAIN, body, false).splice.edits.length).toBe(0, "path without usage chunks");
    expect<i32>(route(NO_USAGE, body, true).splice.edits.length).toBe(0, "injectStreamUsage false");
  });

  it("combines the default model and include_usage in one insertion at the root", () => {
    const r = route(WITH_DEFAULT, ' {"stream":true}', true);
    expect<i32>(r.splice.edits.length).toBe(1);
    expect<string>(edited(r)).toBe(' {"model":"qwen2-7b","stream_options":{"include_usage":true},"stream":true}');
    const e = route(WITH_DEFAULT, '{"stream":true,"model":null,"stream_options":{}}', true);
    expect<i32>(e.splice.edits.length).toBe(2);
    expect<string>(edited(e)).toBe('{"stream":true,"model":"qwen2-7b","stream_options":{"include_usage":true}}');
  });
});

describe("routeRequest: local replies", () => {
  it("answers 400 missing_required_parameter for a missing or null model without a default", () => {
    const bodies: Array<string> = ["{}", '{"messages":[]}', '{"model":null}', '{"o":{"model":"qwen2-7b"}}'];
    for (let i = 0; i < bodies.length; i++) {
      const r = route(PLAIN, bodies[i]);
      expectReply(r, 400, "missing_required_parameter", bodies[i]);
      expect<string>(r.reply!.param).toBe("model");
    }
  });

  it("answers 400 invalid_type for a model that is not a string", () => {
    const bodies: Array<string> = ['{"model":7}', '{"model":true}', '{"model":["qwen2-7b"]}', '{"model":{"name":"qwen2-7b"}}'];
    for (let i = 0; i < bodies.length; i++) expectReply(route(PLAIN, bodies[i]), 400, "invalid_type", bodies[i]);
  });

  it("answers 400 invalid_value for an empty, too long, or (through a pattern) non-printable model", () => {
    const bodies: Array<string> = [
      '{"model":""}',
      '{"model":"qwen' + "x".repeat(253) + '"}',
      '{"model":"' + "\\u0071".repeat(50) + '"}',
      '{"model":"qwen 7b"}',
      '{"model":"qwen\\t7b"}',
      '{"model":"qwen\\u0000"}',
      '{"model":"qwen-é"}',
      '{"model":"qwen\\r\\nx-evil: 1"}',
      '{"model":"qwen\\ud800"}',
    ];
    for (let i = 0; i < bodies.length; i++) {
      const r = route(PLAIN, bodies[i]);
      expectReply(r, 400, "invalid_value", bodies[i]);
      expect<string>(r.reply!.param).toBe("model");
    }
  });

  it("answers 404 model_not_found with the served models in the message and in served_models", () => {
    const r = route(PLAIN, '{"model":"gpt-5"}');
    expectReply(r, 404, "model_not_found", "unknown model");
    expect<string>(r.reply!.message).toBe(
      "The model 'gpt-5' does not exist or you do not have access to it. Served models: gpt-4o, qwen2-7b, llama-3.",
    );
    expect<string>(r.reply!.body()).toBe(
      '{"error":{"message":"The model \'gpt-5\' does not exist or you do not have access to it. ' +
        'Served models: gpt-4o, qwen2-7b, llama-3.","type":"invalid_request_error","param":"model","code":"model_not_found",' +
        '"served_models":["gpt-4o","qwen2-7b","llama-3"]}}',
    );
    // Names outside every pattern, whatever they contain, still get a valid JSON answer.
    const odd: Array<string> = ['{"model":"a b\\"c"}', '{"model":"\\ud800"}', '{"model":"\\udc00x\\ud83d"}', '{"model":"GPT-4O"}'];
    for (let i = 0; i < odd.length; i++) expectReply(route(PLAIN, odd[i]), 404, "model_not_found", odd[i]);
  });

  it("answers 400 invalid_json for bodies that are not JSON, with the reason and the byte offset", () => {
    const cases: Array<ReplyCase> = [
      new ReplyCase("", 400, "invalid_json"),
      new ReplyCase("   ", 400, "invalid_json"),
      new ReplyCase('{"model":"qwen2-7b"', 400, "invalid_json"),
      new ReplyCase('{"model":"qwen2-7b",}', 400, "invalid_json"),
      new ReplyCase('{"model":"qwen2-7b"} x', 400, "invalid_json"),
      new ReplyCase("model=qwen2-7b", 400, "invalid_json"),
      new ReplyCase("[".repeat(129) + "]".repeat(129), 400, "invalid_json"),
    ];
    for (let i = 0; i < cases.length; i++) expectReply(route(PLAIN, cases[i].body), cases[i].status, cases[i].code, cases[i].body);
    expect<string>(route(PLAIN, '{"model":"qwen2-7b"').reply!.message).toBe(
      "We could not parse the JSON body of your request: the body is truncated JSON (at byte 19).",
    );
    expect<string>(route(PLAIN, "").reply!.message).toBe(
      "We could not parse the JSON body of your request: the body is empty (at byte 0).",
    );
  });

  it("answers 400 invalid_json for invalid UTF-8 in the body", () => {
    lastBody = concat(concat(utf8('{"model":"qwen'), new ArrayBuffer(1)), utf8('"}'));
    store<u8>(changetype<usize>(lastBody) + 14, 0xc0);
    const r = routeRequest(PLAIN, hold(lastBody), lastBody.byteLength, scan, false);
    expectReply(r, 400, "invalid_json", "overlong byte");
  });

  it("answers 400 invalid_json when the root is not an object", () => {
    const bodies: Array<string> = ["[]", '[{"model":"qwen2-7b"}]', '"qwen2-7b"', "null", "42", "true"];
    for (let i = 0; i < bodies.length; i++) {
      const r = route(PLAIN, bodies[i]);
      expectReply(r, 400, "invalid_json", bodies[i]);
      expect<string>(r.reply!.message).toBe("The request body must be a JSON object.");
    }
  });

  it("answers 400 duplicate_key when model or stream is given twice, however spelled", () => {
    const bodies: Array<string> = [
      '{"model":"qwen2-7b","model":"gpt-4o"}',
      '{"model":"qwen2-7b","mod\\u0065l":"gpt-4o"}',
      '{"stream":false,"model":"qwen2-7b","stream":true}',
    ];
    const keys: Array<string> = ["model", "model", "stream"];
    for (let i = 0; i < bodies.length; i++) {
      const r = route(PLAIN, bodies[i]);
      expectReply(r, 400, "duplicate_key", bodies[i]);
      expect<string>(r.reply!.param).toBe(keys[i]);
      expect<string>(r.reply!.message).toBe("The key '" + keys[i] + "' appears more than once in the request body.");
    }
  });

  it("keeps routing after a reply: the reused scan carries nothing over", () => {
    expectReply(route(PLAIN, '{"model":"a","model":"b"}'), 400, "duplicate_key", "first");
    expectRouted(route(PLAIN, '{"model":"qwen2-7b"}'), "qwen2-7b", "qwen2-7b", "second");
    expectReply(route(PLAIN, "{}"), 400, "missing_required_parameter", "third");
    const r = route(PLAIN, '{"model":"gpt-4o"}');
    expect<string>(fieldText(lastBody, scan.field(F_MODEL))).toBe('"gpt-4o"');
    expect<string>(edited(r)).toBe('{"model":"gpt-4o-2024-08-06"}');
  });
});

// The attempt stage rewrites exactly the bytes modelSpan names, in the body as edited: they must be the
// model's JSON string there, whatever edits came before it (usage injected at the root, a default
// model inserted, a name rewritten to a longer or shorter one, multi-byte text before it).
const SPAN_CASES: Array<Array<string>> = [
  // [config, body, wantsUsage ("1" or ""), served name]
  ["plain", '{"model":"qwen2-7b","messages":[]}', "", "qwen2-7b"],
  ["plain", '{"messages":[{"role":"user","content":"héllo ✓"}],"model":"qwen2-7b"}', "", "qwen2-7b"],
  ["plain", '{"stream":true,"messages":[],"model":"qwen2-7b"}', "1", "qwen2-7b"],
  ["plain", '{"stream":true,"stream_options":{},"model":"qwen2-7b"}', "1", "qwen2-7b"],
  ["plain", '{"model":"gpt-4o","stream":true}', "1", "gpt-4o-2024-08-06"],
  ["plain", '{ "model" : "qwen2\\u002d7b" }', "", "qwen2-7b"],
  ["default", '{"messages":[]}', "", "qwen2-7b"],
  ["default", '{"stream":true,"messages":[]}', "1", "qwen2-7b"],
  ["default", "{}", "", "qwen2-7b"],
  ["defaultUpstream", '{"model":null,"stream":true}', "1", "meta/llama-3"],
];

describe("modelSpan: where the model lies in the edited body", () => {
  test("the span holds the served name's JSON string, or the client's own spelling of it", () => {
    for (let i = 0; i < SPAN_CASES.length; i++) {
      const c = SPAN_CASES[i];
      const cfg = c[0] == "plain" ? PLAIN : c[0] == "default" ? WITH_DEFAULT : DEFAULT_UPSTREAM;
      const r = route(cfg, c[1], c[2] == "1");
      expect<bool>(r.reply == null).toBe(true, c[1]);
      const body = utf8(edited(r));
      const span = modelSpan(r, r.splice, c[3]);
      expect<bool>(span.start > 0 && span.end <= body.byteLength && span.end > span.start).toBe(true, c[1] + ": span in bounds");
      const text = String.UTF8.decode(body.slice(span.start, span.end));
      // No edit rewrites a name the client already spelled with escapes: then the span is its spelling.
      if (text != jsonString(c[3])) expect<string>(decodeString(hold(body), span.start, span.end, 256)!).toBe(c[3], c[1]);
      else expect<string>(text).toBe(jsonString(c[3]), c[1]);
    }
  });
});

describe("models.retrieve and names with control characters", () => {
  test("a configured name or pattern gets its model object; anything else, null", () => {
    expect<string>(modelObject(PLAIN, percentDecode("qwen2-7b")!)!).toBe(
      '{"id":"qwen2-7b","object":"model","created":0,"owned_by":"llm-gateway"}',
    );
    expect<string>(modelObject(PLAIN, percentDecode("qwen2-72b%2Finstruct")!)!).toBe(
      '{"id":"qwen2-72b/instruct","object":"model","created":0,"owned_by":"llm-gateway"}',
    );
    expect<bool>(modelObject(PLAIN, percentDecode("mistral")!) == null).toBe(true);
    expect<bool>(modelObject(PLAIN, "") == null).toBe(true);
    expect<bool>(modelObject(PLAIN, percentDecode("qwen2-7b%0A")!) == null).toBe(true, "a control character is no model");
  });
  test("percent-decoding never aborts: malformed escapes are null, bytes that are not UTF-8 decode leniently", () => {
    expect<string>(percentDecode("a%20b%2fc")!).toBe("a b/c");
    expect<string>(percentDecode("plain")!).toBe("plain");
    const bad = ["%", "%2", "%ZZ", "a%g1", "%41é"];
    for (let i = 0; i < bad.length; i++) expect<bool>(percentDecode(bad[i]) == null).toBe(true, bad[i]);
    expect<bool>(percentDecode("%FF%FE") != null).toBe(true);
  });
  test("a body's model with a control character is 400 invalid_value", () => {
    const names = ["qwen2-7b\\n", "qwen2-7b\\u0000", "\\u007fqwen2-7b"];
    for (let i = 0; i < names.length; i++) expectReply(route(PLAIN, '{"model":"' + names[i] + '"}'), 400, "invalid_value", names[i]);
  });
});
