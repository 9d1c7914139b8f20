// Routing by the body's `model` through a real Envoy: the seed's two models, the OpenAI client,
// streaming without buffering, and the routing header a client cannot forge.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startSeed, post, backend, type Seed } from "../harness/seed.ts";
import { expectedText } from "../backends/tokens.ts";

let seed: Seed;
let openai: OpenAI;

before(async () => {
  seed = await startSeed({
    pluginConfig: {
      models: [
        { name: "qwen2-1-5b", fallback: ["gemma-2-2b"] },
        { name: "gemma-2-2b" },
        // An alias: clients say "gemma", the upstream serves "gemma-2-2b".
        { name: "gemma", route: "gemma-2-2b", upstreamModel: "gemma-2-2b" },
        // A pattern: any "qwen2-…" name goes to the qwen route and is served as qwen2-1-5b.
        { name: "qwen2-*", route: "qwen2-1-5b", upstreamModel: "qwen2-1-5b" },
      ],
    },
  });
  openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(async () => {
  await seed?.stop();
});

const chat = (model: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model,
  messages: [{ role: "user", content: "hello there" }],
  ...extra,
});

test("each model is answered by its own backend", async () => {
  for (const model of ["qwen2-1-5b", "gemma-2-2b"]) {
    const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat(model));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("x-stub-model"), model);
    const body = (await r.json()) as { model: string; choices: { message: { content: string } }[] };
    assert.equal(body.model, model);
    assert.equal(body.choices[0]?.message.content, expectedText(model, 16));
  }
});

test("the OpenAI client gets completions from the right backend, plain and streamed", async () => {
  const plain = await openai.chat.completions.create({ model: "gemma-2-2b", messages: [{ role: "user", content: "hi" }] });
  assert.equal(plain.model, "gemma-2-2b");
  assert.equal(plain.choices[0]?.message.content, expectedText("gemma-2-2b", 16));

  const stream = await openai.chat.completions.create({ model: "qwen2-1-5b", messages: [{ role: "user", content: "hi" }], stream: true });
  let text = "";
  for await (const chunk of stream) {
    assert.equal(chunk.model, "qwen2-1-5b");
    text += chunk.choices[0]?.delta.content ?? "";
  }
  assert.equal(text, expectedText("qwen2-1-5b", 16));

  const completion = await openai.completions.create({ model: "gemma-2-2b", prompt: "once upon a time", max_tokens: 5 });
  assert.equal(completion.model, "gemma-2-2b");
  assert.equal(completion.choices[0]?.text, expectedText("gemma-2-2b", 5));
});

test("a streamed answer reaches the client chunk by chunk, not when the backend finishes", async () => {
  // 10 tokens, 150 ms apart: the whole answer takes ≥ 1.35 s at the backend.
  const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b", { stream: true, max_tokens: 10 }), {
    "x-stub-token-interval-ms": "150",
  });
  assert.equal(r.status, 200);
  const reader = r.body!.getReader();
  const start = Date.now();
  let firstAt = -1;
  let text = "";
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (firstAt < 0) firstAt = Date.now() - start;
    text += decoder.decode(value, { stream: true });
  }
  const total = Date.now() - start;
  assert.ok(text.includes("data: [DONE]"), "stream completed");
  // The first bytes came while the backend was still generating (9 more tokens × 150 ms to go).
  assert.ok(total - firstAt >= 1000, `first chunk at ${firstAt} ms, end at ${total} ms: the response was buffered`);
});

test("a routing header sent by the client is replaced by the body's model", async () => {
  const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b"), { "x-higress-llm-model": "gemma-2-2b" });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("x-stub-model"), "qwen2-1-5b");
});

test("a routing header sent by the client on any other path is removed, so it reaches no AI route", async () => {
  const r = await fetch(`${seed.gateway.url}/health`, { headers: { "x-higress-llm-model": "gemma-2-2b" } });
  assert.equal(r.status, 404);
  assert.equal(((await r.json()) as { error: { code: string } }).error.code, "no_route");
  assert.equal(backend(seed, "gemma-2-2b").hits(), backend(seed, "gemma-2-2b").hits()); // no hit path for /health
});

test("an alias is rewritten in place to the name the upstream serves", async () => {
  const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("gemma", { temperature: 0.5 }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("x-stub-model"), "gemma-2-2b");
  const stats = (await (await fetch(`${backend(seed, "gemma-2-2b").url}/stub/stats`)).json()) as {
    lastRequest: { body: unknown; headers: Record<string, string> };
  };
  assert.deepEqual(stats.lastRequest.body, chat("gemma-2-2b", { temperature: 0.5 }));
  assert.equal(stats.lastRequest.headers["x-higress-llm-model"], "gemma-2-2b");
});

test("a prefix pattern routes every matching name", async () => {
  const r = await post(`${seed.gateway.url}/v1/completions`, { model: "qwen2-7b-instruct", prompt: "x", max_tokens: 2 });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("x-stub-model"), "qwen2-1-5b");
});

test("GET /v1/models lists the configured models in OpenAI's format", async () => {
  const r = await fetch(`${seed.gateway.url}/v1/models`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "application/json");
  const body = (await r.json()) as { object: string; data: { id: string; object: string; owned_by: string }[] };
  assert.equal(body.object, "list");
  assert.deepEqual(
    body.data.map((m) => m.id),
    ["qwen2-1-5b", "gemma-2-2b", "gemma"],
  );
  assert.ok(body.data.every((m) => m.object === "model" && m.owned_by === "llm-gateway"));
  const listed = await openai.models.list();
  assert.deepEqual(
    listed.data.map((m) => m.id),
    ["qwen2-1-5b", "gemma-2-2b", "gemma"],
  );
});

test("other methods on routed paths pass through untouched", async () => {
  const r = await fetch(`${seed.gateway.url}/v1/chat/completions`, { method: "GET" });
  assert.equal(r.status, 404);
  assert.equal(((await r.json()) as { error: { code: string } }).error.code, "no_route");
});

test("GET /v1/models/{id}: the official client's models.retrieve gets the model, or a 404 model_not_found", async () => {
  const m = await openai.models.retrieve("gemma-2-2b");
  assert.equal(m.id, "gemma-2-2b");
  assert.equal(m.object, "model");
  // A name a pattern serves, percent-encoded by the client as it must be.
  const viaPattern = await openai.models.retrieve("qwen2-7b/instruct");
  assert.equal(viaPattern.id, "qwen2-7b/instruct");
  await assert.rejects(
    openai.models.retrieve("llama-3"),
    (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found" && /'llama-3'/.test(e.message),
  );
  const raw = await fetch(`${seed.gateway.url}/v1/models/%ZZ`);
  assert.equal(raw.status, 404);
  assert.equal(((await raw.json()) as { error: { code: string } }).error.code, "model_not_found");
});

test("a model name with a control character (a trailing newline) is 400 invalid_value, not an unknown model", async () => {
  for (const name of ["gemma-2-2b\n", "gemma\u0000", "qwen2-1-5b\u007f"]) {
    const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat(name));
    assert.equal(r.status, 400, JSON.stringify(name));
    const body = (await r.json()) as { error: { code: string; param: string } };
    assert.equal(body.error.code, "invalid_value");
    assert.equal(body.error.param, "model");
  }
});
