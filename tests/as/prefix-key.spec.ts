// The prefix-affinity key (assembly/plugin/routing/prefix-key.ts) as routing computes it: stable across
// a conversation's turns and across JSON spellings, different for different prompts, cut at prefixBytes.
import { JsonScan } from "../../assembly/json/reader";
import { GatewayConfig, parseConfig } from "../../assembly/plugin/config/gateway-config";
import { REQUEST_KEYS, routeRequest } from "../../assembly/plugin/routing/route-request";
import { hold, utf8 } from "./helpers";

function config(text: string): GatewayConfig {
  const res = parseConfig(text);
  expect<string>(res.error).toBe("", text);
  return res.config!.global;
}

const ON = config('{"models":[{"name":"qwen"},{"name":"gemma"}],"prefixAffinity":{"enabled":true,"models":["qwen"]}}');
const SHORT = config('{"models":[{"name":"qwen"}],"prefixAffinity":{"enabled":true,"prefixBytes":16}}');
const OFF = config('{"models":[{"name":"qwen"}]}');
const scan = new JsonScan(REQUEST_KEYS);

function key(cfg: GatewayConfig, body: string): string {
  const b = utf8(body);
  const r = routeRequest(cfg, hold(b), b.byteLength, scan, false);
  expect<bool>(r.reply == null).toBe(true, body);
  return r.prefixKey;
}

const SYS = '{"role":"system","content":"You are a tax assistant for ACME."}';
const U1 = '{"role":"user","content":"How do I file?"}';

describe("prefix key", () => {
  it("is 16 hex digits, and the same for every turn of one conversation", () => {
    const first = key(ON, '{"model":"qwen","messages":[' + SYS + "," + U1 + "]}");
    expect<i32>(first.length).toBe(16);
    const third = key(
      ON,
      '{"model":"qwen","messages":[' +
        SYS +
        "," +
        U1 +
        ',{"role":"assistant","content":"Like this."},{"role":"user","content":"And then?"}],"stream":true}',
    );
    expect<string>(third).toBe(first);
  });

  it("differs for another first question or another system prompt", () => {
    const a = key(ON, '{"model":"qwen","messages":[' + SYS + "," + U1 + "]}");
    const b = key(ON, '{"model":"qwen","messages":[' + SYS + ',{"role":"user","content":"How do I pay?"}]}');
    const c = key(ON, '{"model":"qwen","messages":[{"role":"system","content":"You are a poet."},' + U1 + "]}");
    expect<bool>(a != b).toBe(true);
    expect<bool>(a != c).toBe(true);
  });

  it("hashes decoded text: escapes, spacing and content parts do not change it", () => {
    const plain = key(ON, '{"model":"qwen","messages":[{"role":"user","content":"café 😀 \\"q\\""}]}');
    const escaped = key(ON, '{ "messages" : [ { "content" : "caf\\u00e9 \\ud83d\\ude00 \\"q\\"", "role" : "user" } ], "model":"qwen" }');
    const parts = key(
      ON,
      '{"model":"qwen","messages":[{"role":"user","content":[{"type":"text","text":"café 😀 "},{"type":"text","text":"\\"q\\""}]}]}',
    );
    expect<string>(escaped).toBe(plain);
    expect<string>(parts).toBe(plain);
  });

  it("is cut at prefixBytes, so prompts sharing that many bytes share a key", () => {
    const a = key(SHORT, '{"model":"qwen","prompt":"0123456789abcdef and then one thing"}');
    const b = key(SHORT, '{"model":"qwen","prompt":"0123456789abcdef and then another"}');
    const c = key(SHORT, '{"model":"qwen","prompt":"0123456789abcdeX and then one thing"}');
    expect<string>(b).toBe(a);
    expect<bool>(c != a).toBe(true);
  });

  it("reads completions prompts (text or list) and the Responses API", () => {
    expect<string>(key(ON, '{"model":"qwen","prompt":["hello there",[1,2]]}')).toBe(key(ON, '{"model":"qwen","prompt":"hello there"}'));
    const r = key(ON, '{"model":"qwen","instructions":"Be brief.","input":"hi"}');
    expect<i32>(r.length).toBe(16);
    expect<bool>(r != key(ON, '{"model":"qwen","input":"hi"}')).toBe(true);
    const asMessages = key(ON, '{"model":"qwen","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]}');
    expect<i32>(asMessages.length).toBe(16);
  });

  it("is empty without prompt text, for other models, and when off", () => {
    expect<string>(key(ON, '{"model":"qwen","input":[1,2,3]}')).toBe("");
    expect<string>(key(ON, '{"model":"qwen","messages":[]}')).toBe("");
    expect<string>(key(ON, '{"model":"gemma","messages":[' + U1 + "]}")).toBe("");
    expect<string>(key(OFF, '{"model":"qwen","messages":[' + U1 + "]}")).toBe("");
  });
});
