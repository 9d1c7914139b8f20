// Seeded fuzzing of the parsers that see untrusted or operator-written input: scanJson (request and
// response bodies), parseConfig (the plugin configuration), routeRequest (the body edits) and vLLM's load
// figures (the per-answer report and the metrics page, both from upstreams).
// A trap fails the test it happens in; beyond "no trap", every result is checked for consistency.
// The budget and the seed come from the host (see as-pect.config.js): `make test` runs a short, fixed
// seed; `make fuzz` ten times as many iterations with a fresh seed, printed with its replay command.
import {
  JsonError, JsonScan, JsonType, decodeString, readBool, readInt, scanJson,
} from "../../assembly/json/reader";
import { parseJson } from "../../assembly/json/value";
import { jsonString } from "../../assembly/json/writer";
import { GatewayConfig, parseConfig } from "../../assembly/plugin/config/gateway-config";
import { isHeaderValue } from "../../assembly/util/ascii";
import { F_MODEL, REQUEST_KEYS, RoutingResult, routeRequest } from "../../assembly/plugin/routing/route-request";
import { errorName, show, typeName } from "./helpers";

import { SseUsageTracker, readJsonResponse } from "../../assembly/plugin/response/usage";
import { parseLoadReport, parseMetricsPage } from "../../assembly/plugin/routing/load-report";
import { HostBytes } from "../../assembly/abi/memory";
@external("fuzz", "iterations") declare function fuzzIterations(): u32;
@external("fuzz", "configIterations") declare function fuzzConfigIterations(): u32;
@external("fuzz", "seed") declare function fuzzSeed(): u32;
// Prints how many of a test's inputs got far (scanned Ok, were accepted, were checked), so a run shows
// that the fuzzing reaches past the first byte.
@external("fuzz", "count") declare function fuzzCount(test: i32, reached: i32, total: i32): void;

// ---- randomness --------------------------------------------------------------------------------------

// xorshift32, with each test's stream derived from the run's seed so tests do not depend on their order.
class Rng {
  state: u32;
  constructor(seed: u32, stream: u32) {
    let s = seed ^ (stream * 0x9e3779b9);
    s = (s ^ (s >> 16)) * 0x85ebca6b;
    s = (s ^ (s >> 13)) * 0xc2b2ae35;
    s ^= s >> 16;
    this.state = s == 0 ? 0x6d2b79f5 : s;
  }
  next(): u32 {
    let x = this.state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    this.state = x;
    return x;
  }
  // Uniform in [0, n); n > 0.
  below(n: i32): i32 { return <i32>(this.next() % <u32>n); }
  chance(percent: i32): bool { return this.below(100) < percent; }
  pick(items: Array<string>): string { return items[this.below(items.length)]; }
}

// ---- byte buffers ------------------------------------------------------------------------------------

function bytes(s: string): Uint8Array { return Uint8Array.wrap(String.UTF8.encode(s)); }

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function part(a: Uint8Array, start: i32, end: i32): Uint8Array { return a.slice(start, end); }

// The document being checked lives in a global so the GC sees it while the code under test allocates.
let current: Uint8Array = new Uint8Array(0);

function ptrOf(a: Uint8Array): usize {
  current = a;
  return a.dataStart;
}

// A second buffer that must outlive calls that allocate (text the code under test wrote).
let written: ArrayBuffer = new ArrayBuffer(0);

function pin(buf: ArrayBuffer): usize {
  written = buf;
  return changetype<usize>(buf);
}

function textOf(a: Uint8Array, start: i32, end: i32): string {
  return String.UTF8.decodeUnsafe(a.dataStart + <usize>start, <usize>(end - start));
}

// ---- corpus ------------------------------------------------------------------------------------------

