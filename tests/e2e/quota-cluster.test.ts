// Token quotas in cluster mode: two Envoy instances, each with the plugin, share one budget kept by the
// real envoyproxy/ratelimit over Redis (tests/quota/services.ts). A consumer sending concurrently through
// both gets no more than its budget plus the requests in flight when it ran out, what Redis holds equals
// what the two gateways' metrics counted, and refusals read as RateLimitError in the openai client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startStub, type StubHandle } from "../backends/vllm-stub.ts";
import { countPromptTokens } from "../backends/tokens.ts";
import { grpcCluster, RATELIMIT_CLUSTER } from "../harness/envoy-config.ts";
import { startGateway, type Gateway } from "../harness/envoy.ts";
import { aiMetric, scrapeUntil } from "../harness/metrics.ts";
import { waitFor } from "../harness/net.ts";
import { post } from "../harness/seed.ts";
import { admittedTokens, spendUntilRefused } from "../quota/load.ts";
import { counterKey, startQuotaServices, type QuotaServices } from "../quota/services.ts";

const COMPLETION_TOKENS = 20;
const MESSAGES = [{ role: "user" as const, content: "count the tokens of this prompt please" }];
const PER_REQUEST = countPromptTokens("chat", { messages: MESSAGES }) + COMPLETION_TOKENS;
const BUDGET = 600;
const CLIENTS = 6;
const DAY = 86400;

const alias = (name: string): Record<string, unknown> => ({ name, route: "qwen2-1-5b", upstreamModel: "qwen2-1-5b" });

function pluginConfig(): Record<string, unknown> {
  return {
    models: [{ name: "qwen2-1-5b" }, ...["c-shared", "c-requests", "c-openai", "c-per-model-a", "c-per-model-b"].map(alias)],
    quotas: {
      mode: "cluster",
      service: { cluster: RATELIMIT_CLUSTER, timeoutMs: 1000 },
      rules: [
        {
          name: "shared",
          consumerHeader: "x-team",
          models: ["c-shared"],
          window: "day",
          totalTokens: BUDGET,
          inputTokens: 100 * BUDGET,
          outputTokens: 100 * BUDGET,
        },
        { name: "requests", consumerHeader: "x-team", models: ["c-requests"], window: "day", requests: 7 },
        { name: "openai", apiKeyHeader: "authorization", models: ["c-openai"], window: "day", requests: 1, totalTokens: 1000 },
        { name: "per-model", models: ["c-per-model-*"], perModel: true, window: "day", requests: 1 },
      ],
    },
  };
}

let svc: QuotaServices;
let stub: StubHandle;
const gateways: Gateway[] = [];

before(async () => {
  svc = await startQuotaServices();
  stub = await startStub({ model: "qwen2-1-5b", completionTokens: COMPLETION_TOKENS });
  for (let i = 0; i < 2; i++) {
    gateways.push(
      await startGateway({
        backends: [{ model: "qwen2-1-5b", host: "127.0.0.1", port: stub.port }],
        pluginConfig: pluginConfig(),
        clusters: [grpcCluster({ name: RATELIMIT_CLUSTER, address: "127.0.0.1", port: svc.ratelimit.grpcPort })],
      }),
    );
  }
});
after(async () => {
  for (const g of gateways) await g.stop();
  await stub?.close();
  await svc?.stop();
});

const chatUrl = (g: Gateway): string => `${g.url}/v1/chat/completions`;

// What Redis holds for one rule and kind (summed over the keys the glob matches: `identity` "*" is any).
async function stored(rule: string, kind: string, o: { identity?: string; model?: string } = {}): Promise<number> {
  const entries: [string, string][] = [
    ["rule", rule],
    ["identity", o.identity ?? "*"],
  ];
  if (o.model !== undefined) entries.push(["model", o.model]);
  entries.push(["kind", kind]);
  const counters = await svc.redis.counters(counterKey(entries, DAY));
  return [...counters.values()].reduce((a, b) => a + b, 0);
}

