// Spec for the vLLM stub: wire shapes, usage, errors, every fault, control plane, lifecycle, CLI.
// Run: node --import tsx --test tests/backends/vllm-stub.test.ts

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { plannedCompletion } from "./requests.ts";
import { countPromptTokens, expectedText, tokenTexts } from "./tokens.ts";
import { startStub, type StubHandle } from "./vllm-stub.ts";

const MODEL = "qwen2-1-5b";
const TOKENS = 5;
const CHAT_PATH = "/v1/chat/completions";
const COMPLETIONS_PATH = "/v1/completions";
const MESSAGES = [
  { role: "system", content: "be brief" },
  { role: "user", content: [{ type: "text", text: "hello there  world" }] },
];
const MESSAGES_PROMPT_TOKENS = 5;

type Json = Record<string, unknown>;

function post(stub: StubHandle, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(stub.url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function json(res: Response): Promise<Json> {
  return (await res.json()) as Json;
}

interface SseResult {
  /** Raw `data:` payloads, `[DONE]` included. */
  data: string[];
  /** Arrival time of each event, ms after the request was sent. */
  at: number[];
  error: unknown;
}

async function readSse(res: Response, startedAt: number): Promise<SseResult> {
  const out: SseResult = { data: [], at: [], error: undefined };
  if (res.body === null) return out;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf("\n\n")) !== -1) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        assert.ok(event.startsWith("data: "), `not an SSE data event: ${event}`);
        out.data.push(event.slice("data: ".length));
        out.at.push(Date.now() - startedAt);
      }
    }
  } catch (error) {
    out.error = error;
  }
  assert.equal(buffered, "", "stream ended inside an event");
  return out;
}

async function stream(
  stub: StubHandle,
  path: string,
  body: Json,
  headers: Record<string, string> = {},
): Promise<SseResult & { res: Response; headersAt: number }> {
  const startedAt = Date.now();
  const res = await post(stub, path, { ...body, stream: true }, headers);
  const headersAt = Date.now() - startedAt;
  return { res, headersAt, ...(await readSse(res, startedAt)) };
}

function chunks(result: SseResult): Json[] {
  return result.data.filter((d) => d !== "[DONE]").map((d) => JSON.parse(d) as Json);
}

function firstChoice(chunk: Json): Json {
  const choices = chunk["choices"] as Json[];
  const choice = choices[0];
  assert.ok(choice !== undefined, "chunk has no choice");
  return choice;
}

async function stats(stub: StubHandle): Promise<Json> {
  return json(await fetch(stub.url + "/stub/stats"));
}

const NULL_USAGE_DETAILS = { prompt_tokens_details: null, completion_tokens_details: null };

describe("pure helpers", () => {
  it("counts prompt tokens as whitespace-separated words, at least 1", () => {
    const cases: [Parameters<typeof countPromptTokens>[0], unknown, number][] = [
      ["chat", { messages: MESSAGES }, MESSAGES_PROMPT_TOKENS],
      ["chat", { messages: [{ role: "user", content: "" }] }, 1],
      [
        "chat",
        {
          messages: [
            {
              role: "user",
              content: [
                { type: "image_url", image_url: {} },
                { type: "text", text: "a b" },
              ],
            },
          ],
        },
        2,
      ],
      ["completions", { prompt: " one two\nthree " }, 3],
      ["completions", { prompt: [11, 12, 13, 14] }, 4],
      ["completions", { prompt: ["a b"] }, 2],
      ["completions", {}, 1],
    ];
    for (const [endpoint, body, expected] of cases) {
      assert.equal(countPromptTokens(endpoint, body), expected, JSON.stringify(body));
    }
  });

  it("generates the model name first, then model-specific words", () => {
    assert.deepEqual(tokenTexts("m", 0), []);
    assert.equal(tokenTexts(MODEL, 3)[0], MODEL);
    assert.match(expectedText(MODEL, 3), /^qwen2-1-5b \w+ \w+$/);
    assert.notEqual(expectedText("model-a", 6).slice(7), expectedText("model-b", 6).slice(7));
  });

  it('stops with "length" when max_tokens is reached, else with "stop"', () => {
    assert.deepEqual(plannedCompletion(16, undefined), { tokens: 16, finishReason: "stop" });
    assert.deepEqual(plannedCompletion(16, 3), { tokens: 3, finishReason: "length" });
    assert.deepEqual(plannedCompletion(16, 16), { tokens: 16, finishReason: "length" });
    assert.deepEqual(plannedCompletion(4, 16), { tokens: 4, finishReason: "stop" });
  });
});

