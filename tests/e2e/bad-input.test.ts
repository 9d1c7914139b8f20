// Every bad request gets a clear OpenAI-style error from the plugin, and hundreds of them leave the
// VM alive (checked by routing valid requests afterwards, and by Envoy's own log).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rawRequest, type RawResponse } from "../harness/http.ts";
import { startSeed, post, type Seed } from "../harness/seed.ts";

let seed: Seed;
const LIMIT = 64 * 1024;

before(async () => {
  seed = await startSeed({
    pluginConfig: { maxBodyBytes: LIMIT, models: [{ name: "qwen2-1-5b" }, { name: "gemma-2-2b" }] },
  });
});
after(async () => {
  await seed?.stop();
});

interface OpenAIError {
  error: { message: string; type: string; param: string | null; code: string; served_models?: string[] };
}

async function expectError(r: Response, status: number, code: string, param: string | null, message: RegExp): Promise<OpenAIError> {
  assert.equal(r.status, status);
  assert.equal(r.headers.get("content-type"), "application/json");
  const body = (await r.json()) as OpenAIError;
  assert.deepEqual(Object.keys(body.error).slice(0, 4), ["message", "type", "param", "code"]);
  assert.equal(body.error.type, "invalid_request_error");
  assert.equal(body.error.code, code);
  assert.equal(body.error.param, param);
  assert.match(body.error.message, message);
  return body;
}

const url = (): string => `${seed.gateway.url}/v1/chat/completions`;

const CASES: { name: string; body: string; status: number; code: string; param: string | null; message: RegExp }[] = [
  { name: "not JSON", body: "hello", status: 400, code: "invalid_json", param: null, message: /not valid JSON/ },
  {
    name: "truncated JSON",
    body: '{"model":"qwen2-1-5b","messages":[',
    status: 400,
    code: "invalid_json",
    param: null,
    message: /truncated/,
  },
  {
    name: "trailing garbage",
    body: '{"model":"qwen2-1-5b"} x',
    status: 400,
    code: "invalid_json",
    param: null,
    message: /after the JSON value/,
  },
  { name: "an array", body: '[{"model":"qwen2-1-5b"}]', status: 400, code: "invalid_json", param: null, message: /must be a JSON object/ },
  {
    name: "too deep",
    body: '{"model":"qwen2-1-5b","x":' + "[".repeat(200) + "]".repeat(200) + "}",
    status: 400,
    code: "invalid_json",
    param: null,
    message: /nests deeper/,
  },
  {
    name: "invalid UTF-8",
    body: '{"model":"qwen2-1-5b","x":"\xff"}',
    status: 400,
    code: "invalid_json",
    param: null,
    message: /invalid string/,
  },
  {
    name: "model missing",
    body: '{"messages":[]}',
    status: 400,
    code: "missing_required_parameter",
    param: "model",
    message: /provide a model/,
  },
  {
    name: "model null",
    body: '{"model":null}',
    status: 400,
    code: "missing_required_parameter",
    param: "model",
    message: /provide a model/,
  },
  { name: "model a number", body: '{"model":42}', status: 400, code: "invalid_type", param: "model", message: /expected a string/ },
  {
    name: "model an object",
    body: '{"model":{"name":"qwen2-1-5b"}}',
    status: 400,
    code: "invalid_type",
    param: "model",
    message: /expected a string/,
  },
  { name: "model empty", body: '{"model":""}', status: 400, code: "invalid_value", param: "model", message: /Invalid 'model'/ },
  {
    name: "model twice",
    body: '{"model":"gemma-2-2b","messages":[],"model":"qwen2-1-5b"}',
    status: 400,
    code: "duplicate_key",
    param: "model",
    message: /appears more than once/,
  },
  {
    name: "model twice, once escaped",
    body: '{"model":"gemma-2-2b","mod\\u0065l":"qwen2-1-5b"}',
    status: 400,
    code: "duplicate_key",
    param: "model",
    message: /appears more than once/,
  },
];

