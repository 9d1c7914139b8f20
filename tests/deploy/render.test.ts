// The renderer and the deployment-file validation: pure functions, no cluster.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { run } from "../../deploy-scripts/cli.ts";
import { GENERATED_DIRS, SEED_DIR, SEED_FILE, listFiles, loadSeed, manifestFiles } from "../../deploy-scripts/generators/gen-manifests.ts";
import { capture } from "./capture.ts";
import { objectsToApply } from "../../deploy-scripts/cluster/apply.ts";
import { renderGroups, renderObjects, renderYaml } from "../../deploy-scripts/render/render.ts";
import { PLUGIN_CONFIG_KEYS, parseSpec, validateSpec, type DeploySpec } from "../../deploy-scripts/spec.ts";

const SEED_TEXT = readFileSync(SEED_FILE, "utf8");
const TOKEN = "hf_TestTokenThatMustNeverBePrinted42";

function seedRaw(): Record<string, unknown> {
  return parse(SEED_TEXT) as Record<string, unknown>;
}

function specFrom(raw: unknown): DeploySpec {
  const r = validateSpec(raw);
  if (!r.ok) assert.fail(`expected a valid file, got:\n${r.errors.join("\n")}`);
  return r.spec;
}

function errorsOf(raw: unknown): string[] {
  const r = validateSpec(raw);
  assert.equal(r.ok, false, "expected the file to be refused");
  return r.ok ? [] : r.errors;
}

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe("manifests/seed", () => {
  it("is exactly what the renderer makes of deploy-scripts/examples/seed.yaml, byte for byte", () => {
    const expected = manifestFiles();
    for (const f of expected) {
      assert.equal(readFileSync(f.path, "utf8"), f.content, `${f.path} is stale: run npx tsx deploy-scripts/generators/gen-manifests.ts`);
    }
    const present = GENERATED_DIRS.flatMap((d) => listFiles(d));
    assert.deepEqual(present.sort(), expected.map((f) => f.path).sort(), "manifests/seed* holds files the generator does not make");
  });

  it("holds every rendered object once, in the order render prints them", () => {
    const seed = loadSeed();
    const fromFiles = renderGroups(seed, { hfTokenSet: false })
      .map((g) => readFileSync(`${SEED_DIR}/${g.file}`, "utf8"))
      .join("");
    assert.equal(fromFiles, renderYaml(seed, { hfTokenSet: false }));
  });
});

