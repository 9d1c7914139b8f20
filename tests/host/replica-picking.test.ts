// Load-aware replica picking (prefixAffinity.loadAware) through the real plugin build in the in-process
// host: the plugin learns replicas from answers (Envoy's upstream.address and vLLM's endpoint-load-metrics
// report), names them in x-gateway-destination-endpoint for Envoy's override-host policy, keeps a prefix
// on its replica, spills over at the in-flight bound, avoids a replica that reports a queue, forgets one
// that failed, leaves discovery turns to Envoy, and reads each replica's vLLM metrics page on a timer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeEnvoy, startPlugin, type HttpStream, type PluginRoot } from "./proxy-wasm-host.ts";
import { JSON_HEADERS, QWEN, jsonAnswer, postHeaders, routeProperties } from "./fixtures.ts";

const ENDPOINT = "x-gateway-destination-endpoint";
const REPLICAS = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080"];

function config(loadAware: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    models: [{ name: QWEN }],
    prefixAffinity: { enabled: true, loadAware: { enabled: true, discoverEvery: 0, ...loadAware } },
  };
}

function chatWith(system: string): string {
  return JSON.stringify({
    model: QWEN,
    messages: [
      { role: "system", content: system },
      { role: "user", content: "hello" },
    ],
  });
}

function report(waiting: number, kv: number): string {
  return `TEXT named_metrics.kv_cache_usage_perc=${kv}, named_metrics.num_requests_waiting=${waiting.toFixed(1)}`;
}

// A request, left in flight (its answer not yet come).
function send(root: PluginRoot, system: string, extra: [string, string][] = []): HttpStream {
  const body = chatWith(system);
  const s = root.stream({ properties: routeProperties(QWEN) });
  s.sendRequest(postHeaders(body, "/v1/chat/completions", extra), body);
  return s;
}

// The answer from `address`, with vLLM's load report when given.
function answer(s: HttpStream, address: string, loadReport?: string): void {
  s.setProperty("upstream\0address", address);
  const headers: [string, string][] = [...JSON_HEADERS];
  if (loadReport !== undefined) headers.push(["endpoint-load-metrics", loadReport]);
  s.sendResponseHeaders(headers);
  s.sendResponseData(jsonAnswer(QWEN, 5, 3), true);
  s.finish();
}

// Every replica answers one request, reporting an idle engine (all sent before any answer: nothing is
// known yet, so Envoy balanced them).
function learnAll(root: PluginRoot, replicas = REPLICAS): void {
  const sent = replicas.map((r) => send(root, `warm-up ${r}`));
  sent.forEach((s, i) => answer(s, replicas[i]!, report(0, 0.1)));
}

function named(s: HttpStream): string[] {
  return (s.requestHeader(ENDPOINT) ?? "").split(",").filter((x) => x.length > 0);
}

test("cold: no replica known, Envoy balances; vLLM is asked for its report; a client's endpoint header is removed", async () => {
  const root = await startPlugin(config());
  const s = send(root, "a system prompt", [[ENDPOINT, "10.9.9.9:1"]]);
  assert.equal(s.requestHeader(ENDPOINT), undefined);
  assert.equal(s.requestHeader("endpoint-load-metrics-format"), "text");
  answer(s, REPLICAS[0]!, report(0, 0.25));
  assert.equal(s.clientHeader("endpoint-load-metrics"), undefined, "the report stays in the gateway");
  assert.equal(s.clientStatus(), 200);
  const next = send(root, "a system prompt");
  assert.deepEqual(named(next), [REPLICAS[0]], "the replica that answered is known");
});

test("a prefix keeps its replica; prefixes spread over the replicas; three replicas named for retries", async () => {
  const root = await startPlugin(config());
  learnAll(root);
  const firsts = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const a = send(root, `tenant ${i} system prompt`);
    const list = named(a);
    assert.equal(list.length, 3);
    assert.equal(new Set(list).size, 3);
    for (const r of list) assert.ok(REPLICAS.includes(r));
    answer(a, list[0]!, report(0, 0.1));
    const b = send(root, `tenant ${i} system prompt`);
    assert.equal(named(b)[0], list[0], "same prefix, same replica");
    answer(b, list[0]!, report(0, 0.1));
    firsts.add(list[0]!);
  }
  assert.equal(firsts.size, REPLICAS.length, "40 prefixes use every replica");
});

