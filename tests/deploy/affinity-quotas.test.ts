// models[].affinity (issue 14) and quotas (issue 16) in the deployment file: validation, and what the renderer makes
// of them for Kubernetes, Higress and upstream Envoy. Pure functions, no cluster; the real Envoy and the real
// ratelimit service check the rendered output in envoy-affinity.test.ts and ratelimit-service.test.ts.
//
// Run: node --import tsx --test tests/deploy/affinity-quotas.test.ts
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { childKeys } from "../../assembly/plugin/config/schema.ts";
import { ROOT } from "../../deploy-scripts/generators/gen-manifests.ts";
import { helmCommands } from "../../deploy-scripts/cluster/helm.ts";
import { RATELIMIT_IMAGE } from "../../deploy-scripts/names.ts";
import { envoyBootstrap } from "../../deploy-scripts/render/envoy/bootstrap.ts";
import { pluginConfig } from "../../deploy-scripts/render/plugin-config.ts";
import { ratelimitConfigFile } from "../../deploy-scripts/render/quota-service.ts";
import { renderGroups, renderObjects } from "../../deploy-scripts/render/render.ts";
import { validateSpec, type DeploySpec } from "../../deploy-scripts/spec.ts";
import { REPLICAS_ENVOY_FILE, REPLICAS_FILE } from "./replica-examples.ts";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SEED_FILE = join(ROOT, "deploy-scripts", "examples", "seed.yaml");

function raw(file: string): Raw {
  return parse(readFileSync(file, "utf8")) as Raw;
}

function specFrom(r: unknown): DeploySpec {
  const v = validateSpec(r);
  if (!v.ok) assert.fail(`expected a valid file, got:\n${v.errors.join("\n")}`);
  return v.spec;
}

function errorsOf(r: unknown): string[] {
  const v = validateSpec(r);
  assert.equal(v.ok, false, "expected the file to be refused");
  return v.ok ? [] : v.errors;
}

function find(objects: Raw[], kind: string, name: string): Raw {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `no ${kind} ${name} among ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(", ")}`);
  return o;
}

