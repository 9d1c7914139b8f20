// Spec for the replica model (replica.ts) on a virtual clock, and for the stub in replica mode
// (x-stub-replica, cached_tokens, GET /metrics).
// Run: node --import tsx --test tests/backends/replica.test.ts
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BLOCK_SIZE, Replica, blockHashes, type Clock, type ReplicaParams } from "./replica.ts";
import { REPLICA_PRESET } from "./fleet-params.ts";
import { countPromptTokens, expectedText, outputTokenIds, promptTokenIds, tokenId } from "./tokens.ts";
import { startStub } from "./vllm-stub.ts";
import { parsePrometheus } from "../harness/metrics.ts";

// Steps take no wall time: the clock jumps by the step's length when the step ends.
function virtualClock(): Clock & { t: number } {
  const c = {
    t: 0,
    now: () => c.t,
    sleep: (ms: number) =>
      new Promise<void>((resolve) =>
        setImmediate(() => {
          c.t += ms;
          resolve();
        }),
      ),
  };
  return c;
}

const PARAMS: ReplicaParams = {
  numBlocks: 1000,
  maxNumSeqs: 8,
  maxBatchedTokens: 2048,
  prefillUsPerToken: 10,
  stepBaseUs: 5000,
  decodeUsPerSeq: 100,
  speed: 1,
};

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => tokenId("user", `${prefix}${i}`));

async function ttft(replica: Replica, clock: { t: number }, prompt: string[], output = 4): Promise<{ ms: number; cached: number }> {
  const start = clock.t;
  const seq = replica.submit(prompt, ids("out", output));
  await seq.waitFor(1);
  const ms = clock.t - start;
  await seq.waitFor(output);
  return { ms, cached: seq.cachedTokens };
}

