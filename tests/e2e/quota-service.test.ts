// The real envoyproxy/ratelimit (pinned, over Redis) does what the plugin's cluster mode relies on: a
// configuration with only the domain takes every limit from the request, a per-descriptor hits_addend of 0
// checks without counting, and the counters sit in Redis under keys the tests can read. Called directly
// over gRPC (node:http2), no Envoy.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { counterKey, QUOTA_DOMAIN, startQuotaServices, type QuotaServices } from "../quota/services.ts";
import { Code, rateLimitClient, UNITS, type Descriptor, type RateLimitClient, type RateLimitResponse } from "../quota/ratelimit-wire.ts";
import { RatelimitModel } from "../quota/ratelimit-model.ts";

let svc: QuotaServices;
let client: RateLimitClient;

before(async () => {
  svc = await startQuotaServices();
  client = rateLimitClient(svc.ratelimit.grpcAddress);
});
after(async () => {
  client?.close();
  await svc?.stop();
});

// The plugin's descriptor for one rule, identity and kind, with the rule's limit.
function descriptor(rule: string, kind: string, limit: number, hitsAddend?: number): Descriptor {
  return {
    entries: [
      ["rule", rule],
      ["identity", "alice"],
      ["kind", kind],
    ],
    limit: { requestsPerUnit: limit, unit: UNITS.HOUR },
    ...(hitsAddend !== undefined ? { hitsAddend } : {}),
  };
}

async function counter(rule: string, kind: string): Promise<number | undefined> {
  const key = counterKey(
    [
      ["rule", rule],
      ["identity", "alice"],
      ["kind", kind],
    ],
    3600,
  );
  return (await svc.redis.counters(key)).get(key);
}

test("a domain-only configuration answers with the limit the descriptor carries", async () => {
  const r = await client.shouldRateLimit({ domain: QUOTA_DOMAIN, descriptors: [descriptor("override", "requests", 7, 1)], hitsAddend: 0 });
  assert.equal(r.overallCode, Code.Ok);
  assert.equal(r.statuses[0]?.currentLimit?.requestsPerUnit, 7);
  assert.equal(r.statuses[0]?.currentLimit?.unit, UNITS.HOUR);
  assert.equal(r.statuses[0]?.limitRemaining, 6);
  const reset = r.statuses[0]?.durationUntilResetMs ?? -1;
  assert.ok(reset > 0 && reset <= 3600_000, `duration_until_reset ${reset} ms within the hour window`);
  assert.equal(await counter("override", "requests"), 1);
});

test("hits_addend 0 checks without counting; an absent one counts 1", async () => {
  const check = await client.shouldRateLimit({
    domain: QUOTA_DOMAIN,
    descriptors: [descriptor("check", "total_tokens", 100, 0)],
    hitsAddend: 0,
  });
  assert.equal(check.statuses[0]?.code, Code.Ok);
  assert.equal(check.statuses[0]?.limitRemaining, 100);
  assert.equal(await counter("check", "total_tokens"), 0);
  await client.shouldRateLimit({ domain: QUOTA_DOMAIN, descriptors: [descriptor("check", "total_tokens", 100)], hitsAddend: 0 });
  assert.equal(await counter("check", "total_tokens"), 1);
});

test("tokens charged past the limit are counted and answered OVER_LIMIT; a check at exactly the limit says OK with 0 remaining", async () => {
  const d = (n: number): Descriptor => descriptor("charge", "total_tokens", 50, n);
  const charge = await client.shouldRateLimit({ domain: QUOTA_DOMAIN, descriptors: [d(50)], hitsAddend: 0 });
  // Used == limit: not over (ratelimit refuses only above the limit), nothing left. The plugin's rule
  // "refused when used >= limit" has to read limit_remaining 0 as spent.
  assert.equal(charge.statuses[0]?.code, Code.Ok);
  assert.equal(charge.statuses[0]?.limitRemaining, 0);
  const atLimit = await client.shouldRateLimit({ domain: QUOTA_DOMAIN, descriptors: [d(0)], hitsAddend: 0 });
  assert.equal(atLimit.statuses[0]?.code, Code.Ok);
  assert.equal(atLimit.statuses[0]?.limitRemaining, 0);
  // A charge is always added, also past the limit (STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT is off).
  const over = await client.shouldRateLimit({ domain: QUOTA_DOMAIN, descriptors: [d(20)], hitsAddend: 0 });
  assert.equal(over.statuses[0]?.code, Code.OverLimit);
  assert.equal(await counter("charge", "total_tokens"), 70);
  const check = await client.shouldRateLimit({ domain: QUOTA_DOMAIN, descriptors: [d(0)], hitsAddend: 0 });
  assert.equal(check.statuses[0]?.code, Code.OverLimit);
  assert.equal(check.overallCode, Code.OverLimit);
});

