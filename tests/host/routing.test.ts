// Routing through the real plugin build in the in-process host: the routing header, the body's model
// rewritten with content-length kept right, the plugin's own OpenAI-shaped answers (400/404/413, the
// model list), Envoy's error answers reshaped, and shedding at the memory budget.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeEnvoy, startPlugin, type PluginRoot } from "./proxy-wasm-host.ts";
import { GEMMA, QWEN, chat, getHeaders, openAiError, postHeaders, routeProperties, twoModels } from "./fixtures.ts";

const ALIASES = {
  models: [
    { name: QWEN, fallback: [GEMMA] },
    { name: GEMMA },
    { name: "gemma", route: GEMMA, upstreamModel: GEMMA },
    { name: "qwen2-*", route: QWEN, upstreamModel: QWEN },
  ],
};

async function plugin(config: unknown = ALIASES): Promise<PluginRoot> {
  return startPlugin(config);
}

test("a request is routed by its body's model: routing header set, body and headers otherwise untouched", async () => {
  const root = await plugin();
  const body = chat(GEMMA);
  const s = root.stream({ properties: routeProperties(GEMMA) });
  assert.equal(s.sendRequestHeaders(postHeaders(body)), "Pause", "headers held until the body is read");
  assert.equal(s.sendRequestData(body, true), "Continue");
  assert.equal(s.requestHeader("x-higress-llm-model"), GEMMA);
  assert.deepEqual(s.upstream.headers, [...postHeaders(body), ["x-higress-llm-model", GEMMA]]);
  assert.equal(s.upstream.body.toString(), body, "nothing to rewrite");
  // Higress's Envoy raises the request's buffer limit to maxBodyBytes (10 MiB by default).
  assert.equal(s.state("set_decoder_buffer_limit"), String(10 * 1024 * 1024));
});

test("an alias is rewritten to its upstream model and content-length follows", async () => {
  const root = await plugin();
  const body = chat("gemma", { max_tokens: 5 });
  const s = root.stream();
  s.sendRequest(postHeaders(body), body);
  const expected = chat(GEMMA, { max_tokens: 5 });
  assert.equal(s.upstream.body.toString(), expected);
  assert.equal(s.requestHeader("content-length"), String(Buffer.byteLength(expected)));
  assert.equal(s.requestHeader("x-higress-llm-model"), GEMMA);
});

test("a pattern routes the client's name and serves the configured one", async () => {
  const root = await plugin();
  const body = chat("qwen2-7b-instruct");
  const s = root.stream();
  s.sendRequest(postHeaders(body), body);
  assert.equal(s.requestHeader("x-higress-llm-model"), QWEN);
  assert.equal(s.upstream.body.toString(), chat(QWEN));
  assert.equal(s.requestHeader("content-length"), String(chat(QWEN).length));
});

test("a streamed chat gets stream_options.include_usage, whatever the body's chunking", async () => {
  const root = await plugin();
  const body = chat("gemma", { stream: true });
  const expected = `{"stream_options":{"include_usage":true},${chat(GEMMA, { stream: true }).slice(1)}`;
  for (const chunkBytes of [1, 7, 64, body.length]) {
    const s = root.stream();
    s.sendRequest(postHeaders(body), body, { chunkBytes });
    assert.equal(s.upstream.body.toString(), expected, `chunks of ${chunkBytes} bytes`);
    assert.equal(s.requestHeader("content-length"), String(expected.length));
    // Every chunk but the last is buffered (Pause); the last one lets the request go.
    const body_ = s.actions("request_body");
    assert.equal(body_.length, Math.ceil(body.length / chunkBytes));
    assert.deepEqual(
      body_.slice(0, -1).filter((a) => a !== "Pause"),
      [],
    );
    assert.equal(body_.at(-1), "Continue");
    s.finish();
  }
});