describe("render of the seed file", () => {
  const seed = loadSeed();
  const objects = renderObjects(seed, { hfTokenSet: false });
  const find = (kind: string, name: string): Raw => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `no ${kind} ${name}`);
    return o as Raw;
  };

  it("makes the expected objects in apply order", () => {
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      [
        "OpenModel/qwen2-1-5b",
        "Playground/qwen2-1-5b",
        "OpenModel/gemma-2-2b",
        "Playground/gemma-2-2b",
        "McpBridge/default",
        "Ingress/qwen2-1-5b",
        "Ingress/gemma-2-2b",
        "Ingress/qwen2-1-5b.fallback",
        "EnvoyFilter/qwen2-1-5b",
        "WasmPlugin/llm-gateway",
      ],
    );
  });

  it("labels every object with the manager and the deployment name", () => {
    for (const o of objects) {
      assert.deepEqual(o.metadata.labels, { "app.kubernetes.io/managed-by": "llm-gateway-deploy", "llm-gateway.io/deployment": "seed" });
    }
  });

  it("deploys what the reference scenario deploys: its models, families and Playground resources", () => {
    // The scenario serves qwen2-1-5b from Qwen/Qwen2.5-1.5B-Instruct and gemma-2-2b from google/gemma-2-2b-it;
    // each Playground asks for cpu 4, memory 16Gi and one GPU, as requests and as limits.
    const scenario = { resources: { cpu: "4", memory: "16Gi", "nvidia.com/gpu": 1 } };
    for (const [name, modelID, familyName] of [
      ["qwen2-1-5b", "Qwen/Qwen2.5-1.5B-Instruct", "qwen2"],
      ["gemma-2-2b", "google/gemma-2-2b-it", "gemma"],
    ] as const) {
      const om = find("OpenModel", name);
      assert.equal(om.metadata.namespace, undefined, "OpenModel is cluster-scoped");
      assert.deepEqual(om.spec, { familyName, source: { modelHub: { name: "Huggingface", modelID } } });
      const pg = find("Playground", name);
      assert.equal(pg.metadata.namespace, "default");
      assert.equal(pg.spec.replicas, 1);
      assert.deepEqual(pg.spec.modelClaim, { modelName: name });
      assert.deepEqual(pg.spec.backendRuntimeConfig, {
        backendName: "vllm",
        resources: { requests: scenario.resources, limits: scenario.resources },
      });
    }
  });

  it("asks for gpus as nvidia.com/gpu requests and limits, also without other resources", () => {
    const raw = seedRaw() as Raw;
    raw["models"][0].gpus = 2;
    delete raw["models"][0].resources;
    const pg = renderObjects(specFrom(raw), { hfTokenSet: false }).find((o) => o.kind === "Playground" && o.metadata.name === "qwen2-1-5b");
    assert.deepEqual((pg?.["spec"] as Raw | undefined)?.["backendRuntimeConfig"].resources, {
      requests: { "nvidia.com/gpu": 2 },
      limits: { "nvidia.com/gpu": 2 },
    });
  });

  it("registers each model service in McpBridge default and routes on the model header", () => {
    const bridge = find("McpBridge", "default");
    assert.equal(bridge.metadata.namespace, "higress-system");
    assert.deepEqual(bridge.spec.registries[0], {
      name: "llm-qwen2-1-5b",
      domain: "qwen2-1-5b-lb.default.svc.cluster.local",
      port: 8080,
      type: "dns",
      protocol: "http",
    });
    const ing = find("Ingress", "qwen2-1-5b");
    assert.deepEqual(ing.metadata.annotations, {
      "higress.io/destination": "llm-qwen2-1-5b.dns:8080",
      "higress.io/exact-match-header-x-higress-llm-model": "qwen2-1-5b",
    });
    assert.equal(ing.spec.ingressClassName, "higress");
    assert.equal(ing.spec.rules[0].host, "llm.example.com");
    assert.deepEqual(ing.spec.rules[0].http.paths[0], {
      path: "/",
      pathType: "Prefix",
      backend: { resource: { apiGroup: "networking.higress.io", kind: "McpBridge", name: "default" } },
    });
  });

  it("leaves the host out when the file gives none", () => {
    const raw = seedRaw() as Raw;
    delete raw["gateway"].host;
    const ing = renderObjects(specFrom(raw), { hfTokenSet: false }).find((o) => o.kind === "Ingress") as Raw;
    assert.deepEqual(Object.keys(ing.spec.rules[0]), ["http"]);
  });

  it("sends qwen to gemma on 5xx the way Higress does natively", () => {
    const fb = find("Ingress", "qwen2-1-5b.fallback");
    assert.deepEqual(fb.metadata.annotations, {
      "higress.io/destination": "llm-gemma-2-2b.dns:8080",
      "higress.io/exact-match-header-x-higress-fallback-from": "qwen2-1-5b",
      "higress.io/exact-match-header-x-higress-llm-model": "qwen2-1-5b",
    });
    const ef = find("EnvoyFilter", "qwen2-1-5b");
    const patch = ef.spec.configPatches[0];
    assert.equal(patch.applyTo, "HTTP_ROUTE");
    assert.equal(patch.match.routeConfiguration.vhost.route.name, "qwen2-1-5b");
    const cr = patch.patch.value.typed_per_filter_config["envoy.filters.http.custom_response"].value;
    const matcher = cr.custom_response_matcher.matcher_list.matchers[0];
    assert.deepEqual(matcher.predicate.single_predicate.value_match, { exact: "5xx" });
    const policy = matcher.on_match.action.typed_config.value;
    assert.equal(policy.use_original_request_body, true);
    assert.deepEqual(policy.request_headers_to_add[0].header, { key: "x-higress-fallback-from", value: "qwen2-1-5b" });
    assert.deepEqual(cr.with_request_body, { max_request_bytes: 10485760 });
    assert.ok(!objects.some((o) => o.metadata.name === "gemma-2-2b.fallback"), "gemma has no fallback");
    assert.ok(!objects.some((o) => o.metadata.name === "llm-gateway-global-custom-response"), "global filter is opt-in");
  });

  it("matches either status class with an or_matcher, and adds the global filter when asked", () => {
    const raw = seedRaw() as Raw;
    raw["fallback"] = { on: ["5xx", "4xx"], globalFilter: true, bufferRequestBody: false };
    const out = renderObjects(specFrom(raw), { hfTokenSet: false }) as Raw[];
    const ef = out.find((o) => o.kind === "EnvoyFilter" && o.metadata.name === "qwen2-1-5b");
    const cr = ef?.spec.configPatches[0].patch.value.typed_per_filter_config["envoy.filters.http.custom_response"].value;
    const preds = cr.custom_response_matcher.matcher_list.matchers[0].predicate.or_matcher.predicate;
    assert.deepEqual(
      preds.map((p: Raw) => p.single_predicate.value_match.exact),
      ["4xx", "5xx"],
    );
    assert.equal(cr.with_request_body, undefined);
    const global = out.find((o) => o.metadata.name === "llm-gateway-global-custom-response");
    assert.equal(global?.spec.configPatches[0].patch.operation, "INSERT_FIRST");
  });

  it("derives the plugin config from the models and merges plugin.config over it", () => {
    const wp = find("WasmPlugin", "llm-gateway");
    assert.equal(wp.spec.url, "oci://ghcr.io/llm-gateway/plugin:0.1.0");
    assert.equal(wp.spec.imagePullPolicy, "IfNotPresent");
    assert.equal(wp.spec.phase, "AUTHN");
    assert.equal(wp.spec.priority, 900);
    assert.equal(wp.spec.failStrategy, "FAIL_OPEN");
    assert.deepEqual(wp.spec.defaultConfig, {
      routingHeader: "x-higress-llm-model",
      maxBodyBytes: 10485760,
      serveModelList: true,
      fallback: { mechanism: "envoy", onStatus: ["5xx"] },
      models: [
        { name: "qwen2-1-5b", route: "qwen2-1-5b", fallback: ["gemma-2-2b"] },
        { name: "gemma-2-2b", route: "gemma-2-2b" },
      ],
    });
  });

  it("hands fallback.on to the plugin as fallback.onStatus; an onStatus in plugin.config wins", () => {
    const defaultConfigOf = (raw: Raw): Raw =>
      (renderObjects(specFrom(raw), { hfTokenSet: false }) as Raw[]).find((o) => o.kind === "WasmPlugin")?.spec.defaultConfig;
    const both = seedRaw() as Raw;
    both["fallback"] = { on: ["5xx", "4xx"] };
    assert.deepEqual(defaultConfigOf(both).fallback, { mechanism: "envoy", onStatus: ["4xx", "5xx"] });
    const own = seedRaw() as Raw;
    own["plugin"].config = { fallback: { maxAttempts: 2 } };
    assert.deepEqual(defaultConfigOf(own).fallback, { mechanism: "envoy", onStatus: ["5xx"], maxAttempts: 2 });
    own["plugin"].config = { fallback: { onStatus: [503], maxAttempts: 2, mechanism: "dispatch" } };
    assert.deepEqual(defaultConfigOf(own).fallback, { mechanism: "dispatch", onStatus: [503], maxAttempts: 2 });
  });

  it("renders the WasmPlugin with fallback.mechanism envoy and FAIL_OPEN, each with a comment saying why", () => {
    const wp = find("WasmPlugin", "llm-gateway");
    assert.equal(wp.spec.defaultConfig.fallback.mechanism, "envoy");
    assert.equal(wp.spec.failStrategy, "FAIL_OPEN");
    const text = readFileSync(`${SEED_DIR}/40-plugin.yaml`, "utf8");
    assert.match(
      text,
      /# FAIL_OPEN: Higress's WasmPlugin offers only FAIL_CLOSE and FAIL_OPEN;[^]*higress-group\/higress#4748[^]*\n {2}failStrategy: FAIL_OPEN\n/,
    );
    assert.match(
      text,
      /# envoy: the gateway, not the plugin, sends a failed request again[^]*x-higress-fallback-from[^]*\n {6}mechanism: envoy\n/,
    );
    assert.deepEqual(parse(text.split("---\n")[1] ?? ""), wp, "the comments change nothing in the object");
  });

  it("comments mechanism only when it is envoy", async () => {
    const raw = seedRaw() as Raw;
    raw["plugin"].config = { fallback: { mechanism: "dispatch" } };
    const yaml = renderYaml(specFrom(raw), { hfTokenSet: false });
    assert.match(yaml, /\n {6}mechanism: dispatch\n/);
    assert.ok(!yaml.includes("# envoy: the gateway"));
  });

  it("uses a custom routing header for the plugin and the Ingress annotations alike", () => {
    const raw = seedRaw() as Raw;
    raw["plugin"].config = { routingHeader: "x-model", ownedBy: "platform-team" };
    raw["models"][0].upstreamModel = "Qwen/Qwen2-1.5B-Instruct";
    const out = renderObjects(specFrom(raw), { hfTokenSet: false }) as Raw[];
    const wp = out.find((o) => o.kind === "WasmPlugin");
    assert.equal(wp?.spec.defaultConfig.routingHeader, "x-model");
    assert.equal(wp?.spec.defaultConfig.ownedBy, "platform-team", "known plugin settings pass through");
    assert.equal(wp?.spec.defaultConfig.models[0].upstreamModel, "Qwen/Qwen2-1.5B-Instruct");
    for (const ing of out.filter((o) => o.kind === "Ingress")) {
      assert.ok("higress.io/exact-match-header-x-model" in ing.metadata.annotations, ing.metadata.name);
    }
  });

  it("is deterministic", () => {
    assert.equal(renderYaml(loadSeed(), { hfTokenSet: true }), renderYaml(loadSeed(), { hfTokenSet: true }));
  });
});

