// Token usage, time-to-first-token and latency through the real Envoy: the Prometheus counters
// equal what the backend reported, TTFT follows the backend's first-token delay, and streams the
// client did not ask usage for come back exactly as asked.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { startSeed, post, type Seed } from "../harness/seed.ts";
import { aiMetric, scrape, scrapeUntil, type Sample } from "../harness/metrics.ts";
import { countPromptTokens } from "../backends/tokens.ts";

const TTFT_MS = 300;
let seed: Seed;
let openai: OpenAI;

// Each test uses its own model label (an alias routed to the same backend) so their counts don't mix.
before(async () => {
  seed = await startSeed({
    stub: { ttftMs: TTFT_MS, completionTokens: 12 },
    pluginConfig: {
      trustConsumerHeader: true, // the last test names its consumer on purpose
      models: [
        { name: "qwen2-1-5b" },
        { name: "gemma-2-2b" },
        ...["plain", "streamed", "asked", "nousage", "cut", "drop", "ttft", "client"].map((n) => ({
          name: `t-${n}`,
          route: "gemma-2-2b",
          upstreamModel: "gemma-2-2b",
        })),
      ],
    },
  });
  openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(async () => {
  await seed?.stop();
});

const url = (): string => `${seed.gateway.url}/v1/chat/completions`;
const messages = [{ role: "user", content: "count the tokens of this prompt please" }];
const PROMPT_TOKENS = countPromptTokens("chat", { messages });

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

function events(sse: string): string[] {
  return sse
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => e.slice(6));
}

test("a plain JSON answer's usage lands in the counters exactly", async () => {
  const r = await post(url(), { model: "t-plain", messages });
  const body = (await r.json()) as { usage: Usage };
  assert.equal(body.usage.prompt_tokens, PROMPT_TOKENS);
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "duration_ms_count", "t-plain") >= 1);
  assert.equal(aiMetric(s, "input_token", "t-plain"), body.usage.prompt_tokens);
  assert.equal(aiMetric(s, "output_token", "t-plain"), body.usage.completion_tokens);
  assert.equal(aiMetric(s, "total_token", "t-plain"), body.usage.total_tokens);
  assert.equal(aiMetric(s, "llm_duration_count", "t-plain"), 1);
  assert.equal(aiMetric(s, "llm_stream_duration_count", "t-plain"), 0);
  assert.equal(aiMetric(s, "usage_estimated", "t-plain"), 0);
  assert.equal(aiMetric(s, "responses_upstream_2xx", "t-plain"), 1);
  // Higress's labels: the AI route and cluster Envoy picked.
  const one = s.find((x) => x.name.endsWith("input_token") && x.labels["ai_model"] === "t-plain");
  assert.deepEqual(one?.labels, {
    ai_route: "ai-route-gemma-2-2b.internal",
    ai_cluster: "outbound|8080||llm-gemma-2-2b.dns",
    ai_model: "t-plain",
    ai_consumer: "none",
  });
});

test("a streamed answer the client asked usage for: counted, and the client gets its usage chunk", async () => {
  const r = await post(url(), { model: "t-asked", messages, stream: true, stream_options: { include_usage: true } });
  const ev = events(await r.text());
  const last = JSON.parse(ev[ev.length - 2] ?? "{}") as { choices: unknown[]; usage: Usage };
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 12);
  assert.equal(ev[ev.length - 1], "[DONE]");
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "first_token_ms_count", "t-asked") >= 1);
  assert.equal(aiMetric(s, "input_token", "t-asked"), PROMPT_TOKENS);
  assert.equal(aiMetric(s, "output_token", "t-asked"), 12);
  assert.equal(aiMetric(s, "llm_stream_duration_count", "t-asked"), 1);
});

test("a client that did not ask for usage gets exactly its stream, and the metrics still count", async () => {
  const r = await post(url(), { model: "t-drop", messages, stream: true });
  const ev = events(await r.text());
  assert.equal(ev[ev.length - 1], "[DONE]");
  for (const e of ev.slice(0, -1)) {
    const chunk = JSON.parse(e) as { choices: unknown[]; usage?: unknown };
    assert.notDeepEqual(chunk.choices, [], "no usage-only chunk");
    assert.equal(chunk.usage, undefined, "no usage field in any chunk");
  }
  // The backend was asked for usage on the client's behalf.
  const stats = (await (await fetch(`${seed.backends.get("gemma-2-2b")!.url}/stub/stats`)).json()) as {
    lastRequest: { body: { stream_options?: unknown } };
  };
  assert.deepEqual(stats.lastRequest.body.stream_options, { include_usage: true });
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "first_token_ms_count", "t-drop") >= 1);
  assert.equal(aiMetric(s, "output_token", "t-drop"), 12);
  assert.equal(aiMetric(s, "input_token", "t-drop"), PROMPT_TOKENS);
  assert.equal(aiMetric(s, "usage_estimated", "t-drop"), 0);
});

test("the OpenAI client streaming without usage sees no usage chunk", async () => {
  const stream = await openai.chat.completions.create({ model: "t-client", messages: [{ role: "user", content: "hi" }], stream: true });
  let chunks = 0;
  for await (const c of stream) {
    chunks++;
    assert.ok(c.choices.length > 0);
    assert.equal(c.usage ?? null, null);
  }
  assert.equal(chunks, 13, "the role chunk and 12 token chunks, nothing else");
});