// Realistic OpenAI-style bodies (requests, responses, stream chunks, errors), written for these tests.
function corpus(): Array<string> {
  return [
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\"," +
      "\"content\":\"Translate \\\"good morning\\\" into Japanese: おはよう? \\ud83c\\udf05\"}],\"temperature\":0.7,\"top_p\":1," +
      "\"max_tokens\":256,\"stream\":true,\"stream_options\":{\"include_usage\":true},\"stop\":[\"\\n\\n\",\"END\"]," +
      "\"presence_penalty\":-0.5,\"frequency_penalty\":0,\"logit_bias\":{\"50256\":-100},\"user\":\"user-1234\",\"seed\":42,\"n\":1}",
    "{\"model\":\"qwen2-7b\",\"messages\":[{\"role\":\"user\",\"content\":\"What's the weather in Paris?\"},{\"role\":\"assistant\"," +
      "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\"," +
      "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"unit\\\":\\\"celsius\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\"," +
      "\"content\":\"{\\\"temp\\\":18.5}\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"," +
      "\"description\":\"Current weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}," +
      "\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"city\"]}}}],\"tool_choice\":\"auto\"," +
      "\"response_format\":{\"type\":\"json_object\"}}",
    "{\"model\":\"llama-3\",\"prompt\":[\"Once upon a time\",\"In a galaxy\"],\"max_tokens\":16,\"temperature\":0,\"logprobs\":5," +
      "\"echo\":false,\"best_of\":1,\"suffix\":null}",
    "{\"model\":\"text-embedding-3-small\",\"input\":[\"The food was delicious and the waiter...\",\"\\u00e9t\\u00e9 à Paris\"]," +
      "\"encoding_format\":\"float\",\"dimensions\":256}",
    "{\"id\":\"chatcmpl-9x8y7z\",\"object\":\"chat.completion\",\"created\":1718000000,\"model\":\"gpt-4o-2024-08-06\"," +
      "\"system_fingerprint\":\"fp_abc123\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":" +
      "\"Hello! How can I help you today?\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":" +
      "{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0}," +
      "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1718000001,\"model\":\"qwen2-7b\",\"choices\":" +
      "[{\"index\":0,\"delta\":{\"content\":\" world\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1718000001,\"model\":\"qwen2-7b\",\"choices\":[]," +
      "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}",
    "{\"error\":{\"message\":\"The model 'gpt-5' does not exist\",\"type\":\"invalid_request_error\",\"param\":\"model\"," +
      "\"code\":\"model_not_found\"}}",
    "{\"object\":\"list\",\"data\":[{\"id\":\"qwen2-1-5b\",\"object\":\"model\",\"created\":0,\"owned_by\":\"llm-gateway\"}," +
      "{\"id\":\"gemma-2-2b\",\"object\":\"model\",\"created\":0,\"owned_by\":\"llm-gateway\"}]}",
    "{\"model\":\"gpt-4o\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"Describe this image\"}," +
      "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,iVBORw0KGgo=\"}]}],\"max_output_tokens\":1024," +
      "\"reasoning\":{\"effort\":\"low\"},\"metadata\":{\"k\":\"v\"}}",
    "{\r\n  \"model\" : \"qwen2-72b\" ,\r\n  \"messages\" : [\r\n    { \"role\" : \"user\" , \"content\" : \"Résumé: naïve café 中文 😀\" }\r\n  ] ,\r\n" +
      "  \"stream\" : false\r\n}\r\n",
    "{\"model\":\"qwen2-7b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"guided_json\":{\"type\":\"object\"},\"top_k\":-1," +
      "\"min_p\":0.05,\"repetition_penalty\":1.1,\"chat_template_kwargs\":{\"enable_thinking\":false},\"extra_body\":{}," +
      "\"temperature\":1e-3,\"max_tokens\":1.5E+2}",
    "[{\"model\":\"a\"},[],[[]],{},\"\",0,-0.0,true,false,null]",
    "\"a string root with \\\\ escapes \\/ and \\b\\f\\n\\r\\t\"",
  ];
}

function configCorpus(): Array<string> {
  return [
    "{\"models\":[{\"name\":\"qwen2-1-5b\",\"fallback\":[\"gemma-2-2b\"]},{\"name\":\"gemma-2-2b\"}]}",
    "{\"models\":[{\"name\":\"gpt-4o\",\"route\":\"openai\",\"upstreamModel\":\"gpt-4o-2024-08-06\",\"fallback\":[\"qwen-72b\"]," +
      "\"cluster\":\"outbound|443||api.openai.com\"},{\"name\":\"qwen*\",\"route\":\"qwen-pool\"},{\"name\":\"llama-3\"}]," +
      "\"routingHeader\":\"x-llm-route\",\"pathSuffixes\":[\"/v1/chat/completions\",\"/v1/embeddings\"],\"maxBodyBytes\":1048576," +
      "\"serveModelList\":true,\"defaultModel\":\"llama-3\",\"ownedBy\":\"platform\",\"injectStreamUsage\":false," +
      "\"consumerHeader\":\"x-consumer\",\"maxSseEventBytes\":65536,\"maxResponseBytes\":2097152," +
      "\"fallback\":{\"enabled\":true,\"onStatus\":[\"5xx\",429,\"408\"],\"onUpstreamUnreachable\":true,\"maxAttempts\":2," +
      "\"attemptTimeoutMs\":30000,\"slowFailureMs\":20000,\"cooldown\":{\"failures\":5,\"windowMs\":60000,\"durationMs\":120000}," +
      "\"clusterTemplate\":\"outbound|8000||{route}.static\"}," +
      "\"_rules_\":[{\"_match_route_\":[\"chat-route\"],\"maxBodyBytes\":2048},{\"_match_domain_\":[\"*.example.com\"]," +
      "\"models\":[{\"name\":\"b\"},{\"name\":\"llama-3\"}]},{\"_match_service_\":[\"llm-qwen.dns\"],\"fallback\":{\"enabled\":false}}]}",
    "{\"models\":[{\"name\":\"*\"}],\"defaultModel\":\"anything\"}",
  ];
}

// Tokens that make random input look like JSON often enough to get deep into the scanner.
const TOKENS: Array<string> = [
  "{", "}", "[", "]", ":", ",", " ", "\n", "\"model\"", "\"stream\"", "\"stream_options\"", "\"mod\\u0065l\"", "\"x\"", "\"\"",
  "\"\\u00e9\\ud83d\\ude00\"", "\"é中😀\"", "\"\\\"\"", "\"\\", "\"", "\\u", "0", "-1", "1.5e+3", "01", "1.", "-", "true", "false",
  "null", "tru", "nul", "NaN", "\t", "\r", "\u0000", "\u007f", "{\"model\":", "[[[[", "]]]]",
];

// Bytes that are interesting to the UTF-8 and token checks.
const SPECIAL: Array<i32> = [
  0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x22, 0x2c, 0x2d, 0x2e, 0x30, 0x31, 0x3a, 0x45, 0x5b, 0x5c, 0x5d, 0x65, 0x6e, 0x74, 0x75,
  0x7b, 0x7d, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
];

