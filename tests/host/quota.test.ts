// Token quotas through the real plugin build in the in-process host: local counters shared by two VMs
// (Envoy's workers) through shared data, and the cluster mode's calls to the rate-limit service, answered
// by an in-memory model of envoyproxy/ratelimit (tests/quota/ratelimit-model.ts, checked against the real
// service by tests/e2e/quota-service.test.ts). The clock is the host's: windows and resets are exact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeEnvoy, GRPC_STATUS, type GrpcCall, type HttpStream, type PluginRoot } from "./proxy-wasm-host.ts";
import { JSON_HEADERS, QWEN, chat, jsonAnswer, postHeaders, routeProperties } from "./fixtures.ts";
import { METHOD_NAME, SERVICE_NAME, decodeRequest, encodeResponse, UNITS, type RateLimitRequest } from "../quota/ratelimit-wire.ts";
import { RatelimitModel } from "../quota/ratelimit-model.ts";

const CLUSTER = "outbound|8081||ratelimit.dns";
// The host's clock starts at 2023-11-14T22:13:20Z: 20 s into its minute (40 s left), 800 s into its hour.

function models(quotas: Record<string, unknown>): Record<string, unknown> {
  return { models: [{ name: QWEN }], fallback: { enabled: false }, quotas };
}

async function workers(config: Record<string, unknown>, n = 1): Promise<{ envoy: FakeEnvoy; roots: PluginRoot[] }> {
  const envoy = new FakeEnvoy({ clusters: [CLUSTER] });
  const roots: PluginRoot[] = [];
  for (let i = 0; i < n; i++) {
    const vm = await envoy.startVm();
    const root = vm.configure(config);
    assert.ok(root.configured, vm.logs.map((l) => l.message).join(" | "));
    roots.push(root);
  }
  return { envoy, roots };
}

function request(root: PluginRoot, headers: [string, string][] = []): HttpStream {
  const body = chat(QWEN);
  const s = root.stream({ properties: routeProperties(QWEN) });
  s.sendRequest(postHeaders(body, "/v1/chat/completions", headers), body);
  return s;
}

function answer(s: HttpStream, prompt: number, completion: number): void {
  s.sendResponse(JSON_HEADERS, [jsonAnswer(QWEN, prompt, completion)]);
  s.finish();
}

function fnv1a64Hex(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, "0");
}

// ---- local mode ---------------------------------------------------------------------------------

test("local: a requests limit counts across workers (shared data), and the refusal is OpenAI's 429", async () => {
  const { roots } = await workers(models({ rules: [{ name: "team", consumerHeader: "x-team", window: "minute", requests: 2 }] }), 2);
  const [a, b] = roots as [PluginRoot, PluginRoot];
  const team: [string, string][] = [["x-team", "blue"]];
  const first = request(a, team);
  assert.equal(first.localReply, null);
  assert.ok(first.upstream.headers !== null, "admitted: sent upstream");
  answer(first, 5, 5);
  assert.equal(first.clientHeader("x-ratelimit-limit-requests"), "2");
  assert.equal(first.clientHeader("x-ratelimit-remaining-requests"), "1");
  assert.equal(first.clientHeader("x-ratelimit-reset-requests"), "40s");
  const second = request(b, team);
  assert.equal(second.localReply, null);
  answer(second, 5, 5);
  const third = request(a, team);
  assert.equal(third.clientStatus(), 429);
  assert.equal(third.upstream.headers, null, "refused before going upstream");
  assert.deepEqual(third.clientJson(), {
    error: {
      message: `Rate limit reached for ${QWEN} on requests per minute (rule team): limit 2, used 2. Please try again in 40s.`,
      type: "requests",
      param: null,
      code: "rate_limit_exceeded",
    },
  });
  assert.equal(third.clientHeader("x-ratelimit-remaining-requests"), "0");
  assert.equal(third.clientHeader("retry-after"), "40");
  assert.equal(third.clientHeader("retry-after-ms"), "40000");
  third.finish();
  assert.equal(JSON.parse(third.state("ai_log") ?? "{}")["quota_refused"], "team");
  // Another consumer has its own count.
  assert.equal(request(b, [["x-team", "red"]]).localReply, null);
});