describe("the HF token", () => {
  it("never appears in render or apply --dry-run output, which only says the Secret will be made", async () => {
    for (const argv of [
      ["render", "-f", SEED_FILE],
      ["render", "--dry-run", "-f", SEED_FILE],
      ["apply", "--dry-run", "-f", SEED_FILE],
    ]) {
      const c = capture({ HF_TOKEN: TOKEN });
      assert.equal(await run(argv, c.io), 0, c.err());
      const all = c.out() + c.err();
      assert.ok(!all.includes(TOKEN), `${argv.join(" ")} printed the token`);
      assert.ok(!all.includes(Buffer.from(TOKEN).toString("base64")), `${argv.join(" ")} printed the token in base64`);
      assert.match(c.out(), /Secret default\/modelhub-secret \(key HF_TOKEN\) is created by apply from \$HF_TOKEN/);
      assert.ok(!/^kind: Secret$/m.test(c.out()), "no Secret object is printed");
    }
  });

  it("without HF_TOKEN, says how to provide it for the gated model", async () => {
    const c = capture({});
    assert.equal(await run(["render", "-f", SEED_FILE], c.io), 0);
    assert.match(c.out(), /gemma-2-2b needs a Hugging Face token/);
  });

  it("goes only into the Secret that apply sends, base64-encoded", () => {
    const objs = objectsToApply(loadSeed(), { HF_TOKEN: TOKEN }) as Raw[];
    assert.equal(objs[0]?.kind, "Secret");
    assert.deepEqual(objs[0]?.data, { HF_TOKEN: Buffer.from(TOKEN).toString("base64") });
    assert.ok(!JSON.stringify(objs.slice(1)).includes(TOKEN));
    assert.equal(
      objectsToApply(loadSeed(), {}).some((o) => o.kind === "Secret"),
      false,
    );
  });

  it("is redacted even from error messages", async () => {
    const c = capture({ HF_TOKEN: TOKEN });
    assert.equal(await run(["render", "-f", `/nonexistent/${TOKEN}.yaml`], c.io), 2);
    assert.ok(!c.err().includes(TOKEN));
    assert.match(c.err(), /<redacted>/);
  });
});