describe("affinity: what Kubernetes and Higress get", () => {
  const spec = specFrom(raw(REPLICAS_FILE));
  const objects = renderObjects(spec, { hfTokenSet: false }) as Raw[];

  it("renders, in apply order, the models with a headless Service per model with affinity, the affinity filters before the fallback, the quota service before the plugin", () => {
    assert.deepEqual(
      renderGroups(spec, { hfTokenSet: false }).map((g) => g.file),
      ["10-models.yaml", "20-routes.yaml", "25-affinity.yaml", "30-fallback.yaml", "35-quota-service.yaml", "40-plugin.yaml"],
    );
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      [
        "OpenModel/qwen2-1-5b",
        "Playground/qwen2-1-5b",
        "Service/qwen2-1-5b-ep",
        "OpenModel/gemma-2-2b",
        "Playground/gemma-2-2b",
        "McpBridge/default",
        "Ingress/qwen2-1-5b",
        "Ingress/gemma-2-2b",
        "EnvoyFilter/qwen2-1-5b.affinity",
        "Ingress/qwen2-1-5b.fallback",
        "EnvoyFilter/qwen2-1-5b",
        "Deployment/llm-gateway-redis",
        "Service/llm-gateway-redis",
        "ConfigMap/llm-gateway-ratelimit-config",
        "Deployment/llm-gateway-ratelimit",
        "Service/llm-gateway-ratelimit",
        "WasmPlugin/llm-gateway",
      ],
    );
  });

  it("asks llmaz for the replicas, and selects the replicas' leader pods headless, as llmaz's <model>-lb does", () => {
    assert.equal(find(objects, "Playground", "qwen2-1-5b").spec.replicas, 4);
    assert.equal(find(objects, "Playground", "gemma-2-2b").spec.replicas, 1);
    const ep = find(objects, "Service", "qwen2-1-5b-ep");
    assert.equal(ep.metadata.namespace, "default");
    // Exactly this: in particular no publishNotReadyAddresses, so replicas still loading stay out of DNS.
    assert.deepEqual(ep.spec, {
      clusterIP: "None",
      selector: { "leaderworkerset.sigs.k8s.io/name": "qwen2-1-5b", "leaderworkerset.sigs.k8s.io/worker-index": "0" },
      ports: [{ name: "http", protocol: "TCP", port: 8080, targetPort: 8080 }],
    });
  });

  it("points the model's McpBridge registry at the headless Service, and only that model's", () => {
    const registries = find(objects, "McpBridge", "default").spec.registries as Raw[];
    assert.deepEqual(
      registries.map((r) => [r.name, r.domain]),
      [
        ["llm-qwen2-1-5b", "qwen2-1-5b-ep.default.svc.cluster.local"],
        ["llm-gemma-2-2b", "gemma-2-2b-lb.default.svc.cluster.local"],
      ],
    );
  });

  it("hashes the model's Ingress on the plugin's prefix-key header; the other model's Ingress is as before", () => {
    const hashBy = "higress.io/upstream-hash-by";
    assert.equal(find(objects, "Ingress", "qwen2-1-5b").metadata.annotations[hashBy], "$http_x-llm-gateway-prefix-key");
    assert.equal(find(objects, "Ingress", "gemma-2-2b").metadata.annotations[hashBy], undefined);
    // Its backup has no affinity, so qwen's fallback Ingress (destination gemma) does not hash.
    assert.equal(find(objects, "Ingress", "qwen2-1-5b.fallback").metadata.annotations[hashBy], undefined);
  });

  it("hashes a fallback Ingress too when its backup has affinity (Higress takes a destination's policy from its first Ingress)", () => {
    const r = raw(REPLICAS_FILE);
    r["models"][1].affinity = { loadFactor: 1.5 };
    const objs = renderObjects(specFrom(r), { hfTokenSet: false }) as Raw[];
    assert.equal(
      find(objs, "Ingress", "qwen2-1-5b.fallback").metadata.annotations["higress.io/upstream-hash-by"],
      "$http_x-llm-gateway-prefix-key",
    );
    assert.deepEqual(
      objs.filter((o) => o.kind === "EnvoyFilter").map((o) => o.metadata.name),
      ["qwen2-1-5b.affinity", "gemma-2-2b.affinity", "qwen2-1-5b"],
    );
    assert.equal(
      find(objs, "EnvoyFilter", "gemma-2-2b.affinity").spec.configPatches[0].patch.value.common_lb_config.consistent_hashing_lb_config
        .hash_balance_factor,
      150,
    );
  });

  it("patches the model's cluster with the load bound and outlier detection, and its route with the previous-hosts retry predicate", () => {
    const f = find(objects, "EnvoyFilter", "qwen2-1-5b.affinity");
    assert.equal(f.metadata.namespace, "higress-system");
    const [cluster, route] = f.spec.configPatches as Raw[];
    assert.deepEqual(cluster?.match, { context: "GATEWAY", cluster: { name: "outbound|8080||llm-qwen2-1-5b.dns" } });
    assert.equal(cluster?.applyTo, "CLUSTER");
    assert.equal(cluster?.patch.operation, "MERGE");
    assert.deepEqual(cluster?.patch.value.common_lb_config, { consistent_hashing_lb_config: { hash_balance_factor: 125 } });
    assert.equal(cluster?.patch.value.outlier_detection.consecutive_gateway_failure, 3);
    assert.equal(cluster?.patch.value.outlier_detection.base_ejection_time, "10s");
    assert.equal(cluster?.patch.value.outlier_detection.enforcing_consecutive_5xx, 0);
    assert.equal(route?.applyTo, "HTTP_ROUTE");
    assert.deepEqual(route?.match, { context: "GATEWAY", routeConfiguration: { vhost: { route: { name: "qwen2-1-5b" } } } });
    assert.deepEqual(route?.patch.value.route.retry_policy.retry_host_predicate, [
      {
        name: "envoy.retry_host_predicates.previous_hosts",
        typed_config: { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" },
      },
    ]);
    // Only the predicate: retry_on and num_retries stay Higress's.
    assert.deepEqual(Object.keys(route?.patch.value.route.retry_policy).sort(), [
      "host_selection_retry_max_attempts",
      "retry_host_predicate",
    ]);
  });

  it("turns the plugin's prefixAffinity on for exactly the models with affinity", () => {
    assert.deepEqual(pluginConfig(spec)["prefixAffinity"], {
      enabled: true,
      header: "x-llm-gateway-prefix-key",
      prefixBytes: 2048,
      models: ["qwen2-1-5b"],
    });
    assert.deepEqual(find(objects, "WasmPlugin", "llm-gateway").spec.defaultConfig.prefixAffinity, pluginConfig(spec)["prefixAffinity"]);
  });

  it("leaves a file without affinity and quotas as it was: no prefixAffinity, no quotas, no extra objects", () => {
    const seed = specFrom(raw(SEED_FILE));
    assert.deepEqual(Object.keys(pluginConfig(seed)), ["routingHeader", "maxBodyBytes", "serveModelList", "fallback", "models"]);
    assert.ok(!renderObjects(seed, { hfTokenSet: false }).some((o) => ["Service", "Deployment", "ConfigMap"].includes(o.kind)));
  });
});

/**
 * The upstream-Envoy example as replicas-quotas.yaml has it: the ring alone (no loadAware) and qwen falling back to
 * gemma (the example leaves qwen's fallback out for loadAware's sake).
 */
function ringEnvoyRaw(): Raw {
  const r = raw(REPLICAS_ENVOY_FILE);
  for (const m of r["models"]) delete m.affinity.loadAware;
  r["models"][0].fallback = ["gemma-2-2b"];
  return r;
}