test("local: tokens are charged when the answer completes, and refusal comes once the budget is spent", async () => {
  const { envoy, roots } = await workers(models({ rules: [{ name: "tokens", window: "hour", totalTokens: 100 }] }), 2);
  const [a, b] = roots as [PluginRoot, PluginRoot];
  const s1 = request(a);
  assert.equal(s1.localReply, null);
  // Admitted while the first is in flight: nothing charged yet.
  const s2 = request(b);
  assert.equal(s2.clientStatus(), 0);
  answer(s1, 30, 40);
  answer(s2, 10, 10);
  assert.equal(s2.clientHeader("x-ratelimit-remaining-tokens"), "100");
  const s3 = request(b);
  answer(s3, 1, 1);
  assert.equal(s3.clientHeader("x-ratelimit-limit-tokens"), "100");
  assert.equal(s3.clientHeader("x-ratelimit-remaining-tokens"), "10", "100 − (70 + 20)");
  assert.equal(s3.clientHeader("x-ratelimit-reset-tokens"), "46m40s");
  assert.equal(s3.clientHeader("x-ratelimit-limit-requests"), undefined);
  const s4 = request(a); // 92 used: still under
  answer(s4, 4, 4);
  const refused = request(b); // 100 used
  assert.equal(refused.clientStatus(), 429);
  assert.equal((refused.clientJson() as { error: { type: string } }).error.type, "tokens");
  // The next window starts from nothing.
  envoy.advance(2800_000);
  assert.equal(request(a).localReply, null);
});

test("local: an API key's identity is its hash; a missing header is one anonymous budget", async () => {
  const { roots } = await workers(models({ rules: [{ name: "keys", apiKeyHeader: "authorization", window: "day", requests: 1 }] }));
  const root = roots[0] as PluginRoot;
  assert.equal(request(root, [["authorization", "Bearer sk-one"]]).localReply, null);
  assert.equal(request(root, [["authorization", "Bearer sk-one"]]).clientStatus(), 429);
  // The same key without "Bearer " is the same identity; another key is another.
  assert.equal(request(root, [["authorization", "sk-one"]]).clientStatus(), 429);
  assert.equal(request(root, [["authorization", "Bearer sk-two"]]).localReply, null);
  assert.equal(request(root).localReply, null);
  assert.equal(request(root).clientStatus(), 429, "no header: the anonymous identity, spent");
  const shared = [...root.vm.envoy.sharedData.entries(root.vm.vmId)].map(([k, v]) => `${k}=${v}`).join(" ");
  assert.ok(!shared.includes("sk-one"), "the raw key is not stored");
  assert.ok(shared.includes(`k-${fnv1a64Hex("sk-one")}`), `the key's FNV-1a 64 is: ${shared}`);
});

// ---- cluster mode -------------------------------------------------------------------------------

function clusterConfig(rules: Record<string, unknown>[], onUnavailable = "allow"): Record<string, unknown> {
  return models({ mode: "cluster", service: { cluster: CLUSTER, timeoutMs: 250, onUnavailable }, rules });
}

// Answers every pending call of `root` from the model.
function serve(root: PluginRoot, model: RatelimitModel): RateLimitRequest[] {
  const seen: RateLimitRequest[] = [];
  for (const call of root.pendingGrpc()) {
    const req = decodeRequest(call.message);
    seen.push(req);
    root.answerGrpc(call, { message: encodeResponse(model.shouldRateLimit(req)) });
  }
  return seen;
}

test("cluster: admission asks the service with the rule's descriptors, the request waits for the answer", async () => {
  const { envoy, roots } = await workers(
    clusterConfig([{ name: "team", consumerHeader: "x-team", window: "hour", requests: 10, inputTokens: 500, totalTokens: 1000 }]),
  );
  const root = roots[0] as PluginRoot;
  const model = new RatelimitModel(["llm-gateway"], () => envoy.clock.ms);
  const s = request(root, [["x-team", "blue"]]);
  assert.equal(s.upstream.headers, null, "held until the service answers");
  const [call] = root.pendingGrpc() as [GrpcCall];
  assert.deepEqual([call.cluster, call.service, call.method, call.timeoutMs], [CLUSTER, SERVICE_NAME, METHOD_NAME, 250]);
  const req = decodeRequest(call.message);
  const entries = (kind: string): [string, string][] => [
    ["rule", "team"],
    ["identity", "blue"],
    ["kind", kind],
  ];
  assert.deepEqual(req, {
    domain: "llm-gateway",
    hitsAddend: 0,
    descriptors: [
      { entries: entries("requests"), limit: { requestsPerUnit: 10, unit: UNITS.HOUR }, hitsAddend: 1 },
      { entries: entries("input_tokens"), limit: { requestsPerUnit: 500, unit: UNITS.HOUR }, hitsAddend: 0 },
      { entries: entries("total_tokens"), limit: { requestsPerUnit: 1000, unit: UNITS.HOUR }, hitsAddend: 0 },
    ],
  });
  serve(root, model);
  assert.ok(s.upstream.headers !== null, "resumed and sent upstream");
  assert.equal(s.requestHeader("x-higress-llm-model"), QWEN);
  answer(s, 30, 12);
  assert.equal(s.clientHeader("x-ratelimit-remaining-requests"), "9");
  assert.equal(s.clientHeader("x-ratelimit-remaining-tokens"), "500", "the tightest token limit: input");
  // The charge: the answer's tokens with hits_addend, no requests descriptor.
  const [charge] = serve(root, model);
  assert.deepEqual(
    charge?.descriptors.map((d) => [d.entries.at(-1)?.[1], d.hitsAddend]),
    [
      ["input_tokens", 30],
      ["total_tokens", 42],
    ],
  );
  const next = request(root, [["x-team", "blue"]]);
  serve(root, model);
  answer(next, 1, 1);
  assert.equal(next.clientHeader("x-ratelimit-remaining-tokens"), "470");
});