function randomBytes(rng: Rng): Uint8Array {
  const n = rng.below(rng.chance(90) ? 64 : 1024);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = <u8>(rng.chance(50) ? SPECIAL[rng.below(SPECIAL.length)] : rng.below(256));
  return out;
}

function tokenSoup(rng: Rng): Uint8Array {
  const n = 1 + rng.below(40);
  let s = "";
  for (let i = 0; i < n; i++) s += rng.pick(TOKENS);
  return bytes(s);
}

// One mutation of `doc`; `other` is the splicing partner.
function mutate(rng: Rng, doc: Uint8Array, other: Uint8Array): Uint8Array {
  const n = doc.length;
  switch (rng.below(8)) {
    case 0: { // flip 1..4 bits
      const out = doc.slice();
      if (n == 0) return out;
      const flips = 1 + rng.below(4);
      for (let i = 0; i < flips; i++) {
        const at = rng.below(n);
        out[at] = <u8>(<i32>out[at] ^ (1 << rng.below(8)));
      }
      return out;
    }
    case 1: // truncate
      return part(doc, 0, n == 0 ? 0 : rng.below(n));
    case 2: { // insert a byte
      const at = rng.below(n + 1);
      const b = new Uint8Array(1);
      b[0] = <u8>(rng.chance(70) ? SPECIAL[rng.below(SPECIAL.length)] : rng.below(256));
      return join(join(part(doc, 0, at), b), part(doc, at, n));
    }
    case 3: { // delete a run of bytes
      if (n == 0) return doc;
      const at = rng.below(n);
      const len = 1 + rng.below(min(8, n - at));
      return join(part(doc, 0, at), part(doc, at + len, n));
    }
    case 4: { // splice: a head of this document, a tail of the other
      const a = rng.below(n + 1);
      const b = rng.below(other.length + 1);
      return join(part(doc, 0, a), part(other, b, other.length));
    }
    case 5: { // duplicate a slice in place (repeated members, doubled keys)
      if (n == 0) return doc;
      const at = rng.below(n);
      const len = 1 + rng.below(min(32, n - at));
      const slice = part(doc, at, at + len);
      return join(join(part(doc, 0, at + len), slice), part(doc, at + len, n));
    }
    case 6: { // replace a byte with a special one
      const out = doc.slice();
      if (n > 0) out[rng.below(n)] = <u8>SPECIAL[rng.below(SPECIAL.length)];
      return out;
    }
    default: { // insert a token, or deep nesting
      const at = rng.below(n + 1);
      const ins = rng.chance(10) ? bytes("[".repeat(100 + rng.below(60))) : bytes(rng.pick(TOKENS));
      return join(join(part(doc, 0, at), ins), part(doc, at, n));
    }
  }
}

function mutateTimes(rng: Rng, doc: Uint8Array, docs: Array<Uint8Array>): Uint8Array {
  const times = 1 + rng.below(4);
  let out = doc;
  for (let i = 0; i < times; i++) out = mutate(rng, out, docs[rng.below(docs.length)]);
  return out;
}

// ---- generated valid documents -------------------------------------------------------------------------

const STRINGS: Array<string> = [
  "\"\"", "\"hi\"", "\"model\"", "\"a\\\"b\"", "\"\\\\\"", "\"\\u0041\\u00e9\"", "\"\\ud83d\\ude00\"", "\"é中😀\"", "\"\\n\\t\\/\"",
  "\"\\ud800\"", "\"{\\\"model\\\":1}\"", "\"]}\"",
];
const NUMBERS: Array<string> = ["0", "-0", "7", "-12", "3.25", "1e9", "-2.5E-3", "1E+2", "9007199254740993", "0.0"];
const KEYS: Array<string> = ["\"messages\"", "\"x\"", "\"model\"", "\"Model\"", "\"models\"", "\"stream\"", "\"\"", "\"\\u0078\""];

function ws(rng: Rng): string {
  if (!rng.chance(30)) return "";
  const all = [" ", "\n", "\t", "\r\n", "  "];
  return rng.pick(all);
}

function genValue(rng: Rng, depth: i32): string {
  const k = depth >= 6 ? rng.below(4) : rng.below(6);
  if (k == 0) return rng.pick(STRINGS);
  if (k == 1) return rng.pick(NUMBERS);
  if (k == 2) { const lits: Array<string> = ["true", "false", "null"]; return rng.pick(lits); }
  if (k == 3) return rng.pick(STRINGS);
  if (k == 4) {
    const n = rng.below(4);
    let s = "[" + ws(rng);
    for (let i = 0; i < n; i++) s += (i > 0 ? "," + ws(rng) : "") + genValue(rng, depth + 1) + ws(rng);
    return s + "]";
  }
  // Nested objects may repeat keys and use the selected names: neither matters below the root.
  const n = rng.below(4);
  let s = "{" + ws(rng);
  for (let i = 0; i < n; i++) s += (i > 0 ? "," + ws(rng) : "") + rng.pick(KEYS) + ws(rng) + ":" + ws(rng) + genValue(rng, depth + 1) + ws(rng);
  return s + "}";
}

const SPELLINGS: Array<Array<string>> = [
  ["\"model\"", "\"mod\\u0065l\"", "\"\\u006dodel\""],
  ["\"stream\"", "\"str\\u0065am\""],
  ["\"stream_options\"", "\"stream\\u005foptions\""],
];