describe("affinity: what upstream Envoy gets", () => {
  const spec = specFrom(ringEnvoyRaw());
  const b = envoyBootstrap(spec) as Raw;
  const clusters = b.static_resources.clusters as Raw[];
  const byName = (n: string): Raw => clusters.find((c) => c.name === n) ?? assert.fail(`no cluster ${n}`);
  const routes = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes as Raw[];
  const route = (n: string): Raw => routes.find((r) => r.name === n) ?? assert.fail(`no route ${n}`);

  it("resolves every replica through the headless Service and hashes onto them with bounded load and outlier detection", () => {
    const qwen = byName("outbound|8080||llm-qwen2-1-5b.dns");
    assert.equal(qwen.type, "STRICT_DNS");
    assert.deepEqual(qwen.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, {
      address: "qwen2-1-5b-ep.default.svc.cluster.local",
      port_value: 8080,
    });
    assert.equal(qwen.lb_policy, "RING_HASH");
    assert.deepEqual(qwen.common_lb_config, { consistent_hashing_lb_config: { hash_balance_factor: 125 } });
    assert.equal(qwen.load_balancing_policy, undefined);
    assert.deepEqual(qwen.outlier_detection, {
      consecutive_gateway_failure: 3,
      enforcing_consecutive_gateway_failure: 100,
      enforcing_consecutive_5xx: 0,
      base_ejection_time: "10s",
      max_ejection_percent: 50,
    });
  });

  it("hashes the route on the prefix key and retries a failed connection on another replica", () => {
    // gemma: no backups, so the replica retry policy alone.
    assert.deepEqual(route("gemma-2-2b").route.hash_policy, [{ header: { header_name: "x-llm-gateway-prefix-key" } }]);
    const gemma = route("gemma-2-2b").route.retry_policy;
    assert.equal(gemma.retry_on, "connect-failure,reset");
    assert.equal(gemma.num_retries, 2);
    assert.equal(gemma.retry_host_predicate[0].name, "envoy.retry_host_predicates.previous_hosts");
    // qwen: its fallback retry policy (next priority = the backup) plus the predicate, and the hash.
    const qwen = route("qwen2-1-5b").route;
    assert.equal(qwen.cluster, "outbound|8080||llm-qwen2-1-5b.fallback");
    assert.equal(qwen.retry_policy.retry_priority.name, "envoy.retry_priorities.previous_priorities");
    assert.equal(qwen.retry_policy.retry_host_predicate[0].name, "envoy.retry_host_predicates.previous_hosts");
    assert.deepEqual(qwen.hash_policy, [{ header: { header_name: "x-llm-gateway-prefix-key" } }]);
  });

  it("renders a model without affinity exactly as before: one ClusterIP endpoint, default balancing, no hash, no retries", () => {
    const r = ringEnvoyRaw();
    delete r["models"][1].affinity;
    const b2 = envoyBootstrap(specFrom(r)) as Raw;
    const gemma = (b2.static_resources.clusters as Raw[]).find((c) => c.name === "outbound|8080||llm-gemma-2-2b.dns") as Raw;
    assert.equal(
      gemma.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address,
      "gemma-2-2b-lb.default.svc.cluster.local",
    );
    for (const k of ["lb_policy", "common_lb_config", "outlier_detection"]) assert.equal(gemma[k], undefined, k);
    const gemmaRoute = (
      b2.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes as Raw[]
    )[1];
    assert.deepEqual(Object.keys(gemmaRoute?.route), ["cluster", "timeout"]);
  });

  it("takes several addresses per model, one endpoint each (replicas at fixed addresses)", () => {
    const b2 = envoyBootstrap(spec, {
      addresses: {
        "gemma-2-2b": [
          { address: "127.0.0.1", port: 9001 },
          { address: "127.0.0.1", port: 9002 },
        ],
      },
    }) as Raw;
    const gemma = (b2.static_resources.clusters as Raw[]).find((c) => c.name === "outbound|8080||llm-gemma-2-2b.dns") as Raw;
    assert.equal(gemma.type, "STATIC");
    assert.deepEqual(
      (gemma.load_assignment.endpoints[0].lb_endpoints as Raw[]).map((e) => e.endpoint.address.socket_address.port_value),
      [9001, 9002],
    );
    assert.deepEqual(gemma.load_assignment.endpoints[0].lb_endpoints[1].metadata, {
      filter_metadata: { "llm-gateway": { model: "gemma-2-2b", cluster: "outbound|8080||llm-gemma-2-2b.dns" } },
    });
  });

  it("adds an HTTP/2 cluster for the rate-limit service, named as the plugin's quotas.service.cluster", () => {
    const name = "outbound|8081||llm-gateway-ratelimit.default.svc.cluster.local";
    assert.equal((pluginConfig(spec)["quotas"] as Raw).service.cluster, name);
    const rl = byName(name);
    assert.equal(rl.type, "STRICT_DNS");
    assert.deepEqual(rl.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, {
      address: "llm-gateway-ratelimit.default.svc.cluster.local",
      port_value: 8081,
    });
    assert.deepEqual(rl.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config, {
      http2_protocol_options: {},
    });
  });

  it("applies the llmaz objects, the headless Services and the quota service: render --kubernetes", () => {
    assert.deepEqual(
      renderObjects(spec, { hfTokenSet: false }).map((o) => `${o.kind}/${o.metadata.name}`),
      [
        "OpenModel/qwen2-1-5b",
        "Playground/qwen2-1-5b",
        "Service/qwen2-1-5b-ep",
        "OpenModel/gemma-2-2b",
        "Playground/gemma-2-2b",
        "Service/gemma-2-2b-ep",
        "Deployment/llm-gateway-redis",
        "Service/llm-gateway-redis",
        "ConfigMap/llm-gateway-ratelimit-config",
        "Deployment/llm-gateway-ratelimit",
        "Service/llm-gateway-ratelimit",
      ],
    );
  });
});