describe("vllm stub", () => {
  let stub: StubHandle;
  before(async () => {
    stub = await startStub({ model: MODEL, completionTokens: TOKENS });
  });
  after(() => stub.close());

  describe("plain endpoints", () => {
    it("GET /health answers 200 with an empty body", async () => {
      const res = await fetch(stub.url + "/health");
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "");
    });

    it("GET /v1/models lists the served model like vLLM", async () => {
      const body = await json(await fetch(stub.url + "/v1/models"));
      assert.deepEqual(Object.keys(body), ["object", "data"]);
      assert.equal(body["object"], "list");
      const [card] = body["data"] as Json[];
      assert.ok(card !== undefined);
      assert.deepEqual(Object.keys(card), ["id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"]);
      assert.equal(card["id"], MODEL);
      assert.equal(card["object"], "model");
      assert.equal(card["owned_by"], "vllm");
      assert.equal(card["parent"], null);
      assert.equal(card["max_model_len"], 32768);
      const [perm] = card["permission"] as Json[];
      assert.ok(perm !== undefined);
      assert.match(String(perm["id"]), /^modelperm-[0-9a-f]{32}$/);
      assert.equal(perm["object"], "model_permission");
      assert.equal(perm["organization"], "*");
    });

    it("unknown paths answer FastAPI-style 404", async () => {
      const res = await fetch(stub.url + "/v1/nothing");
      assert.equal(res.status, 404);
      assert.deepEqual(await res.json(), { detail: "Not Found" });
    });
  });

  describe("non-streaming", () => {
    it("chat completion has vLLM fields, text and usage", async () => {
      const before = Math.floor(Date.now() / 1000);
      const res = await post(stub, CHAT_PATH, { model: MODEL, messages: MESSAGES });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.equal(res.headers.get("x-stub-model"), MODEL);
      const body = await json(res);
      assert.deepEqual(Object.keys(body), [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "service_tier",
        "system_fingerprint",
        "usage",
        "prompt_logprobs",
        "prompt_token_ids",
        "prompt_text",
        "kv_transfer_params",
        "ec_transfer_params",
        "metrics",
      ]);
      assert.match(String(body["id"]), /^chatcmpl-[0-9a-f]{32}$/);
      assert.equal(body["object"], "chat.completion");
      assert.ok(Number(body["created"]) >= before && Number(body["created"]) <= before + 2);
      assert.equal(body["model"], MODEL);
      assert.deepEqual(body["choices"], [
        {
          index: 0,
          message: {
            role: "assistant",
            content: expectedText(MODEL, TOKENS),
            refusal: null,
            annotations: null,
            audio: null,
            function_call: null,
            reasoning: null,
          },
          logprobs: null,
          finish_reason: "stop",
          stop_reason: null,
          token_ids: null,
          routed_experts: null,
        },
      ]);
      assert.deepEqual(body["usage"], {
        prompt_tokens: MESSAGES_PROMPT_TOKENS,
        total_tokens: MESSAGES_PROMPT_TOKENS + TOKENS,
        completion_tokens: TOKENS,
        ...NULL_USAGE_DETAILS,
      });
    });

    it('chat honours max_completion_tokens over max_tokens and reports "length"', async () => {
      const body = await json(await post(stub, CHAT_PATH, { messages: MESSAGES, max_tokens: 4, max_completion_tokens: 2 }));
      const choice = firstChoice(body);
      assert.equal((choice["message"] as Json)["content"], expectedText(MODEL, 2));
      assert.equal(choice["finish_reason"], "length");
      assert.equal((body["usage"] as Json)["completion_tokens"], 2);
    });

    it("text completion has vLLM fields; max_tokens defaults to 16 as in vLLM", async () => {
      const res = await post(stub, COMPLETIONS_PATH, { model: MODEL, prompt: "say three words" }, { "x-stub-completion-tokens": "20" });
      const body = await json(res);
      assert.deepEqual(Object.keys(body), [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "service_tier",
        "system_fingerprint",
        "usage",
        "kv_transfer_params",
        "ec_transfer_params",
        "metrics",
      ]);
      assert.match(String(body["id"]), /^cmpl-[0-9a-f]{32}$/);
      assert.equal(body["object"], "text_completion");
      assert.deepEqual(body["choices"], [
        {
          index: 0,
          text: expectedText(MODEL, 16),
          logprobs: null,
          finish_reason: "length",
          stop_reason: null,
          token_ids: null,
          prompt_logprobs: null,
          prompt_token_ids: null,
          routed_experts: null,
        },
      ]);
      assert.deepEqual(body["usage"], { prompt_tokens: 3, total_tokens: 19, completion_tokens: 16, ...NULL_USAGE_DETAILS });
    });

    it("uses X-Request-Id, then the body request_id, as the id suffix", async () => {
      const byHeader = await json(await post(stub, CHAT_PATH, { messages: MESSAGES, request_id: "body-id" }, { "x-request-id": "hdr-1" }));
      assert.equal(byHeader["id"], "chatcmpl-hdr-1");
      const byBody = await json(await post(stub, COMPLETIONS_PATH, { prompt: "x", request_id: "body-id" }));
      assert.equal(byBody["id"], "cmpl-body-id");
    });
  });

  describe("streaming", () => {
    it("chat streams a role chunk, one chunk per token, finish on the last token, then [DONE]", async () => {
      const result = await stream(stub, CHAT_PATH, { model: MODEL, messages: MESSAGES });
      assert.equal(result.res.headers.get("content-type"), "text/event-stream; charset=utf-8");
      assert.equal(result.error, undefined);
      assert.equal(result.data.length, 1 + TOKENS + 1);
      assert.equal(result.data.at(-1), "[DONE]");
      const [role, ...tokens] = chunks(result);
      assert.ok(role !== undefined);
      assert.deepEqual(Object.keys(role), ["id", "object", "created", "model", "choices", "prompt_token_ids", "prompt_text"]);
      assert.deepEqual(role["choices"], [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
      assert.equal(role["object"], "chat.completion.chunk");
      assert.match(String(role["id"]), /^chatcmpl-[0-9a-f]{32}$/);
      const texts = tokenTexts(MODEL, TOKENS);
      tokens.forEach((chunk, i) => {
        assert.deepEqual(Object.keys(chunk), ["id", "object", "created", "model", "choices"], "no usage key without include_usage");
        assert.equal(chunk["id"], role["id"]);
        assert.equal(chunk["created"], role["created"]);
        const last = i === TOKENS - 1;
        const expected: Json = last
          ? { index: 0, delta: { content: texts[i] }, logprobs: null, finish_reason: "stop", stop_reason: null, token_ids: null }
          : { index: 0, delta: { content: texts[i] }, logprobs: null, finish_reason: null, token_ids: null };
        assert.deepEqual(chunk["choices"], [expected]);
      });
    });

    it("include_usage adds one usage-only chunk with empty choices before [DONE]", async () => {
      const result = await stream(stub, CHAT_PATH, { messages: MESSAGES, max_tokens: 3, stream_options: { include_usage: true } });
      const all = chunks(result);
      assert.equal(all.length, 1 + 3 + 1);
      assert.equal(result.data.at(-1), "[DONE]");
      for (const chunk of all.slice(0, -1)) assert.ok(!("usage" in chunk), "only the last chunk mentions usage");
      const usage = all.at(-1);
      assert.ok(usage !== undefined);
      assert.deepEqual(Object.keys(usage), ["id", "object", "created", "model", "choices", "usage"]);
      assert.deepEqual(usage["choices"], []);
      assert.deepEqual(usage["usage"], {
        prompt_tokens: MESSAGES_PROMPT_TOKENS,
        total_tokens: MESSAGES_PROMPT_TOKENS + 3,
        completion_tokens: 3,
      });
      assert.equal(firstChoice(all[3] ?? {})["finish_reason"], "length");
    });

    it("stream_options without include_usage still sends usage (vLLM defaults it to true)", async () => {
      const result = await stream(stub, CHAT_PATH, { messages: MESSAGES, stream_options: {} });
      assert.deepEqual(chunks(result).at(-1)?.["choices"], []);
      const off = await stream(stub, CHAT_PATH, { messages: MESSAGES, stream_options: { include_usage: false } });
      assert.ok(chunks(off).every((c) => !("usage" in c)));
    });

    it("continuous_usage_stats puts running usage on every chunk", async () => {
      const result = await stream(stub, CHAT_PATH, {
        messages: MESSAGES,
        max_tokens: 2,
        stream_options: { include_usage: true, continuous_usage_stats: true },
      });
      const usages = chunks(result).map((c) => c["usage"]);
      const p = MESSAGES_PROMPT_TOKENS;
      assert.deepEqual(usages, [
        { prompt_tokens: p, total_tokens: p, completion_tokens: 0, completion_tokens_details: null },
        { prompt_tokens: p, total_tokens: p + 1, completion_tokens: 1, completion_tokens_details: null },
        { prompt_tokens: p, total_tokens: p + 2, completion_tokens: 2, completion_tokens_details: null },
        { prompt_tokens: p, total_tokens: p + 2, completion_tokens: 2 },
      ]);
    });

    it('completions stream one text chunk per token, no role chunk, object "text_completion"', async () => {
      const result = await stream(stub, COMPLETIONS_PATH, { prompt: "a b c d", max_tokens: 3, stream_options: { include_usage: true } });
      const all = chunks(result);
      assert.equal(result.data.at(-1), "[DONE]");
      assert.equal(all.length, 3 + 1);
      const texts = tokenTexts(MODEL, 3);
      all.slice(0, 3).forEach((chunk, i) => {
        assert.deepEqual(Object.keys(chunk), ["id", "object", "created", "model", "choices"]);
        assert.equal(chunk["object"], "text_completion");
        assert.deepEqual(chunk["choices"], [
          {
            index: 0,
            text: texts[i],
            logprobs: null,
            finish_reason: i === 2 ? "length" : null,
            stop_reason: null,
            prompt_token_ids: null,
            token_ids: null,
          },
        ]);
      });
      const usage = all[3];
      assert.ok(usage !== undefined);
      assert.equal(usage["object"], "text_completion");
      assert.deepEqual(usage["choices"], []);
      assert.deepEqual(usage["usage"], { prompt_tokens: 4, total_tokens: 7, completion_tokens: 3 });
    });

    it("writes each token when it is generated, not at the end", async () => {
      const result = await stream(stub, CHAT_PATH, { messages: MESSAGES, max_tokens: 4 }, { "x-stub-token-interval-ms": "100" });
      const first = result.at[1] ?? NaN;
      const last = result.at[4] ?? NaN;
      assert.ok(last - first >= 250, `tokens arrived ${first}ms and ${last}ms after the request`);
    });
  });

  describe("errors", () => {
    it("unknown model answers 404 with vLLM NotFoundError; a missing model is the served one", async () => {
      const res = await post(stub, CHAT_PATH, { model: "gpt-4o", messages: MESSAGES });
      assert.equal(res.status, 404);
      assert.deepEqual(await res.json(), {
        error: { message: "The model `gpt-4o` does not exist.", type: "NotFoundError", param: "model", code: 404 },
      });
      const noModel = await post(stub, COMPLETIONS_PATH, { prompt: "x" });
      assert.equal(noModel.status, 200);
      assert.equal((await json(noModel))["model"], MODEL);
    });

    it('invalid JSON, wrong content type and missing fields answer 400 "Bad Request"', async () => {
      const cases: [string, string, Record<string, string>, string | null][] = [
        [CHAT_PATH, '{"messages": [', {}, "body.14"],
        [CHAT_PATH, '{"model": "x"}', {}, "body.messages"],
        [CHAT_PATH, JSON.stringify({ messages: MESSAGES, stream_options: { include_usage: true } }), {}, "stream_options"],
        [COMPLETIONS_PATH, '{"prompt": ""}', {}, "prompt"],
        [COMPLETIONS_PATH, '{"prompt": "x"}', { "content-type": "text/plain" }, null],
      ];
      for (const [path, body, headers, param] of cases) {
        const res = await post(stub, path, body, headers);
        assert.equal(res.status, 400, body);
        const error = (await json(res))["error"] as Json;
        assert.deepEqual(Object.keys(error), ["message", "type", "param", "code"]);
        assert.equal(error["type"], "Bad Request");
        assert.equal(error["code"], 400);
        assert.equal(error["param"], param, body);
        assert.match(String(error["message"]), /^1 validation error:\n {2}/);
      }
    });

    it("max_tokens below 1 answers 400 BadRequestError", async () => {
      const res = await post(stub, CHAT_PATH, { messages: MESSAGES, max_tokens: 0 });
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), {
        error: { message: "max_tokens must be at least 1, got 0.", type: "BadRequestError", param: "max_tokens", code: 400 },
      });
    });
  });

  describe("fault headers", () => {
    it("x-stub-status answers that status with a vLLM error body", async () => {
      for (const status of [503, 429]) {
        const res = await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-status": String(status) });
        assert.equal(res.status, status);
        const error = (await json(res))["error"] as Json;
        assert.deepEqual(error, {
          message: `stub: injected ${status}`,
          type: status === 503 ? "Service Unavailable" : "Too Many Requests",
          param: null,
          code: status,
        });
      }
    });

    it("x-stub-delay-ms holds back the response headers", async () => {
      const startedAt = Date.now();
      const res = await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-delay-ms": "150" });
      assert.ok(Date.now() - startedAt >= 145, "headers came too early");
      assert.equal(res.status, 200);
    });

    it("x-stub-ttft-ms delays the first chunk but not the headers", async () => {
      const result = await stream(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-ttft-ms": "200" });
      assert.ok(result.headersAt < 150, `headers after ${result.headersAt}ms`);
      assert.ok((result.at[0] ?? 0) >= 195, `first chunk after ${result.at[0]}ms`);
    });

    it("x-stub-token-interval-ms spaces the tokens", async () => {
      const result = await stream(stub, COMPLETIONS_PATH, { prompt: "x", max_tokens: 4 }, { "x-stub-token-interval-ms": "60" });
      const spread = (result.at[3] ?? 0) - (result.at[0] ?? 0);
      assert.ok(spread >= 170, `4 tokens spread over ${spread}ms`);
    });

    it("x-stub-completion-tokens sets the generated length", async () => {
      const body = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-completion-tokens": "3" }));
      assert.equal((firstChoice(body)["message"] as Json)["content"], expectedText(MODEL, 3));
      assert.equal((body["usage"] as Json)["completion_tokens"], 3);
      assert.equal(firstChoice(body)["finish_reason"], "stop");
    });

    it("x-stub-drop closes the connection without a response", async () => {
      await assert.rejects(post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-drop": "1" }), TypeError);
    });

    it("x-stub-cut-after ends the stream after N events without [DONE]", async () => {
      const result = await stream(
        stub,
        CHAT_PATH,
        { messages: MESSAGES, stream_options: { include_usage: true } },
        { "x-stub-cut-after": "2" },
      );
      assert.equal(result.data.length, 2);
      assert.ok(!result.data.includes("[DONE]"));
      assert.ok(result.error !== undefined, "the client must see the connection break");
    });

    it("x-stub-cut-after on a JSON response sends a truncated body", async () => {
      const res = await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-cut-after": "10" });
      assert.equal(res.status, 200);
      await assert.rejects(res.text());
    });

    it("x-stub-no-usage drops usage from JSON and stream", async () => {
      const body = await json(await post(stub, COMPLETIONS_PATH, { prompt: "x" }, { "x-stub-no-usage": "1" }));
      assert.ok(!("usage" in body));
      const result = await stream(
        stub,
        CHAT_PATH,
        { messages: MESSAGES, stream_options: { include_usage: true, continuous_usage_stats: true } },
        { "x-stub-no-usage": "true" },
      );
      assert.equal(result.data.at(-1), "[DONE]");
      assert.equal(chunks(result).length, 1 + TOKENS);
      assert.ok(chunks(result).every((c) => !("usage" in c)));
    });

    it("x-stub-end-without-done ends cleanly with no [DONE]", async () => {
      const result = await stream(
        stub,
        CHAT_PATH,
        { messages: MESSAGES, stream_options: { include_usage: true } },
        { "x-stub-end-without-done": "1" },
      );
      assert.equal(result.error, undefined);
      assert.ok(!result.data.includes("[DONE]"));
      assert.deepEqual(chunks(result).at(-1)?.["choices"], []);
    });

    describe("x-stub-reasoning-tokens (vLLM with a reasoning parser)", () => {
      const texts = tokenTexts(MODEL, TOKENS);
      const reasoningText = texts.slice(0, 2).join("");
      const answerText = texts.slice(2).join("");

      it("non-streamed: the first N tokens in message.reasoning, the rest in content, reasoning_tokens in usage", async () => {
        const body = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-reasoning-tokens": "2" }));
        const message = firstChoice(body)["message"] as Json;
        assert.deepEqual(message, {
          role: "assistant",
          content: answerText,
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          reasoning: reasoningText,
        });
        assert.deepEqual(body["usage"], {
          prompt_tokens: MESSAGES_PROMPT_TOKENS,
          total_tokens: MESSAGES_PROMPT_TOKENS + TOKENS,
          completion_tokens: TOKENS,
          prompt_tokens_details: null,
          completion_tokens_details: { reasoning_tokens: 2 },
        });
      });

      it("streamed: reasoning deltas, then content deltas; running and final usage count reasoning tokens", async () => {
        const result = await stream(
          stub,
          CHAT_PATH,
          { messages: MESSAGES, stream_options: { include_usage: true, continuous_usage_stats: true } },
          { "x-stub-reasoning-tokens": "2" },
        );
        assert.equal(result.data.at(-1), "[DONE]");
        const all = chunks(result);
        assert.equal(all.length, 1 + TOKENS + 1);
        const deltas = all.slice(0, -1).map((c) => firstChoice(c)["delta"]);
        assert.deepEqual(deltas, [
          { role: "assistant", content: "" },
          { reasoning: texts[0] },
          { reasoning: texts[1] },
          ...texts.slice(2).map((t) => ({ content: t })),
        ]);
        const p = MESSAGES_PROMPT_TOKENS;
        const running = [0, 1, 2, 3, 4, 5].map((n) => ({
          prompt_tokens: p,
          total_tokens: p + n,
          completion_tokens: n,
          completion_tokens_details: { reasoning_tokens: Math.min(n, 2) },
        }));
        assert.deepEqual(
          all.map((c) => c["usage"]),
          [
            ...running,
            { prompt_tokens: p, total_tokens: p + TOKENS, completion_tokens: TOKENS, completion_tokens_details: { reasoning_tokens: 2 } },
          ],
        );
      });

      it("every token reasoning: content null; 0 reasoning tokens: reasoning null, reasoning_tokens 0", async () => {
        const all = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-reasoning-tokens": "9" }));
        const allMessage = firstChoice(all)["message"] as Json;
        assert.equal(allMessage["content"], null);
        assert.equal(allMessage["reasoning"], expectedText(MODEL, TOKENS));
        assert.deepEqual((all["usage"] as Json)["completion_tokens_details"], { reasoning_tokens: TOKENS });
        const none = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-reasoning-tokens": "0" }));
        const noneMessage = firstChoice(none)["message"] as Json;
        assert.equal(noneMessage["content"], expectedText(MODEL, TOKENS));
        assert.equal(noneMessage["reasoning"], null);
        assert.deepEqual((none["usage"] as Json)["completion_tokens_details"], { reasoning_tokens: 0 });
      });

      it("x-stub-reasoning-usage: 0 reports no reasoning tokens, as vLLM before PR #45802", async () => {
        const headers = { "x-stub-reasoning-tokens": "2", "x-stub-reasoning-usage": "0" };
        const body = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }, headers));
        assert.equal((firstChoice(body)["message"] as Json)["reasoning"], reasoningText);
        assert.deepEqual(body["usage"], {
          prompt_tokens: MESSAGES_PROMPT_TOKENS,
          total_tokens: MESSAGES_PROMPT_TOKENS + TOKENS,
          completion_tokens: TOKENS,
          ...NULL_USAGE_DETAILS,
        });
        const result = await stream(stub, CHAT_PATH, { messages: MESSAGES, stream_options: { include_usage: true } }, headers);
        assert.deepEqual(chunks(result).at(-1)?.["usage"], {
          prompt_tokens: MESSAGES_PROMPT_TOKENS,
          total_tokens: MESSAGES_PROMPT_TOKENS + TOKENS,
          completion_tokens: TOKENS,
        });
      });

      it("x-stub-reasoning-field: reasoning_content names the field as older vLLM and DeepSeek do", async () => {
        const headers = { "x-stub-reasoning-tokens": "2", "x-stub-reasoning-field": "reasoning_content" };
        const body = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }, headers));
        const message = firstChoice(body)["message"] as Json;
        assert.equal(message["reasoning_content"], reasoningText);
        assert.ok(!("reasoning" in message));
        const result = await stream(stub, CHAT_PATH, { messages: MESSAGES }, headers);
        assert.deepEqual(firstChoice(chunks(result)[1] ?? {})["delta"], { reasoning_content: texts[0] });
        assert.deepEqual(firstChoice(chunks(result)[3] ?? {})["delta"], { content: texts[2] });
      });

      it("has no effect on /v1/completions, which runs no reasoning parser", async () => {
        const headers = { "x-stub-reasoning-tokens": "2" };
        const body = await json(await post(stub, COMPLETIONS_PATH, { prompt: "x", max_tokens: TOKENS }, headers));
        assert.equal(firstChoice(body)["text"], expectedText(MODEL, TOKENS));
        assert.deepEqual(body["usage"], { prompt_tokens: 1, total_tokens: 1 + TOKENS, completion_tokens: TOKENS, ...NULL_USAGE_DETAILS });
      });

      it("rejects a bad reasoning field or count", async () => {
        const bad: Record<string, string>[] = [{ "x-stub-reasoning-field": "thoughts" }, { "x-stub-reasoning-tokens": "-1" }];
        for (const headers of bad) {
          const res = await post(stub, CHAT_PATH, { messages: MESSAGES }, headers);
          assert.equal(res.status, 400);
          assert.equal(((await json(res))["error"] as Json)["type"], "StubConfigError");
        }
      });
    });

    it("x-stub-target limits the header faults to the backend serving that model", async () => {
      const elsewhere = await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-status": "503", "x-stub-target": "other-model" });
      assert.equal(elsewhere.status, 200);
      const here = await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-status": "503", "x-stub-target": MODEL });
      assert.equal(here.status, 503);
    });

    it("unknown fault headers and bad values answer 400 StubConfigError", async () => {
      const bad: Record<string, string>[] = [{ "x-stub-stauts": "503" }, { "x-stub-status": "200" }, { "x-stub-drop": "yes" }];
      for (const headers of bad) {
        const res = await post(stub, CHAT_PATH, { messages: MESSAGES }, headers);
        assert.equal(res.status, 400);
        assert.equal(((await json(res))["error"] as Json)["type"], "StubConfigError");
      }
    });
  });

  describe("ORCA load report (endpoint-load-metrics)", () => {
    // The plain stub's /metrics: nothing waiting, no KV cache in use.
    const TEXT_REPORT = "TEXT named_metrics.num_requests_waiting=0.0, named_metrics.kv_cache_usage_perc=0.0";
    const JSON_REPORT = 'JSON {"named_metrics": {"num_requests_waiting": 0.0, "kv_cache_usage_perc": 0.0}}';
    const report = async (path: string, body: Json, headers: Record<string, string>): Promise<string | null> => {
      const res = await post(stub, path, body, headers);
      await res.arrayBuffer();
      return res.headers.get("endpoint-load-metrics");
    };
    const chat = { messages: MESSAGES };
    const completion = { prompt: "say three words" };

    it("answers a TEXT or JSON request (any case) on both endpoints with the gauges /metrics shows", async () => {
      assert.equal(await report(CHAT_PATH, chat, { "endpoint-load-metrics-format": "TEXT" }), TEXT_REPORT);
      assert.equal(await report(CHAT_PATH, chat, { "endpoint-load-metrics-format": "json" }), JSON_REPORT);
      assert.equal(await report(COMPLETIONS_PATH, completion, { "endpoint-load-metrics-format": "Text" }), TEXT_REPORT);
      assert.equal(await report(COMPLETIONS_PATH, completion, { "endpoint-load-metrics-format": "jSoN" }), JSON_REPORT);
      const metrics = await (await fetch(stub.url + "/metrics")).text();
      assert.match(metrics, /^vllm:num_requests_waiting\{[^}]*\} 0\.0$/m);
      assert.match(metrics, /^vllm:kv_cache_usage_perc\{[^}]*\} 0\.0$/m);
    });

    it("sends none without the request header, or with an empty or unknown format", async () => {
      assert.equal(await report(CHAT_PATH, chat, {}), null);
      for (const format of ["", "xml", "text, json"]) {
        assert.equal(await report(CHAT_PATH, chat, { "endpoint-load-metrics-format": format }), null, JSON.stringify(format));
      }
    });

    it("takes the first of repeated format headers, as Starlette's headers.get does", async () => {
      const req = httpRequest(stub.url + COMPLETIONS_PATH, {
        method: "POST",
        headers: { "content-type": "application/json", "endpoint-load-metrics-format": ["json", "text"] },
      });
      req.end(JSON.stringify(completion));
      const [res] = (await once(req, "response")) as [IncomingMessage];
      res.resume();
      await once(res, "end");
      assert.equal(res.headers["endpoint-load-metrics"], JSON_REPORT);
    });

    it("sends none on a stream (vLLM's StreamingResponse carries no report) nor on an error answer", async () => {
      const streamed = await stream(stub, CHAT_PATH, chat, { "endpoint-load-metrics-format": "TEXT" });
      assert.equal(streamed.data.at(-1), "[DONE]");
      assert.equal(streamed.res.headers.get("endpoint-load-metrics"), null);
      const injected = await post(stub, CHAT_PATH, chat, { "endpoint-load-metrics-format": "TEXT", "x-stub-status": "503" });
      await injected.arrayBuffer();
      assert.equal(injected.status, 503);
      assert.equal(injected.headers.get("endpoint-load-metrics"), null);
      const invalid = await post(stub, CHAT_PATH, { messages: MESSAGES, max_tokens: 0 }, { "endpoint-load-metrics-format": "TEXT" });
      await invalid.arrayBuffer();
      assert.equal(invalid.status, 400);
      assert.equal(invalid.headers.get("endpoint-load-metrics"), null);
    });
  });

  it("stops generating when the client disconnects", async () => {
    const before = (await stats(stub))["aborted"];
    const abort = new AbortController();
    const res = await fetch(stub.url + CHAT_PATH, {
      method: "POST",
      headers: { "content-type": "application/json", "x-stub-token-interval-ms": "50", "x-stub-completion-tokens": "200" },
      body: JSON.stringify({ messages: MESSAGES, stream: true }),
      signal: abort.signal,
    });
    const reader = res.body?.getReader();
    await reader?.read();
    abort.abort();
    const deadline = Date.now() + 1000;
    let current = await stats(stub);
    while (current["inFlight"] !== 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      current = await stats(stub);
    }
    assert.equal(current["inFlight"], 0, "generation still running 1s after the disconnect (10s left)");
    assert.equal(current["aborted"], Number(before) + 1);
  });

  it("works with the openai client, streaming and not", async () => {
    const client = new OpenAI({ baseURL: stub.url + "/v1", apiKey: "x" });
    const completion = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi you" }] });
    assert.equal(completion.choices[0]?.message.content, expectedText(MODEL, TOKENS));
    assert.equal(completion.usage?.prompt_tokens, 2);
    const chunkStream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi you" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let completionTokens: number | undefined;
    for await (const chunk of chunkStream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
    }
    assert.equal(text, expectedText(MODEL, TOKENS));
    assert.equal(completionTokens, TOKENS);
  });
});