test("two gateways share one budget: a consumer sending through both gets no more than the budget plus the requests in flight", async (t) => {
  const outcomes = await spendUntilRefused({
    urls: gateways.map(chatUrl),
    clients: CLIENTS,
    body: { model: "c-shared", messages: MESSAGES },
    headers: { "x-team": "team-a", "x-stub-delay-ms": "20" },
  });
  assert.deepEqual(
    [...new Set(outcomes.map((o) => o.status))].sort(),
    [200, 429],
    "every client ran until refused, and nothing else happened",
  );
  for (const g of [0, 1])
    assert.ok(
      outcomes.some((o) => o.gateway === g && o.status === 200),
      `gateway ${g} admitted requests`,
    );
  const admitted = admittedTokens(outcomes);
  t.diagnostic(
    `${outcomes.filter((o) => o.status === 200).length} requests admitted, ${admitted.total} tokens for a budget of ${BUDGET} ` +
      `(bound: budget − 1 + ${CLIENTS} clients × ${PER_REQUEST} tokens = ${BUDGET - 1 + CLIENTS * PER_REQUEST})`,
  );
  assert.ok(admitted.total >= BUDGET, `admitted ${admitted.total} tokens, budget ${BUDGET}`);
  assert.ok(
    admitted.total <= BUDGET - 1 + CLIENTS * PER_REQUEST,
    `admitted ${admitted.total} > budget ${BUDGET} + ${CLIENTS} × ${PER_REQUEST} in flight`,
  );

  // Redis holds exactly what the gateways counted, kind by kind.
  const scraped = await Promise.all(
    gateways.map((g) =>
      scrapeUntil(
        g.adminUrl,
        (s) => aiMetric(s, "duration_ms_count", "c-shared") >= outcomes.filter((o) => o.gateway === gateways.indexOf(g)).length,
      ),
    ),
  );
  const counted = (metric: string): number => scraped.reduce((sum, s) => sum + aiMetric(s, metric, "c-shared"), 0);
  assert.equal(counted("total_token"), admitted.total);
  assert.equal(counted("input_token"), admitted.input);
  assert.equal(counted("output_token"), admitted.output);
  assert.equal(await stored("shared", "total_tokens", { identity: "team-a" }), admitted.total);
  assert.equal(await stored("shared", "input_tokens", { identity: "team-a" }), admitted.input);
  assert.equal(await stored("shared", "output_tokens", { identity: "team-a" }), admitted.output);
  assert.equal(
    scraped.reduce((sum, s) => sum + aiMetric(s, "quota_refused", "c-shared"), 0),
    CLIENTS,
  );
});

test("a requests limit is exact across gateways: Redis counts each admission atomically", async () => {
  const bodies = Array.from({ length: 20 }, (_, i) =>
    post(chatUrl(gateways[i % 2] as Gateway), { model: "c-requests", messages: MESSAGES }, { "x-team": "team-r" }).then(async (r) => {
      await r.text();
      return r.status;
    }),
  );
  const statuses = await Promise.all(bodies);
  assert.equal(statuses.filter((s) => s === 200).length, 7);
  assert.equal(statuses.filter((s) => s === 429).length, 13);
  // The service counts the refused ones too.
  assert.equal(await stored("requests", "requests", { identity: "team-r" }), 20);
});

test("cluster-mode refusals are RateLimitError in the openai client, with the headers", async () => {
  const openai = (g: Gateway): OpenAI => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: "sk-cluster-key", maxRetries: 0 });
  const first = await openai(gateways[0] as Gateway)
    .chat.completions.create({ model: "c-openai", messages: MESSAGES })
    .withResponse();
  assert.equal(first.response.headers.get("x-ratelimit-limit-requests"), "1");
  assert.equal(first.response.headers.get("x-ratelimit-remaining-requests"), "0");
  assert.equal(first.response.headers.get("x-ratelimit-limit-tokens"), "1000");
  assert.equal(first.response.headers.get("x-ratelimit-remaining-tokens"), "1000");
  // The first answer's charge leaves for the service as the answer ends, racing the client's next request
  // (the two went out in the same millisecond once on a loaded CI machine): wait until it is stored.
  await waitFor(async () => (await stored("openai", "total_tokens")) === PER_REQUEST, 5000, "the first request's charge in Redis");
  const err = await openai(gateways[1] as Gateway)
    .chat.completions.create({ model: "c-openai", messages: MESSAGES })
    .then(
      () => null,
      (e: unknown) => e,
    );
  assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${String(err)}`);
  assert.equal(err.code, "rate_limit_exceeded");
  assert.equal(err.type, "requests");
  assert.equal(err.headers?.get("x-ratelimit-remaining-requests"), "0");
  // The token limit's figures, as the service reported them after the first request's charge.
  assert.equal(err.headers?.get("x-ratelimit-limit-tokens"), "1000");
  assert.equal(err.headers?.get("x-ratelimit-remaining-tokens"), String(1000 - PER_REQUEST));
  assert.ok(Number(err.headers?.get("retry-after")) >= 1);
  // The service saw a hash of the key, never the key.
  const keys = (await svc.redis.command("KEYS", "*")) as string[];
  assert.ok(!keys.some((k) => k.includes("sk-cluster-key")));
  assert.ok(
    keys.some((k) => /_rule_openai_identity_k-[0-9a-f]{16}_kind_requests_/.test(k)),
    keys.join(" "),
  );
});

test("a perModel rule keeps one budget per requested model", async () => {
  const ask = async (model: string): Promise<number> => {
    const r = await post(chatUrl(gateways[0] as Gateway), { model, messages: MESSAGES });
    await r.text();
    return r.status;
  };
  assert.deepEqual([await ask("c-per-model-a"), await ask("c-per-model-b"), await ask("c-per-model-a")], [200, 200, 429]);
  assert.equal(await stored("per-model", "requests", { model: "c-per-model-a" }), 2);
  assert.equal(await stored("per-model", "requests", { model: "c-per-model-b" }), 1);
});
