// The plugin under Higress's defaults (the harness's Higress profile: a 32 KiB connection buffer limit,
// no route timeout). Upstream Envoy cannot honour set_decoder_buffer_limit, so here a body over 32 KiB
// gets Envoy's own 413 — which the plugin turns into an OpenAI-shaped error — and the access log shows
// the limit the plugin asked for, the one Higress's Envoy applies. Everything within 32 KiB works as in
// the default profile: routing, usage, a streamed fallback.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { startSeed, post, backend, type Seed } from "../harness/seed.ts";
import { HIGRESS_PROFILE } from "../harness/envoy-config.ts";
import { expectedText } from "../backends/tokens.ts";

const MAX_BODY = 10 * 1024 * 1024; // the plugin's default maxBodyBytes

type LogLine = Record<string, unknown>;

function logLines(seed: Seed): LogLine[] {
  const text = readFileSync(seed.gateway.accessLogPath, "utf8").trim();
  return text === "" ? [] : text.split("\n").map((l) => JSON.parse(l) as LogLine);
}

// The newest access-log line matching `which`, once more than `seen` such lines exist (Envoy writes the
// file every 200 ms).
async function nextLog(seed: Seed, which: (l: LogLine) => boolean, seen: number): Promise<LogLine> {
  for (let i = 0; i < 50; i++) {
    const found = logLines(seed).filter(which);
    if (found.length > seen) return found[found.length - 1] as LogLine;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.fail(`no new access log line after ${seen} matching lines`);
}

describe("Higress's defaults (32 KiB buffer limit, no route timeout)", () => {
  let seed: Seed;
  let openai: OpenAI;
  before(async () => {
    seed = await startSeed({
      pluginConfig: {
        models: [{ name: "qwen2-1-5b", fallback: ["gemma-2-2b"] }, { name: "gemma-2-2b" }],
        fallback: { cooldown: { failures: 0 } },
      },
      gateway: { profile: "higress" },
    });
    openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(async () => {
    await seed?.stop();
  });

  test("the harness really runs Higress's buffer limit", () => {
    assert.equal(seed.gateway.layout.bufferLimitBytes, HIGRESS_PROFILE.bufferLimitBytes);
    assert.equal(seed.gateway.layout.routeTimeout, "0s");
  });

  test("within 32 KiB: routed, usage counted, a streamed fallback streams; the plugin asks for maxBodyBytes", async () => {
    const plain = await openai.chat.completions.create({
      model: "gemma-2-2b",
      messages: [{ role: "user", content: "x".repeat(20 * 1024) }],
    });
    assert.equal(plain.model, "gemma-2-2b");
    assert.equal(plain.choices[0]?.message.content, expectedText("gemma-2-2b", 16));
    const line = await nextLog(seed, (l) => l["path"] === "/v1/chat/completions", 0);
    assert.equal(String(line["decoder_buffer_limit"]), String(MAX_BODY), "set_decoder_buffer_limit = maxBodyBytes");

    const qwen = backend(seed, "qwen2-1-5b");
    await fetch(`${qwen.url}/stub/faults`, {
      method: "POST",
      body: JSON.stringify({ status: 503 }),
      headers: { "content-type": "application/json" },
    });
    try {
      const stream = await openai.chat.completions.create({
        model: "qwen2-1-5b",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      let text = "";
      for await (const c of stream) {
        assert.equal(c.model, "gemma-2-2b");
        text += c.choices[0]?.delta.content ?? "";
      }
      assert.equal(text, expectedText("gemma-2-2b", 16));
    } finally {
      await fetch(`${qwen.url}/stub/faults`, { method: "DELETE" });
    }
  });

  test("over 32 KiB: upstream Envoy answers 413 itself (Higress would not); the client gets it in OpenAI's shape", async () => {
    const is413 = (l: LogLine): boolean => String(l["status"]) === "413";
    const before = logLines(seed).filter(is413).length;
    const r = await post(`${seed.gateway.url}/v1/chat/completions`, {
      model: "gemma-2-2b",
      messages: [{ role: "user", content: "x".repeat(100 * 1024) }],
    });
    assert.equal(r.status, 413);
    assert.match(r.headers.get("content-type") ?? "", /application\/json/);
    const body = (await r.json()) as { error: { code: string; type: string; message: string } };
    assert.equal(body.error.code, "request_too_large");
    assert.equal(body.error.type, "invalid_request_error");
    assert.match(body.error.message, /request_payload_too_large/);
    // The plugin had asked for maxBodyBytes: on Higress's Envoy this request would have been read whole.
    const line = await nextLog(seed, is413, before);
    assert.equal(String(line["decoder_buffer_limit"]), String(MAX_BODY));

    // The official client parses it as an API error with the status and code.
    await assert.rejects(
      openai.chat.completions.create({ model: "gemma-2-2b", messages: [{ role: "user", content: "x".repeat(100 * 1024) }] }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 413 && e.code === "request_too_large",
    );
  });

  test("no healthy upstream: Envoy's 503 in OpenAI's shape", async () => {
    const gemma = backend(seed, "gemma-2-2b");
    await gemma.close();
    const r = await post(`${seed.gateway.url}/v1/chat/completions`, { model: "gemma-2-2b", messages: [{ role: "user", content: "hi" }] });
    assert.equal(r.status, 503);
    const body = (await r.json()) as { error: { code: string; type: string; message: string } };
    assert.equal(body.error.code, "upstream_unavailable");
    assert.equal(body.error.type, "server_error");
    assert.match(body.error.message, /upstream_reset_before_response_started|no_healthy_upstream/);
  });
});
