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

function lastLog(seed: Seed, path: string): Record<string, string> {
  const lines = readFileSync(seed.gateway.accessLogPath, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, string>);
  const found = lines.filter((l) => l["path"] === path).pop();
  assert.ok(found !== undefined, `an access log line for ${path}`);
  return found;
}

async function logged(seed: Seed, path: string, count: number): Promise<Record<string, string>> {
  for (let i = 0; i < 50; i++) {
    const lines = readFileSync(seed.gateway.accessLogPath, "utf8").trim().split("\n").filter((l) => l.includes(`"path":"${path}"`));
    if (lines.length >= count) return lastLog(seed, path);
    await new Promise((res) => setTimeout(res, 100));
  }
  return lastLog(seed, path);
}

describe("Higress's defaults (32 KiB buffer limit, no route timeout)", () => {
  let seed: Seed;
  let openai: OpenAI;
  before(async () => {
    seed = await startSeed({
      pluginConfig: { models: [{ name: "qwen2-1-5b", fallback: ["gemma-2-2b"] }, { name: "gemma-2-2b" }], fallback: { cooldown: { failures: 0 } } },
      gateway: { profile: "higress" },
    });
    openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(async () => { await seed?.stop(); });

  test("the harness really runs Higress's buffer limit", () => {
    assert.equal(seed.gateway.layout.bufferLimitBytes, HIGRESS_PROFILE.bufferLimitBytes);
    assert.equal(seed.gateway.layout.routeTimeout, "0s");
  });

  test("within 32 KiB: routed, usage counted, a streamed fallback streams; the plugin asks for maxBodyBytes", async () => {
    const plain = await openai.chat.completions.create({ model: "gemma-2-2b", messages: [{ role: "user", content: "x".repeat(20 * 1024) }] });
    assert.equal(plain.model, "gemma-2-2b");
    assert.equal(plain.choices[0]?.message.content, expectedText("gemma-2-2b", 16));
    const line = await logged(seed, "/v1/chat/completions", 1);
    assert.equal(line["decoder_buffer_limit"], String(MAX_BODY), "set_decoder_buffer_limit = maxBodyBytes");

    const qwen = backend(seed, "qwen2-1-5b");
    await fetch(`${qwen.url}/stub/faults`, { method: "POST", body: JSON.stringify({ status: 503 }), headers: { "content-type": "application/json" } });
    try {
      const stream = await openai.chat.completions.create({ model: "qwen2-1-5b", messages: [{ role: "user", content: "hi" }], stream: true });
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
    const before = readFileSync(seed.gateway.accessLogPath, "utf8").split("\n").filter((l) => l.includes('"status":"413"') || l.includes('"status":413')).length;
    const r = await post(`${seed.gateway.url}/v1/chat/completions`, { model: "gemma-2-2b", messages: [{ role: "user", content: "x".repeat(100 * 1024) }] });
    assert.equal(r.status, 413);
    assert.match(r.headers.get("content-type") ?? "", /application\/json/);
    const body = await r.json() as { error: { code: string; type: string; message: string } };
    assert.equal(body.error.code, "request_too_large");
    assert.equal(body.error.type, "invalid_request_error");
    assert.match(body.error.message, /request_payload_too_large/);
    // The plugin had asked for maxBodyBytes: on Higress's Envoy this request would have been read whole.
    let line: Record<string, string> | undefined;
    for (let i = 0; i < 50 && line === undefined; i++) {
      const lines = readFileSync(seed.gateway.accessLogPath, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      const found = lines.filter((l) => String(l["status"]) === "413");
      if (found.length > before) line = found.pop() as Record<string, string>;
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(line !== undefined, "the 413 is in the access log");
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
    const body = await r.json() as { error: { code: string; type: string; message: string } };
    assert.equal(body.error.code, "upstream_unavailable");
    assert.equal(body.error.type, "server_error");
    assert.match(body.error.message, /upstream_reset_before_response_started|no_healthy_upstream/);
  });
});