describe("validation", () => {
  // Each case: how the seed is broken, and the exact line the user gets for it.
  const cases: { name: string; break: (raw: Raw) => void; message: string }[] = [
    {
      name: "unknown top-level field",
      break: (r) => (r["modles"] = []),
      message: "modles: unknown field (allowed: name, namespace, gateway, plugin, fallback, models, quotas)",
    },
    {
      name: "missing name",
      break: (r) => delete r["name"],
      message: 'name: is required (a DNS-1123 label (lowercase letters, digits, "-"; starts and ends alphanumeric)), got nothing',
    },
    {
      name: "bad name",
      break: (r) => (r["name"] = "Seed_1"),
      message: 'name: must be a DNS-1123 label (lowercase letters, digits, "-"; starts and ends alphanumeric), got "Seed_1"',
    },
    {
      name: "bad namespace",
      break: (r) => (r["namespace"] = "my.ns"),
      message: 'namespace: must be a DNS-1123 label (lowercase letters, digits, "-"; starts and ends alphanumeric), got "my.ns"',
    },
    { name: "gateway not a mapping", break: (r) => (r["gateway"] = "higress"), message: 'gateway: must be a mapping, got "higress"' },
    {
      name: "host with a scheme",
      break: (r) => (r["gateway"].host = "https://llm.example.com"),
      message:
        'gateway.host: must be a DNS name such as llm.example.com (optionally *.example.com), without scheme or port, got "https://llm.example.com"',
    },
    {
      name: "unknown gateway field",
      break: (r) => (r["gateway"].hostname = "x"),
      message: "gateway.hostname: unknown field (allowed: type, namespace, host, ingressClassName, service, listenPort, adminPort)",
    },
    {
      name: "gateway.type",
      break: (r) => (r["gateway"].type = "nginx"),
      message: 'gateway.type: must be one of higress, envoy, got "nginx"',
    },
    {
      name: "an Envoy setting for Higress",
      break: (r) => (r["gateway"].listenPort = 10000),
      message: "gateway.listenPort: only for gateway.type envoy, got 10000",
    },
    { name: "missing plugin", break: (r) => delete r["plugin"], message: "plugin: is required (a mapping), got nothing" },
    {
      name: "missing plugin url",
      break: (r) => delete r["plugin"].url,
      message: "plugin.url: is required (an oci://, http(s):// or file:// URL of the plugin), got nothing",
    },
    {
      name: "plugin url scheme",
      break: (r) => (r["plugin"].url = "ghcr.io/llm-gateway/plugin:0.1.0"),
      message: 'plugin.url: must be an oci://, http(s):// or file:// URL of the plugin, got "ghcr.io/llm-gateway/plugin:0.1.0"',
    },
    {
      name: "pull policy",
      break: (r) => (r["plugin"].imagePullPolicy = "Sometimes"),
      message: 'plugin.imagePullPolicy: must be one of IfNotPresent, Always, UNSPECIFIED_POLICY, got "Sometimes"',
    },
    {
      name: "sha256",
      break: (r) => (r["plugin"].sha256 = "abc"),
      message:
        'plugin.sha256: must be 64 lowercase hex digits (for oci://: the image manifest digest without "sha256:", as make push prints it; not plugin.wasm\'s sha256), got "abc"',
    },
    {
      name: "sha256 not matching a digest-pinned oci url",
      break: (r) => {
        r["plugin"].url = `oci://registry.example.com/llm-gateway/plugin@sha256:${"a".repeat(64)}`;
        r["plugin"].sha256 = "b".repeat(64);
      },
      message: `plugin.sha256: must equal the digest in plugin.url (${"a".repeat(64)}) when the url pins one, got "${"b".repeat(56)}...`,
    },
    {
      name: "plugin.config not a mapping",
      break: (r) => (r["plugin"].config = ["x"]),
      message: 'plugin.config: must be a mapping, got ["x"]',
    },
    {
      name: "plugin.config.models",
      break: (r) => (r["plugin"].config.models = []),
      message: "plugin.config.models: is derived from models[]; set name, route, upstreamModel and fallback there",
    },
    {
      name: "routingHeader",
      break: (r) => (r["plugin"].config.routingHeader = "X Model"),
      message: 'plugin.config.routingHeader: must be a lowercase HTTP header name such as x-higress-llm-model, got "X Model"',
    },
    {
      name: "pathSuffixes not a list",
      break: (r) => (r["plugin"].config.pathSuffixes = "/v1/chat/completions"),
      message: 'plugin.config.pathSuffixes: must be a list of strings, got "/v1/chat/completions"',
    },
    {
      name: "pathSuffixes item",
      break: (r) => (r["plugin"].config.pathSuffixes = ["/v1/models", "chat"]),
      message: 'plugin.config.pathSuffixes[1]: must be a path suffix starting with "/", got "chat"',
    },
    {
      name: "maxBodyBytes",
      break: (r) => (r["plugin"].config.maxBodyBytes = "10MB"),
      message: 'plugin.config.maxBodyBytes: must be a positive integer, got "10MB"',
    },
    {
      name: "serveModelList",
      break: (r) => (r["plugin"].config.serveModelList = "yes"),
      message: 'plugin.config.serveModelList: must be true or false, got "yes"',
    },
    {
      name: "unknown plugin setting",
      break: (r) => (r["plugin"].config.customKnob = 1),
      message: `plugin.config.customKnob: unknown plugin setting (known: ${PLUGIN_CONFIG_KEYS.join(", ")})`,
    },
    {
      name: "defaultModel",
      break: (r) => (r["plugin"].config.defaultModel = "llama"),
      message: 'plugin.config.defaultModel: must name one of models[] (qwen2-1-5b, gemma-2-2b), got "llama"',
    },
    { name: "fallback.on class", break: (r) => (r["fallback"].on = ["3xx"]), message: 'fallback.on[0]: must be 4xx or 5xx, got "3xx"' },
    {
      name: "fallback.on empty",
      break: (r) => (r["fallback"].on = []),
      message: "fallback.on: must list at least one of 4xx, 5xx, got []",
    },
    {
      name: "fallback.globalFilter",
      break: (r) => (r["fallback"].globalFilter = "no"),
      message: 'fallback.globalFilter: must be true or false, got "no"',
    },
    {
      name: "fallback.maxRequestBytes",
      break: (r) => (r["fallback"].maxRequestBytes = 0),
      message: "fallback.maxRequestBytes: must be a positive integer, got 0",
    },
    { name: "no models", break: (r) => (r["models"] = []), message: "models: must be a non-empty list of models, got []" },
    {
      name: "model not a mapping",
      break: (r) => (r["models"][1] = "gemma"),
      message: 'models[1]: must be a mapping with name, modelID, gpus, ..., got "gemma"',
    },
    {
      name: "gpus not a number",
      break: (r) => (r["models"][1].gpus = "x"),
      message: 'models[1].gpus: must be a positive integer, got "x"',
    },
    { name: "gpus zero", break: (r) => (r["models"][0].gpus = 0), message: "models[0].gpus: must be a positive integer, got 0" },
    {
      name: "replicas fraction",
      break: (r) => (r["models"][0].replicas = 1.5),
      message: "models[0].replicas: must be a positive integer, got 1.5",
    },
    {
      name: "model name with dots",
      break: (r) => (r["models"][0].name = "qwen2.1.5b"),
      message:
        'models[0].name: must be a DNS-1123 label (lowercase letters, digits, "-"; starts and ends alphanumeric), at most 60 characters so that "<name>-lb" is a valid Service name, got "qwen2.1.5b"',
    },
    {
      name: "model name too long",
      break: (r) => (r["models"][0].name = "a".repeat(61)),
      message: `models[0].name: must be at most 60 characters, got "${"a".repeat(56)}...`,
    },
    {
      name: "duplicate model",
      break: (r) => {
        r["models"][1].name = "qwen2-1-5b";
        delete r["models"][0].fallback;
      },
      message: 'models[1].name: duplicates models[0].name, got "qwen2-1-5b"',
    },
    {
      name: "missing modelID",
      break: (r) => delete r["models"][0].modelID,
      message: "models[0].modelID: is required (a model hub ID such as Qwen/Qwen2-1.5B-Instruct), got nothing",
    },
    {
      name: "bad modelID",
      break: (r) => (r["models"][0].modelID = "Qwen 2"),
      message: 'models[0].modelID: must be a model hub ID such as Qwen/Qwen2-1.5B-Instruct, got "Qwen 2"',
    },
    {
      name: "hub",
      break: (r) => (r["models"][0].hub = "GitHub"),
      message: 'models[0].hub: must be one of Huggingface, ModelScope, got "GitHub"',
    },
    {
      name: "fallback to unknown model",
      break: (r) => (r["models"][0].fallback = ["llama"]),
      message: 'models[0].fallback[0]: must name another model in models[] (qwen2-1-5b, gemma-2-2b), got "llama"',
    },
    {
      name: "fallback to itself",
      break: (r) => (r["models"][0].fallback = ["qwen2-1-5b"]),
      message: 'models[0].fallback[0]: must not be the model itself, got "qwen2-1-5b"',
    },
    {
      name: "fallback listed twice",
      break: (r) => (r["models"][0].fallback = ["gemma-2-2b", "gemma-2-2b"]),
      message: 'models[0].fallback[1]: is listed twice, got "gemma-2-2b"',
    },
    {
      name: "fallback as a string",
      break: (r) => (r["models"][0].fallback = "gemma-2-2b"),
      message: 'models[0].fallback: must be a list of model names (write [name]), got "gemma-2-2b"',
    },
    {
      name: "duplicate route",
      break: (r) => (r["models"][1].route = "qwen2-1-5b"),
      message: 'models[1].route: duplicates the route of models[0] (routes name Ingresses), got "qwen2-1-5b"',
    },
    {
      name: "bad quantity",
      break: (r) => (r["models"][0].resources.limits.memory = "lots"),
      message: 'models[0].resources.limits.memory: must be a Kubernetes quantity such as 4, 500m or 16Gi, got "lots"',
    },
    {
      name: "GPU in resources",
      break: (r) => (r["models"][0].resources.limits["nvidia.com/gpu"] = 1),
      message:
        "models[0].resources.limits.nvidia.com/gpu: GPUs are set with gpus (rendered as nvidia.com/gpu in both requests and limits), got 1",
    },
    {
      name: "limit below the request",
      break: (r) => (r["models"][0].resources.limits.cpu = "2"),
      message: 'models[0].resources.limits.cpu: must be at least the request (4), got "2"',
    },
    {
      name: "limit below the request in other units",
      break: (r) => {
        r["models"][1].resources.requests.memory = "16Gi";
        r["models"][1].resources.limits.memory = "16G";
      },
      message: 'models[1].resources.limits.memory: must be at least the request (16Gi), got "16G"',
    },
    {
      name: "unknown resources part",
      break: (r) => (r["models"][0].resources.request = {}),
      message: "models[0].resources.request: unknown field (allowed: requests, limits)",
    },
    {
      name: "args not strings",
      break: (r) => (r["models"][0].args = ["--max-model-len", 4096]),
      message: "models[0].args[1]: must be a non-empty string, got 4096",
    },
    {
      name: "needsHfToken",
      break: (r) => (r["models"][1].needsHfToken = "yes"),
      message: 'models[1].needsHfToken: must be true or false, got "yes"',
    },
    {
      name: "unknown model field",
      break: (r) => (r["models"][0].gpu = 1),
      message:
        "models[0].gpu: unknown field (allowed: name, modelID, hub, revision, familyName, gpus, replicas, fallback, route, upstreamModel, needsHfToken, resources, args, backendVersion, affinity)",
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      const raw = seedRaw() as Raw;
      raw["fallback"] ??= {};
      c.break(raw);
      assert.deepEqual(errorsOf(raw), [c.message]);
    });
  }

  it("compares requests and limits as quantities, as llmaz's Playground webhook does", () => {
    const raw = seedRaw() as Raw;
    raw["models"][0].resources = {
      requests: { cpu: "4", memory: "16Gi", "ephemeral-storage": "10G" },
      limits: { cpu: "4000m", memory: "17179869184", "ephemeral-storage": "1e10" },
    };
    raw["models"][1].resources = { requests: { cpu: "500m" }, limits: { memory: "1Gi" } };
    specFrom(raw);
  });

  it("refuses plugin.config.stage: the renderer sets it for each filter", () => {
    const raw = seedRaw() as Raw;
    raw["plugin"].config.stage = "attempt";
    assert.ok(
      errorsOf(raw).includes(
        'plugin.config.stage: is set per filter by the renderer (the request stage; on Envoy also the attempt stage): leave it out, got "attempt"',
      ),
    );
  });

  it("refuses a file that is not a mapping", () => {
    assert.deepEqual(errorsOf(["a"]), [
      'file: must be a mapping with name, namespace, gateway, plugin, fallback, models, quotas, got ["a"]',
    ]);
  });

  it("refuses YAML it cannot parse, and duplicate keys", () => {
    for (const text of ["name: [seed", "name: a\nname: b\n"]) {
      const r = parseSpec(text);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.errors[0] ?? "", /^file: invalid YAML: /);
    }
  });

  it("reports every problem at once, one line each", () => {
    const raw = seedRaw() as Raw;
    raw["models"][0].gpus = -1;
    raw["models"][1].replicas = "two";
    raw["plugin"].url = "x";
    assert.equal(errorsOf(raw).length, 3);
  });

  it("applies the documented defaults", () => {
    const spec = specFrom({ name: "mini", plugin: { url: "oci://r/p:1" }, models: [{ name: "m", modelID: "org/m" }] });
    assert.equal(spec.namespace, "default");
    assert.deepEqual(spec.gateway, {
      type: "higress",
      namespace: "higress-system",
      ingressClassName: "higress",
      service: "higress-gateway",
      listenPort: 10000,
      adminPort: 9901,
    });
    assert.deepEqual(spec.fallback, { on: ["5xx"], bufferRequestBody: true, maxRequestBytes: 10485760, globalFilter: false });
    const m = spec.models[0];
    assert.equal(m?.gpus, 1);
    assert.equal(m?.replicas, 1);
    assert.equal(m?.route, "m");
    assert.equal(m?.familyName, "m");
    assert.equal(m?.hub, "Huggingface");
  });

  it("apply refuses a limit below its request before it touches the cluster (llmaz's webhook would refuse it)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llmgw-limits-"));
    try {
      const file = join(dir, "seed.yaml");
      writeFileSync(file, SEED_TEXT.replace('limits: { cpu: "4", memory: 16Gi }', 'limits: { cpu: "2", memory: 16Gi }'));
      const c = capture({ KUBECONFIG: join(dir, "no-such-kubeconfig") });
      const code = await run(["apply", "-f", file], c.io);
      assert.equal(code, 2, c.err());
      assert.deepEqual(c.err().trim().split("\n"), [
        `error: ${file}: models[0].resources.limits.cpu: must be at least the request (4), got "2"`,
      ]);
      assert.equal(c.out(), "");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("prints one line per bad field from the CLI, no stack, exit 2", async () => {
    const c = capture();
    const code = await run(["render", "-f", `${import.meta.dirname}/testdata/invalid.yaml`], c.io);
    assert.equal(code, 2);
    const lines = c.err().trim().split("\n");
    assert.deepEqual(lines, [
      `error: ${import.meta.dirname}/testdata/invalid.yaml: models[1].gpus: must be a positive integer, got "x"`,
      `error: ${import.meta.dirname}/testdata/invalid.yaml: models[1].fallback[0]: must name another model in models[] (qwen2-1-5b, gemma-2-2b), got "llama"`,
    ]);
    assert.equal(c.out(), "");
  });
});