function insertAt(items: Array<string>, at: i32, item: string): void {
  items.push(item);
  for (let i = items.length - 1; i > at; i--) {
    items[i] = items[i - 1];
    items[i - 1] = item;
  }
}

class Generated {
  text: string = "";
  present: Array<bool> = [false, false, false];
  values: Array<string> = ["", "", ""];
}

// A valid root object with each selected key at most once, anywhere among other members.
function genDocument(rng: Rng): Generated {
  const g = new Generated();
  const members = new Array<string>();
  const others = rng.below(6);
  for (let i = 0; i < others; i++) {
    const key = rng.pick(["\"tools\"", "\"x\"", "\"x\"", "\"Model\"", "\"models\"", "\"temperature\"", "\"\""]);
    members.push(key + ws(rng) + ":" + ws(rng) + genValue(rng, 1));
  }
  for (let k = 0; k < 3; k++) {
    if (!rng.chance(60)) continue;
    const value = genValue(rng, 1);
    g.present[k] = true;
    g.values[k] = value;
    insertAt(members, rng.below(members.length + 1), rng.pick(SPELLINGS[k]) + ws(rng) + ":" + ws(rng) + value);
  }
  let s = ws(rng) + "{" + ws(rng);
  for (let i = 0; i < members.length; i++) s += (i > 0 ? ws(rng) + "," + ws(rng) : "") + members[i];
  g.text = s + ws(rng) + "}" + ws(rng);
  return g;
}

// ---- properties of one scan ----------------------------------------------------------------------------

const scan = new JsonScan(REQUEST_KEYS);
const bare = new JsonScan([]);
const inner = new JsonScan([]);
const wrapped = new JsonScan(REQUEST_KEYS);

function firstByteFits(t: JsonType, c: u8): bool {
  switch (t) {
    case JsonType.Null: return c == 0x6e;
    case JsonType.Bool: return c == 0x74 || c == 0x66;
    case JsonType.Number: return c == 0x2d || (c >= 0x30 && c <= 0x39);
    case JsonType.String: return c == 0x22;
    case JsonType.Object: return c == 0x7b;
    case JsonType.Array: return c == 0x5b;
    default: return false;
  }
}

// Scans `doc` and checks everything a caller relies on. Returns "" or the first broken property; the
// verdict is in `scan` afterwards. (Messages are built only on failure: the loops run 10^5 times.)
function checkScan(doc: Uint8Array): string {
  const p = ptrOf(doc);
  const len = doc.length;
  scanJson(p, len, scan);
  const err = scan.error;
  if (<i32>err < 0 || <i32>err > 7) return "unknown error code " + (<i32>err).toString();
  if (scan.errorAt < 0 || scan.errorAt > len) return "errorAt " + scan.errorAt.toString() + " outside the input";

  // Fewer selected keys change nothing but DuplicateKey.
  scanJson(p, len, bare);
  if (err == JsonError.DuplicateKey) {
    if (!REQUEST_KEYS.includes(scan.duplicateKey)) return "duplicate of an unselected key " + scan.duplicateKey;
    if (bare.error == JsonError.DuplicateKey) return "DuplicateKey without selected keys";
  } else if (bare.error != err || bare.errorAt != scan.errorAt) {
    return "verdict without keys " + errorName(bare.error) + "@" + bare.errorAt.toString() +
      " differs from " + errorName(err) + "@" + scan.errorAt.toString();
  }
  if (err != JsonError.Ok) return "";

  if (scan.rootType == JsonType.None) return "Ok without a root type";
  for (let k = 0; k < REQUEST_KEYS.length; k++) {
    const f = scan.field(k);
    const name = REQUEST_KEYS[k];
    if (!f.found) {
      if (f.start != 0 || f.end != 0 || f.type != JsonType.None) return name + ": absent but not reset";
      continue;
    }
    if (scan.rootType != JsonType.Object) return name + ": found in a root that is not an object";
    if (f.start < 0 || f.start >= f.end || f.end > len) return name + ": span " + f.start.toString() + ".." + f.end.toString() + " outside the buffer";
    if (!firstByteFits(f.type, doc[f.start])) return name + ": span does not start like a " + typeName(f.type);
    // The span is a document of its own, of the same type.
    scanJson(p + <usize>f.start, f.end - f.start, inner);
    if (inner.error != JsonError.Ok || inner.rootType != f.type) {
      return name + ": span rescans as " + errorName(inner.error) + " " + typeName(inner.rootType) + ", not " + typeName(f.type);
    }
    // Readers never trap on a found field, and agree with its type.
    const n = readInt(p, f);
    if (n < -1 || (f.type != JsonType.Number && n != -1)) return name + ": readInt gave " + n.toString();
    if (f.type != JsonType.Bool && readBool(p, f, false)) return name + ": readBool of a " + typeName(f.type);
    if (f.type == JsonType.String) {
      const s = decodeString(p, f.start, f.end, len);
      if (s == null) return name + ": string span does not decode";
      // What we write back is valid JSON that decodes to the same text.
      const again = String.UTF8.encode(jsonString(s));
      const q = pin(again);
      const qlen = again.byteLength;
      scanJson(q, qlen, inner);
      if (inner.error != JsonError.Ok) return name + ": jsonString output scans as " + errorName(inner.error) + ": " + show(again);
      const back = decodeString(q, 0, qlen, qlen);
      if (back == null || back != s) return name + ": jsonString does not round-trip";
    }
  }

  // Whitespace around a valid document changes nothing but the offsets.
  const padded = join(join(PAD_BEFORE, doc), PAD_AFTER);
  scanJson(ptrOf(padded), padded.length, wrapped);
  current = doc;
  if (wrapped.error != JsonError.Ok) return "padded with whitespace: " + errorName(wrapped.error);
  if (wrapped.rootType != scan.rootType) return "padded with whitespace: root type " + typeName(wrapped.rootType);
  for (let k = 0; k < REQUEST_KEYS.length; k++) {
    const a = scan.field(k);
    const b = wrapped.field(k);
    if (a.found != b.found || (a.found && (b.start != a.start + 3 || b.end != a.end + 3))) return REQUEST_KEYS[k] + ": padded span moved wrongly";
  }
  return "";
}