test("in-flight bound: a hot prefix spills over to the next replica in its ranking", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config({ loadFactor: 125 }), { envoy });
  learnAll(root);
  const open: HttpStream[] = [];
  const counts = new Map<string, number>();
  for (let i = 0; i < 12; i++) {
    const s = send(root, "one hot system prompt");
    const first = named(s)[0]!;
    counts.set(first, (counts.get(first) ?? 0) + 1);
    open.push(s);
  }
  const max = Math.max(...counts.values());
  assert.ok((envoy.metrics.get("llm_gateway.replica_pick.skipped.reason.load_bound")?.value ?? 0) >= 1);
  // ceil(12 × 1.25 / 4) = 4: no replica carries more than that of the 12 in flight.
  assert.ok(max <= 4, `max ${max} in flight on one replica: ${JSON.stringify([...counts])}`);
  assert.ok(counts.size >= 3, "spilled over");
  for (const s of open) answer(s, named(s)[0]!, report(0, 0.1));
  // Finished: the prefix is back on its home replica.
  const home = named(send(root, "one hot system prompt"))[0];
  assert.equal(home, [...counts.entries()].sort((x, y) => y[1] - x[1])[0]![0]);
});

test("a replica reporting a queue is avoided while the report is fresh, then probed again", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config(), { envoy });
  learnAll(root);
  const probe = send(root, "queued tenant");
  const home = named(probe)[0]!;
  answer(probe, home, report(5, 0.4)); // vLLM: 5 requests waiting (maxWaiting 4)
  const next = send(root, "queued tenant");
  assert.notEqual(named(next)[0], home, "saturated replica skipped");
  assert.equal(envoy.metrics.get("llm_gateway.replica_pick.skipped.reason.saturated")?.value, 1);
  assert.ok(named(next).includes(home), "still named, as a last resort for retries");
  answer(next, named(next)[0]!, report(0, 0.1));
  envoy.clock.ms += 2500; // the saturation report is old (two scrape intervals): one request probes the replica
  const later = send(root, "queued tenant");
  assert.equal(named(later)[0], home);
});

test("a high KV-cache usage counts as saturation (maxKvCacheUsage)", async () => {
  const root = await startPlugin(config({ maxKvCacheUsage: 90 }));
  learnAll(root);
  const probe = send(root, "kv tenant");
  const home = named(probe)[0]!;
  answer(probe, home, report(0, 0.97));
  assert.notEqual(named(send(root, "kv tenant"))[0], home);
});

test("the named replica failed (another one answered): it is forgotten until it answers again", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config(), { envoy });
  learnAll(root);
  const s = send(root, "failing tenant");
  const [dead, second] = named(s);
  answer(s, second!, report(0, 0.1)); // Envoy's retry went to the second name
  const next = send(root, "failing tenant");
  assert.ok(!named(next).includes(dead!), "forgotten");
  assert.equal(envoy.metrics.get("llm_gateway.replica_pick.failed")?.value, 1);
  assert.equal(named(next)[0], second);
  answer(next, dead!, report(0, 0.1)); // it answers again (e.g. a discovery turn)
  assert.equal(named(send(root, "failing tenant"))[0], dead, "known again, home again");
});

test("an answer without a report still makes the replica known (idle as far as the plugin can tell)", async () => {
  const root = await startPlugin(config());
  answer(send(root, "x"), REPLICAS[1]!);
  assert.deepEqual(named(send(root, "y")), [REPLICAS[1]]);
});

