// Prefix affinity (issue 14) through the real Envoy and the plugin: four replica-mode stubs of one model
// (each a simulated vLLM replica with its own prefix cache, naming itself in x-stub-replica) behind the
// cluster and route the deploy renderer emits for a model with affinity (tests/bench/lb/fleet-envoy.ts:
// RING_HASH with hash_balance_factor 125 on the plugin's x-llm-gateway-prefix-key, outlier detection, a
// retry on another replica). The key is the plugin's own: a key the client sends is replaced.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { REPLICA_PRESET } from "../backends/fleet-params.ts";
import { post } from "../harness/seed.ts";
import { startReplicaFleet, words, type ReplicaFleet } from "../harness/replica-fleet.ts";
import { PREFIX_KEY_HEADER, type FleetGateway } from "../bench/lb/fleet-envoy.ts";

const MODEL = "qwen2-1-5b";
const REPLICAS = 4;
// Simulated time 20× faster than the wall clock: answers in milliseconds, the prefix cache as on a GPU.
const PARAMS = { ...REPLICA_PRESET, speed: 20 };

let fleet: ReplicaFleet;
let gateway: FleetGateway;

before(async () => {
  fleet = await startReplicaFleet(MODEL, REPLICAS, PARAMS, {
    policy: "RING_HASH",
    loadFactor: 1.25,
    pluginConfig: { models: [{ name: MODEL }], prefixAffinity: { enabled: true } },
  });
  gateway = fleet.gateway;
});
after(async () => {
  await fleet?.stop();
});

interface Answer {
  status: number;
  replica: string;
  cached: number;
  text: string;
}

async function chat(messages: { role: string; content: string }[], headers: Record<string, string> = {}): Promise<Answer> {
  const r = await post(`${gateway.url}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 8 }, headers);
  const body = (await r.json()) as {
    choices?: { message: { content: string } }[];
    usage?: { prompt_tokens_details: { cached_tokens: number } | null };
  };
  return {
    status: r.status,
    replica: r.headers.get("x-stub-replica") ?? "",
    cached: body.usage?.prompt_tokens_details?.cached_tokens ?? 0,
    text: body.choices?.[0]?.message.content ?? "",
  };
}

test("every turn of a conversation goes to one replica, whose prefix cache then serves it", async () => {
  const used = new Set<string>();
  for (let c = 0; c < 12; c++) {
    const messages = [
      { role: "system", content: `conversation ${c}: ${words("s", 40)}` },
      { role: "user", content: words(`c${c}u`, 30) },
    ];
    const first = await chat(messages);
    assert.equal(first.status, 200);
    used.add(first.replica);
    for (let turn = 1; turn < 4; turn++) {
      messages.push({ role: "assistant", content: first.text }, { role: "user", content: words(`c${c}t${turn}u`, 10) });
      const next = await chat(messages);
      assert.equal(next.status, 200);
      assert.equal(next.replica, first.replica, `conversation ${c}, turn ${turn}`);
      // The earlier turns' tokens were computed on this replica: the prompt comes largely from its cache.
      assert.ok(next.cached >= 64, `conversation ${c}, turn ${turn}: cached ${next.cached}`);
    }
  }
  // Different prefixes hash to different replicas (12 keys on one replica would mean no hashing at all).
  assert.ok(used.size >= 2, `replicas used: ${[...used].join(", ")}`);
});

test("the key is the plugin's: a client's value is replaced by 16 hex digits of the prompt's prefix", async () => {
  const messages = [{ role: "user", content: "which key do I get" }];
  const a = await chat(messages, { [PREFIX_KEY_HEADER]: "forged-1" });
  const b = await chat(messages, { [PREFIX_KEY_HEADER]: "forged-2" });
  assert.equal(a.replica, b.replica, "the client's header does not steer the request");
  const seen = (await (await fetch(`${fleet.stubOf(a.replica).url}/stub/stats`)).json()) as {
    lastRequest: { headers: Record<string, string> };
  };
  assert.match(seen.lastRequest.headers[PREFIX_KEY_HEADER] ?? "", /^[0-9a-f]{16}$/);
});

test("a hot prefix spills over to other replicas while its replica holds more than its share of active requests", async () => {
  const messages = [
    { role: "system", content: `hot tenant ${words("h", 40)}` },
    { role: "user", content: "hello" },
  ];
  const home = (await chat(messages)).replica;
  // One at a time, the prefix stays home.
  for (let i = 0; i < 3; i++) assert.equal((await chat(messages)).replica, home);
  // 12 more, 150 ms apart, each held 4 s at the replica, so all 12 are active together. Envoy counts a
  // request against its host once it is attached to a connection: spacing them lets each count before the
  // next is placed. The bound then sends part of them to other replicas.
  const answers = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 150));
      return chat(messages, { "x-stub-delay-ms": "4000" });
    }),
  );
  assert.ok(answers.every((a) => a.status === 200));
  const perReplica = new Map<string, number>();
  for (const a of answers) perReplica.set(a.replica, (perReplica.get(a.replica) ?? 0) + 1);
  assert.ok(perReplica.size >= 2, `all on ${[...perReplica.keys()].join(", ")}`);
  // Envoy's bound (hash_balance_factor 125): a host is chosen while its active requests are at most
  // ceil(ceil(1.25 × (all active + 1)) / 4); with 11 active before the last request that is 4, so no
  // replica holds more than 5.
  assert.ok(Math.max(...perReplica.values()) <= 5, JSON.stringify(Object.fromEntries(perReplica)));
  assert.equal(perReplica.get(home), Math.max(...perReplica.values()), "the home replica takes its full share");
});

test("a stopped replica is skipped: its prefixes move to another replica and every request succeeds", async () => {
  const messages = [
    { role: "system", content: `dead replica test ${words("d", 40)}` },
    { role: "user", content: "still there?" },
  ];
  const home = (await chat(messages)).replica;
  await fleet.stubOf(home).close();
  // Right away (connection refused: retried on another replica) and after outlier detection ejected it.
  const after = [];
  for (let i = 0; i < 8; i++) after.push(await chat(messages));
  for (const a of after) {
    assert.equal(a.status, 200);
    assert.notEqual(a.replica, home);
  }
  // Once the dead replica is out of the ring, the prefix has one new home again.
  const settled = new Set(after.slice(4).map((a) => a.replica));
  assert.equal(settled.size, 1, [...settled].join(", "));
});
