// Token quotas in local mode (counters in proxy-wasm shared data) through the real Envoy with two worker
// threads: a budget holds across the workers under concurrent clients, refusals are what the openai client
// reads as RateLimitError with OpenAI's headers, a stream is never cut for going over, and what is charged
// equals the tokens the metrics count (reported or estimated).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startSeed, post, type Seed } from "../harness/seed.ts";
import { aiMetric, scrape, scrapeUntil } from "../harness/metrics.ts";
import { aiLogs, sseData } from "../harness/ai-log.ts";
import { countPromptTokens } from "../backends/tokens.ts";
import { admittedTokens, connectionsPerWorker, spendUntilRefused } from "../quota/load.ts";

const COMPLETION_TOKENS = 20;
const MESSAGES = [{ role: "user" as const, content: "count the tokens of this prompt please" }];
const PER_REQUEST = countPromptTokens("chat", { messages: MESSAGES }) + COMPLETION_TOKENS;
const BUDGET = 500;
const CLIENTS = 6;
const WORKERS = 2;
const BIG = 1_000_000;

// Each test has its own model names (aliases of the qwen backend) and rules, so counts don't mix.
const alias = (name: string): Record<string, unknown> => ({ name, route: "qwen2-1-5b", upstreamModel: "qwen2-1-5b" });
const CHARGE_KINDS = { "q-charge-input": "inputTokens", "q-charge-output": "outputTokens", "q-charge-total": "totalTokens" } as const;

let seed: Seed;

before(async () => {
  seed = await startSeed({
    stub: { completionTokens: COMPLETION_TOKENS },
    gateway: { concurrency: WORKERS },
    pluginConfig: {
      models: [
        { name: "qwen2-1-5b" },
        { name: "gemma-2-2b" },
        ...["q-workers", "q-openai", "q-openai-tokens", "q-fail-fast", "q-stream", ...Object.keys(CHARGE_KINDS)].map(alias),
      ],
      quotas: {
        mode: "local",
        rules: [
          // Day windows: a test never straddles a window's end (but at midnight UTC).
          { name: "workers", consumerHeader: "x-team", models: ["q-workers"], window: "day", totalTokens: BUDGET },
          { name: "openai-requests", apiKeyHeader: "authorization", models: ["q-openai"], window: "day", requests: 2 },
          { name: "openai-tokens", apiKeyHeader: "authorization", models: ["q-openai-tokens"], window: "hour", totalTokens: 30 },
          { name: "fail-fast", models: ["q-fail-fast"], window: "day", requests: 1 },
          { name: "stream", models: ["q-stream"], window: "day", totalTokens: 10 },
          ...Object.entries(CHARGE_KINDS).map(([model, kind]) => ({ name: `charge-${kind}`, models: [model], window: "day", [kind]: BIG })),
        ],
      },
    },
  });
});
after(async () => {
  await seed?.stop();
});

const chatUrl = (): string => `${seed.gateway.url}/v1/chat/completions`;

test("a token budget holds across Envoy's workers: concurrent clients get no more than the budget plus the requests in flight", async (t) => {
  const outcomes = await spendUntilRefused({
    urls: [chatUrl()],
    clients: CLIENTS,
    body: { model: "q-workers", messages: MESSAGES },
    headers: { "x-team": "team-a", "x-stub-delay-ms": "20" },
  });
  const statuses = new Set(outcomes.map((o) => o.status));
  assert.deepEqual([...statuses].sort(), [200, 429], "every client ran until refused, and nothing else happened");
  assert.equal(outcomes.filter((o) => o.status === 429).length, CLIENTS);
  const admitted = admittedTokens(outcomes).total;
  // Admission only refuses once the budget is spent, so the clients spent it; each of them had at most
  // one request admitted before the charges of the others landed.
  t.diagnostic(
    `${outcomes.filter((o) => o.status === 200).length} requests admitted, ${admitted} tokens for a budget of ${BUDGET} ` +
      `(bound: budget − 1 + ${CLIENTS} clients × ${PER_REQUEST} tokens = ${BUDGET - 1 + CLIENTS * PER_REQUEST})`,
  );
  assert.ok(admitted >= BUDGET, `admitted ${admitted} tokens, budget ${BUDGET}`);
  assert.ok(
    admitted <= BUDGET - 1 + CLIENTS * PER_REQUEST,
    `admitted ${admitted} > budget ${BUDGET} + ${CLIENTS} × ${PER_REQUEST} in flight`,
  );
  const perWorker = await connectionsPerWorker(seed.gateway.adminUrl, seed.gateway.layout.listenPort, WORKERS);
  assert.ok(
    perWorker.every((n) => n > 0),
    `both workers served connections: ${perWorker.join(", ")}`,
  );
  // Another team has its own budget.
  const other = await post(chatUrl(), { model: "q-workers", messages: MESSAGES }, { "x-team": "team-b" });
  assert.equal(other.status, 200);
  // The refusals are counted and logged under the rule's name.
  const s = await scrape(seed.gateway.adminUrl);
  assert.equal(aiMetric(s, "quota_refused", "q-workers"), CLIENTS);
  await waitForLogs((l) => l["quota_refused"] === "workers", CLIENTS);
});