test("malformed reports do not break anything", async () => {
  const root = await startPlugin(config());
  const bad = [
    "",
    "TEXT",
    "TEXT ",
    "JSON {}",
    "TEXT named_metrics.num_requests_waiting=abc",
    "TEXT named_metrics.num_requests_waiting=-3",
    "TEXT =,=,,, named_metrics.kv_cache_usage_perc",
    "TEXT named_metrics.num_requests_waiting=1e999, named_metrics.kv_cache_usage_perc=1e-999",
    "TEXT " + "x".repeat(5000),
  ];
  for (const r of bad) answer(send(root, "m"), REPLICAS[2]!, r);
  assert.deepEqual(named(send(root, "m")), [REPLICAS[2]]);
  // An odd address is not stored (nor does it reach a header); the replica named was not the one that
  // answered, so it counts as failed and is forgotten too.
  answer(send(root, "m"), "10.0.0.9:80,10.0.0.8:80", report(0, 0));
  assert.equal(send(root, "m").requestHeader(ENDPOINT), undefined);
});

test("replicas not heard from for reportTtlMs are forgotten", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config({ reportTtlMs: 5000 }), { envoy });
  learnAll(root);
  envoy.clock.ms += 6000;
  assert.equal(send(root, "z").requestHeader(ENDPOINT), undefined);
});

test("every discoverEvery-th request is left to Envoy's balancer; every other one while replicas are being found", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config({ discoverEvery: 4 }), { envoy });
  const unnamedOf16 = (): number => {
    let unnamed = 0;
    for (let i = 0; i < 16; i++) {
      const s = send(root, `d ${i}`);
      if (s.requestHeader(ENDPOINT) === undefined) unnamed++;
      answer(s, named(s)[0] ?? REPLICAS[0]!, report(0, 0.1));
    }
    return unnamed;
  };
  learnAll(root, REPLICAS.slice(0, 3));
  const leftBefore = envoy.metrics.get("llm_gateway.replica_pick.left_to_envoy")?.value ?? 0;
  // Just after replicas appeared: every other request, and every 4th.
  assert.equal(unnamedOf16(), 8);
  assert.equal(envoy.metrics.get("llm_gateway.replica_pick.left_to_envoy")?.value, leftBefore + 8);
  envoy.clock.ms += 5000;
  assert.equal(unnamedOf16(), 4);
  // Envoy's balancer finds a fourth replica on a discovery turn: the burst again.
  for (;;) {
    const s = send(root, "discovery");
    const unnamed = s.requestHeader(ENDPOINT) === undefined;
    answer(s, unnamed ? REPLICAS[3]! : named(s)[0]!, report(0, 0.1));
    if (unnamed) break;
  }
  assert.equal(unnamedOf16(), 8);
});

test("workers share what they learned (proxy shared data)", async () => {
  const envoy = new FakeEnvoy();
  const one = await startPlugin(config(), { envoy });
  const vm2 = await envoy.startVm();
  const two = vm2.configure(config());
  learnAll(one);
  assert.equal(named(send(two, "shared")).length, 3);
});

test("the discovery burst follows the table, not a worker's first look at it", async () => {
  const envoy = new FakeEnvoy();
  const cfg = config({ discoverEvery: 1000000 });
  const one = await startPlugin(cfg, { envoy });
  learnAll(one);
  envoy.clock.ms += 6000;
  // A worker that picks for the first time now: the replicas are not new, so it names one every time.
  const two = (await envoy.startVm()).configure(cfg);
  for (let i = 0; i < 8; i++) assert.equal(named(send(two, `late ${i}`)).length, 3, `request ${i}`);
});

test("off unless enabled: no header, no report requested", async () => {
  const root = await startPlugin({ models: [{ name: QWEN }], prefixAffinity: { enabled: true } });
  const s = send(root, "p");
  assert.equal(s.requestHeader("endpoint-load-metrics-format"), undefined);
  answer(s, REPLICAS[0]!, report(0, 0.1));
  assert.equal(send(root, "p").requestHeader(ENDPOINT), undefined);
});

// ---- scraping (loadAware.scrapeIntervalMs) ----