describe("quotas: the plugin configuration and the rate-limit service", () => {
  it("passes the rules on as written and fills in the service's cluster, Istio's name for the deployed Service", () => {
    const spec = specFrom(raw(REPLICAS_FILE));
    assert.deepEqual(pluginConfig(spec)["quotas"], {
      mode: "cluster",
      service: { cluster: "outbound|8081||llm-gateway-ratelimit.default.svc.cluster.local", onUnavailable: "allow", timeoutMs: 200 },
      rules: raw(REPLICAS_FILE)["quotas"].rules,
    });
  });

  it("mode local: only the plugin configuration, no service objects", () => {
    const r = raw(REPLICAS_FILE);
    r["quotas"] = { mode: "local", localSlots: 1024, rules: [{ name: "all", requests: 10 }] };
    const spec = specFrom(r);
    assert.deepEqual(pluginConfig(spec)["quotas"], { mode: "local", localSlots: 1024, rules: [{ name: "all", requests: 10 }] });
    assert.ok(!renderObjects(spec, { hfTokenSet: false }).some((o) => o.metadata.name.startsWith("llm-gateway-r")));
  });

  it("an existing service: the cluster named after its address (Envoy renders it), or given as is (Higress)", () => {
    const r = raw(REPLICAS_ENVOY_FILE);
    r["quotas"].service = { deploy: false, address: "10.0.0.9:18081", domain: "gw" };
    const spec = specFrom(r);
    assert.deepEqual((pluginConfig(spec)["quotas"] as Raw).service, { cluster: "outbound|18081||10.0.0.9", domain: "gw" });
    const rl = ((envoyBootstrap(spec) as Raw).static_resources.clusters as Raw[]).find((c) => c.name === "outbound|18081||10.0.0.9");
    assert.equal(rl?.type, "STATIC");
    assert.ok(!renderObjects(spec, { hfTokenSet: false }).some((o) => o.kind === "Deployment"));

    const h = raw(REPLICAS_FILE);
    h["quotas"].service = { deploy: false, cluster: "outbound|8081||ratelimit.dns" };
    assert.equal((pluginConfig(specFrom(h))["quotas"] as Raw).service.cluster, "outbound|8081||ratelimit.dns");
  });

  it("deploys envoyproxy/ratelimit with the environment its source reads, its config holding only the domain", () => {
    const r = raw(REPLICAS_FILE);
    r["namespace"] = "llm";
    r["quotas"].service.domain = "team-gw";
    const objects = renderObjects(specFrom(r), { hfTokenSet: false }) as Raw[];
    const d = find(objects, "Deployment", "llm-gateway-ratelimit");
    assert.equal(d.metadata.namespace, "llm");
    const c = d.spec.template.spec.containers[0];
    assert.equal(c.image, RATELIMIT_IMAGE);
    assert.deepEqual(c.env, [
      { name: "USE_STATSD", value: "false" },
      { name: "REDIS_SOCKET_TYPE", value: "tcp" },
      { name: "REDIS_URL", value: "llm-gateway-redis.llm.svc.cluster.local:6379" },
      { name: "RUNTIME_ROOT", value: "/data" },
      { name: "RUNTIME_SUBDIRECTORY", value: "ratelimit" },
      { name: "RUNTIME_WATCH_ROOT", value: "false" },
      { name: "RUNTIME_IGNOREDOTFILES", value: "true" },
    ]);
    assert.deepEqual(c.volumeMounts, [{ name: "config", mountPath: "/data/ratelimit/config", readOnly: true }]);
    assert.deepEqual(d.spec.template.spec.volumes, [{ name: "config", configMap: { name: "llm-gateway-ratelimit-config" } }]);
    assert.deepEqual(d.spec.selector.matchLabels, d.spec.template.metadata.labels);
    const cm = find(objects, "ConfigMap", "llm-gateway-ratelimit-config");
    assert.deepEqual(parse(cm.data["config.yaml"]), { domain: "team-gw" });
    assert.equal(cm.data["config.yaml"], ratelimitConfigFile("team-gw"));
    const svc = find(objects, "Service", "llm-gateway-ratelimit");
    assert.deepEqual(svc.spec.selector, d.spec.template.metadata.labels);
    // Istio picks the protocol from the port's name or appProtocol: grpc makes the gateway's cluster HTTP/2.
    assert.deepEqual(svc.spec.ports[0], { name: "grpc", appProtocol: "grpc", protocol: "TCP", port: 8081, targetPort: 8081 });
    const redis = find(objects, "Deployment", "llm-gateway-redis").spec.template.spec.containers[0];
    assert.equal(redis.image, "redis:7-alpine");
    assert.deepEqual(
      find(objects, "Service", "llm-gateway-redis").spec.selector,
      find(objects, "Deployment", "llm-gateway-redis").spec.template.metadata.labels,
    );
    assert.equal(
      (pluginConfig(specFrom(r))["quotas"] as Raw).service.cluster,
      "outbound|8081||llm-gateway-ratelimit.llm.svc.cluster.local",
    );
  });

  it("with redisUrl, points ratelimit at that Redis and deploys none", () => {
    const r = raw(REPLICAS_FILE);
    r["quotas"].service.redisUrl = "redis.infra.svc.cluster.local:6380";
    const objects = renderObjects(specFrom(r), { hfTokenSet: false }) as Raw[];
    assert.ok(!objects.some((o) => o.metadata.name === "llm-gateway-redis"));
    const env = find(objects, "Deployment", "llm-gateway-ratelimit").spec.template.spec.containers[0].env as Raw[];
    assert.equal(env.find((e) => e.name === "REDIS_URL")?.value, "redis.infra.svc.cluster.local:6380");
  });

  it("pins the ratelimit image to the commit the tests build the service from", () => {
    const script = readFileSync(join(ROOT, "tests", "quota", "build-ratelimit.sh"), "utf8");
    const pin = /RATELIMIT_VERSION="\$\{RATELIMIT_VERSION:-v[0-9.]+-0\.[0-9]{14}-([0-9a-f]{12})\}"/.exec(script)?.[1];
    assert.ok(pin, "no pseudo-version pin in tests/quota/build-ratelimit.sh");
    assert.equal(RATELIMIT_IMAGE, `envoyproxy/ratelimit:${pin.slice(0, 8)}`);
  });

  it("--install-helm installs Higress pushing every cluster when the plugin calls the rate-limit service (mode cluster on Higress only)", () => {
    const upgrade = (s: DeploySpec): string => (helmCommands(s).find((c) => c.includes("higress")) ?? []).join(" ");
    assert.match(upgrade(specFrom(raw(REPLICAS_FILE))), / --set global\.onlyPushRouteCluster=false --wait$/);
    assert.doesNotMatch(upgrade(specFrom(raw(SEED_FILE))), /onlyPushRouteCluster/);
    const local = raw(REPLICAS_FILE);
    local["quotas"] = { rules: [{ name: "all", requests: 1 }] };
    assert.doesNotMatch(upgrade(specFrom(local)), /onlyPushRouteCluster/);
  });
});