const PAD_BEFORE = bytes(" \n\t");
const PAD_AFTER = bytes("\r\n ");

// A proper prefix of a valid container document is never mistaken for a complete one. Call after a
// checkScan that answered Ok.
function checkPrefix(rng: Rng, doc: Uint8Array): string {
  if (scan.rootType != JsonType.Object && scan.rootType != JsonType.Array) return "";
  let last = doc.length;
  while (last > 0 && (doc[last - 1] == 0x20 || doc[last - 1] == 0x0a || doc[last - 1] == 0x0d || doc[last - 1] == 0x09)) last--;
  if (last == 0) return "";
  const cut = rng.below(last);
  scanJson(ptrOf(doc), cut, bare);
  if (bare.error != JsonError.Truncated && bare.error != JsonError.Empty) return "prefix of " + cut.toString() + " bytes gave " + errorName(bare.error);
  return "";
}

// A valid document also parses into a tree (which refuses duplicate keys at any depth).
function checkTree(doc: Uint8Array): string {
  const res = parseJson(String.UTF8.decode(doc.buffer));
  if (res.value == null && !res.error.startsWith("duplicate key ")) return "parseJson refused a valid document: " + res.error;
  return "";
}

// One assertion per failing input, naming the input; nothing at all per passing one.
function report(problem: string, what: string, doc: Uint8Array): void {
  if (problem.length > 0) expect<string>(problem).toBe("", what + ": " + show(doc.buffer));
}

// ---- tests ---------------------------------------------------------------------------------------------

function budget(total: u32, percent: i32): i32 {
  return <i32>(<u64>total * <u64>percent / 100);
}

describe("fuzz: scanJson", () => {
  it("never traps on random bytes and answers consistently", () => {
    const rng = new Rng(fuzzSeed(), 1);
    const n = budget(fuzzIterations(), 20);
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const doc = randomBytes(rng);
      let problem = checkScan(doc);
      if (problem.length == 0 && scan.ok()) { ok++; problem = checkPrefix(rng, doc); }
      report(problem, "random #" + i.toString(), doc);
    }
    fuzzCount(1, ok, n);
  });

  it("never traps on token soups and answers consistently", () => {
    const rng = new Rng(fuzzSeed(), 2);
    const n = budget(fuzzIterations(), 20);
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const doc = tokenSoup(rng);
      let problem = checkScan(doc);
      if (problem.length == 0 && scan.ok()) {
        ok++;
        problem = checkPrefix(rng, doc);
        if (problem.length == 0 && rng.chance(20)) problem = checkTree(doc);
      }
      report(problem, "soup #" + i.toString(), doc);
    }
    fuzzCount(2, ok, n);
  });

  it("never traps on mutated OpenAI bodies (bit flips, truncation, insertion, deletion, splicing) and answers consistently", () => {
    const rng = new Rng(fuzzSeed(), 3);
    const texts = corpus();
    const docs = new Array<Uint8Array>();
    for (let i = 0; i < texts.length; i++) {
      docs.push(bytes(texts[i]));
      report(checkScan(docs[i]), "corpus #" + i.toString(), docs[i]);
      expect<bool>(scan.ok()).toBe(true, "the corpus is valid JSON: #" + i.toString());
    }
    const n = budget(fuzzIterations(), 40);
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const doc = mutateTimes(rng, docs[rng.below(docs.length)], docs);
      let problem = checkScan(doc);
      if (problem.length == 0 && scan.ok()) {
        ok++;
        problem = checkPrefix(rng, doc);
        if (problem.length == 0 && rng.chance(10)) problem = checkTree(doc);
      }
      report(problem, "mutant #" + i.toString(), doc);
    }
    fuzzCount(3, ok, n);
  });

  it("finds exactly the generated root members of random valid documents, whatever their spelling and place", () => {
    const rng = new Rng(fuzzSeed(), 4);
    const n = budget(fuzzIterations(), 20);
    for (let i = 0; i < n; i++) {
      const g = genDocument(rng);
      const doc = bytes(g.text);
      let problem = checkScan(doc);
      if (problem.length == 0 && !scan.ok()) problem = "a generated valid document scanned as " + errorName(scan.error);
      for (let k = 0; k < 3 && problem.length == 0; k++) {
        const f = scan.field(k);
        if (f.found != g.present[k]) problem = REQUEST_KEYS[k] + (g.present[k] ? " not found" : " found but absent");
        else if (f.found && textOf(doc, f.start, f.end) != g.values[k]) problem = REQUEST_KEYS[k] + " span is " + textOf(doc, f.start, f.end) + ", not " + g.values[k];
      }
      if (problem.length == 0) problem = checkPrefix(rng, doc);
      if (problem.length == 0 && rng.chance(10)) problem = checkTree(doc);
      report(problem, "generated #" + i.toString(), doc);
    }
    fuzzCount(4, n, n);
  });
});

