// The response side through the real plugin build: usage counted from JSON and SSE answers, the usage
// chunk the plugin asked for removed from what the client receives (the real observer, at every split
// point of a recorded stream), cut streams signalled, the ai_log access-log field and the metrics with
// their labels and histograms. The clock is the host's: durations are exact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeEnvoy, startPlugin, type HttpStream, type PluginRoot } from "./proxy-wasm-host.ts";
import {
  GEMMA,
  JSON_HEADERS,
  QWEN,
  SSE_HEADERS,
  chat,
  clusterOf,
  jsonAnswer,
  postHeaders,
  routeProperties,
  sseEvents,
  twoModels,
} from "./fixtures.ts";

const CUT_EVENT =
  'data: {"error":{"message":"The model server ended the stream before the answer was complete.","type":"server_error","param":null,"code":"stream_incomplete"}}\n\n';
const TOKENS = ["alpha", " bravo", " charlie", " délta", " echo"];
const PREFIX = `route.ai-route-${QWEN}.internal.upstream.${clusterOf(QWEN)}.model.${QWEN}.consumer.none.metric.`;

// An auth plugin in front fills x-mse-consumer on these routes: the consumer label is trusted.
async function plugin(envoy = new FakeEnvoy()): Promise<PluginRoot> {
  return startPlugin(twoModels({ fallback: { enabled: false }, trustConsumerHeader: true }), { envoy });
}

// A routed request for QWEN; `body` decides stream or not.
function routed(root: PluginRoot, body: string, extra: [string, string][] = []): HttpStream {
  const s = root.stream({ properties: routeProperties(QWEN) });
  s.sendRequest(postHeaders(body, "/v1/chat/completions", extra), body);
  assert.equal(s.requestHeader("x-higress-llm-model"), QWEN);
  return s;
}

function aiLog(s: HttpStream): Record<string, unknown> {
  const text = s.state("ai_log");
  assert.ok(text !== undefined, "ai_log was set");
  return JSON.parse(text) as Record<string, unknown>;
}

test("the usage chunk the plugin asked for is removed at every split point of the stream; usage is counted each time", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  const { events, usageIndex } = sseEvents(QWEN, TOKENS, { usage: { prompt: 11 } });
  const whole = Buffer.from(events.join(""));
  const expected = Buffer.from(events.filter((_, i) => i !== usageIndex).join(""));
  const body = chat(QWEN, { stream: true });
  let requests = 0;
  for (let cut = 0; cut <= whole.length; cut++) {
    const s = routed(root, body);
    s.sendResponseHeaders(SSE_HEADERS);
    s.sendResponseData(whole.subarray(0, cut), false);
    s.sendResponseData(whole.subarray(cut), true);
    s.finish();
    requests++;
    assert.ok(s.client.body.equals(expected), `split at byte ${cut}: the client got\n${s.client.body.toString()}`);
    const log = aiLog(s);
    assert.deepEqual(
      [log["input_token"], log["output_token"], log["total_token"], log["usage_estimated"], log["stream_complete"]],
      [11, TOKENS.length, 11 + TOKENS.length, false, true],
      `split at byte ${cut}`,
    );
  }
  assert.equal(envoy.metrics.value(`${PREFIX}output_token`), requests * TOKENS.length);
  assert.equal(envoy.metrics.value(`${PREFIX}input_token`), requests * 11);
  assert.equal(envoy.metrics.value(`${PREFIX}usage_estimated`), 0);
  assert.equal(envoy.metrics.value(`${PREFIX}stream_incomplete`), 0);
});

test("fed one byte per callback, the client still gets the stream minus the usage chunk", async () => {
  const root = await plugin();
  const { events, usageIndex } = sseEvents(QWEN, TOKENS, { usage: { prompt: 11 } });
  const whole = Buffer.from(events.join(""));
  const s = routed(root, chat(QWEN, { stream: true }));
  s.sendResponseHeaders(SSE_HEADERS);
  for (let i = 0; i < whole.length; i++) s.sendResponseData(whole.subarray(i, i + 1), i === whole.length - 1);
  s.finish();
  assert.equal(s.client.body.toString(), events.filter((_, i) => i !== usageIndex).join(""));
  assert.equal(aiLog(s)["output_token"], TOKENS.length);
  // Bytes of an incomplete event are held back: some callbacks send nothing, none sends a partial
  // usage event.
  assert.ok(s.client.chunks.some((c) => c.length === 0));
  assert.ok(s.client.chunks.every((c) => !c.toString().includes('"choices":[]')));
});