function metricsPage(waiting: number, kv: number, oldName = false): string {
  const labels = `{engine="0",model_name="${QWEN}"}`;
  const kvName = oldName ? "vllm:gpu_cache_usage_perc" : "vllm:kv_cache_usage_perc";
  return [
    "# HELP vllm:num_requests_running Number of requests in model execution batches.",
    "# TYPE vllm:num_requests_running gauge",
    `vllm:num_requests_running${labels} 12.0`,
    "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
    "# TYPE vllm:num_requests_waiting gauge",
    `vllm:num_requests_waiting${labels} ${waiting.toFixed(1)}`,
    `vllm:num_requests_waiting_by_reason${labels} 99.0`,
    `# HELP ${kvName} KV-cache usage. 1 means 100 percent usage.`,
    `# TYPE ${kvName} gauge`,
    `${kvName}${labels} ${kv}`,
    "",
  ].join("\n");
}

// The replica a scrape names.
function targetOf(call: PluginRoot["calls"][number]): string | undefined {
  return call.headers.find(([k]) => k === ENDPOINT)?.[1];
}

function answerScrape(vm: PluginRoot["vm"], call: PluginRoot["calls"][number], status: number, body: string): void {
  call.answered = true;
  call.answer = { headers: [[":status", String(status)]], body: Buffer.from(body) };
  vm.answerCall(call);
}

test("scraping: each known replica's /metrics is read through the model's cluster, naming the replica", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config(), { envoy });
  learnAll(root);
  envoy.advance(50); // the next tick
  const calls = root.calls.filter((c) => !c.answered);
  assert.equal(calls.length, REPLICAS.length);
  for (const c of calls) {
    assert.equal(c.cluster, "outbound|8080||llm-qwen2-1-5b.dns");
    assert.equal(c.headers.find(([k]) => k === ":path")?.[1], "/metrics");
    assert.equal(c.headers.find(([k]) => k === ":method")?.[1], "GET");
  }
  assert.deepEqual(calls.map((c) => targetOf(c)).sort(), [...REPLICAS].sort());
  // Not again before the interval is over.
  envoy.advance(900);
  assert.equal(root.calls.filter((c) => !c.answered).length, REPLICAS.length);
  for (const c of calls) answerScrape(root.vm, c, 200, metricsPage(0, 0.1));
  envoy.advance(200);
  assert.equal(root.calls.filter((c) => !c.answered).length, REPLICAS.length, "the next round");
});

test("scraping: a replica whose metrics show a queue is avoided, with no answer of its own needed", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config(), { envoy });
  learnAll(root);
  const home = named(send(root, "streamed tenant"))[0]!;
  envoy.advance(1000);
  for (const c of root.calls.filter((x) => !x.answered)) {
    answerScrape(root.vm, c, 200, targetOf(c) === home ? metricsPage(6, 0.5) : metricsPage(0, 0.2));
  }
  assert.notEqual(named(send(root, "streamed tenant"))[0], home);
  // Older vLLM's name for the KV-cache gauge counts too.
  envoy.advance(1000);
  for (const c of root.calls.filter((x) => !x.answered)) {
    answerScrape(root.vm, c, 200, targetOf(c) === home ? metricsPage(0, 0.99, true) : metricsPage(0, 0.2, true));
  }
  assert.notEqual(named(send(root, "streamed tenant"))[0], home, "KV cache 99% full");
  envoy.advance(1000);
  for (const c of root.calls.filter((x) => !x.answered)) answerScrape(root.vm, c, 200, metricsPage(0, 0.2));
  assert.equal(named(send(root, "streamed tenant"))[0], home, "idle again, home again");
});