// ---- configuration and routing ---------------------------------------------------------------------------

const ROUTING_CONFIG = "{\"models\":[{\"name\":\"gpt-4o\",\"route\":\"openai\",\"upstreamModel\":\"gpt-4o-2024-08-06\"}," +
  "{\"name\":\"qwen2-7b\"},{\"name\":\"qwen*\"},{\"name\":\"llama-3\",\"upstreamModel\":\"meta/llama-3\"},{\"name\":\"text-embedding-3-small\"}]," +
  "\"defaultModel\":\"qwen2-7b\"}";

// Values a configuration field might plausibly (or wrongly) hold.
const CONFIG_VALUES: Array<string> = [
  "\"\"", "\"a\"", "\"b\"", "\"x y\"", "\"*\"", "\"a*b\"", "\"qwen*\"", "\"5xx\"", "\"6xx\"", "\"503\"", "\"X-Header\"",
  "\"gemma-2-2b\"", "\"llama-3\"", "\"\\u00e9\"", "\"\\ud800\"", "\"outbound|80||x\"", "0", "-1", "1", "1.5", "11", "429",
  "1073741825", "1e400", "true", "false", "null", "[]", "{}", "[\"a\"]", "[{\"name\":\"a\"}]", "{\"name\":\"a\"}",
];

// Replaces one scalar (string, number or literal) of a JSON text with another value: mostly still JSON,
// so the mutation reaches the configuration checks rather than the parser.
function swapValue(rng: Rng, text: string): string {
  const starts = new Array<i32>();
  const ends = new Array<i32>();
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c == 0x22) {
      let j = i + 1;
      while (j < n && text.charCodeAt(j) != 0x22) j += text.charCodeAt(j) == 0x5c ? 2 : 1;
      starts.push(i);
      ends.push(min(j + 1, n));
      i = j + 1;
    } else if (c == 0x2d || (c >= 0x30 && c <= 0x39) || c == 0x74 || c == 0x66 || c == 0x6e) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d == 0x2c || d == 0x7d || d == 0x5d || d == 0x20 || d == 0x3a) break;
        j++;
      }
      starts.push(i);
      ends.push(j);
      i = j;
    } else {
      i++;
    }
  }
  if (starts.length == 0) return text;
  const k = rng.below(starts.length);
  return text.substring(0, starts[k]) + rng.pick(CONFIG_VALUES) + text.substring(ends[k]);
}

function checkConfig(text: string): string {
  const res = parseConfig(text);
  if (res.config == null) return res.error.length > 0 ? "" : "refused without a reason";
  if (res.error.length > 0) return "accepted with an error: " + res.error;
  const g = res.config!.global;
  if (g.models.length == 0) return "accepted without models";
  const list = String.UTF8.encode(g.modelListBody);
  scanJson(pin(list), list.byteLength, bare);
  if (bare.error != JsonError.Ok) return "model list is not JSON: " + g.modelListBody;
  for (let j = 0; j < g.servedNames.length; j++) if (g.findRoute(g.servedNames[j]) == null) return "served model without a route";
  if (g.defaultModel.length > 0 && g.findRoute(g.defaultModel) == null) return "default model without a route";
  return "";
}

describe("fuzz: parseConfig", () => {
  it("never traps on mutated configurations: either a usable configuration or an error", () => {
    const rng = new Rng(fuzzSeed(), 5);
    const texts = configCorpus();
    const docs = new Array<Uint8Array>();
    for (let i = 0; i < texts.length; i++) {
      expect<string>(parseConfig(texts[i]).error).toBe("", "the config corpus is valid: #" + i.toString());
      docs.push(bytes(texts[i]));
    }
    const n = <i32>fuzzConfigIterations();
    let accepted = 0;
    for (let i = 0; i < n; i++) {
      let doc: Uint8Array;
      const how = rng.below(100);
      if (how < 50) {
        // 1..3 value swaps: valid JSON of the wrong shape.
        let text = texts[rng.below(texts.length)];
        const swaps = 1 + rng.below(3);
        for (let k = 0; k < swaps; k++) text = swapValue(rng, text);
        doc = bytes(text);
      } else if (how < 90) {
        doc = mutateTimes(rng, docs[rng.below(docs.length)], docs);
      } else {
        doc = tokenSoup(rng);
      }
      const text = String.UTF8.decode(doc.buffer);
      report(checkConfig(text), "config mutant #" + i.toString(), doc);
      if (parseConfig(text).config != null) accepted++;
    }
    fuzzCount(5, accepted, n);
  });
});

