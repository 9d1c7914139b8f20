// Fallback through the real plugin build: the dispatched mechanism (the plugin calls the backup's
// cluster itself and relays its answer), the error naming every failed attempt, the first-byte
// timeout driven by the root's tick, cooldown shared by two VMs (two Envoy workers) through shared
// data, and the attempt stage rewriting the body's model on Envoy's retry.
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
  openAiError,
  postHeaders,
  routeProperties,
  sseEvents,
  twoModels,
} from "./fixtures.ts";

const DISPATCH = { mechanism: "dispatch", cooldown: { failures: 0 } };
const FALLBACK_METRIC = (reason: string, to = GEMMA): string =>
  `route.ai-route-${QWEN}.internal.upstream.${clusterOf(QWEN)}.model.${QWEN}.consumer.none.metric.fallback.to.${to}.reason.${reason}`;

async function plugin(fallback: Record<string, unknown>, envoy = new FakeEnvoy()): Promise<PluginRoot> {
  return startPlugin(twoModels({ fallback }), { envoy });
}

function routed(root: PluginRoot, body: string): HttpStream {
  const s = root.stream({ properties: routeProperties(QWEN) });
  s.sendRequest(postHeaders(body), body);
  return s;
}

function aiLog(s: HttpStream): Record<string, unknown> {
  return JSON.parse(s.state("ai_log") ?? "{}") as Record<string, unknown>;
}

test("dispatch: a primary's 503 is held, the backup's cluster gets the body with its own model, and its answer is relayed", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(DISPATCH, envoy);
  const body = chat(QWEN, { max_tokens: 8 });
  const s = routed(root, body);
  assert.equal(s.upstream.body.toString(), body, "the primary gets the request as sent");
  envoy.advance(40);
  assert.equal(
    s.sendResponseHeaders([
      [":status", "503"],
      ["content-type", "text/plain"],
    ]),
    "Pause",
    "the failure never reaches the client",
  );
  assert.equal(s.sendResponseData("overloaded", true), "Pause");
  assert.equal(s.client.headers, null);
  assert.equal(s.calls.length, 1);
  const call = s.calls[0]!;
  assert.equal(call.cluster, clusterOf(GEMMA));
  assert.equal(call.timeoutMs, 60000);
  assert.equal(call.body.toString(), chat(GEMMA, { max_tokens: 8 }));
  const expectedHeaders = postHeaders(body).filter(([k]) => k !== "content-length");
  assert.deepEqual(call.headers, [...expectedHeaders, ["x-higress-llm-model", GEMMA]]);
  // The primary's answer waits in Envoy's buffer meanwhile: the limit is raised to maxResponseBytes.
  assert.equal(s.state("set_encoder_buffer_limit"), String(10 * 1024 * 1024));

  envoy.advance(60);
  const answer = jsonAnswer(GEMMA, 9, 16);
  s.answerCall(call, {
    status: 200,
    headers: [
      ["content-type", "application/json"],
      ["content-length", "1"],
      ["x-stub", "1"],
    ],
    body: answer,
  });
  s.finish();
  assert.equal(s.localReply?.details, "llm_gateway_fallback");
  assert.equal(s.localReply?.direct, true, "the response had started: the reply bypasses the filter");
  assert.deepEqual(s.client.headers, [
    [":status", "200"],
    ["content-type", "application/json"],
    ["x-stub", "1"],
    ["x-llm-gateway-model", GEMMA],
    ["x-llm-gateway-fallback-from", QWEN],
    ["content-length", String(answer.length)],
  ]);
  assert.equal(s.client.body.toString(), answer);
  assert.equal(envoy.metrics.value(FALLBACK_METRIC("status_503")), 1);
  const log = aiLog(s);
  assert.deepEqual(
    [
      log["model"],
      log["requested_model"],
      log["cluster"],
      log["fallback_from"],
      log["fallback_reason"],
      log["llm_service_duration"],
      log["output_token"],
    ],
    [GEMMA, QWEN, clusterOf(GEMMA), QWEN, "status_503", 100, 16],
  );
  // Usage counted under the backup, on the cluster the plugin called.
  assert.equal(
    envoy.metrics.value(`route.ai-route-${QWEN}.internal.upstream.${clusterOf(GEMMA)}.model.${GEMMA}.consumer.none.metric.output_token`),
    16,
  );
});