test("cluster: the service's OVER_LIMIT, or no tokens left, is a 429 before anything goes upstream", async () => {
  const { envoy, roots } = await workers(clusterConfig([{ name: "t", window: "minute", totalTokens: 50, requests: 100 }]));
  const root = roots[0] as PluginRoot;
  const model = new RatelimitModel(["llm-gateway"], () => envoy.clock.ms);
  const s = request(root);
  serve(root, model);
  answer(s, 20, 30);
  serve(root, model); // charge: exactly 50 used
  const refused = request(root);
  const [asked] = serve(root, model);
  assert.ok(asked !== undefined);
  // The service says OK with nothing remaining at exactly the limit; the plugin refuses on that.
  assert.equal(refused.clientStatus(), 429);
  assert.equal(refused.upstream.headers, null);
  assert.match(
    (refused.clientJson() as { error: { message: string } }).error.message,
    /on total_tokens per minute \(rule t\): limit 50, used 50\./,
  );
  assert.equal(refused.clientHeader("x-ratelimit-remaining-tokens"), "0");
  assert.equal(refused.clientHeader("x-ratelimit-reset-tokens"), "40s");
  assert.equal(refused.clientHeader("x-ratelimit-remaining-requests"), "98");
  assert.equal(model.counters.get(`llm-gateway_rule_t_identity_${identityOf(asked)}_kind_requests_1699999980`), 2);
});

test("cluster: a failed or refused call follows onUnavailable", async () => {
  for (const [onUnavailable, status] of [
    ["allow", GRPC_STATUS.Unavailable],
    ["deny", GRPC_STATUS.DeadlineExceeded],
    ["deny", GRPC_STATUS.Unknown],
  ] as const) {
    const { envoy, roots } = await workers(clusterConfig([{ name: "t", window: "minute", requests: 5 }], onUnavailable));
    const root = roots[0] as PluginRoot;
    const s = request(root);
    const [call] = root.pendingGrpc() as [GrpcCall];
    root.answerGrpc(call, { status, statusMessage: "upstream connect error" });
    const what = `${onUnavailable} after gRPC status ${status}`;
    if (onUnavailable === "allow") {
      assert.equal(s.localReply, null, what);
      assert.ok(s.upstream.headers !== null, what);
      assert.equal(envoy.metrics.value("llm_gateway.quota.service_unavailable.outcome.allowed"), 1, what);
    } else {
      assert.equal(s.clientStatus(), 503, what);
      assert.equal((s.clientJson() as { error: { code: string } }).error.code, "quota_service_unavailable", what);
      assert.equal(envoy.metrics.value("llm_gateway.quota.service_unavailable.outcome.refused"), 1, what);
    }
  }
});

test("cluster: a service without the domain answers OK with no limit; that is unavailable, not a verdict", async () => {
  for (const onUnavailable of ["allow", "deny"] as const) {
    const { envoy, roots } = await workers(clusterConfig([{ name: "t", window: "minute", totalTokens: 50 }], onUnavailable));
    const root = roots[0] as PluginRoot;
    const model = new RatelimitModel(["another-domain"], () => envoy.clock.ms);
    const s = request(root);
    serve(root, model);
    if (onUnavailable === "allow") {
      assert.ok(s.upstream.headers !== null, "admitted");
      answer(s, 10, 5);
      assert.equal(s.clientStatus(), 200);
      assert.equal(s.clientHeader("x-ratelimit-remaining-tokens"), undefined, "no figures the service never gave");
      assert.equal(envoy.metrics.value("llm_gateway.quota.service_unavailable.outcome.allowed"), 1);
    } else {
      assert.equal(s.clientStatus(), 503);
      assert.equal(envoy.metrics.value("llm_gateway.quota.service_unavailable.outcome.refused"), 1);
    }
  }
});

test("cluster: a cluster Envoy does not know is unavailable at once, without a call", async () => {
  const envoy = new FakeEnvoy({ clusters: [] });
  const vm = await envoy.startVm();
  const root = vm.configure(clusterConfig([{ name: "t", window: "minute", requests: 5 }], "deny"));
  const s = request(root);
  assert.equal(root.grpcCalls.length, 0);
  assert.equal(s.clientStatus(), 503);
});

function identityOf(r: RateLimitRequest): string {
  return r.descriptors[0]?.entries.find(([k]) => k === "identity")?.[1] ?? "";
}