// Routes one body and checks the outcome: a JSON reply, or edits that give a valid body whose model is
// the one the upstream should serve (and include_usage when it was injected).
function checkRouting(cfg: GatewayConfig, doc: Uint8Array, wantsUsage: bool): string {
  const r: RoutingResult = routeRequest(cfg, ptrOf(doc), doc.length, scan, wantsUsage);
  if (r.reply != null) {
    const reply = r.reply!;
    if (reply.status != 400 && reply.status != 404) return "reply status " + reply.status.toString();
    if (r.splice.edits.length > 0) return "edits with a reply";
    const body = String.UTF8.encode(reply.body());
    scanJson(pin(body), body.byteLength, bare);
    if (bare.error != JsonError.Ok) return "reply is not JSON: " + reply.body();
    return "";
  }
  routedBodies++;
  if (!isHeaderValue(r.routeValue)) return "route value is not a header value: " + r.routeValue;
  let out = new Uint8Array(0);
  let pos = 0;
  for (let i = 0; i < r.splice.edits.length; i++) {
    const e = r.splice.edits[i];
    if (e.start < pos || e.end < e.start || e.end > doc.length) return "edit " + i.toString() + " out of order or bounds";
    out = join(join(out, part(doc, pos, e.start)), bytes(e.text));
    pos = e.end;
  }
  out = join(out, part(doc, pos, doc.length));
  const q = ptrOf(out);
  scanJson(q, out.length, wrapped);
  if (wrapped.error != JsonError.Ok) return "edited body scans as " + errorName(wrapped.error) + ": " + show(out.buffer);
  const f = wrapped.field(F_MODEL);
  if (!f.found || f.type != JsonType.String) return "edited body has no string model: " + show(out.buffer);
  const served = r.route!.upstreamModel.length > 0 ? r.route!.upstreamModel : r.model;
  const got = decodeString(q, f.start, f.end, out.length);
  if (got == null || got != served) return "edited body's model is not " + served + ": " + show(out.buffer);
  if (r.usageInjected) {
    const so = wrapped.field(2);
    if (!so.found || so.type != JsonType.Object) return "stream_options missing after injection: " + show(out.buffer);
    scanJson(q + <usize>so.start, so.end - so.start, usageScan);
    if (!usageScan.ok() || !readBool(q + <usize>so.start, usageScan.field(0), false)) return "include_usage not true: " + show(out.buffer);
  }
  current = doc;
  return "";
}

const usageScan = new JsonScan(["include_usage"]);
let routedBodies = 0;

describe("fuzz: routeRequest", () => {
  it("never traps on mutated request bodies; its replies are JSON and its edits give a valid body with the served model", () => {
    const rng = new Rng(fuzzSeed(), 6);
    const res = parseConfig(ROUTING_CONFIG);
    expect<string>(res.error).toBe("");
    const cfg = res.config!.global;
    const texts = corpus();
    const docs = new Array<Uint8Array>();
    for (let i = 0; i < texts.length; i++) docs.push(bytes(texts[i]));
    const n = <i32>fuzzConfigIterations();
    routedBodies = 0;
    for (let i = 0; i < n; i++) {
      const doc = rng.chance(70) ? mutateTimes(rng, docs[rng.below(docs.length)], docs) : bytes(genDocument(rng).text);
      report(checkRouting(cfg, doc, rng.chance(50)), "body #" + i.toString(), doc);
    }
    fuzzCount(6, routedBodies, n);
  });
});

// ---- SSE streams and JSON responses -------------------------------------------------------------------

// vLLM-shaped streams (chat with the role chunk and a usage-only chunk, completions, no usage) and
// answers, as mutation seeds.
function sseCorpus(): Array<string> {
  const chunk = (delta: string, finish: string): string =>
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen2-1-5b\",\"choices\":[{\"index\":0,\"delta\":" +
    delta + ",\"logprobs\":null,\"finish_reason\":" + finish + "}]}\n\n";
  const usage = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen2-1-5b\",\"choices\":[]," +
    "\"usage\":{\"prompt_tokens\":7,\"total_tokens\":10,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":2}}}\n\n";
  const chat = chunk("{\"role\":\"assistant\",\"content\":\"\"}", "null") + chunk("{\"content\":\"a\"}", "null") +
    chunk("{\"content\":\" b\"}", "null") + chunk("{\"content\":\" c\"}", "\"stop\"") + usage + "data: [DONE]\n\n";
  const completions = "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"gemma-2-2b\",\"choices\":[{\"index\":0,\"text\":\"x\",\"logprobs\":null,\"finish_reason\":null}]}\r\n\r\n" +
    ": keep-alive\r\n\r\ndata:{\"choices\":[{\"index\":0,\"text\":\" y\",\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\r\n\r\ndata: [DONE]\r\n\r\n";
  const json = "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\",\"model\":\"qwen2-1-5b\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}," +
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"total_tokens\":6,\"completion_tokens\":1,\"prompt_tokens_details\":null}}";
  return [chat, completions, chunk("{\"content\":\"only\"}", "null") + "data: [DONE]\n\n", "event: x\nid: 3\nretry: 10\ndata: {\"a\":\ndata: 1}\n\n", json];
}

const SSE_TOKENS: Array<string> = ["data:", "data: ", "\n", "\r\n", "\r", "\n\n", ":", "event: e", "[DONE]", "{\"usage\":{\"prompt_tokens\":1}}",
  "{\"choices\":[]}", "{\"choices\":[{\"delta\":{\"content\":\"z\"}}]}", "{", "\"", "\\u00", "\xff", "null"];

function sseSoup(rng: Rng): Uint8Array {
  const parts = new Array<string>();
  const n = rng.below(40);
  for (let i = 0; i < n; i++) parts.push(rng.pick(SSE_TOKENS));
  return bytes(parts.join(""));
}

class SseOutcome {
  events: i32 = 0;
  done: bool = false;
  overflowed: bool = false;
  prompt: i64 = 0;
  completion: i64 = 0;
  cached: i64 = 0;
  firstContent: i32 = 0;
  contentEvents: i32 = 0;
  drops: i32 = 0;