test("a client that asked for usage gets the usage chunk, byte for byte", async () => {
  const root = await plugin();
  const { events } = sseEvents(QWEN, TOKENS, { usage: { prompt: 11 } });
  const whole = events.join("");
  const s = routed(root, chat(QWEN, { stream: true, stream_options: { include_usage: true } }));
  s.sendResponse(SSE_HEADERS, [whole.slice(0, 100), whole.slice(100)]);
  s.finish();
  assert.equal(s.client.body.toString(), whole);
  assert.deepEqual(s.bufferEdits, [], "the response body was not touched");
  assert.equal(aiLog(s)["output_token"], TOKENS.length);
});

test("response headers: the model that answered is named, and a stream loses its content-length", async () => {
  const root = await plugin();
  const s = routed(root, chat(QWEN, { stream: true }));
  assert.equal(s.sendResponseHeaders([...SSE_HEADERS, ["content-length", "999"]]), "Continue");
  assert.deepEqual(s.client.headers, [...SSE_HEADERS, ["x-llm-gateway-model", QWEN]]);
  const j = routed(root, chat(QWEN));
  j.sendResponseHeaders([...JSON_HEADERS, ["content-length", "10"]]);
  assert.deepEqual(j.client.headers, [...JSON_HEADERS, ["content-length", "10"], ["x-llm-gateway-model", QWEN]]);
});

for (const lastChunk of ["with the last event", "with an empty final chunk"]) {
  test(`a 200 stream that ends without [DONE] (${lastChunk}) is told to the client and counted`, async () => {
    const envoy = new FakeEnvoy();
    const root = await plugin(envoy);
    const { events } = sseEvents(QWEN, TOKENS.slice(0, 3), { usage: null, done: false });
    const s = routed(root, chat(QWEN, { stream: true }));
    s.sendResponseHeaders(SSE_HEADERS);
    const text = events.join("");
    if (lastChunk === "with the last event") {
      s.sendResponseData(text, true);
    } else {
      s.sendResponseData(text, false);
      s.sendResponseData("", true);
    }
    s.finish();
    assert.equal(s.client.body.toString(), text + CUT_EVENT);
    const log = aiLog(s);
    assert.equal(log["stream_complete"], false);
    assert.equal(log["usage_estimated"], true, "no usage came: estimated");
    assert.equal(log["output_token"], 3, "one token per content event");
    assert.equal(envoy.metrics.value(`${PREFIX}stream_incomplete`), 1);
    assert.equal(envoy.metrics.value(`${PREFIX}usage_estimated`), 1);
  });
}

// Found with this host: a stream that ended cleanly in the middle of an event got the error event glued
// to the partial one ("data: {\"id\":\"x\",\"choidata: {\"error\"…"), so an SSE client parsed one
// malformed event and never learned the stream was cut. The partial event is now terminated first.
test("a stream cut in the middle of an event still ends with a parseable stream_incomplete event", async () => {
  const root = await plugin();
  const { events } = sseEvents(QWEN, TOKENS.slice(0, 2), { usage: null, done: false });
  const s = routed(root, chat(QWEN, { stream: true }));
  s.sendResponse(SSE_HEADERS, [events.join("") + 'data: {"id":"x","choi']);
  s.finish();
  const parsed = s.client.body
    .toString()
    .split("\n\n")
    .filter((e) => e.length > 0);
  const last = parsed.at(-1) ?? "";
  assert.ok(last.startsWith("data: "), last);
  const data = JSON.parse(last.slice(6)) as { error?: { code?: string } };
  assert.equal(data.error?.code, "stream_incomplete");
});