describe("affinity.loadAware: the plugin picks the replica, Envoy's override-host policy sends the request there", () => {
  const OVERRIDE_HOST = {
    name: "envoy.load_balancing_policies.override_host",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost",
      override_host_sources: [{ header: "x-gateway-destination-endpoint" }],
      fallback_policy: {
        policies: [
          {
            typed_extension_config: {
              name: "envoy.load_balancing_policies.ring_hash",
              typed_config: {
                "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
                consistent_hashing_lb_config: { hash_balance_factor: 125 },
              },
            },
          },
        ],
      },
    },
  };
  const loadBalancingPolicy = { policies: [{ typed_extension_config: OVERRIDE_HOST }] };
  const envoySpec = specFrom(raw(REPLICAS_ENVOY_FILE));

  it("turns the plugin's prefixAffinity.loadAware on, its load bound the ring's percentage, its header the override-host policy's", () => {
    const affinity = pluginConfig(envoySpec)["prefixAffinity"] as Raw;
    assert.deepEqual(affinity.loadAware, {
      enabled: true,
      header: "x-gateway-destination-endpoint",
      loadFactor: 125,
      maxWaiting: 4,
      maxKvCacheUsage: 95,
      reportTtlMs: 60000,
    });
    // Every key is one the plugin knows.
    const known = childKeys("prefixAffinity.loadAware");
    for (const k of Object.keys(affinity.loadAware))
      assert.ok(known.includes(k), `prefixAffinity.loadAware.${k} is not in the plugin's schema`);
  });

  it("takes the plugin's defaults for loadAware: true and {}, and a loadFactor of 1.5 as 150", () => {
    const r = raw(REPLICAS_ENVOY_FILE);
    r["models"][0].affinity = { loadFactor: 1.5, loadAware: {} };
    r["models"][1].affinity = { loadFactor: 1.5, loadAware: true };
    const spec = specFrom(r);
    assert.deepEqual(spec.models[0]?.affinity, {
      loadFactor: 1.5,
      prefixBytes: 2048,
      loadAware: { maxWaiting: 4, maxKvCacheUsage: 95, reportTtlMs: 60000 },
    });
    assert.deepEqual(spec.models[1]?.affinity, spec.models[0]?.affinity);
    assert.equal(((pluginConfig(spec)["prefixAffinity"] as Raw).loadAware as Raw).loadFactor, 150);
  });

  it("leaves loadAware: false as no loadAware at all", () => {
    const r = raw(REPLICAS_ENVOY_FILE);
    r["models"][0].affinity.loadAware = false;
    r["models"][1].affinity = { loadAware: false };
    const spec = specFrom(r);
    assert.equal(spec.models[0]?.affinity?.loadAware, undefined);
    assert.equal((pluginConfig(spec)["prefixAffinity"] as Raw).loadAware, undefined);
    assert.equal(((envoyBootstrap(spec) as Raw).static_resources.clusters[0] as Raw).lb_policy, "RING_HASH");
  });

  it("upstream Envoy: each model's cluster takes the host the header names, else the same bounded-load ring; outlier detection, hash policy and retries stay", () => {
    const b = envoyBootstrap(envoySpec) as Raw;
    const clusters = b.static_resources.clusters as Raw[];
    for (const name of ["outbound|8080||llm-qwen2-1-5b.dns", "outbound|8080||llm-gemma-2-2b.dns"]) {
      const c = clusters.find((x) => x.name === name) ?? assert.fail(`no cluster ${name}`);
      assert.deepEqual(c.load_balancing_policy, loadBalancingPolicy, name);
      // No lb_policy or common_lb_config beside it: the ring's bound lives in the fallback policy.
      assert.equal(c.lb_policy, undefined);
      assert.equal(c.common_lb_config, undefined);
      assert.equal(c.outlier_detection.consecutive_gateway_failure, 3);
    }
    // The routes as without loadAware: the ring's hash key, and a retry on another replica (the override-host policy
    // gives each retry the next replica named, then the ring).
    const routes = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes as Raw[];
    for (const name of ["qwen2-1-5b", "gemma-2-2b"]) {
      const route = routes.find((r) => r.name === name)?.route;
      assert.equal(route.cluster, `outbound|8080||llm-${name}.dns`);
      assert.deepEqual(route.hash_policy, [{ header: { header_name: "x-llm-gateway-prefix-key" } }]);
      assert.equal(route.retry_policy.retry_on, "connect-failure,reset");
      assert.equal(route.retry_policy.retry_host_predicate[0].name, "envoy.retry_host_predicates.previous_hosts");
    }
  });

  it("Higress: the affinity EnvoyFilter merges load_balancing_policy and no consistent_hashing_lb_config into the cluster; the route patch is unchanged", () => {
    // qwen keeps its fallback: Higress replays to another route, no aggregate cluster is in the way.
    const r = raw(REPLICAS_FILE);
    r["models"][0].affinity.loadAware = true;
    const objs = renderObjects(specFrom(r), { hfTokenSet: false }) as Raw[];
    const f = find(objs, "EnvoyFilter", "qwen2-1-5b.affinity");
    const [cluster, route] = f.spec.configPatches as Raw[];
    assert.equal(cluster?.patch.operation, "MERGE");
    assert.deepEqual(Object.keys(cluster?.patch.value), ["load_balancing_policy", "outlier_detection"]);
    assert.deepEqual(cluster?.patch.value.load_balancing_policy, loadBalancingPolicy);
    assert.equal(cluster?.patch.value.outlier_detection.consecutive_gateway_failure, 3);
    const before = find(renderObjects(specFrom(raw(REPLICAS_FILE)), { hfTokenSet: false }) as Raw[], "EnvoyFilter", "qwen2-1-5b.affinity");
    assert.deepEqual(route, before.spec.configPatches[1]);
    // The Ingress still hashes on the prefix key, for the ring the override falls back to.
    assert.equal(find(objs, "Ingress", "qwen2-1-5b").metadata.annotations["higress.io/upstream-hash-by"], "$http_x-llm-gateway-prefix-key");
    assert.deepEqual((find(objs, "WasmPlugin", "llm-gateway").spec.defaultConfig.prefixAffinity as Raw).loadAware.enabled, true);
  });
});