  same(o: SseOutcome): bool {
    return this.events == o.events && this.done == o.done && this.overflowed == o.overflowed && this.prompt == o.prompt &&
      this.completion == o.completion && this.cached == o.cached && this.firstContent == o.firstContent &&
      this.contentEvents == o.contentEvents && this.drops == o.drops;
  }
}

// Feeds `doc` cut at `cuts` through a fresh tracker, each chunk from its own copy (so a reader that kept
// a pointer into an earlier chunk would read garbage and disagree with the whole-stream run).
function trackSse(doc: Uint8Array, cuts: Array<i32>, maxEventBytes: i32): SseOutcome {
  const t = new SseUsageTracker(maxEventBytes);
  const o = new SseOutcome();
  let from = 0;
  for (let i = 0; i <= cuts.length; i++) {
    const to = i < cuts.length ? cuts[i] : doc.length;
    const piece = part(doc, from, to);
    t.feed(ptrOf(piece), piece.length);
    o.drops += t.dropCount();
    from = to;
  }
  t.finish();
  o.events = t.reader.events;
  o.done = t.reader.sawDone;
  o.overflowed = t.reader.overflowed;
  o.prompt = t.usage.promptTokens;
  o.completion = t.usage.completionTokens;
  o.cached = t.usage.cachedTokens;
  o.firstContent = t.firstContentEvent;
  o.contentEvents = t.contentEvents;
  return o;
}

function splitPoints(rng: Rng, len: i32): Array<i32> {
  const cuts = new Array<i32>();
  if (len < 2) return cuts;
  const k = rng.below(8);
  for (let i = 0; i < k; i++) cuts.push(1 + rng.below(len - 1));
  cuts.sort();
  const out = new Array<i32>();
  for (let i = 0; i < cuts.length; i++) if (out.length == 0 || out[out.length - 1] != cuts[i]) out.push(cuts[i]);
  return out;
}

describe("fuzz: SSE streams and JSON responses", () => {
  it("never traps on random and mutated streams, and any split gives what the whole stream gives", () => {
    const rng = new Rng(fuzzSeed(), 7);
    const seeds = sseCorpus();
    const docs = new Array<Uint8Array>();
    for (let i = 0; i < seeds.length; i++) docs.push(bytes(seeds[i]));
    const n = <i32>fuzzConfigIterations();
    let withEvents = 0;
    for (let i = 0; i < n; i++) {
      const doc = rng.chance(25) ? sseSoup(rng) : mutateTimes(rng, docs[rng.below(docs.length)], docs);
      // A small event bound now and then, so overflow is fuzzed too.
      const max = rng.chance(20) ? 16 + rng.below(96) : 0;
      const whole = trackSse(doc, new Array<i32>(), max);
      const split = trackSse(doc, splitPoints(rng, doc.length), max);
      if (!whole.same(split)) report("a split changed the outcome", "stream #" + i.toString(), doc);
      if (whole.events > 0) withEvents++;
    }
    fuzzCount(7, withEvents, n);
  });

  it("never traps on mutated JSON answers, and reports usage only as counts it found", () => {
    const rng = new Rng(fuzzSeed(), 8);
    const seeds = sseCorpus();
    const answer = bytes(seeds[seeds.length - 1]);
    const docs: Array<Uint8Array> = [answer];
    const n = <i32>fuzzConfigIterations();
    let reported = 0;
    for (let i = 0; i < n; i++) {
      const doc = mutateTimes(rng, answer, docs);
      const r = readJsonResponse(ptrOf(doc), doc.length);
      if (r.usage.reported) {
        reported++;
        if (r.usage.promptTokens < -1 || r.usage.completionTokens < -1 || r.usage.totalTokens < -1) {
          report("a negative count other than 'not reported'", "answer #" + i.toString(), doc);
        }
      }
    }
    fuzzCount(8, reported, n);
  });
});

describe("fuzz: vLLM load figures", () => {
  it("never traps on mutated load reports and metrics pages, and gives only figures in range", () => {
    const rng = new Rng(fuzzSeed(), 9);
    const orca = bytes("TEXT named_metrics.num_requests_waiting=3.0, named_metrics.kv_cache_usage_perc=0.25");
    const page = bytes(
      '# HELP vllm:num_requests_waiting Requests waiting.\n# TYPE vllm:num_requests_waiting gauge\n' +
        'vllm:num_requests_waiting{engine="0",model_name="qwen"} 2.0\nvllm:num_requests_running{engine="0"} 7.0\n' +
        'vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.125\nvllm:gpu_cache_usage_perc 1e-05\n',
    );
    const docs: Array<Uint8Array> = [orca, page];
    const n = <i32>fuzzConfigIterations();
    let read = 0;
    for (let i = 0; i < n; i++) {
      const doc = mutateTimes(rng, i % 2 == 0 ? orca : page, docs);
      const f = i % 2 == 0 ? parseLoadReport(textOf(doc, 0, doc.length)) : parseMetricsPage(new HostBytes(ptrOf(doc), doc.length));
      if (f == null) continue;
      read++;
      if (f.waiting < 0 || f.waiting > 1000000000 || f.kvPermille < 0 || f.kvPermille > 1000) {
        report("figures out of range", "doc #" + i.toString(), doc);
      }
    }
    fuzzCount(9, read, n);
  });
});