test("a non-200 stream or one with [DONE] gets nothing appended", async () => {
  const root = await plugin();
  const { events } = sseEvents(QWEN, TOKENS, { usage: null });
  const ok = routed(root, chat(QWEN, { stream: true }));
  ok.sendResponse(SSE_HEADERS, [events.join("")]);
  assert.equal(ok.client.body.toString(), events.join(""));
  const failed = routed(root, chat(QWEN, { stream: true }));
  failed.sendResponse(
    [
      [":status", "500"],
      ["content-type", "text/event-stream"],
    ],
    ["data: {}\n\n"],
  );
  assert.equal(failed.client.body.toString(), "data: {}\n\n");
});

test("ai_log and the metrics of a JSON answer, with exact durations from the host's clock", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  const s = routed(root, chat(QWEN), [["x-mse-consumer", "team-a"]]);
  envoy.advance(120);
  s.sendResponseHeaders(JSON_HEADERS);
  envoy.advance(30);
  const answer = jsonAnswer(QWEN, 17, 40);
  s.sendResponseData(answer, true);
  envoy.advance(5);
  s.finish();
  assert.equal(s.client.body.toString(), answer);
  assert.deepEqual(aiLog(s), {
    model: QWEN,
    requested_model: QWEN,
    served_model: QWEN,
    route: `ai-route-${QWEN}.internal`,
    cluster: clusterOf(QWEN),
    consumer: "team-a",
    response_type: "normal",
    status: 200,
    input_token: 17,
    output_token: 40,
    total_token: 57,
    cached_token: null,
    reasoning_token: null,
    usage_estimated: false,
    llm_first_token_duration: null,
    first_answer_token_ms: null,
    llm_service_duration: 150,
    inter_token_ms: null,
    output_tokens_per_second: 266,
    stream_complete: null,
  });
  const p = `route.ai-route-${QWEN}.internal.upstream.${clusterOf(QWEN)}.model.${QWEN}.consumer.team-a.metric.`;
  const m = envoy.metrics;
  assert.deepEqual([m.value(`${p}input_token`), m.value(`${p}output_token`), m.value(`${p}total_token`)], [17, 40, 57]);
  assert.deepEqual(
    [m.value(`${p}llm_service_duration`), m.value(`${p}llm_duration_count`), m.value(`${p}llm_stream_duration_count`)],
    [150, 1, 0],
  );
  assert.equal(m.value(`${p}responses_upstream_2xx`), 1);
  assert.deepEqual(m.samples(`${p}duration_ms`), [150]);
  assert.deepEqual(m.samples(`${p}input_tokens`), [17]);
  assert.deepEqual(m.samples(`${p}output_tokens`), [40]);
  assert.deepEqual(m.samples(`${p}output_tokens_per_second`), [266]);
  assert.deepEqual(m.samples(`${p}first_token_ms`), [], "no TTFT for a JSON answer");
  assert.equal(m.get(`${p}duration_ms`)?.kind, "histogram");
  assert.equal(m.get(`${p}input_token`)?.kind, "counter");
});

test("a stream's TTFT, inter-token latency and duration follow the clock", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  const { events, usageIndex } = sseEvents(QWEN, TOKENS, { usage: { prompt: 11 } });
  const s = routed(root, chat(QWEN, { stream: true }));
  envoy.advance(50);
  s.sendResponseHeaders(SSE_HEADERS);
  s.sendResponseData(events[0] ?? "", false); // the role chunk: no content yet
  envoy.advance(150);
  events.slice(1).forEach((e, i) => {
    s.sendResponseData(e, i === events.length - 2);
    envoy.advance(10);
  });
  s.finish();
  // First content at 200 ms; the end at 200 + 10 × (events after the first token) ms.
  const end = 200 + 10 * (events.length - 2);
  const log = aiLog(s);
  assert.equal(log["llm_first_token_duration"], 200);
  assert.equal(log["llm_service_duration"], end);
  assert.equal(log["inter_token_ms"], Math.floor((end - 200) / (TOKENS.length - 1)));
  assert.equal(log["response_type"], "stream");
  assert.equal(envoy.metrics.value(`${PREFIX}llm_first_token_duration`), 200);
  assert.equal(envoy.metrics.value(`${PREFIX}llm_stream_duration_count`), 1);
  assert.deepEqual(envoy.metrics.samples(`${PREFIX}first_token_ms`), [200]);
  assert.deepEqual(envoy.metrics.samples(`${PREFIX}inter_token_ms`), [Math.floor((end - 200) / (TOKENS.length - 1))]);
  assert.equal(s.client.body.toString(), events.filter((_, i) => i !== usageIndex).join(""));
});

