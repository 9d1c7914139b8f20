// Prefix affinity and the quota service's cluster as the deploy CLI renders them, checked by the real Envoy (the
// project's pinned one, .venv):
// - `envoy --mode validate` on the upstream-Envoy bootstrap with affinity (with and without loadAware) and the
//   rate-limit cluster, and on Envoy config carrying the values of the Higress EnvoyFilter's patches merged into a
//   cluster as Istio builds it (so their field names and types are Envoy's, and Envoy takes the combination);
// - a running Envoy from the rendered bootstrap in front of three vLLM stub replicas of one model: Envoy's half
//   alone (the plugin left out, the client sending the prefix-key header itself): one key stays on one replica,
//   keys spread, the load bound spills a hot key over, a dead replica is skipped and ejected;
// - the same bootstrap with the plugin, which writes the key from the prompt: a conversation stays on one replica;
// - with loadAware, Envoy's half of it (the client naming replicas as the plugin would): the named replica takes the
//   request, a retry the next one named, and without a usable name the bounded-load ring decides, for the upstream
//   Envoy cluster and for Istio's cluster with the Higress patch (lb_policy RING_HASH beside load_balancing_policy).
//
// Run: node --import tsx --test tests/deploy/envoy-affinity.test.ts   (needs `make build venv`)
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { envoyBootstrap } from "../../deploy-scripts/render/envoy/bootstrap.ts";
import { modelClusterName } from "../../deploy-scripts/render/envoy/names.ts";
import { PREFIX_KEY_HEADER } from "../../deploy-scripts/render/plugin-config.ts";
import { renderEnvoyYaml, renderObjects } from "../../deploy-scripts/render/render.ts";
import { validateSpec, type DeploySpec } from "../../deploy-scripts/spec.ts";
import { startStub, type StubHandle } from "../backends/vllm-stub.ts";
import { WASM_PATH, envoyBinary } from "../harness/envoy.ts";
import { freePort, waitFor } from "../harness/net.ts";
import { REPLICAS_ENVOY_FILE, REPLICAS_FILE } from "./replica-examples.ts";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MODEL = "qwen2-1-5b";
const CLUSTER = modelClusterName(MODEL);
const REPLICAS = 3;

function specFrom(r: unknown): DeploySpec {
  const v = validateSpec(r);
  if (!v.ok) assert.fail(`expected a valid file, got:\n${v.errors.join("\n")}`);
  return v.spec;
}

function runValidate(config: string): { status: number | null; output: string } {
  const r = spawnSync(envoyBinary(), ["--mode", "validate", "-c", config, "--disable-hot-restart", "--log-level", "warn"], {
    encoding: "utf8",
    timeout: 60000,
  });
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

function validate(config: string): void {
  const r = runValidate(config);
  assert.equal(r.status, 0, `envoy --mode validate failed:\n${r.output}`);
  assert.match(r.output, /configuration '.*' OK/);
}

/** Protobuf merge, as Istio applies an EnvoyFilter MERGE: messages field by field, lists appended, scalars replaced. */
function protoMerge(into: Raw, patch: Raw): Raw {
  const out: Raw = { ...into };
  for (const [k, v] of Object.entries(patch)) {
    const cur = out[k];
    if (Array.isArray(v)) out[k] = [...(Array.isArray(cur) ? cur : []), ...v];
    else if (v !== null && typeof v === "object" && cur !== null && typeof cur === "object" && !Array.isArray(cur))
      out[k] = protoMerge(cur, v);
    else out[k] = v;
  }
  return out;
}

/**
 * One model, three replicas, affinity on, no backups and no quotas: what the running tests need. Without loadAware
 * unless asked (the example has it): the ring alone is what Envoy does for a model without it.
 */
function oneModelRaw(pluginUrl: string, loadAware = false): Raw {
  const r = parse(readFileSync(REPLICAS_ENVOY_FILE, "utf8")) as Raw;
  r["plugin"] = { url: pluginUrl };
  r["models"] = [{ ...r["models"][0], replicas: REPLICAS, fallback: [] }];
  if (!loadAware) delete r["models"][0].affinity.loadAware;
  delete r["quotas"];
  return r;
}

/** A cluster as Istio builds it for Higress's McpBridge dns registry with consistentHash (before any EnvoyFilter). */
function istioCluster(endpoints: { address: string; port: number }[]): Raw {
  return {
    name: CLUSTER,
    // Istio: a DNS ServiceEntry is a STRICT_DNS cluster (STATIC here for the local stubs).
    type: endpoints.every((e) => /^[0-9.]+$/.test(e.address)) ? "STATIC" : "STRICT_DNS",
    connect_timeout: "10s",
    // consistentHash without ringHash or maglev: RING_HASH with a 1024-entry minimum ring (Istio's
    // ApplyRingHashLoadBalancer), and the panic threshold Istio writes.
    lb_policy: "RING_HASH",
    ring_hash_lb_config: { minimum_ring_size: 1024 },
    common_lb_config: { healthy_panic_threshold: { value: 50 } },
    load_assignment: {
      cluster_name: CLUSTER,
      endpoints: [
        { lb_endpoints: endpoints.map((e) => ({ endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } } })) },
      ],
    },
  };
}