for (const c of CASES) {
  test(`400 for a body that is ${c.name}`, async () => {
    if (/[\x80-\xff]/.test(c.body)) {
      // Raw bytes: "\xff" must reach Envoy as one invalid byte, not as the UTF-8 of U+00FF.
      const raw = await rawPost(Buffer.from(c.body, "latin1"));
      assert.equal(raw.status, c.status);
      const e = (JSON.parse(raw.body) as OpenAIError).error;
      assert.equal(e.code, c.code);
      assert.match(e.message, c.message);
      return;
    }
    const r = await post(url(), c.body);
    await expectError(r, c.status, c.code, c.param, c.message);
  });
}

test("404 model_not_found names the served models", async () => {
  const r = await post(url(), { model: "llama-3-70b", messages: [] });
  const body = await expectError(r, 404, "model_not_found", "model", /'llama-3-70b' does not exist.*qwen2-1-5b, gemma-2-2b/);
  assert.deepEqual(body.error.served_models, ["qwen2-1-5b", "gemma-2-2b"]);
});

test("400 for an empty body", async () => {
  await expectError(await post(url(), ""), 400, "invalid_json", null, /no body/);
});

test("413 for a body over the limit, declared by content-length", async () => {
  const big = JSON.stringify({ model: "qwen2-1-5b", messages: [{ role: "user", content: "x".repeat(LIMIT) }] });
  await expectError(await post(url(), big), 413, "request_too_large", null, new RegExp(`limit of ${LIMIT} bytes`));
});

test("413 for a chunked body that grows over the limit", async () => {
  const raw = await rawPost(Buffer.from(JSON.stringify({ model: "qwen2-1-5b", pad: "y".repeat(LIMIT * 2) })), true);
  assert.equal(raw.status, 413);
  assert.equal(JSON.parse(raw.body).error.code, "request_too_large");
});

test("after hundreds of malformed bodies the same Envoy still routes valid requests", async () => {
  const malformed = [
    "",
    "{",
    "}",
    "[",
    "nul",
    "tru",
    '{"model":',
    '{"model":"',
    '{"model":"qwen2-1-5b"',
    '{"a":1,}',
    '{"a" 1}',
    '{"model":"qwen2-1-5b","x":1e}',
    '{"model":"qwen2-1-5b","x":-}',
    '{"model":"\\x"}',
    '{"model":"\\ud800"}',
    "\u0000",
    "{}",
    "[]",
  ];
  const createdBefore = await seed.gateway.counter("wasm.envoy.wasm.runtime.v8.created");
  let answered = 0;
  for (let i = 0; i < 400; i++) {
    const base = malformed[i % malformed.length] ?? "";
    const body = i % 3 === 0 ? base + "\n".repeat(i % 7) : i % 3 === 1 ? base.slice(0, base.length - (i % 3)) : base;
    const r = await post(url(), body);
    assert.ok(r.status === 400 || r.status === 404, `status ${r.status} for ${JSON.stringify(body)}`);
    await r.body?.cancel();
    answered++;
  }
  assert.equal(answered, 400);
  const ok = await post(url(), { model: "gemma-2-2b", messages: [{ role: "user", content: "still there?" }] });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("x-stub-model"), "gemma-2-2b");
  await ok.body?.cancel();
  // A trapped VM logs a failed callback and Envoy recreates it: neither may have happened.
  const log = seed.gateway.log();
  assert.doesNotMatch(log, /Function: proxy_on_\w+ failed|wasm trap|Uncaught|unreachable/i);
  // No VM was created anew (Envoy replaces a failed VM) and none was reloaded.
  assert.equal(await seed.gateway.counter("wasm.envoy.wasm.runtime.v8.created"), createdBefore);
  assert.equal(await seed.gateway.counter("wasm.llm-gateway.vm_reload"), 0);
});

const rawPost = (body: Buffer, chunked = false): Promise<RawResponse> => rawRequest(url(), { body, chunked });