test("the requests descriptor counts every call, refused ones included", async () => {
  const call = (): ReturnType<RateLimitClient["shouldRateLimit"]> =>
    client.shouldRateLimit({ domain: QUOTA_DOMAIN, descriptors: [descriptor("requests", "requests", 2, 1)], hitsAddend: 0 });
  assert.equal((await call()).overallCode, Code.Ok);
  assert.equal((await call()).overallCode, Code.Ok);
  assert.equal((await call()).overallCode, Code.OverLimit);
  assert.equal(await counter("requests", "requests"), 3);
});

test("one call answers every descriptor: a refused token check beside an admitted request count", async () => {
  const r = await client.shouldRateLimit({
    domain: QUOTA_DOMAIN,
    descriptors: [
      descriptor("mixed", "requests", 10, 1),
      descriptor("mixed", "input_tokens", 5, 6),
      descriptor("mixed", "output_tokens", 5, 0),
    ],
    hitsAddend: 0,
  });
  assert.deepEqual(
    r.statuses.map((s) => s.code),
    [Code.Ok, Code.OverLimit, Code.Ok],
  );
  assert.equal(r.overallCode, Code.OverLimit);
});

test("a domain the service does not know is answered OK without a limit (a misnamed domain admits everything)", async () => {
  const r = await client.shouldRateLimit({ domain: "not-configured", descriptors: [descriptor("x", "requests", 1, 5)], hitsAddend: 0 });
  assert.equal(r.overallCode, Code.Ok);
  assert.equal(r.statuses[0]?.currentLimit, null);
  assert.equal((await svc.redis.counters("not-configured_*")).size, 0);
});

test("the in-memory model the host tests use answers as the real service does", async () => {
  const model = new RatelimitModel();
  const d = (kind: string, limit: number, hits?: number): Descriptor => ({
    entries: [
      ["rule", "model"],
      ["identity", "k-00ff00ff00ff00ff"],
      ["model", "qwen2-1-5b"],
      ["kind", kind],
    ],
    limit: { requestsPerUnit: limit, unit: UNITS.DAY },
    ...(hits !== undefined ? { hitsAddend: hits } : {}),
  });
  const calls: { domain: string; descriptors: Descriptor[]; hitsAddend: number }[] = [
    { domain: QUOTA_DOMAIN, descriptors: [d("requests", 3, 1), d("total_tokens", 40, 0)], hitsAddend: 0 },
    { domain: QUOTA_DOMAIN, descriptors: [d("total_tokens", 40, 25), d("input_tokens", 10, 12)], hitsAddend: 0 },
    { domain: QUOTA_DOMAIN, descriptors: [d("requests", 3), d("total_tokens", 40, 0)], hitsAddend: 2 },
    { domain: QUOTA_DOMAIN, descriptors: [d("total_tokens", 40, 15), d("output_tokens", 5)], hitsAddend: 0 },
    { domain: QUOTA_DOMAIN, descriptors: [d("requests", 3, 1), d("total_tokens", 40, 0), d("input_tokens", 10, 0)], hitsAddend: 0 },
    { domain: "elsewhere", descriptors: [d("requests", 1, 9)], hitsAddend: 0 },
  ];
  const shape = (r: RateLimitResponse): unknown => ({
    overall: r.overallCode,
    statuses: r.statuses.map((s) => [s.code, s.limitRemaining, s.currentLimit?.requestsPerUnit ?? null, s.currentLimit?.unit ?? null]),
  });
  for (const c of calls) {
    const real = await client.shouldRateLimit(c);
    const modelled = model.shouldRateLimit(c);
    assert.deepEqual(shape(modelled), shape(real), JSON.stringify(c));
    real.statuses.forEach((s, i) => {
      const m = modelled.statuses[i]?.durationUntilResetMs ?? null;
      assert.equal(s.durationUntilResetMs === null, m === null);
      if (s.durationUntilResetMs !== null) assert.ok(s.durationUntilResetMs > 0 && s.durationUntilResetMs <= 86400_000);
    });
  }
  const real = await svc.redis.counters(`${QUOTA_DOMAIN}_rule_model_*`);
  assert.deepEqual(new Map([...model.counters].sort()), real);
});