/** The CLUSTER patch of qwen's Higress affinity EnvoyFilter, rendered from the Higress example with loadAware. */
function higressLoadAwarePatch(): Raw {
  const r = parse(readFileSync(REPLICAS_FILE, "utf8")) as Raw;
  r["models"][0].affinity.loadAware = true;
  const filter = renderObjects(specFrom(r), { hfTokenSet: false }).find(
    (o) => o.kind === "EnvoyFilter" && o.metadata.name === `${MODEL}.affinity`,
  ) as Raw;
  return filter.spec.configPatches[0].patch.value as Raw;
}

/** Just enough bootstrap around one route and its cluster for `envoy --mode validate`. */
function routeAndCluster(route: Raw, cluster: Raw): Raw {
  return {
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: "gateway",
          address: { socket_address: { address: "127.0.0.1", port_value: 0 } },
          filter_chains: [
            {
              filters: [
                {
                  name: "envoy.filters.network.http_connection_manager",
                  typed_config: {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    stat_prefix: "gw",
                    route_config: { virtual_hosts: [{ name: "v", domains: ["*"], routes: [route] }] },
                    http_filters: [
                      {
                        name: "envoy.filters.http.router",
                        typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [cluster],
    },
  };
}

describe("the real Envoy accepts what the CLI renders for affinity and quotas", () => {
  let dir = "";
  before(() => (dir = mkdtempSync(join(tmpdir(), "llm-gw-affinity-validate-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the upstream-Envoy bootstrap of replicas-quotas-envoy.yaml: override-host over ring hash with bounded load (loadAware), outlier detection, hash policy, previous-hosts retries, the HTTP/2 rate-limit cluster", () => {
    const file = join(dir, "bootstrap.yaml");
    const text = renderEnvoyYaml(specFrom(parse(readFileSync(REPLICAS_ENVOY_FILE, "utf8"))));
    // The rendered file does carry what this test claims Envoy accepted.
    for (const s of [
      "name: envoy.load_balancing_policies.override_host",
      "header: x-gateway-destination-endpoint",
      "name: envoy.load_balancing_policies.ring_hash",
      "hash_balance_factor: 125",
      "consecutive_gateway_failure: 3",
      "header_name: x-llm-gateway-prefix-key",
      "name: envoy.retry_host_predicates.previous_hosts",
    ])
      assert.ok(text.includes(s), s);
    assert.ok(!text.includes("lb_policy: RING_HASH"));
    assert.ok(
      text.includes("http2_protocol_options: {}") && text.includes("outbound|8081||llm-gateway-ratelimit.default.svc.cluster.local"),
    );
    writeFileSync(file, text);
    validate(file);
  });

  it("the same bootstrap without loadAware: lb_policy RING_HASH with the bound in common_lb_config", () => {
    const file = join(dir, "bootstrap-ring.yaml");
    const r = parse(readFileSync(REPLICAS_ENVOY_FILE, "utf8")) as Raw;
    for (const m of r["models"]) delete m.affinity.loadAware;
    const text = renderEnvoyYaml(specFrom(r));
    for (const s of ["lb_policy: RING_HASH", "hash_balance_factor: 125"]) assert.ok(text.includes(s), s);
    assert.ok(!text.includes("override_host"));
    writeFileSync(file, text);
    validate(file);
  });

  // Istio's default retry policy for a hashing route (no host predicate), and the hash policy from httpHeaderName.
  const istioRoute = {
    name: MODEL,
    match: { prefix: "/" },
    route: {
      cluster: CLUSTER,
      hash_policy: [{ header: { header_name: PREFIX_KEY_HEADER } }],
      retry_policy: { retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", num_retries: 2 },
    },
  };
  const ISTIO_ENDPOINTS = [{ address: "qwen2-1-5b-ep.default.svc.cluster.local", port: 8080 }];

  it("the values of Higress's affinity EnvoyFilter, merged into a cluster and a route built as Istio builds them", () => {
    const filter = renderObjects(specFrom(parse(readFileSync(REPLICAS_FILE, "utf8"))), { hfTokenSet: false }).find(
      (o) => o.kind === "EnvoyFilter" && o.metadata.name === `${MODEL}.affinity`,
    ) as Raw;
    const [clusterPatch, routePatch] = filter.spec.configPatches as Raw[];
    const cluster = protoMerge(istioCluster(ISTIO_ENDPOINTS), clusterPatch?.patch.value);
    const route = protoMerge(istioRoute, routePatch?.patch.value);
    assert.deepEqual(cluster.common_lb_config, {
      healthy_panic_threshold: { value: 50 },
      consistent_hashing_lb_config: { hash_balance_factor: 125 },
    });
    assert.equal(route.route.retry_policy.num_retries, 2);
    const file = join(dir, "higress-patched.yaml");
    writeFileSync(file, stringify(routeAndCluster(route, cluster)));
    validate(file);
  });

  it("with loadAware: Istio's lb_policy RING_HASH and ring_hash_lb_config beside the merged load_balancing_policy", () => {
    const cluster = protoMerge(istioCluster(ISTIO_ENDPOINTS), higressLoadAwarePatch());
    // Both are there; Envoy uses load_balancing_policy and ignores the other two (the running test below shows it).
    assert.equal(cluster.lb_policy, "RING_HASH");
    assert.deepEqual(cluster.ring_hash_lb_config, { minimum_ring_size: 1024 });
    assert.deepEqual(cluster.common_lb_config, { healthy_panic_threshold: { value: 50 } });
    assert.equal(cluster.load_balancing_policy.policies[0].typed_extension_config.name, "envoy.load_balancing_policies.override_host");
    const file = join(dir, "higress-load-aware.yaml");
    writeFileSync(file, stringify(routeAndCluster(istioRoute, cluster)));
    validate(file);
  });

  it("why the loadAware patch carries no hash_balance_factor in common_lb_config: Envoy refuses it beside load_balancing_policy", () => {
    const patch = higressLoadAwarePatch();
    const cluster = protoMerge(istioCluster(ISTIO_ENDPOINTS), {
      ...patch,
      common_lb_config: { consistent_hashing_lb_config: { hash_balance_factor: 125 } },
    });
    const file = join(dir, "higress-load-aware-refused.yaml");
    writeFileSync(file, stringify(routeAndCluster(istioRoute, cluster)));
    const r = runValidate(file);
    assert.notEqual(r.status, 0, "Envoy took consistent_hashing_lb_config beside load_balancing_policy");
    assert.match(r.output, /load_balancing_policy cannot be combined with partial fields/);
  });
});

interface RunningEnvoy {
  url: string;
  admin: string;
  stop(): Promise<void>;
  log(): string;
}

async function startEnvoy(bootstrap: Raw, dir: string, name: string): Promise<RunningEnvoy> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(bootstrap));
  const listener = bootstrap["static_resources"].listeners[0].address.socket_address.port_value as number;
  const adminPort = bootstrap["admin"].address.socket_address.port_value as number;
  let log = "";
  const envoy: ChildProcess = spawn(envoyBinary(), ["-c", file, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  envoy.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  envoy.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitFor(
    async () => {
      if (envoy.exitCode !== null) throw new Error(`Envoy exited during start-up:\n${log.slice(-4000)}`);
      const r = await fetch(`${admin}/ready`).catch(() => null);
      return r !== null && r.status === 200;
    },
    30000,
    "Envoy ready",
  );
  return {
    url: `http://127.0.0.1:${listener}`,
    admin,
    log: () => log,
    stop: async () => {
      if (envoy.exitCode !== null) return;
      const exited = new Promise((r) => envoy.once("exit", r));
      envoy.kill("SIGTERM");
      await exited;
    },
  };
}

describe("a running Envoy from the rendered bootstrap, three replicas: Envoy's half (no plugin, the client sends the key)", () => {
  const stubs: StubHandle[] = [];
  let envoy: RunningEnvoy | undefined;
  let dir = "";

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "llm-gw-affinity-envoy-"));
    for (let i = 0; i < REPLICAS; i++) stubs.push(await startStub({ model: MODEL }));
    const raw = oneModelRaw("file:///unused/plugin.wasm");
    raw["gateway"] = { type: "envoy", listenPort: await freePort(), adminPort: await freePort() };
    const b = envoyBootstrap(specFrom(raw), { addresses: { [MODEL]: stubs.map((s) => ({ address: "127.0.0.1", port: s.port })) } }) as Raw;
    // Only the router: the test plays the plugin's part and sends the routing header and the prefix key itself.
    const hcm = b["static_resources"].listeners[0].filter_chains[0].filters[0].typed_config;
    hcm.http_filters = [
      {
        name: "envoy.filters.http.router",
        typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
      },
    ];
    envoy = await startEnvoy(b, dir, "no-plugin");
  });

  after(async () => {
    await envoy?.stop();
    for (const s of stubs) await s.close();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  const hits = (): number[] => stubs.map((s) => s.hits());
  const delta = (before: number[]): number[] => hits().map((h, i) => h - (before[i] ?? 0));
  const send = (key: string | undefined, extra: Record<string, string> = {}): Promise<Response> =>
    fetch(`${envoy?.url ?? ""}/v1/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-higress-llm-model": MODEL,
        ...(key !== undefined ? { [PREFIX_KEY_HEADER]: key } : {}),
        ...extra,
      },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hello" }] }),
      signal: AbortSignal.timeout(30000),
    });

  it("sends every request with one key to one replica", async () => {
    for (const key of ["0123456789abcdef", "fedcba9876543210"]) {
      const before = hits();
      for (let i = 0; i < 6; i++) assert.equal((await send(key)).status, 200);
      const d = delta(before);
      assert.equal(d.filter((n) => n > 0).length, 1, `key ${key} went to ${JSON.stringify(d)}`);
      assert.equal(Math.max(...d), 6);
    }
  });

  it("spreads different keys over the replicas", async () => {
    const before = hits();
    for (let i = 0; i < 30; i++) assert.equal((await send(`key-${i}`)).status, 200);
    const d = delta(before);
    assert.ok(d.filter((n) => n > 0).length >= 2, `30 keys all went to one replica: ${JSON.stringify(d)}`);
  });

  it("spills a hot key over to other replicas once its replica holds its share of 1.25x the requests in flight", async (t) => {
    const n = 12;
    const before = hits();
    const total = (): number => delta(before).reduce((a, b) => a + b, 0);
    // Envoy counts a host's active requests once their upstream stream exists, not while they wait for a connection:
    // a burst on cold connections all goes to the hashed replica. So the requests go one at a time, each sent once
    // the previous one arrived at its replica, where the stub holds it (x-stub-delay-ms): each choice sees them all.
    const pending: Promise<Response>[] = [];
    for (let i = 0; i < n; i++) {
      pending.push(send("hot-key", { "x-stub-delay-ms": "8000" }));
      await waitFor(async () => total() === i + 1, 5000, `request ${i + 1} at a replica`);
    }
    const all = await Promise.all(pending);
    for (const r of all) assert.equal(r.status, 200);
    const d = delta(before);
    // Envoy's rule (thread_aware_lb_impl.cc, BoundedLoadHashingLoadBalancer): with A requests active, a host takes the
    // next one while it holds at most ceil(ceil((A + 1) * factor) / hosts) of them, so after the burst none holds more
    // than that for A + 1 = n, plus the one it took last. Without the bound all 12 would be on one replica.
    const cap = Math.ceil(Math.ceil((n * 125) / 100) / REPLICAS) + 1;
    t.diagnostic(`${n} requests with one key over ${REPLICAS} replicas: ${JSON.stringify(d)} (at most ${cap} each)`);
    assert.ok(Math.max(...d) <= cap, `a replica took more than ${cap} of ${n}: ${JSON.stringify(d)}`);
    assert.ok(d.filter((x) => x > 0).length >= 2, `no spill-over: ${JSON.stringify(d)}`);
    assert.equal(
      d.reduce((a, b) => a + b, 0),
      n,
    );
  });

  it("skips a dead replica: its requests are retried on another at once, and outlier detection ejects it", async () => {
    // Which replica does this key live on?
    const key = "dead-replica-key";
    const before = hits();
    assert.equal((await send(key)).status, 200);
    const home = delta(before).findIndex((x) => x > 0);
    assert.ok(home >= 0);
    await stubs[home]?.close();

    for (let i = 0; i < 6; i++) {
      const r = await send(key);
      assert.equal(r.status, 200, `request ${i} after the replica died: ${r.status} ${await r.text()}`);
    }
    const stats = await (await fetch(`${envoy?.admin ?? ""}/stats?filter=^cluster\\.${CLUSTER.replace(/\|/g, "\\|")}\\.`)).text();
    const stat = (name: string): number => Number(new RegExp(`\\.${name}: (\\d+)`).exec(stats)?.[1] ?? "NaN");
    assert.ok(stat("upstream_rq_retry") >= 1, `no retry counted:\n${stats}`);
    assert.equal(stat("outlier_detection.ejections_enforced_consecutive_gateway_failure"), 1, stats);
    const clusters = (await (await fetch(`${envoy?.admin ?? ""}/clusters?format=json`)).json()) as {
      cluster_statuses: { name: string; host_statuses: { address: { socket_address: { port_value: number } }; health_status: Raw }[] }[];
    };
    const dead = clusters.cluster_statuses
      .find((c) => c.name === CLUSTER)
      ?.host_statuses.find((h) => h.address.socket_address.port_value === stubs[home]?.port);
    assert.equal(dead?.health_status["failed_outlier_check"], true, JSON.stringify(dead));
  });
});

describe("a running Envoy from the rendered bootstrap with the plugin: the prompt's prefix picks the replica", () => {
  const stubs: StubHandle[] = [];
  let envoy: RunningEnvoy | undefined;
  let dir = "";

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "llm-gw-affinity-plugin-"));
    for (let i = 0; i < REPLICAS; i++) stubs.push(await startStub({ model: MODEL }));
    const raw = oneModelRaw(pathToFileURL(WASM_PATH).href);
    raw["gateway"] = { type: "envoy", listenPort: await freePort(), adminPort: await freePort() };
    const b = envoyBootstrap(specFrom(raw), { addresses: { [MODEL]: stubs.map((s) => ({ address: "127.0.0.1", port: s.port })) } }) as Raw;
    envoy = await startEnvoy(b, dir, "plugin");
  });

  after(async () => {
    await envoy?.stop();
    for (const s of stubs) await s.close();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  const hits = (): number[] => stubs.map((s) => s.hits());
  const chat = (messages: { role: string; content: string }[], headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${envoy?.url ?? ""}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ model: MODEL, messages }),
      signal: AbortSignal.timeout(30000),
    });

  it("keeps every turn of a conversation on one replica, and spreads conversations", async () => {
    const replicaOf = async (tenant: number): Promise<number> => {
      const system = { role: "system", content: `You are the assistant of tenant ${tenant}. ${"Be precise. ".repeat(40)}` };
      const first = { role: "user", content: `Question ${tenant}: what is a prefix cache?` };
      const before = hits();
      const turns = [
        [system, first],
        [system, first, { role: "assistant", content: "It keeps KV blocks." }, { role: "user", content: "And?" }],
      ];
      for (const messages of [...turns, ...turns]) {
        const r = await chat(messages, { [PREFIX_KEY_HEADER]: "a-client-value-the-plugin-replaces" });
        assert.equal(r.status, 200, await r.text());
      }
      const d = hits().map((h, i) => h - (before[i] ?? 0));
      assert.equal(d.filter((x) => x > 0).length, 1, `tenant ${tenant}'s turns went to ${JSON.stringify(d)}`);
      return d.findIndex((x) => x > 0);
    };
    const homes = new Set<number>();
    for (let t = 0; t < 12; t++) homes.add(await replicaOf(t));
    assert.ok(homes.size >= 2, `12 tenants all on replica ${[...homes].join()}`);
  });
});

const PICKED = "x-gateway-destination-endpoint";
/** An address that is no replica of the cluster (the override-host policy looks names up, it never connects to them). */
const NOT_A_REPLICA = "10.255.255.1:8080";

/**
 * The loadAware bootstrap with only the router (the test names the replicas, as the plugin would), qwen on `stubs`.
 * `istio`: qwen's cluster as Higress would have it, Istio's with the affinity EnvoyFilter's patch merged in.
 * `backup`: gemma there as qwen's fallback, which the CLI refuses with loadAware (spec.ts checkLoadAwareFallback):
 * loadAware is added to the checked spec, to show what Envoy would make of it.
 */
async function loadAwareEnvoy(dir: string, stubs: StubHandle[], o: { istio?: boolean; backup?: StubHandle } = {}): Promise<RunningEnvoy> {
  const raw = parse(readFileSync(REPLICAS_ENVOY_FILE, "utf8")) as Raw;
  raw["plugin"] = { url: "file:///unused/plugin.wasm" };
  raw["gateway"] = { type: "envoy", listenPort: await freePort(), adminPort: await freePort() };
  const [qwen, gemma] = raw["models"] as Raw[];
  raw["models"] = [
    { ...qwen, replicas: REPLICAS, fallback: o.backup !== undefined ? ["gemma-2-2b"] : [] },
    ...(o.backup !== undefined ? [gemma] : []),
  ];
  delete raw["quotas"];
  if (o.backup !== undefined) for (const m of raw["models"] as Raw[]) delete m.affinity.loadAware;
  const spec = specFrom(raw);
  if (o.backup !== undefined) {
    const loadAware = specFrom(parse(readFileSync(REPLICAS_ENVOY_FILE, "utf8"))).models[0]?.affinity?.loadAware;
    assert.ok(loadAware !== undefined);
    for (const m of spec.models) if (m.affinity !== undefined) m.affinity.loadAware = loadAware;
  }
  const qwenAt = stubs.map((st) => ({ address: "127.0.0.1", port: st.port }));
  const addresses = { [MODEL]: qwenAt, ...(o.backup !== undefined ? { "gemma-2-2b": { address: "127.0.0.1", port: o.backup.port } } : {}) };
  const b = envoyBootstrap(spec, { addresses }) as Raw;
  b["static_resources"].listeners[0].filter_chains[0].filters[0].typed_config.http_filters = [
    { name: "envoy.filters.http.router", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } },
  ];
  if (o.istio === true) {
    const clusters = b["static_resources"].clusters as Raw[];
    const i = clusters.findIndex((c) => c.name === CLUSTER);
    clusters[i] = protoMerge(istioCluster(qwenAt), higressLoadAwarePatch());
  }
  return startEnvoy(b, dir, o.istio === true ? "load-aware-istio" : "load-aware");
}

for (const variant of [
  { name: "the upstream-Envoy cluster", istio: false },
  { name: "Istio's cluster with the Higress patch (lb_policy RING_HASH beside load_balancing_policy)", istio: true },
]) {
  describe(`a running Envoy with loadAware, ${variant.name}: the client names replicas as the plugin would`, () => {
    const stubs: StubHandle[] = [];
    let envoy: RunningEnvoy | undefined;
    let dir = "";

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "llm-gw-affinity-load-aware-"));
      for (let i = 0; i < REPLICAS; i++) stubs.push(await startStub({ model: MODEL }));
      envoy = await loadAwareEnvoy(dir, stubs, { istio: variant.istio });
    });

    after(async () => {
      await envoy?.stop();
      for (const st of stubs) await st.close();
      if (dir !== "") rmSync(dir, { recursive: true, force: true });
    });

    const at = (i: number): string => `127.0.0.1:${stubs[i]?.port ?? 0}`;
    /** Which replicas took one request (a count per replica), and its status. */
    const send = async (headers: Record<string, string>): Promise<{ status: number; took: number[] }> => {
      const before = stubs.map((st) => st.hits());
      const r = await fetch(`${envoy?.url ?? ""}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-higress-llm-model": MODEL, ...headers },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hello" }] }),
        signal: AbortSignal.timeout(30000),
      });
      await r.text();
      return { status: r.status, took: stubs.map((st, i) => st.hits() - (before[i] ?? 0)) };
    };
    const only = (i: number): number[] => stubs.map((_, j) => (j === i ? 1 : 0));

    it("sends each request to the replica the header names, whatever its prefix key", async () => {
      for (const i of [0, 1, 2, 1, 0, 2]) {
        assert.deepEqual(await send({ [PREFIX_KEY_HEADER]: "one-key", [PICKED]: at(i) }), { status: 200, took: only(i) }, `named ${i}`);
      }
    });

    it("takes the first name that is one of the cluster's replicas", async () => {
      assert.deepEqual(await send({ [PICKED]: `${at(1)},${at(0)}` }), { status: 200, took: only(1) });
      assert.deepEqual(await send({ [PICKED]: `${NOT_A_REPLICA},${at(2)},${at(0)}` }), { status: 200, took: only(2) });
    });

    it("leaves a request to the bounded-load ring on its prefix key when the header is absent or names no replica", async () => {
      const home = (await send({ [PREFIX_KEY_HEADER]: "ring-key" })).took.indexOf(1);
      assert.ok(home >= 0);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await send({ [PREFIX_KEY_HEADER]: "ring-key" }), { status: 200, took: only(home) });
        assert.deepEqual(await send({ [PREFIX_KEY_HEADER]: "ring-key", [PICKED]: NOT_A_REPLICA }), { status: 200, took: only(home) });
      }
    });

    it("retries a dead named replica on the next one named, and past the names on the ring, never the dead one again", async () => {
      await stubs[0]?.close();
      assert.deepEqual(await send({ [PICKED]: `${at(0)},${at(2)}` }), { status: 200, took: only(2) });
      const r = await send({ [PICKED]: at(0) });
      assert.equal(r.status, 200);
      assert.equal(r.took[0], 0);
      assert.equal(
        r.took.reduce((a, b) => a + b, 0),
        1,
      );
      const stats = await (
        await fetch(`${envoy?.admin ?? ""}/stats?filter=^cluster\\.${CLUSTER.replace(/\|/g, "\\|")}\\.upstream_rq_retry$`)
      ).text();
      assert.match(stats, /upstream_rq_retry: [2-9]/, stats);
    });

    it("still tries a named replica that outlier detection ejected: the policy does not look at health", async () => {
      // Two connect failures so far (previous test); a third ejects replica 0.
      assert.equal((await send({ [PICKED]: at(0) })).status, 200);
      const hostStat = async (stat: string): Promise<string> => {
        const text = await (await fetch(`${envoy?.admin ?? ""}/clusters`)).text();
        return /::(\S*)$/.exec(text.split("\n").find((l) => l.includes(`::${at(0)}::${stat}::`)) ?? "")?.[1] ?? "";
      };
      await waitFor(async () => (await hostStat("health_flags")).includes("failed_outlier_check"), 5000, "replica 0 ejected");
      const before = Number(await hostStat("cx_connect_fail"));
      const r = await send({ [PICKED]: at(0) });
      assert.equal(r.status, 200);
      assert.equal(r.took[0], 0);
      assert.equal(Number(await hostStat("cx_connect_fail")), before + 1);
    });
  });
}

describe("why the CLI refuses loadAware with a fallback on upstream Envoy: through the aggregate cluster, the ring ignores the named replica", () => {
  const stubs: StubHandle[] = [];
  let backup: StubHandle | undefined;
  let envoy: RunningEnvoy | undefined;
  let dir = "";

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "llm-gw-affinity-load-aware-backup-"));
    for (let i = 0; i < REPLICAS; i++) stubs.push(await startStub({ model: MODEL }));
    backup = await startStub({ model: "gemma-2-2b" });
    envoy = await loadAwareEnvoy(dir, stubs, { backup });
  });

  after(async () => {
    await envoy?.stop();
    for (const st of stubs) await st.close();
    await backup?.close();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("sends a request with a prefix key to the ring's replica for it, whichever replica the header names", async () => {
    const send = async (named?: number): Promise<number[]> => {
      const before = stubs.map((st) => st.hits());
      const r = await fetch(`${envoy?.url ?? ""}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-higress-llm-model": MODEL,
          [PREFIX_KEY_HEADER]: "aggregate-key",
          ...(named !== undefined ? { [PICKED]: `127.0.0.1:${stubs[named]?.port ?? 0}` } : {}),
        },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hello" }] }),
        signal: AbortSignal.timeout(30000),
      });
      assert.equal(r.status, 200, await r.text());
      return stubs.map((st, j) => st.hits() - (before[j] ?? 0));
    };
    const home = (await send()).indexOf(1);
    assert.ok(home >= 0);
    for (const other of [0, 1, 2].filter((i) => i !== home)) {
      for (let k = 0; k < 2; k++) assert.equal((await send(other)).indexOf(1), home, `named ${other}`);
    }
    assert.equal(backup?.hits(), 0);
  });
});