test("stream_options already asking for usage, or a path without usage chunks, is left alone", async () => {
  const root = await plugin();
  const asked = chat(QWEN, { stream: true, stream_options: { include_usage: true } });
  const s = root.stream();
  s.sendRequest(postHeaders(asked), asked);
  assert.equal(s.upstream.body.toString(), asked);
  const emb = JSON.stringify({ model: QWEN, input: "hi", stream: true });
  const e = root.stream();
  e.sendRequest(postHeaders(emb, "/v1/embeddings"), emb);
  assert.equal(e.upstream.body.toString(), emb);
  assert.equal(e.requestHeader("x-higress-llm-model"), QWEN);
});

test("stream_options: null becomes include_usage, and include_usage false becomes true", async () => {
  const root = await plugin();
  for (const [opts, want] of [
    ["null", '{"include_usage":true}'],
    ['{"include_usage":false}', '{"include_usage":true}'],
  ] as const) {
    const body = `{"model":"${QWEN}","stream":true,"stream_options":${opts}}`;
    const s = root.stream();
    s.sendRequest(postHeaders(body), body);
    assert.equal(s.upstream.body.toString(), `{"model":"${QWEN}","stream":true,"stream_options":${want}}`);
  }
});

test("a client cannot choose its own route: the routing header is removed on every path", async () => {
  const root = await plugin();
  const body = chat(GEMMA);
  const s = root.stream();
  s.sendRequest(postHeaders(body, "/v1/chat/completions", [["x-higress-llm-model", QWEN]]), body);
  assert.deepEqual(
    s.request.filter(([k]) => k === "x-higress-llm-model"),
    [["x-higress-llm-model", GEMMA]],
  );
  // A path the plugin does not route passes through at once, without the forged header.
  const other = root.stream();
  assert.equal(other.sendRequestHeaders([...postHeaders("{}", "/healthz"), ["x-higress-llm-model", QWEN]]), "Continue");
  assert.equal(
    other.upstream.headers?.some(([k]) => k === "x-higress-llm-model"),
    false,
  );
  assert.deepEqual(other.headerEdits, [{ map: "request", op: "remove", key: "x-higress-llm-model", value: null }]);
});

test("a defaultModel serves a body without model, inserted for the upstream", async () => {
  const root = await plugin({ ...ALIASES, defaultModel: GEMMA });
  const body = JSON.stringify({ messages: [] });
  const s = root.stream();
  s.sendRequest(postHeaders(body), body);
  assert.equal(s.upstream.body.toString(), `{"model":"${GEMMA}","messages":[]}`);
  assert.equal(s.requestHeader("content-length"), String(`{"model":"${GEMMA}","messages":[]}`.length));
});

interface ErrorCase {
  name: string;
  body: string;
  status: number;
  error: unknown;
  details: string;
}

const MODELS_LISTED = `Served models: ${QWEN}, ${GEMMA}, gemma.`;
const ERRORS: ErrorCase[] = [
  {
    name: "a missing model",
    body: '{"messages":[]}',
    status: 400,
    details: "llm_gateway_missing_required_parameter",
    error: openAiError("You must provide a model parameter.", "invalid_request_error", "model", "missing_required_parameter"),
  },
  {
    name: "a model that is a number",
    body: '{"model":42}',
    status: 400,
    details: "llm_gateway_invalid_type",
    error: openAiError("Invalid type for 'model': expected a string.", "invalid_request_error", "model", "invalid_type"),
  },
  {
    name: "an empty model",
    body: '{"model":""}',
    status: 400,
    details: "llm_gateway_invalid_value",
    error: openAiError(
      "Invalid 'model': the name is empty, too long or contains characters that are not allowed.",
      "invalid_request_error",
      "model",
      "invalid_value",
    ),
  },
  {
    name: "a duplicated model key",
    body: `{"model":"${GEMMA}","model":"${QWEN}"}`,
    status: 400,
    details: "llm_gateway_duplicate_key",
    error: openAiError("The key 'model' appears more than once in the request body.", "invalid_request_error", "model", "duplicate_key"),
  },
  {
    name: "a JSON array",
    body: "[1]",
    status: 400,
    details: "llm_gateway_invalid_json",
    error: openAiError("The request body must be a JSON object.", "invalid_request_error", null, "invalid_json"),
  },
  {
    name: "an unknown model",
    body: '{"model":"llama-3"}',
    status: 404,
    details: "llm_gateway_model_not_found",
    error: openAiError(
      `The model 'llama-3' does not exist or you do not have access to it. ${MODELS_LISTED}`,
      "invalid_request_error",
      "model",
      "model_not_found",
      { served_models: [QWEN, GEMMA, "gemma"] },
    ),
  },
];