describe("validation of affinity and quotas", () => {
  // Each case: how the Higress example is broken, and the exact lines the user gets.
  const cases: { name: string; file?: string; break: (r: Raw) => void; errors: string[] }[] = [
    {
      name: "models that disagree on prefixBytes",
      break: (r) => (r["models"][1].affinity = { prefixBytes: 4096 }),
      errors: [
        "models[1].affinity.prefixBytes: must equal models[0].affinity.prefixBytes (2048): the plugin keys every model's prompts with one length (an unset prefixBytes is 2048), got 4096",
      ],
    },
    {
      name: "an unset prefixBytes beside a set one",
      break: (r) => {
        r["models"][0].affinity = { prefixBytes: 1024 };
        r["models"][1].affinity = {};
      },
      errors: [
        "models[1].affinity.prefixBytes: must equal models[0].affinity.prefixBytes (1024): the plugin keys every model's prompts with one length (an unset prefixBytes is 2048), got 2048",
      ],
    },
    {
      name: "a load factor below 1",
      break: (r) => (r["models"][0].affinity.loadFactor = 0.9),
      errors: ["models[0].affinity.loadFactor: must be a number from 1 to 100 (1.25: no replica above 125% of the average load), got 0.9"],
    },
    {
      name: "a load factor as text",
      break: (r) => (r["models"][0].affinity.loadFactor = "125%"),
      errors: [
        'models[0].affinity.loadFactor: must be a number from 1 to 100 (1.25: no replica above 125% of the average load), got "125%"',
      ],
    },
    {
      name: "a prefix too short to key anything",
      break: (r) => (r["models"][0].affinity.prefixBytes = 8),
      errors: ["models[0].affinity.prefixBytes: must be an integer from 16 to 1048576, got 8"],
    },
    {
      name: "an unknown affinity field",
      break: (r) => (r["models"][0].affinity.header = "x-key"),
      errors: ["models[0].affinity.header: unknown field (allowed: loadFactor, prefixBytes, loadAware)"],
    },
    {
      name: "loadAware on one model with affinity and not on another",
      file: REPLICAS_ENVOY_FILE,
      break: (r) => delete r["models"][1].affinity.loadAware,
      errors: [
        "models[1].affinity.loadAware: must match models[0].affinity.loadAware (on: maxWaiting 4, maxKvCacheUsage 95, reportTtlMs 60000): the plugin picks replicas the same way for every model with affinity, got off",
      ],
    },
    {
      name: "models that disagree on loadAware's settings",
      file: REPLICAS_ENVOY_FILE,
      break: (r) => (r["models"][1].affinity.loadAware = { maxWaiting: 8 }),
      errors: [
        "models[1].affinity.loadAware: must match models[0].affinity.loadAware (on: maxWaiting 4, maxKvCacheUsage 95, reportTtlMs 60000): the plugin picks replicas the same way for every model with affinity, got on: maxWaiting 8, maxKvCacheUsage 95, reportTtlMs 60000",
      ],
    },
    {
      name: "models with loadAware that disagree on loadFactor",
      file: REPLICAS_ENVOY_FILE,
      break: (r) => (r["models"][1].affinity.loadFactor = 1.5),
      errors: [
        "models[1].affinity.loadFactor: must equal models[0].affinity.loadFactor (1.25) with loadAware: the plugin bounds every model's replicas with one load factor (an unset loadFactor is 1.25), got 1.5",
      ],
    },
    {
      name: "loadAware on a model with a fallback, for upstream Envoy",
      file: REPLICAS_ENVOY_FILE,
      break: (r) => (r["models"][0].fallback = ["gemma-2-2b"]),
      errors: [
        'models[0].affinity.loadAware: cannot be combined with fallback for gateway.type envoy: the model\'s requests go through its fallback chain\'s aggregate cluster, where Envoy ignores the picked replica and its ring places every request; drop loadAware or fallback, got {"maxWaiting":4,"maxKvCacheUsage":95}',
      ],
    },
    {
      name: "loadAware that is neither a flag nor a mapping",
      break: (r) => (r["models"][0].affinity.loadAware = "yes"),
      errors: ['models[0].affinity.loadAware: must be true, false or a mapping (maxWaiting, maxKvCacheUsage, reportTtlMs), got "yes"'],
    },
    {
      name: "loadAware values out of the plugin's ranges, and an unknown loadAware field",
      break: (r) => (r["models"][0].affinity.loadAware = { maxWaiting: -1, maxKvCacheUsage: 0.95, reportTtlMs: 50, header: "x-pick" }),
      errors: [
        "models[0].affinity.loadAware.header: unknown field (allowed: maxWaiting, maxKvCacheUsage, reportTtlMs)",
        "models[0].affinity.loadAware.maxWaiting: must be an integer from 0 to 1000000 (requests waiting in vLLM's queue), got -1",
        "models[0].affinity.loadAware.maxKvCacheUsage: must be an integer from 1 to 100 (a percentage: 95 means 95%), got 0.95",
        "models[0].affinity.loadAware.reportTtlMs: must be an integer from 100 to 3600000 (milliseconds), got 50",
      ],
    },
    {
      name: "affinity that is not a mapping",
      break: (r) => (r["models"][0].affinity = true),
      errors: ["models[0].affinity: must be a mapping, got true"],
    },
    {
      name: "prefixAffinity in plugin.config",
      break: (r) => (r["plugin"].config = { prefixAffinity: { enabled: true } }),
      errors: ["plugin.config.prefixAffinity: is derived from models[].affinity (loadFactor, prefixBytes, loadAware): set it there"],
    },
    {
      name: "quotas in plugin.config",
      break: (r) => (r["plugin"].config = { quotas: { mode: "local" } }),
      errors: ["plugin.config.quotas: is derived from the top-level quotas: set it there"],
    },
    {
      name: "an unknown quotas field",
      break: (r) => (r["quotas"].limits = []),
      errors: ["quotas.limits: unknown field (allowed: mode, localSlots, service, rules)"],
    },
    {
      name: "an unknown mode",
      break: (r) => (r["quotas"].mode = "global"),
      errors: ['quotas.mode: must be one of local, cluster, got "global"'],
    },
    {
      name: "no rules",
      break: (r) => (r["quotas"].rules = []),
      errors: ["quotas.rules: must list at least one rule (name, who, which models, limits per window), got []"],
    },
    {
      name: "a rule without a name, with a bad window and a negative limit",
      break: (r) => (r["quotas"].rules = [{ window: "week", requests: -1, totalTokens: 10 }]),
      errors: [
        'quotas.rules[0].window: must be one of second, minute, hour, day, got "week"',
        "quotas.rules[0].requests: must be an integer from 0 to 4294967295, got -1",
        "quotas.rules[0].name: is required (letters, digits, '.', '_', '-'), got nothing",
      ],
    },
    {
      name: "rule names that clash or have other characters",
      break: (r) => {
        r["quotas"].rules[1].name = r["quotas"].rules[0].name;
        r["quotas"].rules.push({ name: "team a", requests: 1 });
      },
      errors: [
        'quotas.rules[1].name: duplicates quotas.rules[0].name, got "per-key-per-model"',
        "quotas.rules[2].name: must use only letters, digits, '.', '_' and '-', got \"team a\"",
      ],
    },
    {
      name: "a rule on models the file does not serve",
      break: (r) => (r["quotas"].rules[1].models = ["qwen2-1-5", "llama*", "qwen*"]),
      errors: [
        'quotas.rules[1].models[0]: matches none of models[] (qwen2-1-5b, gemma-2-2b), got "qwen2-1-5"',
        'quotas.rules[1].models[1]: matches none of models[] (qwen2-1-5b, gemma-2-2b), got "llama*"',
      ],
    },
    {
      name: "a rule that limits nothing",
      break: (r) => (r["quotas"].rules = [{ name: "nothing", requests: 0 }]),
      errors: [
        'quotas.rules[0]: sets no limit: give at least one of requests, inputTokens, outputTokens, totalTokens above 0, got "nothing"',
      ],
    },
    {
      name: "an upper-case header",
      break: (r) => (r["quotas"].rules[0].apiKeyHeader = "Authorization"),
      errors: ['quotas.rules[0].apiKeyHeader: must be a lowercase HTTP header name such as x-mse-consumer, got "Authorization"'],
    },
    {
      name: "a service for mode local",
      break: (r) => (r["quotas"].mode = "local"),
      errors: [
        'quotas.service: only for mode cluster (mode local keeps the counters in the gateway), got {"deploy":true,"onUnavailable":"allow","timeoutMs":200}',
      ],
    },
    {
      name: "localSlots in mode cluster",
      break: (r) => (r["quotas"].localSlots = 100),
      errors: ["quotas.localSlots: only for mode local, got 100"],
    },
    {
      name: "deploy with an address",
      break: (r) => (r["quotas"].service.address = "ratelimit.infra:8081"),
      errors: [
        'quotas.service.address: only with deploy: false (deploy: true renders the service and names its cluster), got "ratelimit.infra:8081"',
      ],
    },
    {
      name: "deploy: false with nothing to call",
      break: (r) => (r["quotas"].service = { deploy: false }),
      errors: [
        'quotas.service: with deploy: false, give address (host:port of an existing envoyproxy/ratelimit\'s gRPC port) or, for Higress, cluster, got {"deploy":false}',
      ],
    },
    {
      name: "a malformed address",
      break: (r) => (r["quotas"].service = { deploy: false, address: "http://ratelimit:8081" }),
      errors: [
        'quotas.service.address: must be host:port of the service\'s gRPC port, e.g. ratelimit.infra.svc.cluster.local:8081, got "http://ratelimit:8081"',
      ],
    },
    {
      name: "both an address and a cluster",
      break: (r) => (r["quotas"].service = { deploy: false, address: "ratelimit.infra:8081", cluster: "outbound|8081||x" }),
      errors: [
        'quotas.service.cluster: give address or cluster, not both (the cluster is named after the address), got "outbound|8081||x"',
      ],
    },
    {
      name: "a Redis for a service the CLI does not deploy",
      break: (r) => (r["quotas"].service = { deploy: false, address: "ratelimit.infra:8081", redisUrl: "redis:6379" }),
      errors: ['quotas.service.redisUrl: only with deploy: true (the Redis of the ratelimit service the CLI deploys), got "redis:6379"'],
    },
    {
      name: "a bad timeout and an unknown service field",
      break: (r) => Object.assign(r["quotas"].service, { timeoutMs: 0, host: "x" }),
      errors: [
        "quotas.service.host: unknown field (allowed: cluster, domain, timeoutMs, onUnavailable, deploy, address, redisUrl)",
        "quotas.service.timeoutMs: must be an integer from 1 to 60000, got 0",
      ],
    },
    {
      name: "a cluster name for upstream Envoy",
      file: REPLICAS_ENVOY_FILE,
      break: (r) => (r["quotas"].service = { deploy: false, cluster: "ratelimit" }),
      errors: [
        'quotas.service.cluster: only for gateway.type higress (the CLI renders Envoy\'s clusters: give address, host:port, instead), got "ratelimit"',
      ],
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      const r = raw(c.file ?? REPLICAS_FILE);
      c.break(r);
      assert.deepEqual(errorsOf(r), c.errors);
    });
  }

  it("takes affinity: {} with the defaults, and quotas without a service in mode cluster as deploy: true", () => {
    const r = raw(REPLICAS_FILE);
    r["models"][0].affinity = {};
    r["quotas"] = { mode: "cluster", rules: [{ name: "all", requests: 5 }] };
    const spec = specFrom(r);
    assert.deepEqual(spec.models[0]?.affinity, { loadFactor: 1.25, prefixBytes: 2048 });
    assert.deepEqual(spec.quotas?.service, {
      cluster: "outbound|8081||llm-gateway-ratelimit.default.svc.cluster.local",
      address: { host: "llm-gateway-ratelimit.default.svc.cluster.local", port: 8081 },
      deploy: true,
      domain: "llm-gateway",
    });
    assert.deepEqual(pluginConfig(spec)["quotas"], {
      mode: "cluster",
      service: { cluster: "outbound|8081||llm-gateway-ratelimit.default.svc.cluster.local" },
      rules: [{ name: "all", requests: 5 }],
    });
  });
});