describe("replica model", () => {
  it("prefills a prompt in one step of base + tokens × prefill time, then decodes a token per step", async () => {
    const clock = virtualClock();
    const r = new Replica(PARAMS, clock);
    const seq = r.submit(ids("p", 100), ids("o", 3));
    await seq.waitFor(1);
    assert.equal(clock.t, 5 + 100 * 0.01);
    await seq.waitFor(3);
    assert.equal(clock.t, 6 + 2 * (5 + 0.1));
    await r.idle();
    assert.equal(r.snapshot().requestsFinished, 1);
  });

  it("keeps its own simulated clock: a late event loop does not stretch the TTFT it records", async () => {
    const clock = virtualClock();
    const late: Clock = { now: clock.now, sleep: (ms) => clock.sleep(ms * 3) };
    const r = new Replica(PARAMS, late);
    const seq = r.submit(ids("p", 100), ids("o", 2));
    await seq.waitFor(2);
    assert.equal(clock.t, 3 * (6 + 5.1), "the wall clock ran late");
    assert.equal(seq.ttftMs, 6);
  });

  it("splits a prefill longer than the step budget into chunks (chunked prefill)", async () => {
    const clock = virtualClock();
    const r = new Replica({ ...PARAMS, maxBatchedTokens: 512 }, clock);
    const { ms } = await ttft(r, clock, ids("p", 1200));
    // Three steps: 512 + 512 + 176 tokens.
    assert.equal(Math.round(ms * 1000), Math.round((3 * 5 + 1200 * 0.01) * 1000));
  });

  it("serves a repeated prompt from the prefix cache, never the whole prompt, counting queries and hits", async () => {
    const clock = virtualClock();
    const r = new Replica(PARAMS, clock);
    const prompt = ids("sys", 100);
    const cold = await ttft(r, clock, prompt);
    const warm = await ttft(r, clock, prompt);
    assert.equal(cold.cached, 0);
    // 100 tokens: 6 full blocks, and the last token is always computed: 96 hit.
    assert.equal(warm.cached, 96);
    assert.ok(warm.ms < cold.ms);
    const exact = ids("x", 32);
    await ttft(r, clock, exact);
    assert.equal((await ttft(r, clock, exact)).cached, 16, "a prompt of exactly two blocks hits one");
    const s = r.snapshot();
    assert.equal(s.prefixCacheQueries, 100 + 100 + 32 + 32);
    assert.equal(s.prefixCacheHits, 96 + 16);
  });

  it("hits only under the same prefix: the same block after a different start misses", async () => {
    const clock = virtualClock();
    const r = new Replica(PARAMS, clock);
    const shared = ids("s", 64);
    await ttft(r, clock, [...ids("a", 16), ...shared]);
    assert.equal((await ttft(r, clock, [...ids("b", 16), ...shared])).cached, 0);
  });

  it("caches generated tokens, so the next turn that re-sends the answer hits on it", async () => {
    const clock = virtualClock();
    const r = new Replica(PARAMS, clock);
    const model = "qwen2-1-5b";
    const turn1 = { messages: [{ role: "user", content: Array.from({ length: 40 }, (_, i) => `w${i}`).join(" ") }] };
    const p1 = promptTokenIds("chat", turn1);
    const answer = outputTokenIds(model, 40);
    const s1 = r.submit(p1, answer);
    await s1.waitFor(40);
    const turn2 = {
      messages: [...turn1.messages, { role: "assistant", content: expectedText(model, 40) }, { role: "user", content: "more" }],
    };
    const p2 = promptTokenIds("chat", turn2);
    assert.equal(p2.length, countPromptTokens("chat", turn2));
    const s2 = r.submit(p2, ids("o", 2));
    await s2.waitFor(2);
    // Turn 1 computed 79 tokens' KV (the last answer token is sampled, never fed back): 4 full blocks.
    // Turn 2's 81 prompt tokens start with those 79 and hit on the 4 blocks: its prompt and part of the answer.
    assert.equal(s2.cachedTokens, 64);
  });

  it("evicts the least recently used cached blocks when it needs room", async () => {
    const clock = virtualClock();
    const r = new Replica({ ...PARAMS, numBlocks: 12 }, clock);
    const a = ids("a", 80); // 5 blocks + 1 for its output
    const b = ids("b", 80);
    const c = ids("c", 80);
    await ttft(r, clock, a, 1);
    await ttft(r, clock, b, 1);
    // a was used before b: c's blocks evict a's, tail first (a request's last blocks are the least shared).
    await ttft(r, clock, c, 1);
    assert.equal((await ttft(r, clock, b, 1)).cached, 64);
    assert.equal((await ttft(r, clock, a, 1)).cached, 16, "only a's first block is left");
  });

  it("runs at most maxNumSeqs at once; the rest wait in FIFO order and show in the gauges", async () => {
    const clock = virtualClock();
    const r = new Replica({ ...PARAMS, maxNumSeqs: 2 }, clock);
    const seqs = [0, 1, 2].map((i) => r.submit(ids(`q${i}`, 20), ids("o", 5)));
    await seqs[0]!.waitFor(1);
    const s = r.snapshot();
    assert.equal(s.running, 2);
    assert.equal(s.waiting, 1);
    assert.ok(s.kvCacheUsage > 0 && s.kvCacheUsage < 1);
    assert.equal(seqs[2]!.generated, 0);
    await seqs[0]!.waitFor(5);
    await seqs[2]!.waitFor(1);
    assert.equal(seqs[0]!.finished && seqs[1]!.finished, true, "the third starts once one of the first two ends");
    await r.idle();
    assert.deepEqual([r.snapshot().running, r.snapshot().waiting], [0, 0]);
  });

  it("preempts the latest request when decoding runs out of blocks, and still finishes every request", async () => {
    const clock = virtualClock();
    const r = new Replica({ ...PARAMS, numBlocks: 8 }, clock);
    const seqs = [0, 1].map((i) => r.submit(ids(`q${i}`, 40), ids("o", 40)));
    for (const s of seqs) await s.waitFor(40);
    assert.ok(r.snapshot().preemptions > 0);
    assert.deepEqual(
      seqs.map((s) => s.generated),
      [40, 40],
    );
  });

  it("a cancelled request leaves the engine and frees its blocks", async () => {
    const clock = virtualClock();
    const r = new Replica(PARAMS, clock);
    const seq = r.submit(ids("p", 64), ids("o", 1000));
    await seq.waitFor(2);
    r.cancel(seq);
    await r.idle();
    const s = r.snapshot();
    assert.equal(s.running, 0);
    assert.equal(s.kvCacheUsage, 0);
  });

  it("hashes blocks as a chain: equal blocks under different parents differ", () => {
    const x = blockHashes([...ids("a", BLOCK_SIZE), ...ids("s", BLOCK_SIZE)]);
    const y = blockHashes([...ids("b", BLOCK_SIZE), ...ids("s", BLOCK_SIZE)]);
    assert.equal(x.length, 2);
    assert.notEqual(x[1], y[1]);
    assert.deepEqual(blockHashes(ids("a", BLOCK_SIZE + 5)), blockHashes(ids("a", BLOCK_SIZE)));
  });
});

