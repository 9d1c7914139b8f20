// The seed's fallback scenario through the real Envoy: a failed qwen2-1-5b is answered by gemma-2-2b,
// transparently to the client; cooldown keeps a failing primary out of the way; when everything is
// down the client learns it at once.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startSeed, post, backend, type Seed } from "../harness/seed.ts";
import { startStub } from "../backends/vllm-stub.ts";
import { aiMetric, scrapeUntil } from "../harness/metrics.ts";
import { expectedText } from "../backends/tokens.ts";

const chat = (model: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model,
  messages: [{ role: "user", content: "hello" }],
  ...extra,
});

const NO_COOLDOWN = {
  models: [{ name: "qwen2-1-5b", fallback: ["gemma-2-2b"] }, { name: "gemma-2-2b" }],
  fallback: { cooldown: { failures: 0 } },
};

function withMechanism(config: typeof NO_COOLDOWN, mechanism: string): Record<string, unknown> {
  return { ...config, fallback: { ...config.fallback, mechanism } };
}

async function setFaults(url: string, faults: Record<string, unknown> | null): Promise<void> {
  const r = await fetch(
    `${url}/stub/faults`,
    faults === null
      ? { method: "DELETE" }
      : { method: "POST", body: JSON.stringify(faults), headers: { "content-type": "application/json" } },
  );
  assert.ok(r.ok, `stub faults: ${r.status}`);
  await r.body?.cancel();
}