test("TTFT reflects the backend's first-token delay", async () => {
  for (let i = 0; i < 3; i++) {
    const r = await post(url(), { model: "t-ttft", messages, stream: true });
    await r.text();
  }
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "first_token_ms_count", "t-ttft") >= 3);
  const sum = aiMetric(s, "llm_first_token_duration", "t-ttft");
  assert.equal(aiMetric(s, "llm_stream_duration_count", "t-ttft"), 3);
  // Each request waited TTFT_MS at the backend before its first token (and little else).
  assert.ok(sum >= 3 * TTFT_MS && sum < 3 * (TTFT_MS + 250), `TTFT sum ${sum} ms for 3 requests`);
  assert.equal(bucket(s, "first_token_ms", "t-ttft", 270), 0, "no request under 270 ms");
  assert.equal(bucket(s, "first_token_ms", "t-ttft", 1000), 3, "every request under 1 s");
  // Duration ≥ TTFT; inter-token latency recorded.
  assert.ok(aiMetric(s, "llm_service_duration", "t-ttft") >= sum);
  assert.equal(aiMetric(s, "inter_token_ms_count", "t-ttft"), 3);
});

test("a backend that sends no usage yields estimated counts, TTFT and duration", async () => {
  const r = await post(url(), { model: "t-nousage", messages, stream: true }, { "x-stub-no-usage": "1" });
  const ev = events(await r.text());
  assert.equal(ev[ev.length - 1], "[DONE]");
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "first_token_ms_count", "t-nousage") >= 1);
  assert.equal(aiMetric(s, "usage_estimated", "t-nousage"), 1);
  assert.equal(aiMetric(s, "output_token", "t-nousage"), 12, "one token per content chunk");
  assert.ok(aiMetric(s, "input_token", "t-nousage") > 0);
  assert.equal(aiMetric(s, "llm_stream_duration_count", "t-nousage"), 1);
  assert.ok(aiMetric(s, "llm_first_token_duration", "t-nousage") >= TTFT_MS);
  assert.equal(aiMetric(s, "llm_duration_count", "t-nousage"), 1);
});

test("a stream cut without [DONE] is counted and the client is told", async () => {
  const r = await post(url(), { model: "t-cut", messages, stream: true }, { "x-stub-end-without-done": "1" });
  const ev = events(await r.text());
  const last = JSON.parse(ev[ev.length - 1] ?? "{}") as { error?: { code: string } };
  assert.equal(last.error?.code, "stream_incomplete");
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "stream_incomplete", "t-cut") >= 1);
  assert.equal(aiMetric(s, "stream_incomplete", "t-cut"), 1);
});

test("a stream reset midway is counted as incomplete", async () => {
  const r = await post(url(), { model: "t-cut", messages, stream: true }, { "x-stub-cut-after": "3" });
  await r.text().catch(() => "");
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "stream_incomplete", "t-cut") >= 2);
  assert.equal(aiMetric(s, "stream_incomplete", "t-cut"), 2);
});

test("the access log carries the same facts in ai_log", async () => {
  const r = await post(url(), { model: "t-streamed", messages, stream: true });
  await r.text();
  let line: { ai_log: string | null } | undefined;
  const deadline = Date.now() + 5000;
  while (line === undefined && Date.now() < deadline) {
    const lines = readFileSync(seed.gateway.accessLogPath, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { ai_log: string | null });
    line = lines.find((l) => l.ai_log?.includes('"t-streamed"'));
    if (line === undefined) await new Promise((res) => setTimeout(res, 100));
  }
  const log = JSON.parse(line?.ai_log ?? "{}") as Record<string, unknown>;
  assert.equal(log["model"], "t-streamed");
  assert.equal(log["served_model"], "gemma-2-2b");
  assert.equal(log["response_type"], "stream");
  assert.equal(log["input_token"], PROMPT_TOKENS);
  assert.equal(log["output_token"], 12);
  assert.equal(log["usage_estimated"], false);
  assert.equal(log["stream_complete"], true);
  assert.ok((log["llm_first_token_duration"] as number) >= TTFT_MS);
});

test("model and consumer label values cannot shift labels or forge series", async () => {
  const r = await post(url(), { model: "qwen2-1-5b", messages }, { "x-mse-consumer": "evil.metric.input_token.consumer.x" });
  await r.text();
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => x.some((y) => y.labels["ai_consumer"]?.startsWith("evil")));
  const forged = s.filter((x) => x.labels["ai_consumer"]?.startsWith("evil"));
  assert.ok(forged.length > 0);
  for (const f of forged) {
    assert.equal(f.labels["ai_consumer"], "evil_metric_input_token_consumer_x");
    assert.equal(f.labels["ai_model"], "qwen2-1-5b");
  }
});

// The cumulative count of a histogram bucket; fails when the bucket does not exist (a missing bucket
// must not read as "0 requests").
function bucket(s: Sample[], metric: string, model: string, le: number): number {
  const name = `route_upstream_model_consumer_metric_${metric}_bucket`;
  assert.ok(
    s.some((x) => x.name === name && x.labels["ai_model"] === model && x.labels["le"] === String(le)),
    `no bucket le=${le} for ${metric}`,
  );
  return aiMetric(s, `${metric}_bucket`, model, { le: String(le) });
}