test("dispatch: a backup's stream arrives whole; the usage chunk the plugin asked for is cut out", async () => {
  const root = await plugin(DISPATCH);
  const s = routed(root, chat(QWEN, { stream: true }));
  s.sendResponseHeaders([[":status", "500"]]);
  assert.equal(s.calls.length, 1);
  assert.match(s.calls[0]!.body.toString(), /^\{"stream_options":\{"include_usage":true\},"model":"gemma-2-2b",/);
  const { events, usageIndex } = sseEvents(GEMMA, ["a", " b", " c"], { usage: { prompt: 4 } });
  s.answerCall(s.calls[0]!, { status: 200, headers: SSE_HEADERS.slice(1), body: events.join("") });
  s.finish();
  assert.equal(s.client.body.toString(), events.filter((_, i) => i !== usageIndex).join(""));
  assert.equal(s.clientHeader("x-llm-gateway-model"), GEMMA);
  assert.deepEqual([aiLog(s)["output_token"], aiLog(s)["stream_complete"], aiLog(s)["inter_token_ms"]], [3, true, null]);
});

const ALL_FAILED = (attempts: string): unknown =>
  openAiError(`The model and its fallbacks all failed: ${attempts}.`, "server_error", null, "all_attempts_failed");

test("dispatch: primary and backup both failing give one all_attempts_failed error naming both", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin(DISPATCH, envoy);
  const s = routed(root, chat(QWEN));
  s.sendResponseHeaders([[":status", "503"]]);
  s.answerCall(s.calls[0]!, { status: 502, body: "bad gateway" });
  s.finish();
  assert.equal(s.localReplies.length, 1);
  assert.equal(s.localReply?.status, 502);
  assert.equal(s.localReply?.details, "llm_gateway_all_attempts_failed");
  assert.deepEqual(s.clientJson(), ALL_FAILED(`${QWEN} (status 503), ${GEMMA} (status 502)`));
  assert.equal(s.clientHeader("x-llm-gateway-fallback-from"), QWEN);
  // The fallback went to the backup, which failed too: all_attempts_failed says so, under the requested
  // model; each attempt's status counts against its own model and cluster.
  assert.equal(envoy.metrics.value(FALLBACK_METRIC("status_503")), 1);
  const QWEN_LABELS = `route.ai-route-${QWEN}.internal.upstream.${clusterOf(QWEN)}.model.${QWEN}.consumer.none.metric.`;
  assert.equal(envoy.metrics.value(`${QWEN_LABELS}all_attempts_failed`), 1);
  assert.equal(envoy.metrics.value(`${QWEN_LABELS}responses_upstream_5xx`), 1, "the primary's 503");
  assert.equal(envoy.metrics.value(`${QWEN_LABELS}responses_local_5xx`), 1, "the plugin's error, under the requested model");
  const GEMMA_LABELS = `route.ai-route-${QWEN}.internal.upstream.${clusterOf(GEMMA)}.model.${GEMMA}.consumer.none.metric.`;
  assert.equal(envoy.metrics.value(`${GEMMA_LABELS}responses_upstream_5xx`), 1, "the backup's 502, on its cluster");
  assert.deepEqual(aiLog(s)["attempts_failed"], [`${QWEN} (status 503)`, `${GEMMA} (status 502)`]);
  assert.equal(aiLog(s)["model"], GEMMA, "the last model tried");
});

test("dispatch: an unreachable primary (Envoy's own 503) and a failed call: 503 naming both", async () => {
  const root = await plugin(DISPATCH);
  const s = routed(root, chat(QWEN));
  s.sendEnvoyReply(503, "upstream_reset_before_response_started{connection_failure}");
  assert.equal(s.calls.length, 1);
  s.answerCall(s.calls[0]!, null);
  s.finish();
  assert.equal(s.localReply?.status, 503);
  assert.deepEqual(s.clientJson(), ALL_FAILED(`${QWEN} (unreachable), ${GEMMA} (unreachable or timed out)`));
  assert.equal(aiLog(s)["fallback_reason"], "upstream_unreachable");
  assert.deepEqual(aiLog(s)["attempts_failed"], [`${QWEN} (unreachable)`, `${GEMMA} (unreachable or timed out)`]);
});

test("dispatch: a backup cluster Envoy does not know is refused and named", async () => {
  const root = await plugin(DISPATCH, new FakeEnvoy({ clusters: [clusterOf(QWEN)] }));
  const s = routed(root, chat(QWEN));
  assert.equal(s.sendResponseHeaders([[":status", "503"]]), "Pause");
  assert.equal(s.calls.length, 0);
  assert.deepEqual(s.clientJson(), ALL_FAILED(`${QWEN} (status 503), ${GEMMA} (call refused)`));
});