test("scraping: one worker per replica per interval; failed or odd pages change nothing", async () => {
  const envoy = new FakeEnvoy();
  const one = await startPlugin(config(), { envoy });
  const vm2 = await envoy.startVm();
  const two = vm2.configure(config());
  learnAll(one);
  envoy.advance(1000);
  const all = [...one.calls, ...two.calls].filter((c) => !c.answered);
  assert.equal(all.length, REPLICAS.length, "each replica claimed once across both workers");
  const pages = ["", "garbage\n\n\n", 'vllm:num_requests_waiting{a="}"} x\n', "vllm:num_requests_waiting 1e999999\n", "x".repeat(70000)];
  all.forEach((c, i) => {
    if (i === 0) {
      c.answered = true;
      c.answer = null; // connection failure
      (c.rootId === one.id ? one : two).vm.answerCall(c);
    } else answerScrape((c.rootId === one.id ? one : two).vm, c, i === 1 ? 503 : 200, pages[i % pages.length]!);
  });
  assert.equal(named(send(one, "after odd pages")).length, 3);
  // No answer, a 503, a page without a readable figure; the fourth page's huge value counts, clamped.
  assert.equal(envoy.metrics.get("llm_gateway.replica_scrape.failed")?.value, 3);
});

test("scraping off (scrapeIntervalMs 0): no calls", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config({ scrapeIntervalMs: 0 }), { envoy });
  learnAll(root);
  envoy.advance(5000);
  assert.equal(root.calls.length, 0);
});

test("replicas are kept per configured route: a pattern with `route` shares its table, one without is not picked", async () => {
  const root = await startPlugin({
    models: [{ name: QWEN }, { name: "qwen2-*", route: QWEN }, { name: "any-*" }],
    prefixAffinity: { enabled: true, loadAware: { enabled: true, discoverEvery: 0 } },
  });
  learnAll(root);
  const viaPattern = (model: string): HttpStream => {
    const body = JSON.stringify({ model, messages: [{ role: "user", content: "p" }] });
    const s = root.stream({ properties: routeProperties(QWEN) });
    s.sendRequest(postHeaders(body), body);
    return s;
  };
  assert.equal(named(viaPattern("qwen2-7b")).length, 3, "the pattern routes to qwen's cluster: its replicas");
  const free = viaPattern("any-model-a-client-invents");
  assert.equal(free.requestHeader(ENDPOINT), undefined);
  assert.equal(free.requestHeader("endpoint-load-metrics-format"), undefined);
});

test("every replica saturated: none is avoided, the prefix keeps its replica", async () => {
  const envoy = new FakeEnvoy();
  const root = await startPlugin(config(), { envoy });
  learnAll(root);
  const ask = (): string => {
    const s = send(root, "fleet-wide queue");
    const first = named(s)[0]!;
    answer(s, first); // no report: only the scrapes say how loaded the replicas are
    return first;
  };
  const home = ask();
  envoy.advance(50);
  // The prefix's replica has the longest queue, but every replica has one.
  for (const c of root.calls.filter((x) => !x.answered)) {
    answerScrape(root.vm, c, 200, metricsPage(targetOf(c) === home ? 9 : 6, 0.6));
  }
  assert.equal(ask(), home);
  assert.equal(envoy.metrics.get("llm_gateway.replica_pick.skipped.reason.saturated")?.value ?? 0, 0, "nothing was skipped");
  // One replica without a queue: then the queued ones are avoided.
  envoy.advance(1000);
  const calls = root.calls.filter((x) => !x.answered);
  const idle = calls.find((c) => targetOf(c) !== home)!;
  for (const c of calls) answerScrape(root.vm, c, 200, metricsPage(c === idle ? 0 : 6, 0.6));
  assert.equal(ask(), targetOf(idle));
});

test("maxWaiting is a threshold: a queue of that many is not avoided, one more is", async () => {
  const root = await startPlugin(config({ maxWaiting: 4 }));
  learnAll(root);
  const probe = send(root, "threshold tenant");
  const home = named(probe)[0]!;
  answer(probe, home, report(4, 0.4));
  const at = send(root, "threshold tenant");
  assert.equal(named(at)[0], home, "4 waiting: kept");
  answer(at, home, report(5, 0.4));
  assert.notEqual(named(send(root, "threshold tenant"))[0], home, "5 waiting: avoided");
});