test("a refusal is a RateLimitError in the openai client, with OpenAI's x-ratelimit headers", async () => {
  const key = "sk-test-requests-0123456789";
  const openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: key, maxRetries: 0 });
  const ask = () => openai.chat.completions.create({ model: "q-openai", messages: [{ role: "user", content: "hello" }] });
  const first = await ask().withResponse();
  // Admitted answers carry the same headers, as of admission.
  assert.equal(first.response.headers.get("x-ratelimit-limit-requests"), "2");
  assert.equal(first.response.headers.get("x-ratelimit-remaining-requests"), "1");
  assert.match(first.response.headers.get("x-ratelimit-reset-requests") ?? "", /^(\d+h)?(\d+m)?\d+s$/);
  assert.equal(first.response.headers.get("x-ratelimit-limit-tokens"), null, "no token limit applies: no -tokens headers");
  await ask();
  const err = await ask().then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${String(err)}`);
  assert.equal(err.status, 429);
  assert.equal(err.code, "rate_limit_exceeded");
  assert.equal(err.type, "requests");
  assert.match(
    err.message,
    /^429 Rate limit reached for q-openai on requests per day \(rule openai-requests\): limit 2, used 2\. Please try again in (\d+h)?(\d+m)?\d+s\.$/,
  );
  const h = err.headers;
  assert.equal(h?.get("x-ratelimit-limit-requests"), "2");
  assert.equal(h?.get("x-ratelimit-remaining-requests"), "0");
  assert.match(h?.get("x-ratelimit-reset-requests") ?? "", /^(\d+h)?(\d+m)?\d+s$/);
  const retryAfter = Number(h?.get("retry-after"));
  const retryAfterMs = Number(h?.get("retry-after-ms"));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 86400, `retry-after ${String(h?.get("retry-after"))}`);
  assert.equal(retryAfter, Math.ceil(retryAfterMs / 1000));
  // Another key has its own budget; the key itself appears nowhere Envoy writes.
  const other = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "sk-test-other-key", maxRetries: 0 });
  await other.chat.completions.create({ model: "q-openai", messages: [{ role: "user", content: "hello" }] });
  assert.ok(!(await seed.gateway.stats()).includes(key), "the API key is not in the stats");
  await waitForLogs((l) => l["quota_refused"] === "openai-requests", 1);
  assert.ok(!JSON.stringify(aiLogs(seed.gateway)).includes(key), "the API key is not in the access log");
});

test("behind a long reset the openai client fails at once instead of sleeping until it (x-should-retry: false)", async () => {
  // Default maxRetries (2): without the header the client would sleep retry-after-ms, hours here.
  const openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "sk-test-fail-fast" });
  const ask = () => openai.chat.completions.create({ model: "q-fail-fast", messages: [{ role: "user", content: "hello" }] });
  await ask();
  const err = await ask().then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${String(err)}`);
  assert.equal(err.headers?.get("x-should-retry"), "false");
  assert.ok(Number(err.headers?.get("retry-after-ms")) > 60000);
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) => aiMetric(x, "quota_refused", "q-fail-fast") >= 1);
  assert.equal(aiMetric(s, "quota_refused", "q-fail-fast"), 1, "one refusal: the client did not retry");
});