test("dispatch: a client gone before the backup answers: the late answer is dropped, the VM keeps serving", async () => {
  const root = await plugin(DISPATCH);
  const s = routed(root, chat(QWEN));
  s.sendResponseHeaders([[":status", "503"]]);
  const call = s.calls[0]!;
  s.finish(); // the client reset the stream: log, done, delete
  s.answerCall(call, { status: 200, body: jsonAnswer(GEMMA, 1, 1) });
  assert.equal(s.localReplies.length, 0);
  const next = routed(root, chat(QWEN));
  assert.equal(next.requestHeader("x-higress-llm-model"), QWEN);
  assert.deepEqual(
    root.vm.logs.filter((l) => l.level === "error" || l.level === "critical"),
    [],
  );
});

test("dispatch: with maxAttempts 1 the primary's own failure goes to the client", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin({ ...DISPATCH, maxAttempts: 1 }, envoy);
  const s = routed(root, chat(QWEN));
  assert.equal(
    s.sendResponseHeaders([
      [":status", "503"],
      ["content-type", "application/json"],
    ]),
    "Continue",
  );
  s.sendResponseData('{"error":"busy"}', true);
  s.finish();
  assert.equal(s.calls.length, 0);
  assert.equal(s.clientStatus(), 503);
  assert.equal(s.client.body.toString(), '{"error":"busy"}');
  const QWEN_5XX = `route.ai-route-${QWEN}.internal.upstream.${clusterOf(QWEN)}.model.${QWEN}.consumer.none.metric.responses_upstream_5xx`;
  assert.equal(envoy.metrics.value(QWEN_5XX), 1, "counted once, though judged before it was delivered");
  assert.equal(s.clientHeader("x-llm-gateway-fallback-from"), undefined);
});

test("dispatch: a 4xx is the client's problem, not a reason to fall back", async () => {
  const root = await plugin(DISPATCH);
  const s = routed(root, chat(QWEN));
  assert.equal(s.sendResponseHeaders([[":status", "400"]]), "Continue");
  assert.equal(s.calls.length, 0);
});

test("first-byte timeout: the root's tick sends the request to the backup; the primary's late answer is discarded", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin({ ...DISPATCH, firstByteTimeoutMs: 1000 }, envoy);
  const s = routed(root, chat(QWEN));
  envoy.advance(950);
  assert.equal(s.calls.length, 0, "not yet");
  envoy.advance(100);
  assert.equal(s.calls.length, 1, "the tick after the deadline called the backup");
  assert.equal(s.sendResponseHeaders(JSON_HEADERS), "Pause", "the primary's late answer is held");
  assert.equal(s.sendResponseData(jsonAnswer(QWEN, 1, 1), true), "Pause");
  const answer = jsonAnswer(GEMMA, 2, 3);
  s.answerCall(s.calls[0]!, { status: 200, headers: [["content-type", "application/json"]], body: answer });
  s.finish();
  assert.equal(s.client.body.toString(), answer);
  assert.equal(envoy.metrics.value(FALLBACK_METRIC("first_byte_timeout")), 1);
});

test("cooldown is shared by two VMs: failures on both open it, requests skip the primary, a probe closes it", async () => {
  const envoy = new FakeEnvoy();
  const fallback = { mechanism: "dispatch", cooldown: { failures: 2, windowMs: 10000, durationMs: 30000 } };
  const workerA = await plugin(fallback, envoy);
  const workerB = await plugin(fallback, envoy);
  assert.notEqual(workerA.vm, workerB.vm);
  const t0 = envoy.clock.ms;
  const failOnce = (root: PluginRoot): void => {
    const s = routed(root, chat(QWEN));
    s.sendResponseHeaders([[":status", "503"]]);
    s.answerCall(s.calls[0]!, { status: 200, headers: [["content-type", "application/json"]], body: jsonAnswer(GEMMA, 1, 1) });
    s.finish();
    envoy.advance(100);
  };
  failOnce(workerA);
  assert.deepEqual(envoy.sharedData.entries("llm-gateway"), new Map([[`llm-gateway/circuit/${QWEN}`, `1,${t0},0,0`]]));
  failOnce(workerB);
  // Opened by the second failure, at t0 + 100, for 30 s.
  assert.equal(envoy.sharedData.entries("llm-gateway").get(`llm-gateway/circuit/${QWEN}`), `0,${t0},${t0 + 100 + 30000},0`);

  // Worker A now sends qwen's requests straight to gemma, streaming, without a dispatched call.
  const skipped = routed(workerA, chat(QWEN, { stream: true }));
  assert.equal(skipped.requestHeader("x-higress-llm-model"), GEMMA);
  assert.equal(JSON.parse(skipped.upstream.body.toString()).model, GEMMA);
  skipped.sendResponse(SSE_HEADERS, [sseEvents(GEMMA, ["x"], { usage: { prompt: 2 } }).events.join("")]);
  skipped.finish();
  assert.equal(skipped.calls.length, 0);
  assert.equal(skipped.clientHeader("x-llm-gateway-model"), GEMMA);
  assert.equal(skipped.clientHeader("x-llm-gateway-fallback-from"), QWEN);
  assert.equal(envoy.metrics.value(FALLBACK_METRIC("cooldown")), 1);

  // After the cooldown one request (on worker B) probes the primary; while it is out, A still skips.
  envoy.advance(30000);
  const probe = routed(workerB, chat(QWEN));
  assert.equal(probe.requestHeader("x-higress-llm-model"), QWEN);
  const during = routed(workerA, chat(QWEN));
  assert.equal(during.requestHeader("x-higress-llm-model"), GEMMA, "the probe slot is taken");
  during.finish();
  probe.sendResponse(JSON_HEADERS, [jsonAnswer(QWEN, 1, 1)]);
  probe.finish();
  assert.equal(envoy.sharedData.entries("llm-gateway").get(`llm-gateway/circuit/${QWEN}`), "0,0,0,0", "closed by the probe's success");
  const after = routed(workerA, chat(QWEN));
  assert.equal(after.requestHeader("x-higress-llm-model"), QWEN);
});