describe("control plane", () => {
  let stub: StubHandle;
  before(async () => {
    stub = await startStub({ model: "backup-model", completionTokens: 4 });
  });
  after(() => stub.close());

  async function setFaults(body: unknown): Promise<Response> {
    return post(stub, "/stub/faults", body);
  }

  it("POST /stub/faults applies to every generation request until DELETE", async () => {
    assert.equal((await setFaults({ status: 503, "x-stub-completion-tokens": 2 })).status, 200);
    assert.equal((await post(stub, CHAT_PATH, { messages: MESSAGES })).status, 503);
    assert.equal((await post(stub, COMPLETIONS_PATH, { prompt: "x" })).status, 503);
    assert.equal((await fetch(stub.url + "/health")).status, 200, "health is never faulted");
    const overridden = await post(stub, CHAT_PATH, { messages: MESSAGES }, { "x-stub-status": "502" });
    assert.equal(overridden.status, 502, "headers win over the control endpoint");
    assert.equal((await fetch(stub.url + "/stub/faults", { method: "DELETE" })).status, 200);
    const ok = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }));
    assert.equal((firstChoice(ok)["message"] as Json)["content"], expectedText("backup-model", 4));
  });

  it("control faults use the same names, so completion tokens can be set for all", async () => {
    await setFaults({ "completion-tokens": 2 });
    const body = await json(await post(stub, CHAT_PATH, { messages: MESSAGES }));
    assert.equal((body["usage"] as Json)["completion_tokens"], 2);
    await fetch(stub.url + "/stub/faults", { method: "DELETE" });
  });

  it("rejects unknown fault names and non-object bodies", async () => {
    for (const body of [{ bogus: 1 }, { "delay-ms": -5 }, [1]]) {
      const res = await setFaults(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(((await json(res))["error"] as Json)["type"], "StubConfigError");
    }
  });

  it("GET /stub/stats reports hits per path and the last forwarded request", async () => {
    const hitsBefore = stub.hits();
    const chatBefore = stub.hits(CHAT_PATH);
    await post(stub, CHAT_PATH, { model: "backup-model", messages: MESSAGES }, { "x-gateway-route": "fallback-1" });
    await post(stub, COMPLETIONS_PATH, "not json", { "x-gateway-route": "fallback-2" });
    const body = await stats(stub);
    assert.equal(body["hits"], hitsBefore + 2);
    assert.equal(stub.hits(CHAT_PATH), chatBefore + 1);
    assert.equal((body["hitsByPath"] as Json)[CHAT_PATH], chatBefore + 1);
    const last = body["lastRequest"] as Json;
    assert.equal(last["path"], COMPLETIONS_PATH);
    assert.equal(last["body"], "not json", "bodies that are not JSON are kept raw");
    assert.equal((last["headers"] as Json)["x-gateway-route"], "fallback-2");
  });
});