test("a token refusal names the token limit and sets the -tokens headers", async () => {
  const openai = new OpenAI({ baseURL: `${seed.gateway.url}/v1`, apiKey: "sk-test-tokens", maxRetries: 0 });
  const ask = () => openai.chat.completions.create({ model: "q-openai-tokens", messages: MESSAGES });
  const first = await ask().withResponse();
  assert.equal(first.response.headers.get("x-ratelimit-limit-tokens"), "30");
  assert.equal(first.response.headers.get("x-ratelimit-remaining-tokens"), "30");
  const spent = first.data.usage?.total_tokens ?? 0;
  assert.equal(spent, PER_REQUEST);
  const second = await ask().withResponse();
  assert.equal(second.response.headers.get("x-ratelimit-remaining-tokens"), String(30 - spent));
  const err = await ask().then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${String(err)}`);
  assert.equal(err.type, "tokens");
  assert.match(err.message, /on total_tokens per hour \(rule openai-tokens\): limit 30, used 30\./);
  assert.equal(err.headers?.get("x-ratelimit-limit-tokens"), "30");
  assert.equal(err.headers?.get("x-ratelimit-remaining-tokens"), "0");
  assert.match(err.headers?.get("x-ratelimit-reset-tokens") ?? "", /^(\d+m)?\d+s$|^\d+ms$/);
  assert.equal(err.headers?.get("x-ratelimit-limit-requests"), null, "no requests limit applies: no -requests headers");
});

test("a stream that goes over the budget is never cut; the next request is refused", async () => {
  const tokens = 40;
  const r = await post(chatUrl(), { model: "q-stream", messages: MESSAGES, stream: true }, { "x-stub-completion-tokens": String(tokens) });
  assert.equal(r.status, 200);
  const data = sseData(await r.text());
  assert.equal(data[data.length - 1], "[DONE]");
  assert.equal(data.length, tokens + 2, "role chunk, every token, [DONE]");
  const next = await post(chatUrl(), { model: "q-stream", messages: MESSAGES });
  assert.equal(next.status, 429);
});

test("what is charged equals the tokens the metrics count, reported or estimated, JSON or streamed", async () => {
  // The same mix of answers for a rule limiting each kind; a last request's headers then tell what each
  // rule charged (remaining = limit − used), against the metrics' counts.
  const mix: { body: Record<string, unknown>; headers: Record<string, string> }[] = [
    { body: { messages: MESSAGES }, headers: {} },
    { body: { messages: MESSAGES, stream: true }, headers: {} },
    { body: { messages: MESSAGES, stream: true, stream_options: { include_usage: true } }, headers: { "x-stub-completion-tokens": "7" } },
    { body: { messages: MESSAGES }, headers: { "x-stub-no-usage": "1" } },
    { body: { messages: MESSAGES, stream: true }, headers: { "x-stub-no-usage": "1" } },
    { body: { messages: MESSAGES, stream: true }, headers: { "x-stub-cut-after": "4" } },
  ];
  for (const model of Object.keys(CHARGE_KINDS)) {
    for (const m of mix) {
      const r = await post(chatUrl(), { model, ...m.body }, m.headers).catch(() => null);
      await r?.text().catch(() => "");
    }
  }
  const s = await scrapeUntil(seed.gateway.adminUrl, (x) =>
    Object.keys(CHARGE_KINDS).every((m) => aiMetric(x, "duration_ms_count", m) >= mix.length),
  );
  const metricOf = { inputTokens: "input_token", outputTokens: "output_token", totalTokens: "total_token" } as const;
  for (const [model, kind] of Object.entries(CHARGE_KINDS)) {
    const counted = aiMetric(s, metricOf[kind], model);
    assert.ok(counted > 0);
    assert.ok(aiMetric(s, "usage_estimated", model) >= 3, "the mix had estimated usage");
    const probe = await post(chatUrl(), { model, messages: MESSAGES });
    assert.equal(probe.status, 200);
    assert.equal(probe.headers.get("x-ratelimit-remaining-tokens"), String(BIG - counted), `${model}: charged = ${metricOf[kind]}`);
    await probe.text();
  }
});

async function waitForLogs(which: (l: Record<string, unknown>) => boolean, n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (aiLogs(seed.gateway).filter(which).length < n) {
    if (Date.now() > deadline) assert.fail(`expected ${n} ai_log entries, found ${aiLogs(seed.gateway).filter(which).length}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
