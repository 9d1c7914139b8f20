// A streamed request whose primary fails before its first byte gets the backup's answer token by token
// (fallback.mechanism "envoy": Envoy retries on the backup's cluster and the answer streams through),
// with the official openai client and no client-side retries.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startSeed, backend, type Seed } from "../harness/seed.ts";
import { startStub } from "../backends/vllm-stub.ts";
import { expectedText } from "../backends/tokens.ts";

const TOKENS = 20;
const TTFT_MS = 100;
const INTERVAL_MS = 60;

describe("a backup's answer streams", () => {
  let seed: Seed;
  let openai: OpenAI;
  before(async () => {
    seed = await startSeed({
      pluginConfig: {
        models: [{ name: "qwen2-1-5b", fallback: ["gemma-2-2b"] }, { name: "gemma-2-2b" }],
        fallback: { cooldown: { failures: 0 } },
      },
    });
    openai = new OpenAI({
      baseURL: `${seed.gateway.url}/v1`,
      apiKey: "unused",
      maxRetries: 0,
      // The backup generates slowly enough that a stream relayed whole would be plain to see.
      defaultHeaders: {
        "x-stub-ttft-ms": String(TTFT_MS),
        "x-stub-token-interval-ms": String(INTERVAL_MS),
        "x-stub-completion-tokens": String(TOKENS),
      },
    });
  });
  after(async () => {
    await seed?.stop();
  });

  // Arrival time of each content chunk, from the request's start.
  async function streamTimes(): Promise<{ times: number[]; text: string; models: Set<string> }> {
    const start = performance.now();
    const stream = await openai.chat.completions.create({
      model: "qwen2-1-5b",
      messages: [{ role: "user", content: "tell me" }],
      stream: true,
    });
    const times: number[] = [];
    const models = new Set<string>();
    let text = "";
    for await (const c of stream) {
      models.add(c.model);
      const piece = c.choices[0]?.delta.content ?? "";
      if (piece.length > 0) times.push(performance.now() - start);
      text += piece;
    }
    return { times, text, models };
  }

  // The whole answer, from gemma-2-2b, one chunk per token, spread over its generation.
  async function assertBackupStreamed(): Promise<void> {
    const { times, text, models } = await streamTimes();
    assert.deepEqual([...models], ["gemma-2-2b"]);
    assert.equal(text, expectedText("gemma-2-2b", TOKENS));
    assertStreamed(times);
  }

  function assertStreamed(times: number[]): void {
    assert.equal(times.length, TOKENS, "one chunk per token");
    const first = times[0] ?? 0;
    const last = times[times.length - 1] ?? 0;
    // Generated over (TOKENS - 1) intervals: a stream relayed whole would put every chunk at the end.
    assert.ok(
      last - first >= 0.7 * (TOKENS - 1) * INTERVAL_MS,
      `chunks spread over ${(last - first).toFixed(0)} ms (first at ${first.toFixed(0)} ms, last at ${last.toFixed(0)} ms)`,
    );
    assert.ok(first < last / 2, `first chunk (${first.toFixed(0)} ms) long before the last (${last.toFixed(0)} ms)`);
  }

  for (const status of [503, 429]) {
    test(`primary answering ${status}: gemma-2-2b's answer arrives token by token`, async () => {
      const qwen = backend(seed, "qwen2-1-5b");
      await fetch(`${qwen.url}/stub/faults`, {
        method: "POST",
        body: JSON.stringify({ status }),
        headers: { "content-type": "application/json" },
      });
      try {
        await assertBackupStreamed();
      } finally {
        await fetch(`${qwen.url}/stub/faults`, { method: "DELETE" });
      }
    });
  }

  test("primary refusing connections: gemma-2-2b's answer arrives token by token", async () => {
    const qwen = backend(seed, "qwen2-1-5b");
    const port = qwen.port;
    await qwen.close();
    try {
      await assertBackupStreamed();
    } finally {
      seed.backends.set("qwen2-1-5b", await startStub({ model: "qwen2-1-5b", port }));
    }
  });
});