test("metric labels: upstream Envoy's xds names, and consumer and model values that cannot forge labels", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin({ models: [{ name: "qwen*", route: QWEN, upstreamModel: QWEN }], trustConsumerHeader: true }, { envoy });
  const body = chat("qwen.metric.x");
  const s = root.stream({ properties: { "xds\0route_name": "r-upstream", "xds\0cluster_name": "c.upstream" } });
  s.sendRequest(postHeaders(body, "/v1/chat/completions", [["x-mse-consumer", "evil.metric.input_token.consumer.x"]]), body);
  s.sendResponse(JSON_HEADERS, [jsonAnswer(QWEN, 3, 4)]);
  s.finish();
  assert.equal(
    envoy.metrics.value(
      "route.r-upstream.upstream.c.upstream.model.qwen_metric_x.consumer.evil_metric_input_token_consumer_x.metric.input_token",
    ),
    3,
  );
});

test("a JSON answer without usage is estimated, and an error answer is not", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  const ok = routed(root, chat(QWEN));
  const content = "The answer, in about forty bytes of text.";
  const answer = JSON.stringify({ model: QWEN, choices: [{ message: { role: "assistant", content } }] });
  ok.sendResponse(JSON_HEADERS, [answer]);
  ok.finish();
  const log = aiLog(ok);
  assert.equal(log["usage_estimated"], true);
  // From the generated text only, not the JSON around it.
  assert.equal(log["output_token"], Math.ceil(Buffer.byteLength(content) / 4));
  const bad = routed(root, chat(QWEN));
  bad.sendResponse(
    [
      [":status", "400"],
      ["content-type", "application/json"],
    ],
    ['{"error":{}}'],
  );
  bad.finish();
  assert.equal(aiLog(bad)["usage_estimated"], false);
  assert.equal(aiLog(bad)["input_token"], null);
  assert.equal(envoy.metrics.value(`${PREFIX}responses_upstream_4xx`), 1);
  assert.equal(envoy.metrics.value(`${PREFIX}usage_estimated`), 1, "only the 200 was estimated");
});

test("a JSON answer in several chunks is read whole and passed unchanged", async () => {
  const root = await plugin();
  const answer = jsonAnswer(QWEN, 5, 6);
  const s = routed(root, chat(QWEN));
  s.sendResponse(JSON_HEADERS, [answer.slice(0, 10), answer.slice(10, 200), answer.slice(200)]);
  s.finish();
  assert.equal(s.client.body.toString(), answer);
  assert.deepEqual([aiLog(s)["input_token"], aiLog(s)["output_token"]], [5, 6]);
});

test("the VM's memory gauges are written when a request ends", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  const s = routed(root, chat(QWEN));
  s.sendResponse(JSON_HEADERS, [jsonAnswer(QWEN, 1, 1)]);
  s.finish();
  const bytes = envoy.metrics.value("llm_gateway.vm_memory_bytes");
  assert.equal(envoy.metrics.get("llm_gateway.vm_memory_bytes")?.kind, "gauge");
  assert.ok(bytes > 0 && bytes % 65536 === 0 && bytes <= root.vm.memoryBytes(), `whole Wasm pages: ${bytes}`);
  assert.ok(envoy.metrics.value("llm_gateway.memory_budget_peak_bytes") >= 4096, "at least one request's state was charged");
});

test("GEMMA is untouched by QWEN's traffic (labels per model)", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  routed(root, chat(QWEN)).finish();
  assert.deepEqual(
    [...envoy.metrics.endingWith(".metric.responses_upstream_2xx").keys()].filter((n) => n.includes(GEMMA)),
    [],
  );
});