for (const c of ERRORS) {
  test(`${c.status} OpenAI-shaped error for ${c.name}, sent through the filter's encode path`, async () => {
    const root = await plugin();
    const s = root.stream();
    s.sendRequest(postHeaders(c.body), c.body);
    assert.equal(s.localReply?.status, c.status);
    assert.equal(s.localReply?.details, c.details);
    assert.equal(s.localReply?.direct, false, "no response had started: the reply runs through the filter chain");
    assert.deepEqual(s.clientJson(), c.error);
    assert.deepEqual(s.client.headers, [
      [":status", String(c.status)],
      ["content-type", "application/json"],
      ["content-length", String(s.client.body.length)],
    ]);
    assert.equal(s.upstream.headers, null, "nothing went upstream");
    assert.deepEqual(s.actions("request_body"), ["Pause"], "the callback that answered stopped the stream");
    s.finish();
    // Counted as a local 4xx, under model "none" (no model was routed).
    assert.equal(
      root.vm.envoy.metrics.value(
        `route.none.upstream.none.model.none.consumer.none.metric.responses_local_${Math.floor(c.status / 100)}xx`,
      ),
      1,
    );
  });
}

test("413 from content-length before any byte of the body, and from the body when it is chunked", async () => {
  const root = await plugin({ ...ALIASES, maxBodyBytes: 100 });
  const big = chat(QWEN, { pad: "x".repeat(200) });
  const error = openAiError(
    "The request body is larger than this gateway's limit of 100 bytes.",
    "invalid_request_error",
    null,
    "request_too_large",
  );
  const declared = root.stream();
  assert.equal(declared.sendRequestHeaders(postHeaders(big)), "Pause");
  assert.equal(declared.localReply?.status, 413);
  assert.deepEqual(declared.clientJson(), error);
  // No content-length (chunked): the body is counted as it arrives and refused past the limit.
  const chunked = root.stream();
  const headers = postHeaders(big).filter(([k]) => k !== "content-length");
  chunked.sendRequest(headers, big, { chunkBytes: 64 });
  assert.equal(chunked.localReply?.status, 413);
  assert.deepEqual(chunked.clientJson(), error);
  assert.equal(chunked.actions("request_body").length, 2, "refused at the chunk that crossed 100 bytes, then Envoy stops decoding");
});

test("GET /v1/models lists the exact names; /v1/models/{id} answers a served id and 404s others", async () => {
  const root = await plugin();
  const list = root.stream();
  list.sendRequestHeaders(getHeaders("/v1/models"), true);
  assert.equal(list.localReply?.details, "llm_gateway_model_list");
  const own = (id: string): unknown => ({ id, object: "model", created: 0, owned_by: "llm-gateway" });
  assert.deepEqual(list.clientJson(), { object: "list", data: [own(QWEN), own(GEMMA), own("gemma")] });
  const one = root.stream();
  one.sendRequestHeaders(getHeaders("/v1/models/qwen2-72b"), true);
  assert.deepEqual(one.clientJson(), own("qwen2-72b"), "a name the pattern serves");
  const encoded = root.stream();
  encoded.sendRequestHeaders(getHeaders("/v1/models/Qwen%2FQwen2.5"), true);
  assert.equal(encoded.localReply?.status, 404);
  assert.match((encoded.clientJson() as { error: { message: string } }).error.message, /^The model 'Qwen\/Qwen2\.5' does not exist/);
});