// Both mechanisms: Envoy's router retrying (the default), and the plugin calling the backup itself.
for (const mechanism of ["envoy", "dispatch"] as const) {
  describe(`a failing primary is answered by its backup (${mechanism})`, () => {
    let seed: Seed;
    let openai: OpenAI;
    before(async () => {
      seed = await startSeed({ pluginConfig: withMechanism(NO_COOLDOWN, mechanism) });
      openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
    });
    after(async () => {
      await seed?.stop();
    });

    for (const status of [500, 503]) {
      test(`primary answering ${status}: 200 from gemma-2-2b, plain and streamed`, async () => {
        await setFaults(backend(seed, "qwen2-1-5b").url, { status });
        try {
          const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b"));
          assert.equal(r.status, 200);
          assert.equal(r.headers.get("x-llm-gateway-model"), "gemma-2-2b");
          assert.equal(r.headers.get("x-llm-gateway-fallback-from"), "qwen2-1-5b");
          const body = (await r.json()) as { model: string; choices: { message: { content: string } }[] };
          assert.equal(body.model, "gemma-2-2b");
          assert.equal(body.choices[0]?.message.content, expectedText("gemma-2-2b", 16));
          // The backup saw its own name in the body.
          const stats = (await (await fetch(`${backend(seed, "gemma-2-2b").url}/stub/stats`)).json()) as {
            lastRequest: { body: { model: string } };
          };
          assert.equal(stats.lastRequest.body.model, "gemma-2-2b");

          const stream = await openai.chat.completions.create({
            model: "qwen2-1-5b",
            messages: [{ role: "user", content: "hi" }],
            stream: true,
          });
          let text = "";
          let chunks = 0;
          for await (const c of stream) {
            chunks++;
            assert.equal(c.model, "gemma-2-2b");
            assert.equal(c.usage ?? null, null, "the client did not ask for usage");
            text += c.choices[0]?.delta.content ?? "";
          }
          assert.equal(text, expectedText("gemma-2-2b", 16));
          assert.equal(chunks, 17);
        } finally {
          await setFaults(backend(seed, "qwen2-1-5b").url, null);
        }
      });
    }

    test("the OpenAI client sees no error when the primary is stopped (connection refused)", async () => {
      const qwen = backend(seed, "qwen2-1-5b");
      const port = qwen.port;
      await qwen.close();
      try {
        const plain = await openai.chat.completions.create({ model: "qwen2-1-5b", messages: [{ role: "user", content: "hi" }] });
        assert.equal(plain.model, "gemma-2-2b");
        const stream = await openai.chat.completions.create({
          model: "qwen2-1-5b",
          messages: [{ role: "user", content: "hi" }],
          stream: true,
          stream_options: { include_usage: true },
        });
        let usage: number | undefined;
        for await (const c of stream) if (c.usage) usage = c.usage.completion_tokens;
        assert.equal(usage, 16, "the client asked for usage and got it from the backup");
        const s = await scrapeUntil(
          seed.gateway.adminUrl,
          (x) => aiMetric(x, "fallback_to_reason", "qwen2-1-5b", { ai_fallback_reason: "upstream_unreachable" }) >= 2,
        );
        assert.equal(
          aiMetric(s, "fallback_to_reason", "qwen2-1-5b", { ai_fallback_to: "gemma-2-2b", ai_fallback_reason: "upstream_unreachable" }),
          2,
        );
        // Usage is counted under the model that served.
        assert.ok(aiMetric(s, "output_token", "gemma-2-2b") >= 32);
      } finally {
        seed.backends.set("qwen2-1-5b", await startStub({ model: "qwen2-1-5b", port }));
      }
    });

    test("a stream that already sent bytes is not retried: the cut is counted and signalled", async () => {
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b", { stream: true }), {
        "x-stub-end-without-done": "1",
        "x-stub-target": "qwen2-1-5b",
      });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-llm-gateway-model"), "qwen2-1-5b");
      const text = await r.text();
      assert.match(text, /"code":"stream_incomplete"/);
    });

    test("a Higress replay (x-higress-fallback-from) is served as the backup model", async () => {
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b"), {
        "x-higress-fallback-from": "ai-route-qwen2-1-5b.internal",
      });
      await r.body?.cancel();
      // In the harness the routing header still says qwen2-1-5b (Higress's fallback Ingress matches it
      // together with x-higress-fallback-from); what the plugin owns is the body's model and the accounting.
      const stats = (await (await fetch(`${backend(seed, "qwen2-1-5b").url}/stub/stats`)).json()) as {
        lastRequest: { body: { model: string } };
      };
      assert.equal(stats.lastRequest.body.model, "gemma-2-2b");
      assert.equal(r.headers.get("x-llm-gateway-fallback-from"), "qwen2-1-5b");
      assert.equal(r.headers.get("x-llm-gateway-model"), "gemma-2-2b");
    });
  });

  describe(`everything down (${mechanism})`, () => {
    let seed: Seed;
    before(async () => {
      seed = await startSeed({
        pluginConfig: { ...NO_COOLDOWN, fallback: { mechanism, cooldown: { failures: 0 }, attemptTimeoutMs: 2000 } },
      });
    });
    after(async () => {
      await seed?.stop();
    });

    test("primary and backup down: a prompt OpenAI-style error naming the attempts", async () => {
      await backend(seed, "qwen2-1-5b").close();
      await backend(seed, "gemma-2-2b").close();
      const start = Date.now();
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b"));
      const elapsed = Date.now() - start;
      assert.equal(r.status, 503);
      const body = (await r.json()) as { error: { message: string; type: string; code: string } };
      assert.equal(body.error.code, "all_attempts_failed");
      assert.equal(body.error.type, "server_error");
      // envoy: Envoy's router tried both (connection refused) and answered 503 itself; dispatch: Envoy
      // answers the plugin's call to a cluster with no reachable host with its own 503.
      assert.match(
        body.error.message,
        mechanism === "envoy"
          ? /qwen2-1-5b \(unreachable\), gemma-2-2b \(unreachable\)/
          : /qwen2-1-5b \(unreachable\), gemma-2-2b \(status 503\)/,
      );
      assert.ok(elapsed < 2000, `answered after ${elapsed} ms, within the attempt timeout`);
    });

    test("a backup that hangs is cut off at attemptTimeoutMs", async () => {
      const gemma = await startStub({ model: "gemma-2-2b", port: backend(seed, "gemma-2-2b").port });
      seed.backends.set("gemma-2-2b", gemma);
      await setFaults(gemma.url, { "delay-ms": 10000 });
      const start = Date.now();
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b"));
      const elapsed = Date.now() - start;
      // Envoy ends the backup's attempt (envoy: per-try timeout; dispatch: the call's timeout) with a 504,
      // which the client gets, naming the attempts.
      assert.equal(r.status, 504);
      assert.match(
        ((await r.json()) as { error: { message: string } }).error.message,
        mechanism === "envoy"
          ? /qwen2-1-5b \(unreachable\), gemma-2-2b \(timed out\)/
          : /qwen2-1-5b \(unreachable\), gemma-2-2b \(status 504\)/,
      );
      assert.ok(elapsed >= 1900 && elapsed < 6000, `answered after ${elapsed} ms`);
    });
  });

  describe(`first-byte timeout (${mechanism})`, () => {
    let seed: Seed;
    before(async () => {
      seed = await startSeed({
        pluginConfig: { ...NO_COOLDOWN, fallback: { mechanism, cooldown: { failures: 0 }, firstByteTimeoutMs: 400 } },
      });
    });
    after(async () => {
      await seed?.stop();
    });

    test("a primary that sends nothing in time is replaced by its backup; its late answer is discarded", async () => {
      const start = Date.now();
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b"), {
        "x-stub-delay-ms": "3000",
        "x-stub-target": "qwen2-1-5b",
      });
      const elapsed = Date.now() - start;
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-llm-gateway-model"), "gemma-2-2b");
      assert.equal(((await r.json()) as { model: string }).model, "gemma-2-2b");
      assert.ok(elapsed >= 400 && elapsed < 2000, `answered after ${elapsed} ms`);
      const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "fallback_to_reason", "qwen2-1-5b") >= 1);
      assert.equal(
        aiMetric(s, "fallback_to_reason", "qwen2-1-5b", { ai_fallback_to: "gemma-2-2b", ai_fallback_reason: "first_byte_timeout" }),
        1,
      );
    });

    test("a primary that answers in time is not disturbed", async () => {
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b", { stream: true }), {
        "x-stub-ttft-ms": "800",
        "x-stub-target": "qwen2-1-5b",
      });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-llm-gateway-model"), "qwen2-1-5b");
      assert.match(await r.text(), /data: \[DONE\]/);
    });
  });
}