test("cooldown: two failures further apart than the window do not open it", async () => {
  const envoy = new FakeEnvoy();
  const root = await plugin({ mechanism: "dispatch", cooldown: { failures: 2, windowMs: 1000, durationMs: 30000 } }, envoy);
  for (let i = 0; i < 2; i++) {
    const s = routed(root, chat(QWEN));
    s.sendResponseHeaders([[":status", "503"]]);
    s.answerCall(s.calls[0]!, { status: 200, body: jsonAnswer(GEMMA, 1, 1) });
    s.finish();
    envoy.advance(1500);
  }
  const next = routed(root, chat(QWEN));
  assert.equal(next.requestHeader("x-higress-llm-model"), QWEN);
});

// fallback.mechanism "envoy": the request stage routes and leaves a plan; Envoy's router retries on
// the backup's cluster; the attempt stage (an upstream filter, same VM) rewrites the body's model.
async function stages(envoy = new FakeEnvoy()): Promise<{ request: PluginRoot; attempt: PluginRoot }> {
  const vm = await envoy.startVm();
  const config = twoModels({ fallback: { cooldown: { failures: 0 } } });
  const request = vm.configure(config, { stage: "request" });
  const attempt = vm.configure(config, { stage: "attempt" });
  assert.ok(request.configured && attempt.configured);
  return { request, attempt };
}

// One upstream attempt as Envoy's router makes it: the request as the request stage let it go, with
// x-envoy-attempt-count, through the attempt stage.
function attemptOf(root: PluginRoot, downstream: HttpStream, n: number): HttpStream {
  const a = root.stream({ filterState: downstream.filterState, properties: routeProperties(QWEN) });
  const headers = (downstream.upstream.headers ?? []).filter(([k]) => k !== "x-envoy-attempt-count");
  a.sendRequest([...headers, ["x-envoy-attempt-count", String(n)]], downstream.upstream.body);
  return a;
}

