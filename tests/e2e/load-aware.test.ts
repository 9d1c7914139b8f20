// Load-aware replica picking (issue 14, prefixAffinity.loadAware) through the real Envoy and the plugin: three
// replica-mode stubs of one model behind the cluster the deploy renderer emits for it (Envoy's override-host
// policy on x-gateway-destination-endpoint, the bounded-load ring as its fallback; tests/bench/lb/fleet-envoy.ts
// PLUGIN_PICK). The plugin learns the replicas from their answers, reads their vLLM metrics through the same
// cluster, and names the replica for each request.
//
// What only a real Envoy shows: that override-host sends requests, and the plugin's scrapes, to the replica
// the plugin named; that a replica queued by traffic the gateway never sees is avoided (Envoy's own
// balancer counts only its own requests); and that a dead replica named first costs a retry, not an error.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { REPLICA_PRESET } from "../backends/fleet-params.ts";
import type { StubHandle } from "../backends/vllm-stub.ts";
import { post } from "../harness/seed.ts";
import { startReplicaFleet, words, type ReplicaFleet } from "../harness/replica-fleet.ts";
import type { FleetGateway } from "../bench/lb/fleet-envoy.ts";

const MODEL = "qwen2-1-5b";
const REPLICAS = 3;
// Simulated time 4× the wall clock, at most 2 sequences at once: a few long answers sent straight to a
// replica queue the rest for seconds.
const PARAMS = { ...REPLICA_PRESET, speed: 4, maxNumSeqs: 2 };

let fleet: ReplicaFleet;
let gateway: FleetGateway;

before(async () => {
  fleet = await startReplicaFleet(MODEL, REPLICAS, PARAMS, {
    policy: "PLUGIN_PICK",
    loadFactor: 1.25,
    pluginConfig: {
      models: [{ name: MODEL }],
      // Discovery turns (requests left to Envoy's ring) only while replicas are being found: a turn in a
      // test below would send a prefix wherever the ring puts it.
      // maxWaiting 2: the direct load below queues 3 at the replica.
      prefixAffinity: { enabled: true, loadAware: { enabled: true, scrapeIntervalMs: 300, discoverEvery: 1000000, maxWaiting: 2 } },
    },
  });
  gateway = fleet.gateway;
  // Distinct prefixes until every replica has answered once (Envoy's ring places them while the plugin knows
  // none): from then on the plugin names a replica for every request.
  const seen = new Set<string>();
  for (let i = 0; i < 60 && seen.size < REPLICAS; i++) seen.add((await chat(`warm-up ${i}`)).replica);
  assert.equal(seen.size, REPLICAS, "every replica answered during warm-up");
  // The plugin's discovery burst (every other request to Envoy's ring, 5 s after a new replica) ends.
  await sleep(5500);
});
after(async () => {
  await fleet?.stop();
});

interface Answer {
  status: number;
  replica: string;
  report: string | null;
}

async function chat(system: string): Promise<Answer> {
  const r = await post(`${gateway.url}/v1/chat/completions`, {
    model: MODEL,
    messages: [
      { role: "system", content: `${system} ${words("s", 30)}` },
      { role: "user", content: "hello" },
    ],
    max_tokens: 4,
  });
  await r.arrayBuffer();
  return { status: r.status, replica: r.headers.get("x-stub-replica") ?? "", report: r.headers.get("endpoint-load-metrics") };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Long answers sent straight to one replica, past the gateway: with max_num_seqs 2, all but two wait.
function loadDirectly(s: StubHandle, requests: number): Promise<unknown> {
  return Promise.all(
    Array.from({ length: requests }, (_, i) =>
      post(
        `http://127.0.0.1:${s.port}/v1/chat/completions`,
        { model: MODEL, messages: [{ role: "user", content: `direct load ${i}` }], max_tokens: 1500 },
        { "x-stub-completion-tokens": "1500" },
      ).then((r) => r.arrayBuffer()),
    ),
  );
}

test("a prefix stays on the replica the plugin names; vLLM's report stays in the gateway", async () => {
  const first = await chat("tenant alpha");
  assert.equal(first.status, 200);
  for (let i = 0; i < 5; i++) {
    const next = await chat("tenant alpha");
    assert.equal(next.status, 200);
    assert.equal(next.replica, first.replica);
    assert.equal(next.report, null, "endpoint-load-metrics removed from the client's answer");
  }
});

test("a replica queued by traffic the gateway does not see is avoided, then used again once idle", async () => {
  const home = (await chat("tenant beta")).replica;
  const direct = loadDirectly(fleet.stubOf(home), 5);
  // The plugin's next scrape (every 300 ms) sees the queue.
  await sleep(1200);
  const during = [];
  for (let i = 0; i < 4; i++) during.push(await chat("tenant beta"));
  for (const a of during) {
    assert.equal(a.status, 200);
    assert.notEqual(a.replica, home, "the queued replica is avoided although it holds the prefix");
  }
  await direct;
  await sleep(1200);
  assert.equal((await chat("tenant beta")).replica, home, "idle again: back to the replica with the prefix");
});

test("a stopped replica named first costs a retry, not an error, and is no longer named", async () => {
  const home = (await chat("tenant gamma")).replica;
  await fleet.stubOf(home).close();
  const after = [];
  for (let i = 0; i < 6; i++) after.push(await chat("tenant gamma"));
  for (const a of after) {
    assert.equal(a.status, 200);
    assert.notEqual(a.replica, home);
  }
  const settled = new Set(after.slice(1).map((a) => a.replica));
  assert.equal(settled.size, 1, `one new home: ${[...settled].join(", ")}`);
});