describe("cooldown", () => {
  let seed: Seed;
  const COOLDOWN_MS = 1500;
  before(async () => {
    seed = await startSeed({
      pluginConfig: { ...NO_COOLDOWN, fallback: { cooldown: { failures: 3, windowMs: 10000, durationMs: COOLDOWN_MS } } },
      gateway: { concurrency: 2 }, // two workers, two VMs: the circuit is shared through proxy shared data
    });
  });
  after(async () => {
    await seed?.stop();
  });

  test("after the Nth failure the primary gets no attempts until the cooldown ends, then traffic returns", async () => {
    const qwen = backend(seed, "qwen2-1-5b");
    await setFaults(qwen.url, { status: 503 });
    const send = async (): Promise<Response> => {
      // New connections spread over both workers.
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat("qwen2-1-5b"), { connection: "close" });
      await r.body?.cancel();
      return r;
    };
    const base = qwen.hits();
    for (let i = 0; i < 3; i++) assert.equal((await send()).status, 200);
    assert.equal(qwen.hits() - base, 3, "three failures reached the primary");
    for (let i = 0; i < 10; i++) {
      const r = await send();
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-llm-gateway-model"), "gemma-2-2b");
    }
    assert.equal(qwen.hits() - base, 3, "no attempt reached the primary during the cooldown");
    await setFaults(qwen.url, null);
    await new Promise((res) => setTimeout(res, COOLDOWN_MS + 200));
    const probe = await send();
    assert.equal(probe.headers.get("x-llm-gateway-model"), "qwen2-1-5b", "the probe went to the recovered primary");
    for (let i = 0; i < 5; i++) assert.equal((await send()).headers.get("x-llm-gateway-model"), "qwen2-1-5b");
    assert.equal(qwen.hits() - base, 9);
  });
});