test("attempt stage: on Envoy's retry the body's model becomes the backup's and content-length follows", async () => {
  const envoy = new FakeEnvoy();
  const { request, attempt } = await stages(envoy);
  const body = chat(QWEN, { max_tokens: 3 });
  const s = routed(request, body);
  // The plan: the routed model and where its JSON string lies in the body as sent upstream.
  assert.equal(s.state("llm_gateway_plan"), `${QWEN};9;21;0`);

  const first = attemptOf(attempt, s, 1);
  assert.deepEqual(first.actions("request_headers"), ["Continue"], "the first attempt is the planned one");
  assert.equal(first.upstream.body.toString(), body);
  first.sendResponseHeaders([[":status", "503"]]);
  first.finish();

  const second = attemptOf(attempt, s, 2);
  assert.deepEqual(second.actions("request_headers"), ["Pause"], "held until the body's model is rewritten");
  const rewritten = chat(GEMMA, { max_tokens: 3 });
  assert.equal(second.upstream.body.toString(), rewritten);
  assert.equal(second.upstream.headers?.find(([k]) => k === "content-length")?.[1], String(rewritten.length));
  // Envoy's buffer semantics: one prefix drained and replaced, up to the end of the model string.
  assert.deepEqual(second.bufferEdits, [{ body: "request", start: 0, length: 21, bytes: 21 }]);
  second.sendResponseHeaders(JSON_HEADERS);
  // The attempt stage counts this attempt's status itself and tells the request stage on which cluster
  // (the fake host has no endpoint metadata: Envoy's cluster name).
  assert.deepEqual(second.client.headers, [
    ...JSON_HEADERS,
    ["x-llm-gateway-attempt-cluster", clusterOf(QWEN)],
    ["x-llm-gateway-model", GEMMA],
    ["x-llm-gateway-fallback-from", QWEN],
    ["x-llm-gateway-fallback-reason", "status_503"],
  ]);
  second.finish();

  // The request stage sees the attempt's answer: counted as a fallback, the internal header dropped.
  s.sendResponse(second.client.headers ?? [], [jsonAnswer(GEMMA, 2, 2)]);
  s.finish();
  assert.equal(s.clientHeader("x-llm-gateway-fallback-reason"), undefined);
  assert.equal(s.clientHeader("x-llm-gateway-attempt-cluster"), undefined);
  assert.equal(s.clientHeader("x-llm-gateway-model"), GEMMA);
  assert.equal(envoy.metrics.value(FALLBACK_METRIC("status_503")), 1);
  // Counted once, by the attempt stage, not again by the request stage.
  const GEMMA_2XX = `route.ai-route-${QWEN}.internal.upstream.${clusterOf(QWEN)}.model.${GEMMA}.consumer.none.metric.responses_upstream_2xx`;
  assert.equal(envoy.metrics.value(GEMMA_2XX), 1);
  assert.deepEqual([aiLog(s)["model"], aiLog(s)["fallback_from"]], [GEMMA, QWEN]);
});

test("attempt stage: the host's model metadata wins over the attempt count", async () => {
  const { request, attempt } = await stages();
  const s = routed(request, chat(QWEN));
  const a = attempt.stream({ filterState: s.filterState });
  a.setProperty("xds\0upstream_host_metadata\0filter_metadata\0llm-gateway\0model", GEMMA);
  a.sendRequest([...(s.upstream.headers ?? []), ["x-envoy-attempt-count", "1"]], s.upstream.body);
  assert.equal(JSON.parse(a.upstream.body.toString()).model, GEMMA);
});

test("attempt stage: without a plan in filter state nothing is touched", async () => {
  const { attempt } = await stages();
  const body = chat(QWEN);
  const a = attempt.stream();
  a.sendRequest([...postHeaders(body), ["x-envoy-attempt-count", "2"]], body);
  assert.deepEqual(a.actions("request_headers"), ["Continue"]);
  assert.equal(a.upstream.body.toString(), body);
  assert.deepEqual(a.headerEdits, []);
});

test("envoy mechanism: every attempt failing gives the error naming each, from the attempt stage's journal", async () => {
  const { request, attempt } = await stages();
  const s = routed(request, chat(QWEN));
  for (const n of [1, 2]) {
    const a = attemptOf(attempt, s, n);
    a.sendResponseHeaders([[":status", "503"]]);
    a.finish();
  }
  // The router writes the attempt count into the request's headers; the final 503 reaches the filter.
  s.request.push(["x-envoy-attempt-count", "2"]);
  assert.equal(s.sendResponseHeaders([[":status", "503"]]), "Pause");
  s.finish();
  assert.deepEqual(s.clientJson(), ALL_FAILED(`${QWEN} (status 503), ${GEMMA} (status 503)`));
  assert.equal(s.clientStatus(), 503);
});

test("attempt stage: a primary cooling down is skipped, and the plan names the backup the request goes to", async () => {
  const envoy = new FakeEnvoy();
  const vm = await envoy.startVm();
  const request = vm.configure(twoModels({ fallback: { cooldown: { failures: 3 } } }), { stage: "request" });
  // An open circuit for QWEN's route (failures, window start, open until, probe until).
  const until = envoy.clock.ms + 60000;
  envoy.sharedData.set("llm-gateway", `llm-gateway/circuit/${QWEN}`, Buffer.from(`0,0,${until},0`), 0);
  const s = routed(request, chat(QWEN, { max_tokens: 3 }));
  assert.equal(s.upstream.headers?.find(([k]) => k === "x-higress-llm-model")?.[1], GEMMA, "routed straight to the backup");
  assert.match(s.state("llm_gateway_plan") ?? "", new RegExp(`^${GEMMA};`), "the plan is the backup's");
});
