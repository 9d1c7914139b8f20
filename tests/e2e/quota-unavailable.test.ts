// Cluster-mode quotas when the rate-limit service is not there: each gateway does what
// quotas.service.onUnavailable says (allow: the request goes on, counted; deny: 503
// quota_service_unavailable, counted) and no request hangs. One port stands for the service; what listens
// on it changes: the real envoyproxy/ratelimit, nothing (connection refused), a black hole (the call times
// out), ratelimit without its Redis (it answers an error status), then ratelimit again.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startStub, type StubHandle } from "../backends/vllm-stub.ts";
import { grpcCluster, RATELIMIT_CLUSTER } from "../harness/envoy-config.ts";
import { startGateway, type Gateway } from "../harness/envoy.ts";
import { freePort, waitFor } from "../harness/net.ts";
import { post } from "../harness/seed.ts";
import { startBlackHole, startRatelimit, startRedis, type Ratelimit, type Redis } from "../quota/services.ts";

const MESSAGES = [{ role: "user", content: "hello" }];
const ALLOWED = "wasmcustom.llm_gateway.quota.service_unavailable.outcome.allowed";
const REFUSED = "wasmcustom.llm_gateway.quota.service_unavailable.outcome.refused";
const CHARGE_FAILED = "wasmcustom.llm_gateway.quota.charge_failed";

let port: number;
let redis: Redis;
let ratelimit: Ratelimit | null = null;
let stub: StubHandle;
let allow: Gateway;
let deny: Gateway;

function config(onUnavailable: "allow" | "deny"): Record<string, unknown> {
  return {
    models: [{ name: "qwen2-1-5b" }],
    quotas: {
      mode: "cluster",
      service: { cluster: RATELIMIT_CLUSTER, timeoutMs: 300, onUnavailable },
      rules: [{ name: `team-${onUnavailable}`, consumerHeader: "x-team", window: "day", requests: 1000, totalTokens: 100000 }],
    },
  };
}

before(async () => {
  port = await freePort();
  redis = await startRedis();
  ratelimit = await startRatelimit({ redis, grpcPort: port });
  stub = await startStub({ model: "qwen2-1-5b", completionTokens: 5 });
  const start = (onUnavailable: "allow" | "deny"): Promise<Gateway> =>
    startGateway({
      backends: [{ model: "qwen2-1-5b", host: "127.0.0.1", port: stub.port }],
      pluginConfig: config(onUnavailable),
      clusters: [grpcCluster({ name: RATELIMIT_CLUSTER, address: "127.0.0.1", port })],
    });
  allow = await start("allow");
  deny = await start("deny");
});
after(async () => {
  await allow?.stop();
  await deny?.stop();
  await stub?.close();
  await ratelimit?.stop();
  await redis?.stop();
});

// One request through each gateway; `post` gives up after 15 s, so a hung request fails the test.
async function askBoth(headers: Record<string, string> = {}): Promise<{ allow: Response; deny: Response }> {
  const ask = async (g: Gateway): Promise<Response> => {
    const r = await post(`${g.url}/v1/chat/completions`, { model: "qwen2-1-5b", messages: MESSAGES }, { "x-team": "t", ...headers });
    await r.clone().text();
    return r;
  };
  const [a, d] = await Promise.all([ask(allow), ask(deny)]);
  return { allow: a, deny: d };
}

async function counters(): Promise<{ allowed: number; refused: number }> {
  return { allowed: await allow.counter(ALLOWED), refused: await deny.counter(REFUSED) };
}

async function expectUnavailable(what: string): Promise<void> {
  const before = await counters();
  const r = await askBoth();
  assert.equal(r.allow.status, 200, `${what}: allow admits`);
  assert.equal(r.deny.status, 503, `${what}: deny refuses`);
  const body = (await r.deny.json()) as { error: { code: string } };
  assert.equal(body.error.code, "quota_service_unavailable");
  assert.deepEqual(await counters(), { allowed: before.allowed + 1, refused: before.refused + 1 }, `${what}: counted`);
}

test("with the service up both gateways admit and count", async () => {
  const r = await askBoth();
  assert.equal(r.allow.status, 200);
  assert.equal(r.deny.status, 200);
  assert.equal(r.deny.headers.get("x-ratelimit-limit-requests"), "1000");
  assert.deepEqual(await counters(), { allowed: 0, refused: 0 });
});

test("service down (connection refused): allow admits, deny answers 503, both counted", async () => {
  await ratelimit?.stop();
  ratelimit = null;
  await expectUnavailable("connection refused");
});

test("service hung (the call times out): allow admits, deny answers 503, nothing hangs", async () => {
  const hole = await startBlackHole(port);
  try {
    await expectUnavailable("black hole");
    assert.ok(hole.connections() > 0, "Envoy connected to the black hole: the plugin's timeout ended the call");
  } finally {
    await hole.stop();
  }
});

test("service up without its Redis (it answers an error status): allow admits, deny answers 503", async () => {
  const dead = await startRedis();
  ratelimit = await startRatelimit({ redis: dead, grpcPort: port });
  await dead.stop();
  await expectUnavailable("redis down");
  await ratelimit.stop();
  ratelimit = null;
});

test("a charge the service cannot take is counted, and the service back up admits again", async () => {
  ratelimit = await startRatelimit({ redis, grpcPort: port });
  // Admitted while the service is up; the service goes away before the answer is charged.
  const hitsBefore = stub.hits();
  const slow = post(
    `${allow.url}/v1/chat/completions`,
    { model: "qwen2-1-5b", messages: MESSAGES },
    { "x-team": "t", "x-stub-delay-ms": "1500" },
  );
  await waitFor(async () => stub.hits() > hitsBefore, 5000, "the request upstream");
  await ratelimit.stop();
  ratelimit = null;
  const r = await slow;
  assert.equal(r.status, 200);
  await r.text();
  await waitFor(async () => (await allow.counter(CHARGE_FAILED)) >= 1, 5000, "charge_failed counted");

  ratelimit = await startRatelimit({ redis, grpcPort: port });
  const before = await counters();
  const back = await askBoth();
  assert.equal(back.allow.status, 200);
  assert.equal(back.deny.status, 200);
  assert.deepEqual(await counters(), before);
});