describe("lifecycle", () => {
  it("close() ends open streams and leaves nothing listening", async () => {
    const stub = await startStub({ model: "short-lived", tokenIntervalMs: 1000, completionTokens: 50 });
    const res = await post(stub, CHAT_PATH, { messages: MESSAGES, stream: true });
    const reading = readSse(res, Date.now());
    const startedAt = Date.now();
    await stub.close();
    assert.ok(Date.now() - startedAt < 500, "close() waited for the stream");
    assert.ok((await reading).error !== undefined);
    await assert.rejects(fetch(stub.url + "/health"), (error: unknown) => {
      const cause = (error as { cause?: { code?: string } }).cause;
      assert.equal(cause?.code, "ECONNREFUSED");
      return true;
    });
    await stub.close();
  });

  it("rejects bad options", async () => {
    await assert.rejects(startStub({ model: "m", completionTokens: 0 }), /completionTokens/);
    await assert.rejects(startStub({ model: "" }), /model/);
  });

  it("CLI prints one JSON line, serves, and exits 0 on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "tests/backends/vllm-stub.ts", "--model", "cli-model", "--port", "0", "--completion-tokens", "2"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const lines = createInterface({ input: child.stdout });
    const [line] = (await once(lines, "line")) as [string];
    const info = JSON.parse(line) as Json;
    assert.deepEqual(Object.keys(info), ["model", "port", "url"]);
    assert.equal(info["model"], "cli-model");
    assert.equal(info["url"], `http://127.0.0.1:${String(info["port"])}`);
    const body = await json(
      await fetch(`${String(info["url"])}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "x" }),
      }),
    );
    assert.equal(firstChoice(body)["text"], expectedText("cli-model", 2));
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 0);
  });

  it("CLI exits 2 without --model", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "tests/backends/vllm-stub.ts"], { stdio: "ignore" });
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 2);
  });
});