describe("the stub in replica mode", () => {
  const MODEL = "qwen2-1-5b";
  const system = Array.from({ length: 300 }, (_, i) => `s${i}`).join(" ");
  const messages = [
    { role: "system", content: system },
    { role: "user", content: "hello there" },
  ];

  it("names the replica, reports cached_tokens in usage (plain and streamed) and vLLM's metrics", async () => {
    const stub = await startStub({ model: MODEL, replica: { name: "r7", params: { ...REPLICA_PRESET, speed: 20 } } });
    try {
      const post = (body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
        fetch(`${stub.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify(body),
        });
      const first = await post({ model: MODEL, messages, max_tokens: 5 });
      assert.equal(first.headers.get("x-stub-replica"), "r7");
      const u1 = ((await first.json()) as { usage: Record<string, unknown> }).usage;
      assert.equal(u1["prompt_tokens"], 302);
      assert.equal(u1["prompt_tokens_details"], null, "nothing cached: vLLM leaves the details null");

      const second = await post({ model: MODEL, messages, max_tokens: 5 });
      const u2 = ((await second.json()) as { usage: Record<string, unknown> }).usage;
      assert.deepEqual(u2["prompt_tokens_details"], { cached_tokens: 288 });

      const streamed = await post({ model: MODEL, messages, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
      const text = await streamed.text();
      const usageEvent = text
        .split("\n\n")
        .map((e) => e.replace(/^data: /, ""))
        .filter((e) => e.startsWith("{"))
        .map((e) => JSON.parse(e) as { usage?: Record<string, unknown> })
        .find((e) => e.usage !== undefined);
      assert.deepEqual(usageEvent?.usage, {
        prompt_tokens: 302,
        total_tokens: 305,
        completion_tokens: 3,
        prompt_tokens_details: { cached_tokens: 288 },
      });
      assert.ok(text.includes(`"content":"${MODEL}"`) && text.trimEnd().endsWith("data: [DONE]"));

      const metrics = await fetch(`${stub.url}/metrics`);
      assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const body = await metrics.text();
      assert.match(body, /^# TYPE vllm:prefix_cache_hits_total counter$/m);
      const samples = parsePrometheus(body);
      const value = (name: string): number | undefined => samples.find((s) => s.name === name)?.value;
      for (const s of samples) assert.deepEqual(s.labels, { model_name: MODEL, engine: "0" });
      assert.equal(value("vllm:prefix_cache_queries_total"), 3 * 302);
      assert.equal(value("vllm:prefix_cache_hits_total"), 2 * 288);
      assert.equal(value("vllm:num_requests_running"), 0);
      assert.equal(value("vllm:num_requests_waiting"), 0);
      assert.equal(value("vllm:kv_cache_usage_perc"), 0);
      assert.deepEqual(stub.replicaStats()?.requestsFinished, 3);
      const tagged = await post({ model: MODEL, messages, max_tokens: 2 }, { "x-stub-tag": "t-1" });
      await tagged.text();
      const stats = (await (await fetch(`${stub.url}/stub/stats`)).json()) as { replica: { requests: Record<string, unknown>[] } };
      const record = stats.replica.requests.find((r) => r["tag"] === "t-1");
      assert.equal(record?.["cachedTokens"], 288);
      assert.ok(typeof record?.["ttftMs"] === "number" && record["ttftMs"] > 0);
    } finally {
      await stub.close();
    }
  });

  it(
    "reports the queue and KV usage in endpoint-load-metrics, as /metrics shows them when the answer goes out",
    { timeout: 10_000 },
    async () => {
      // The engine runs a step only when the test says so, so its state holds still between answers.
      const pending: (() => void)[] = [];
      const clock: Clock & { t: number } = {
        t: 0,
        now: () => clock.t,
        sleep: (ms) =>
          new Promise<void>((resolve) =>
            pending.push(() => {
              clock.t += ms;
              resolve();
            }),
          ),
      };
      const until = async (ok: () => boolean): Promise<void> => {
        while (!ok()) await new Promise((resolve) => setImmediate(resolve));
      };
      const step = async (): Promise<void> => {
        await until(() => pending.length > 0);
        pending.shift()?.();
      };
      const stub = await startStub({ model: MODEL, replica: { name: "r1", params: { ...PARAMS, maxNumSeqs: 1 }, clock } });
      try {
        const send = (format: string): Promise<Response> =>
          fetch(`${stub.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-stub-completion-tokens": "2", "endpoint-load-metrics-format": format },
            body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hello there" }] }),
          });
        const gauges = async (): Promise<[number | undefined, number | undefined]> => {
          const samples = parsePrometheus(await (await fetch(`${stub.url}/metrics`)).text());
          const value = (name: string): number | undefined => samples.find((s) => s.name === name)?.value;
          return [value("vllm:num_requests_waiting"), value("vllm:kv_cache_usage_perc")];
        };
        // One runs (max_num_seqs 1), two wait behind it.
        const a = send("TEXT");
        await until(() => stub.replicaStats()?.running === 1);
        const b = send("JSON");
        await until(() => stub.replicaStats()?.waiting === 1);
        const c = send("text");
        await until(() => stub.replicaStats()?.waiting === 2);

        // a's prefill, then its second token: a ends, the engine admits b, c still waits (b's prompt: one block).
        await step();
        await step();
        const first = await a;
        await first.text();
        assert.equal(
          first.headers.get("endpoint-load-metrics"),
          "TEXT named_metrics.num_requests_waiting=1.0, named_metrics.kv_cache_usage_perc=0.0010000000000000009",
        );
        assert.deepEqual(await gauges(), [1, 1 - 999 / 1000], "/metrics agrees while the engine holds");

        await step();
        await step();
        const second = await b;
        await second.text();
        assert.equal(
          second.headers.get("endpoint-load-metrics"),
          'JSON {"named_metrics": {"num_requests_waiting": 0.0, "kv_cache_usage_perc": 0.0010000000000000009}}',
        );
        assert.deepEqual(await gauges(), [0, 1 - 999 / 1000]);

        await step();
        await step();
        const third = await c;
        await third.text();
        // Its blocks are free again (cached blocks no request holds count as free, as in vLLM).
        assert.equal(
          third.headers.get("endpoint-load-metrics"),
          "TEXT named_metrics.num_requests_waiting=0.0, named_metrics.kv_cache_usage_perc=0.0",
        );
        assert.deepEqual(await gauges(), [0, 0]);
      } finally {
        await stub.close();
      }
    },
  );

  it("without replica mode, /metrics reports requests in flight and no x-stub-replica header", async () => {
    const stub = await startStub({ model: MODEL });
    try {
      const r = await fetch(`${stub.url}/metrics`);
      assert.equal(r.headers.get("x-stub-replica"), null);
      const samples = parsePrometheus(await r.text());
      assert.equal(samples.find((s) => s.name === "vllm:num_requests_running")?.value, 0);
    } finally {
      await stub.close();
    }
  });
});