test("a stream the client leaves (or the upstream cuts) counts the content events that went through, flagged estimated", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  const s = routed(root, chat(QWEN, { stream: true }));
  const { events } = sseEvents(QWEN, ["a", " b", " c", " d"], { usage: { prompt: 5 } });
  s.sendResponseHeaders(SSE_HEADERS);
  s.sendResponseData(events.slice(0, 3).join(""), false); // the role chunk and two tokens, then nothing
  s.finish();
  const log = aiLog(s);
  assert.deepEqual([log["output_token"], log["usage_estimated"], log["stream_complete"]], [2, true, false]);
  assert.equal(envoy.metrics.value(`${PREFIX}output_token`), 2);
  assert.equal(envoy.metrics.value(`${PREFIX}usage_estimated`), 1);
  assert.equal(envoy.metrics.value(`${PREFIX}stream_incomplete`), 1);
});

test("reasoning: reasoning tokens counted; the first token and the first answer token timed apart", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(envoy);
  const s = routed(root, chat(QWEN, { stream: true }));
  const event = (delta: Record<string, unknown>): string => `data: ${JSON.stringify({ model: QWEN, choices: [{ index: 0, delta }] })}\n\n`;
  s.sendResponseHeaders(SSE_HEADERS);
  envoy.advance(40);
  s.sendResponseData(event({ role: "assistant", content: "" }) + event({ reasoning_content: "Let me think" }), false);
  envoy.advance(60);
  s.sendResponseData(event({ content: "Four." }), false);
  const usage = { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21, completion_tokens_details: { reasoning_tokens: 11 } };
  s.sendResponseData(`data: ${JSON.stringify({ model: QWEN, choices: [], usage })}\n\ndata: [DONE]\n\n`, true);
  s.finish();
  const log = aiLog(s);
  assert.deepEqual([log["reasoning_token"], log["llm_first_token_duration"], log["first_answer_token_ms"]], [11, 40, 100]);
  assert.equal(envoy.metrics.value(`${PREFIX}reasoning_token`), 11);
  assert.deepEqual(envoy.metrics.samples(`${PREFIX}first_token_ms`), [40]);
  assert.deepEqual(envoy.metrics.samples(`${PREFIX}first_answer_token_ms`), [100]);
});

test("OpenTelemetry GenAI histograms: operation, requested and served model as labels, durations in ms", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin({ models: [{ name: "chat-*", route: QWEN }] }, { envoy });
  const body = chat("chat-small");
  const s = root.stream({ properties: { route_name: "r", cluster_name: "c" } });
  s.sendRequest(postHeaders(body, "/v1/chat/completions"), body);
  envoy.advance(250);
  s.sendResponse(JSON_HEADERS, [jsonAnswer("Qwen/Qwen2.5-1.5B", 17, 40)]);
  s.finish();
  const g = "gen_ai.operation.chat.request_model.chat-small.response_model.Qwen/Qwen2_5-1_5B.";
  assert.deepEqual(envoy.metrics.samples(`${g}token_type.input.client.token.usage`), [17]);
  assert.deepEqual(envoy.metrics.samples(`${g}token_type.output.client.token.usage`), [40]);
  assert.deepEqual(envoy.metrics.samples(`${g}server.request.duration.milliseconds`), [250]);
  assert.deepEqual(envoy.metrics.samples(`${g}server.time_to_first_token.milliseconds`), [], "not a stream");
});

test("the consumer header is a label only where the configuration trusts it", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(twoModels({ fallback: { enabled: false } }), { envoy });
  const s = routed(root, chat(QWEN), [["x-mse-consumer", "forged"]]);
  s.sendResponse(JSON_HEADERS, [jsonAnswer(QWEN, 1, 1)]);
  s.finish();
  assert.equal(aiLog(s)["consumer"], "none");
  assert.equal(envoy.metrics.value(`${PREFIX}input_token`), 1);
  assert.equal(envoy.metrics.names().filter((n) => n.includes("forged")).length, 0);
});