test("Envoy's own 503 for a routed request becomes an OpenAI-shaped error (its first chunk replaced)", async () => {
  const root = await plugin({ models: [{ name: GEMMA }] });
  const body = chat(GEMMA);
  const s = root.stream({ properties: routeProperties(GEMMA) });
  s.sendRequest(postHeaders(body), body);
  const details = "upstream_reset_before_response_started{connection_failure}";
  s.sendEnvoyReply(503, details);
  assert.equal(s.clientStatus(), 503);
  assert.equal(s.clientHeader("content-type"), "application/json");
  assert.equal(s.clientHeader("content-length"), undefined, "the length changed with the body");
  assert.deepEqual(
    s.clientJson(),
    openAiError(`No model server could take the request (${details}).`, "server_error", null, "upstream_unavailable"),
  );
  // Envoy's buffer semantics: start 0 with the chunk's length drains it and puts the new body in.
  assert.deepEqual(
    s.bufferEdits.filter((e) => e.body === "response"),
    [{ body: "response", start: 0, length: 57, bytes: s.client.body.length }],
  );
});

test("Envoy's 413 while the body is still being read becomes the OpenAI-shaped error", async () => {
  const root = await plugin();
  const body = chat(QWEN, { pad: "x".repeat(100) });
  const s = root.stream();
  s.sendRequestHeaders(postHeaders(body));
  assert.equal(s.sendRequestData(body.slice(0, 50), false), "Pause");
  // Envoy's buffer limit was hit: it answers itself, through the filter's encode path.
  s.sendEnvoyReply(413, "request_payload_too_large", "Payload Too Large");
  assert.equal(s.clientStatus(), 413);
  assert.equal(s.clientHeader("content-type"), "application/json");
  assert.deepEqual(
    s.clientJson(),
    openAiError(
      "The request body is larger than the gateway's buffer allows (request_payload_too_large).",
      "invalid_request_error",
      null,
      "request_too_large",
    ),
  );
});

test("at the memory budget a request is shed with a retryable 503 and counted; a finished one frees room", async () => {
  // 1 MiB of budget at 4 KiB of state per request in flight: 256 requests fit.
  const envoy = new FakeEnvoy();
  const root = await startPlugin({ ...twoModels(), memoryBudgetBytes: 1048576 }, { envoy });
  const open = Array.from({ length: 256 }, () => root.stream());
  const body = chat(QWEN);
  const shed = root.stream();
  shed.sendRequest(postHeaders(body), body);
  assert.equal(shed.localReply?.status, 503);
  assert.deepEqual(
    shed.clientJson(),
    openAiError(
      "The gateway is at its memory budget for requests in flight; please retry shortly.",
      "server_error",
      null,
      "server_overloaded",
    ),
  );
  shed.finish();
  assert.equal(envoy.metrics.value("llm_gateway.requests_shed.reason.memory_budget"), 1);
  open[0]?.finish();
  const next = root.stream();
  next.sendRequest(postHeaders(body), body);
  assert.equal(next.localReply, null, "admitted once a request ended");
  assert.equal(next.requestHeader("x-higress-llm-model"), QWEN);
});

test("a refused configuration keeps the VM's previous one and is counted", async () => {
  const envoy = new FakeEnvoy();
  const vm = await envoy.startVm();
  assert.equal(vm.configure(twoModels()).configured, true);
  const bad = vm.configure({ models: [{ name: QWEN, fallback: ["nope"] }] });
  assert.equal(bad.configured, false);
  assert.equal(envoy.metrics.value("llm_gateway.configurations_refused"), 1);
  assert.equal(envoy.metrics.value("llm_gateway.configurations_applied"), 1);
  assert.ok(
    vm.logs.some((l) => l.level === "error" && l.message.includes('models[0].fallback[0]: unknown model "nope"')),
    vm.logs.map((l) => l.message).join("\n"),
  );
});
