// The deploy CLI against a real kube-apiserver (tests/k8s/env.ts) with the fake llmaz controller, run as a
// subprocess the way a user runs it, so exit codes and output are what a user sees.
//
// Run: node --import tsx --test tests/deploy/cli.test.ts
// Needs: tests/k8s/install-deps.sh (etcd) and tests/k8s/build-kube-apiserver.sh (kube-apiserver).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { parse, stringify } from "yaml";
import { SEED_FILE, ROOT, loadSeed } from "../../deploy-scripts/generators/gen-manifests.ts";
import { renderObjects } from "../../deploy-scripts/render/render.ts";
import { validateSpec } from "../../deploy-scripts/spec.ts";
import { CRD_DIR, startKubeEnv, type KubeEnv } from "../k8s/env.ts";
import { FAIL_ANNOTATION, startFakeController, type FakeController } from "../k8s/fake-llmaz-controller.ts";

const CLI = join(ROOT, "deploy-scripts", "cli.ts");
const TOKEN = "hf_cliTestTokenNeverPrinted_0123456789";
const SELECTOR_SEED = "app.kubernetes.io/managed-by=llm-gateway-deploy,llm-gateway.io/deployment=seed";
const LB_IP = "192.0.2.10";

type Obj = KubernetesObject & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a user does (npx tsx deploy-scripts/cli.ts ...); HF_TOKEN only when given. */
function cli(args: string[], env: Record<string, string | undefined> = {}, command: "npx" | "node" = "npx"): Promise<Result> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base["HF_TOKEN"];
  const fullEnv = { ...base, ...env };
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  const [cmd, argv] = command === "npx" ? ["npx", ["tsx", CLI, ...args]] : [process.execPath, ["--import", "tsx", CLI, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, argv as string[], { cwd: ROOT, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function explainResult(r: Result): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Every field of `expected` is in `actual` with the same value; the server may add defaults (revision: main). */
function assertSubset(actual: unknown, expected: unknown, path: string): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${path}: ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => assertSubset((actual as unknown[])[i], e, `${path}[${i}]`));
  } else if (expected !== null && typeof expected === "object") {
    assert.ok(actual !== null && typeof actual === "object", `${path}: ${JSON.stringify(actual)}`);
    for (const [k, v] of Object.entries(expected)) assertSubset((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
  } else {
    assert.equal(actual, expected, path);
  }
}

const tmp = mkdtempSync(join(tmpdir(), "llmgw-deploy-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A deployment file derived from the seed, written to the temp dir. */
function deploymentFile(name: string, change: (raw: Obj) => void): string {
  const raw = parse(readFileSync(SEED_FILE, "utf8")) as Obj;
  raw["name"] = name;
  change(raw);
  const path = join(tmp, `${name}.yaml`);
  writeFileSync(path, stringify(raw));
  return path;
}

describe("deploy CLI against a real API server", { timeout: 240_000 }, () => {
  let env: KubeEnv;
  let controller: FakeController;
  let objects: KubernetesObjectApi;
  let core: CoreV1Api;
  let kube: Record<string, string>;

  const read = async (o: { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } }): Promise<Obj | null> => {
    const ref = {
      apiVersion: o.apiVersion ?? "",
      kind: o.kind ?? "",
      metadata: { name: o.metadata?.name ?? "", namespace: o.metadata?.namespace },
    };
    try {
      return (await objects.read(ref)) as Obj;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return null;
      throw err;
    }
  };

  /** Every object of ours for deployment seed, by kind/ns/name, with what idempotence is judged by. */
  const snapshot = async (): Promise<Map<string, { rv: string; managed: string }>> => {
    const out = new Map<string, { rv: string; managed: string }>();
    for (const o of [
      ...renderObjects(loadSeed(), { hfTokenSet: true }),
      { apiVersion: "v1", kind: "Secret", metadata: { name: "modelhub-secret", namespace: "default" } },
    ]) {
      const got = await read(o as Obj);
      assert.ok(got, `${o.kind} ${o.metadata?.name ?? ""} missing`);
      const key = `${o.kind} ${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
      out.set(key, { rv: got.metadata?.resourceVersion ?? "", managed: JSON.stringify(got.metadata?.managedFields ?? []) });
    }
    return out;
  };

  before(async () => {
    env = await startKubeEnv();
    controller = await startFakeController(env.kubeconfigPath, { progressDelayMs: 200, readyDelayMs: 500 });
    const kc = new KubeConfig();
    kc.loadFromFile(env.kubeconfigPath);
    objects = KubernetesObjectApi.makeApiClient(kc);
    core = kc.makeApiClient(CoreV1Api);
    kube = { KUBECONFIG: env.kubeconfigPath };
    for (const ns of ["higress-system", "gw-failing", "failing", "gw-other"]) {
      await core.createNamespace({ body: { metadata: { name: ns } } });
    }
    // The gateway Service the Higress chart creates, with a LoadBalancer address.
    await core.createNamespacedService({
      namespace: "higress-system",
      body: {
        metadata: { name: "higress-gateway" },
        spec: { type: "LoadBalancer", ports: [{ name: "http2", port: 80, targetPort: 80 }], selector: { app: "higress-gateway" } },
      },
    });
    await core.patchNamespacedServiceStatus(
      { namespace: "higress-system", name: "higress-gateway", body: { status: { loadBalancer: { ingress: [{ ip: LB_IP }] } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    // What the Higress console (or a human) already put in the gateway namespace: must survive us.
    await objects.create({
      apiVersion: "networking.higress.io/v1",
      kind: "McpBridge",
      metadata: { name: "default", namespace: "higress-system" },
      spec: { registries: [{ name: "llm-openai.internal", domain: "api.openai.com", port: 443, type: "dns", protocol: "https" }] },
    } as Obj);
    await objects.create({
      apiVersion: "networking.k8s.io/v1",
      kind: "Ingress",
      metadata: { name: "qwen2-1-5b-canary", namespace: "higress-system", labels: { "app.kubernetes.io/managed-by": "someone-else" } },
      spec: { ingressClassName: "higress", defaultBackend: { service: { name: "x", port: { number: 80 } } } },
    } as Obj);
    await objects.create({
      apiVersion: "llmaz.io/v1alpha1",
      kind: "OpenModel",
      metadata: { name: "qwen2-1-5b-old", labels: { "llm-gateway.io/deployment": "seed" } },
      spec: { familyName: "qwen2", source: { modelHub: { modelID: "Qwen/Qwen2-0.5B" } } },
    } as Obj);
  });

  after(async () => {
    await controller?.stop();
    await env?.stop();
  });

  it("apply creates every object, waits with progress and prints the endpoint and a curl", async () => {
    const r = await cli(["apply", "-f", SEED_FILE, "--timeout", "60s", "--poll-interval", "100ms"], { ...kube, HF_TOKEN: TOKEN });
    assert.equal(r.code, 0, explainResult(r));
    for (const line of [
      "created    Secret default/modelhub-secret",
      "created    OpenModel qwen2-1-5b",
      "created    Playground default/gemma-2-2b",
      "configured McpBridge higress-system/default",
      "created    Ingress higress-system/qwen2-1-5b.fallback",
      "created    EnvoyFilter higress-system/qwen2-1-5b",
      "created    WasmPlugin higress-system/llm-gateway",
    ]) {
      assert.ok(r.stdout.includes(`${line}\n`), `missing "${line}"\n${explainResult(r)}`);
    }
    assert.match(r.stdout, /waiting for 2 model\(s\) to become Available/);
    assert.match(r.stdout, /qwen2-1-5b +waiting +/, "a waiting line per model before it is ready");
    assert.match(r.stdout, /qwen2-1-5b +ready +Available \(PlaygroundReady\)/);
    assert.match(r.stdout, /gemma-2-2b +ready +Available \(PlaygroundReady\)/);
    assert.ok(r.stdout.includes(`gateway endpoint: http://${LB_IP}\n`), explainResult(r));
    assert.ok(r.stdout.includes(`curl -sS http://${LB_IP}/v1/chat/completions`), explainResult(r));
    assert.ok(r.stdout.includes(`-H 'Host: llm.example.com'`));
    assert.ok(r.stdout.includes('"model":"qwen2-1-5b"'));
    assert.ok(!(r.stdout + r.stderr).includes(TOKEN), "the token was printed");
    assert.equal(r.stderr, "");
  });

  it("stored what the renderer made, and the token only in the Secret", async () => {
    for (const o of renderObjects(loadSeed(), { hfTokenSet: true })) {
      const got = await read(o);
      assert.ok(got, `${o.kind} ${o.metadata.name} missing`);
      if (o.kind === "McpBridge") {
        const names = (got["spec"].registries as { name: string }[]).map((x) => x.name);
        assert.deepEqual(names, ["llm-openai.internal", "llm-qwen2-1-5b", "llm-gemma-2-2b"], "merged, the console entry kept");
        assert.equal(got.metadata?.labels, undefined, "a McpBridge we did not create gets no labels");
        assert.equal(got.metadata?.annotations?.["registries.llm-gateway.io/seed"], "llm-qwen2-1-5b,llm-gemma-2-2b");
      } else {
        assert.deepEqual(got.metadata?.labels, o.metadata.labels);
        assertSubset(got["spec"], o["spec"], `${o.kind} ${o.metadata.name}.spec`);
      }
    }
    const secret = await core.readNamespacedSecret({ namespace: "default", name: "modelhub-secret" });
    assert.equal(Buffer.from(secret.data?.["HF_TOKEN"] ?? "", "base64").toString(), TOKEN);
    assert.deepEqual(secret.metadata?.labels, {
      "app.kubernetes.io/managed-by": "llm-gateway-deploy",
      "llm-gateway.io/deployment": "seed",
    });
  });

  it("apply a second time changes nothing: same resourceVersions and managedFields", async () => {
    const before = await snapshot();
    const r = await cli(["apply", "-f", SEED_FILE, "--timeout", "30s", "--poll-interval", "100ms"], { ...kube, HF_TOKEN: TOKEN }, "node");
    assert.equal(r.code, 0, explainResult(r));
    const applied = r.stdout.split("\n").filter((l) => /^(created|configured|unchanged) /.test(l));
    assert.equal(applied.length, 11, explainResult(r));
    for (const l of applied) assert.match(l, /^unchanged /);
    assert.deepEqual(await snapshot(), before);
  });

  it("status shows each model: Playground conditions, pods and Service, and the gateway", async () => {
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "qwen2-1-5b-0", labels: { "llmaz.io/model-name": "qwen2-1-5b" } },
        spec: { containers: [{ name: "model-runner", image: "vllm/vllm-openai" }] },
      },
    });
    const r = await cli(["status", "-f", SEED_FILE], kube, "node");
    assert.equal(r.code, 0, explainResult(r));
    assert.match(r.stdout, /^qwen2-1-5b: ready$/m);
    assert.match(r.stdout, /^ {2}playground {2}Available=True PlaygroundReady/m);
    assert.match(r.stdout, /^ {2}pod {9}qwen2-1-5b-0 Pending, ready 0\/1$/m);
    assert.match(r.stdout, /^ {2}service {5}qwen2-1-5b-lb 10\.96\.\d+\.\d+:8080$/m);
    assert.match(r.stdout, /^gemma-2-2b: ready\n {2}playground/m);
    assert.match(r.stdout, /^ {2}pods {8}none yet$/m);
    assert.ok(r.stdout.includes(`gateway endpoint: http://${LB_IP}`));
  });

  it("apply refuses to take over objects it did not create, and changes nothing", async () => {
    const file = deploymentFile("intruder", (raw) => {
      raw["gateway"].namespace = "higress-system";
      raw["models"] = [{ name: "canary", modelID: "Qwen/Qwen2-0.5B", route: "qwen2-1-5b-canary" }];
    });
    const r = await cli(["apply", "-f", file, "--no-wait"], kube, "node");
    assert.equal(r.code, 1, explainResult(r));
    assert.ok(r.stderr.includes("error: refusing to apply, nothing was changed:"), explainResult(r));
    assert.ok(r.stderr.includes("Ingress higress-system/qwen2-1-5b-canary already exists and was not created by llm-gateway-deploy"));
    assert.ok(r.stderr.includes('WasmPlugin higress-system/llm-gateway already exists and belongs to deployment "seed"'));
    assert.equal(await read({ apiVersion: "llmaz.io/v1alpha1", kind: "OpenModel", metadata: { name: "canary" } }), null);
  });

  it("apply reports a Playground that llmaz aborts, with its message, exit 3", async () => {
    const message = "model needs 80Gi of GPU memory, nodes have 24Gi";
    const file = deploymentFile("failing", (raw) => {
      raw["namespace"] = "failing";
      raw["gateway"].namespace = "gw-failing";
      raw["models"] = [{ name: "too-big", modelID: "org/too-big" }];
    });
    // Annotated beforehand by someone else: apply takes over the spec and leaves the annotation alone.
    await objects.create({
      apiVersion: "inference.llmaz.io/v1alpha1",
      kind: "Playground",
      metadata: {
        name: "too-big",
        namespace: "failing",
        labels: { "app.kubernetes.io/managed-by": "llm-gateway-deploy", "llm-gateway.io/deployment": "failing" },
        annotations: { [FAIL_ANNOTATION]: message },
      },
      spec: { modelClaim: { modelName: "too-big" } },
    } as Obj);
    const r = await cli(["apply", "-f", file, "--timeout", "60s", "--poll-interval", "100ms"], kube, "node");
    assert.equal(r.code, 3, explainResult(r));
    assert.ok(r.stderr.includes(`too-big failed: ${message} (Playground failing/too-big)`), explainResult(r));
    assert.match(r.stdout, /too-big +failed +model needs 80Gi/);
    assert.ok(!r.stdout.includes("gateway endpoint"), "no endpoint for a failed deployment");
    const d = await cli(["delete", "-f", file], kube, "node");
    assert.equal(d.code, 0, explainResult(d));
  });

  it("apply times out with the models still waiting, exit 3", async () => {
    const file = deploymentFile("slow", (raw) => {
      raw["namespace"] = "gw-other";
      raw["gateway"].namespace = "gw-other";
      raw["models"] = [{ name: "slow", modelID: "org/slow" }];
    });
    await controller.stop(); // nobody marks it ready now
    try {
      const r = await cli(["apply", "-f", file, "--timeout", "1s", "--poll-interval", "200ms"], kube, "node");
      assert.equal(r.code, 3, explainResult(r));
      assert.match(r.stderr, /^error: |timed out after 1s waiting for slow \(waiting for llmaz to pick it up\)/m);
    } finally {
      controller = await startFakeController(env.kubeconfigPath, { progressDelayMs: 200, readyDelayMs: 500 });
      assert.equal((await cli(["delete", "-f", file], kube, "node")).code, 0);
    }
  });

  it("an object the API server rejects is reported with the server's reason", async () => {
    const file = deploymentFile("nowhere", (raw) => {
      raw["namespace"] = "no-such-namespace";
      raw["gateway"].namespace = "gw-other";
      raw["models"] = [{ name: "lost", modelID: "org/lost" }];
    });
    const r = await cli(["apply", "-f", file, "--no-wait"], kube, "node");
    assert.equal(r.code, 1, explainResult(r));
    assert.equal(
      r.stderr.trim(),
      'error: the API server rejected Playground no-such-namespace/lost: namespaces "no-such-namespace" not found ' +
        "(create it: kubectl create namespace no-such-namespace)",
    );
    assert.equal((await cli(["delete", "-f", file], kube, "node")).code, 0);
    assert.equal(await read({ apiVersion: "llmaz.io/v1alpha1", kind: "OpenModel", metadata: { name: "lost" } }), null);
  });

  it("a model-router the Higress console enabled: status and apply warn, apply --disable-model-router disables it", async () => {
    // What the console writes once an AI route exists (higress-console: AiRouteServiceImpl.writeModelRouterResources,
    // KubernetesModelConverter.wasmPluginToCr): the internal instance of the built-in plugin, enabled globally.
    const ref = {
      apiVersion: "extensions.higress.io/v1alpha1",
      kind: "WasmPlugin",
      metadata: { name: "model-router.internal", namespace: "higress-system" },
    };
    await objects.create({
      ...ref,
      metadata: {
        ...ref.metadata,
        labels: {
          "higress.io/wasm-plugin-name": "model-router",
          "higress.io/wasm-plugin-version": "1.0.0",
          "higress.io/wasm-plugin-category": "ai",
          "higress.io/wasm-plugin-built-in": "true",
        },
      },
      spec: {
        url: "oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/model-router:1.0.0",
        phase: "AUTHN",
        priority: 900,
        defaultConfig: { modelToHeader: "x-higress-llm-model" },
        defaultConfigDisable: false,
      },
    } as Obj);
    const warning =
      /^warning: WasmPlugin higress-system\/model-router\.internal is Higress's model-router .*--disable-model-router .*AI_ROUTE_AUTO_ENABLE_MODEL_ROUTER=false/m;
    try {
      const st = await cli(["status", "-f", SEED_FILE], kube, "node");
      assert.equal(st.code, 0, explainResult(st));
      assert.match(st.stderr, warning, explainResult(st));

      const warned = await cli(["apply", "-f", SEED_FILE, "--no-wait"], { ...kube, HF_TOKEN: TOKEN }, "node");
      assert.equal(warned.code, 0, explainResult(warned));
      assert.match(warned.stderr, warning, explainResult(warned));
      assert.equal((await read(ref))?.["spec"].defaultConfigDisable, false, "a warning changes nothing");

      const disabled = await cli(["apply", "-f", SEED_FILE, "--no-wait", "--disable-model-router"], { ...kube, HF_TOKEN: TOKEN }, "node");
      assert.equal(disabled.code, 0, explainResult(disabled));
      assert.ok(
        disabled.stdout.includes(
          "disabled   WasmPlugin higress-system/model-router.internal (Higress's model-router: spec.defaultConfigDisable true)\n",
        ),
        explainResult(disabled),
      );
      assert.doesNotMatch(disabled.stderr, warning);
      const after = await read(ref);
      assert.equal(after?.["spec"].defaultConfigDisable, true);
      assert.equal(after?.metadata?.annotations?.["llm-gateway.io/disabled-model-router"], "seed");
      assert.deepEqual(after?.["spec"].defaultConfig, { modelToHeader: "x-higress-llm-model" }, "its configuration is kept");
      assert.equal(after?.metadata?.labels?.["higress.io/wasm-plugin-name"], "model-router", "its labels are kept");

      const quiet = await cli(["status", "-f", SEED_FILE], kube, "node");
      assert.equal(quiet.code, 0, explainResult(quiet));
      assert.doesNotMatch(quiet.stderr, warning, explainResult(quiet));
    } finally {
      await objects.delete(ref);
    }
  });

  it("delete removes exactly what apply created and leaves everything else alone", async () => {
    const r = await cli(["delete", "-f", SEED_FILE], kube);
    assert.equal(r.code, 0, explainResult(r));
    assert.ok(r.stdout.includes("deleted    WasmPlugin higress-system/llm-gateway\n"), explainResult(r));
    assert.ok(r.stdout.includes("deleted    Secret default/modelhub-secret\n"));
    assert.ok(r.stdout.includes("updated    McpBridge higress-system/default (removed registries llm-qwen2-1-5b, llm-gemma-2-2b"));

    // Nothing labelled for deployment seed is left, of any kind we write.
    for (const [apiVersion, kind, ns] of [
      ["v1", "Secret", "default"],
      ["llmaz.io/v1alpha1", "OpenModel", undefined],
      ["inference.llmaz.io/v1alpha1", "Playground", "default"],
      ["networking.k8s.io/v1", "Ingress", "higress-system"],
      ["networking.istio.io/v1alpha3", "EnvoyFilter", "higress-system"],
      ["extensions.higress.io/v1alpha1", "WasmPlugin", "higress-system"],
    ] as const) {
      const list = await objects.list(apiVersion, kind, ns, undefined, undefined, undefined, undefined, SELECTOR_SEED);
      assert.deepEqual(
        list.items.map((i) => i.metadata?.name),
        [],
        `${kind} left behind`,
      );
    }
    // The foreign objects with similar names are still there, untouched.
    const bridge = await read({
      apiVersion: "networking.higress.io/v1",
      kind: "McpBridge",
      metadata: { name: "default", namespace: "higress-system" },
    });
    assert.deepEqual(bridge?.["spec"].registries, [
      { name: "llm-openai.internal", domain: "api.openai.com", port: 443, type: "dns", protocol: "https" },
    ]);
    assert.equal(bridge?.metadata?.annotations?.["registries.llm-gateway.io/seed"], undefined);
    assert.ok(
      await read({
        apiVersion: "networking.k8s.io/v1",
        kind: "Ingress",
        metadata: { name: "qwen2-1-5b-canary", namespace: "higress-system" },
      }),
    );
    assert.ok(await read({ apiVersion: "llmaz.io/v1alpha1", kind: "OpenModel", metadata: { name: "qwen2-1-5b-old" } }));
    assert.ok(await read({ apiVersion: "v1", kind: "Service", metadata: { name: "higress-gateway", namespace: "higress-system" } }));

    const again = await cli(["delete", "-f", SEED_FILE], kube, "node");
    assert.equal(again.code, 0, explainResult(again));
    assert.match(again.stdout, /nothing else of deployment seed was found/);
  });

  it("--install-helm runs the documented Helm installs first, when helm is on PATH", async () => {
    const bin = mkdtempSync(join(tmp, "bin-"));
    const log = join(tmp, "helm.log");
    writeFileSync(join(bin, "helm"), `#!/bin/sh\necho "$@" >> ${log}\necho "fake helm: $1"\n`);
    chmodSync(join(bin, "helm"), 0o755);
    const r = await cli(
      ["apply", "-f", SEED_FILE, "--install-helm", "--timeout", "60s", "--poll-interval", "100ms"],
      {
        ...kube,
        PATH: `${bin}${delimiter}${process.env["PATH"] ?? ""}`,
      },
      "node",
    );
    assert.equal(r.code, 0, explainResult(r));
    assert.deepEqual(readFileSync(log, "utf8").trim().split("\n"), [
      "repo add higress.io https://higress.io/helm-charts --force-update",
      "upgrade --install higress higress.io/higress --namespace higress-system --create-namespace --render-subchart-notes --wait",
      "upgrade --install llmaz oci://registry-1.docker.io/inftyai/llmaz --namespace llmaz-system --create-namespace --version 0.0.10 " +
        "--set envoy-gateway.enabled=false --set envoy-ai-gateway.enabled=false --set open-webui.enabled=false --wait",
    ]);
    assert.ok(r.stdout.indexOf("$ helm repo add") < r.stdout.indexOf("created    OpenModel qwen2-1-5b"), "helm runs before apply");
    assert.equal((await cli(["delete", "-f", SEED_FILE], kube, "node")).code, 0);
  });
});

describe("replicas with prefix affinity and cluster-wide quotas against a real API server", { timeout: 180_000 }, () => {
  const FILE = join(ROOT, "deploy-scripts", "examples", "replicas-quotas.yaml");
  const SELECTOR = "app.kubernetes.io/managed-by=llm-gateway-deploy,llm-gateway.io/deployment=replicas-quotas";
  let env: KubeEnv;
  let controller: FakeController;
  let objects: KubernetesObjectApi;
  let core: CoreV1Api;
  let kube: Record<string, string>;

  const read = async (o: { apiVersion: string; kind: string; metadata: { name?: string; namespace?: string } }): Promise<Obj | null> => {
    try {
      return (await objects.read({
        apiVersion: o.apiVersion,
        kind: o.kind,
        metadata: { name: o.metadata.name ?? "", namespace: o.metadata.namespace },
      })) as Obj;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return null;
      throw err;
    }
  };
  const rendered = (): Obj[] => {
    const r = validateSpec(parse(readFileSync(FILE, "utf8")));
    if (!r.ok) assert.fail(r.errors.join("\n"));
    return renderObjects(r.spec, { hfTokenSet: true }) as Obj[];
  };

  before(async () => {
    env = await startKubeEnv();
    controller = await startFakeController(env.kubeconfigPath, { progressDelayMs: 100, readyDelayMs: 300 });
    const kc = new KubeConfig();
    kc.loadFromFile(env.kubeconfigPath);
    objects = KubernetesObjectApi.makeApiClient(kc);
    core = kc.makeApiClient(CoreV1Api);
    kube = { KUBECONFIG: env.kubeconfigPath };
    await core.createNamespace({ body: { metadata: { name: "higress-system" } } });
    // Higress's controller as its chart installs it by default: pushing only the clusters routes use.
    await objects.create({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "higress-controller", namespace: "higress-system" },
      spec: {
        selector: { matchLabels: { app: "higress-controller" } },
        template: {
          metadata: { labels: { app: "higress-controller" } },
          spec: {
            containers: [
              { name: "higress-core", image: "higress/higress:2.2.1" },
              { name: "discovery", image: "higress/pilot:2.2.1", env: [{ name: "PILOT_FILTER_GATEWAY_CLUSTER_CONFIG", value: "true" }] },
            ],
          },
        },
      },
    } as Obj);
  });

  after(async () => {
    await controller?.stop();
    await env?.stop();
  });

  it("apply creates the replicas, the headless Service, the affinity EnvoyFilter, ratelimit and Redis, and warns that Higress would not push ratelimit's cluster", async () => {
    const r = await cli(["apply", "-f", FILE, "--timeout", "60s", "--poll-interval", "100ms"], { ...kube, HF_TOKEN: TOKEN }, "node");
    assert.equal(r.code, 0, explainResult(r));
    for (const l of [
      "created    Playground default/qwen2-1-5b",
      "created    Service default/qwen2-1-5b-ep",
      "created    EnvoyFilter higress-system/qwen2-1-5b.affinity",
      "created    Deployment default/llm-gateway-redis",
      "created    Service default/llm-gateway-redis",
      "created    ConfigMap default/llm-gateway-ratelimit-config",
      "created    Deployment default/llm-gateway-ratelimit",
      "created    Service default/llm-gateway-ratelimit",
      "created    WasmPlugin higress-system/llm-gateway",
    ]) {
      assert.ok(r.stdout.includes(`${l}\n`), `missing "${l}"\n${explainResult(r)}`);
    }
    assert.match(
      r.stderr,
      /warning: quotas mode cluster: Higress pushes only the clusters its routes use \(Deployment higress-system\/higress-controller has PILOT_FILTER_GATEWAY_CLUSTER_CONFIG=true/,
    );
    assert.match(r.stderr, /no cluster outbound\|8081\|\|llm-gateway-ratelimit\.default\.svc\.cluster\.local/);
    assert.match(r.stdout, /qwen2-1-5b +ready +Available \(PlaygroundReady\)/);
  });

  it("the API server stored what the renderer made; llmaz's controller saw 4 replicas", async () => {
    for (const o of rendered()) {
      const got = await read(o as Obj & { apiVersion: string; kind: string; metadata: { name: string } });
      assert.ok(got, `${o.kind} ${o.metadata?.name ?? ""} missing`);
      assertSubset(got["spec"] ?? got["data"], o["spec"] ?? o["data"], `${o.kind}/${o.metadata?.name ?? ""}`);
    }
    const pg = await read({
      apiVersion: "inference.llmaz.io/v1alpha1",
      kind: "Playground",
      metadata: { name: "qwen2-1-5b", namespace: "default" },
    });
    assert.equal(pg?.["status"]?.replicas, 4);
    const ep = await read({ apiVersion: "v1", kind: "Service", metadata: { name: "qwen2-1-5b-ep", namespace: "default" } });
    assert.equal(ep?.["spec"].clusterIP, "None");
    const plugin = await read({
      apiVersion: "extensions.higress.io/v1alpha1",
      kind: "WasmPlugin",
      metadata: { name: "llm-gateway", namespace: "higress-system" },
    });
    assert.deepEqual(plugin?.["spec"].defaultConfig.prefixAffinity.models, ["qwen2-1-5b"]);
    assert.equal(plugin?.["spec"].defaultConfig.quotas.service.cluster, "outbound|8081||llm-gateway-ratelimit.default.svc.cluster.local");
  });

  it("status shows the headless Service and the quota service's pods (none ready: this API server runs no Deployments)", async () => {
    const r = await cli(["status", "-f", FILE], kube, "node");
    assert.equal(r.code, 0, explainResult(r));
    assert.match(r.stdout, /^  service     qwen2-1-5b-ep headless, one address per ready replica$/m);
    assert.doesNotMatch(r.stdout, /gemma-2-2b-ep/);
    assert.ok(
      r.stdout.includes(
        "quota service: outbound|8081||llm-gateway-ratelimit.default.svc.cluster.local\n" +
          "  deployment  llm-gateway-ratelimit ready 0/1\n" +
          "  deployment  llm-gateway-redis ready 0/1\n",
      ),
      explainResult(r),
    );
  });

  it("apply a second time changes nothing, Deployments and Services included", async () => {
    const r = await cli(["apply", "-f", FILE, "--no-wait"], { ...kube, HF_TOKEN: TOKEN }, "node");
    assert.equal(r.code, 0, explainResult(r));
    const lines = r.stdout.split("\n").filter((l) => /^(created|configured|unchanged) /.test(l));
    assert.ok(lines.length > 0, explainResult(r));
    assert.deepEqual(
      lines.filter((l) => !l.startsWith("unchanged ")),
      [],
      explainResult(r),
    );
  });

  it("delete removes all of it, and leaves Higress's own Deployment and llmaz's Services alone", async () => {
    const r = await cli(["delete", "-f", FILE], kube, "node");
    assert.equal(r.code, 0, explainResult(r));
    for (const l of [
      "deleted    EnvoyFilter higress-system/qwen2-1-5b.affinity",
      "deleted    Deployment default/llm-gateway-ratelimit",
      "deleted    Deployment default/llm-gateway-redis",
      "deleted    Service default/qwen2-1-5b-ep",
      "deleted    ConfigMap default/llm-gateway-ratelimit-config",
    ]) {
      assert.ok(r.stdout.includes(`${l}\n`), `missing "${l}"\n${explainResult(r)}`);
    }
    for (const [apiVersion, kind, ns] of [
      ["apps/v1", "Deployment", "default"],
      ["v1", "Service", "default"],
      ["v1", "ConfigMap", "default"],
      ["networking.istio.io/v1alpha3", "EnvoyFilter", "higress-system"],
      ["inference.llmaz.io/v1alpha1", "Playground", "default"],
    ] as const) {
      const list = await objects.list(apiVersion, kind, ns, undefined, undefined, undefined, undefined, SELECTOR);
      assert.deepEqual(
        list.items.map((i) => i.metadata?.name),
        [],
        `${kind} left behind`,
      );
    }
    assert.ok(
      await read({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "higress-controller", namespace: "higress-system" } }),
    );
  });
});

describe("gateway.type envoy against an API server without Higress", { timeout: 120_000 }, () => {
  const ENVOY_SELECTOR = "app.kubernetes.io/managed-by=llm-gateway-deploy,llm-gateway.io/deployment=seed-envoy";
  let env: KubeEnv;
  let controller: FakeController;
  let objects: KubernetesObjectApi;
  let kube: Record<string, string>;

  before(async () => {
    // llmaz's CRDs only: the Envoy target writes nothing of Higress's.
    const crds = mkdtempSync(join(tmp, "crds-llmaz-"));
    for (const f of readdirSync(CRD_DIR).filter((f) => f.startsWith("llmaz-"))) copyFileSync(join(CRD_DIR, f), join(crds, f));
    env = await startKubeEnv({ crdDir: crds });
    controller = await startFakeController(env.kubeconfigPath, { progressDelayMs: 100, readyDelayMs: 200 });
    const kc = new KubeConfig();
    kc.loadFromFile(env.kubeconfigPath);
    objects = KubernetesObjectApi.makeApiClient(kc);
    kube = { KUBECONFIG: env.kubeconfigPath };
  });

  after(async () => {
    await controller?.stop();
    await env?.stop();
  });

  it("apply applies the llmaz objects, writes the Envoy bootstrap and says how to run it; delete removes them", async () => {
    const file = join(ROOT, "deploy-scripts", "examples", "seed-envoy.yaml");
    const bootstrap = join(tmp, "envoy.yaml");
    const r = await cli(["apply", "-f", file, "--envoy-config", bootstrap, "--timeout", "60s", "--poll-interval", "100ms"], kube, "node");
    assert.equal(r.code, 0, explainResult(r));
    const applied = r.stdout.split("\n").filter((l) => /^(created|configured|unchanged) /.test(l));
    assert.deepEqual(applied, [
      "created    OpenModel qwen2-1-5b",
      "created    Playground default/qwen2-1-5b",
      "created    OpenModel gemma-2-2b",
      "created    Playground default/gemma-2-2b",
    ]);
    assert.ok(r.stdout.startsWith(`wrote      Envoy bootstrap ${bootstrap}\n`), explainResult(r));
    assert.equal(readFileSync(bootstrap, "utf8"), readFileSync(join(ROOT, "manifests", "seed-envoy", "envoy.yaml"), "utf8"));
    assert.match(r.stdout, /gemma-2-2b +ready +Available \(PlaygroundReady\)/);
    assert.ok(
      r.stdout.includes(
        `gateway: upstream Envoy (gateway.type envoy), which you run with the bootstrap ${bootstrap}:\n  envoy -c <bootstrap>\n`,
      ),
      explainResult(r),
    );
    assert.ok(r.stdout.includes("curl -sS http://ENVOY_HOST:10000/v1/chat/completions"), explainResult(r));
    assert.match(r.stderr, /warning: gemma-2-2b needs a Hugging Face token/);

    const st = await cli(["status", "-f", file], kube, "node");
    assert.equal(st.code, 0, explainResult(st));
    assert.match(st.stdout, /^deployment seed-envoy: models in namespace default, gateway: upstream Envoy\n/);

    const d = await cli(["delete", "-f", file], kube, "node");
    assert.equal(d.code, 0, explainResult(d));
    assert.ok(d.stdout.includes("deleted    OpenModel qwen2-1-5b\n"), explainResult(d));
    const left = await objects.list(
      "llmaz.io/v1alpha1",
      "OpenModel",
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      ENVOY_SELECTOR,
    );
    assert.deepEqual(left.items, []);
  });
});

describe("deploy CLI errors a user meets before any cluster work", { timeout: 120_000 }, () => {
  it("a missing CRD: one line naming it and what to install, nothing written", async () => {
    // An API server with llmaz's CRDs but not Higress's.
    const crds = mkdtempSync(join(tmp, "crds-"));
    for (const f of readdirSync(CRD_DIR).filter((f) => f.startsWith("llmaz-"))) copyFileSync(join(CRD_DIR, f), join(crds, f));
    const env = await startKubeEnv({ crdDir: crds });
    try {
      const r = await cli(["apply", "-f", SEED_FILE, "--no-wait"], { KUBECONFIG: env.kubeconfigPath }, "node");
      assert.equal(r.code, 1, explainResult(r));
      assert.equal(
        r.stderr.trim(),
        "error: the cluster does not know CRD mcpbridges.networking.higress.io (McpBridge networking.higress.io/v1): " +
          "install Higress: helm repo add higress.io https://higress.io/helm-charts; helm install higress -n higress-system " +
          "higress.io/higress --create-namespace --render-subchart-notes (or run apply with --install-helm)",
      );
      const kc = new KubeConfig();
      kc.loadFromFile(env.kubeconfigPath);
      const list = await KubernetesObjectApi.makeApiClient(kc).list("llmaz.io/v1alpha1", "OpenModel");
      assert.deepEqual(list.items, [], "nothing was applied");
    } finally {
      await env.stop();
    }
  });

  it("no cluster configured: one line saying how to point at one", async () => {
    const home = mkdtempSync(join(tmp, "home-"));
    const r = await cli(["status", "-f", SEED_FILE], { KUBECONFIG: undefined, HOME: home }, "node");
    assert.equal(r.code, 1, explainResult(r));
    assert.equal(
      r.stderr.trim(),
      `error: no cluster configured (no KUBECONFIG, no ${home}/.kube/config, not in a cluster): ` +
        "point KUBECONFIG at a kubeconfig file, create ~/.kube/config, or run inside a cluster",
    );
  });

  it("a cluster that refuses connections: one line with the server and the hint", async () => {
    const kc = join(tmp, "refused.kubeconfig");
    writeFileSync(
      kc,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:1" } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const r = await cli(["apply", "-f", SEED_FILE], { KUBECONFIG: kc });
    assert.equal(r.code, 1, explainResult(r));
    assert.equal(
      r.stderr.trim(),
      "error: cannot reach the Kubernetes API server at https://127.0.0.1:1 (ECONNREFUSED): " +
        "point KUBECONFIG at a kubeconfig file, create ~/.kube/config, or run inside a cluster",
    );
  });

  it("--install-helm without helm on PATH is a clear error", async () => {
    const r = await cli(["apply", "-f", SEED_FILE, "--install-helm"], { PATH: "/nonexistent" }, "node");
    assert.equal(r.code, 1, explainResult(r));
    assert.equal(
      r.stderr.trim(),
      "error: --install-helm: helm is not on PATH; install Helm 3 (https://helm.sh/docs/intro/install/) or leave out --install-helm",
    );
  });

  it("an invalid file: one line per bad field, exit 2, no stack", async () => {
    const file = join(ROOT, "tests", "deploy", "testdata", "invalid.yaml");
    const r = await cli(["apply", "-f", file]);
    assert.equal(r.code, 2, explainResult(r));
    assert.deepEqual(r.stderr.trim().split("\n"), [
      `error: ${file}: models[1].gpus: must be a positive integer, got "x"`,
      `error: ${file}: models[1].fallback[0]: must name another model in models[] (qwen2-1-5b, gemma-2-2b), got "llama"`,
    ]);
  });

  it("a bad command line: the problem, then the usage, exit 2", async () => {
    const r = await cli(["apply"], {}, "node");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: apply: -f FILE is required\n\nusage: cli.ts <command> -f FILE/);
    const unknown = await cli(["deploy", "-f", SEED_FILE], {}, "node");
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: unknown command "deploy"/);
    const help = await cli(["--help"], {}, "node");
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: /);
  });

  it("apply --dry-run prints the same YAML as render and needs no cluster", async () => {
    const [a, b] = await Promise.all([
      cli(["apply", "--dry-run", "-f", SEED_FILE], { KUBECONFIG: "/nonexistent" }, "node"),
      cli(["render", "-f", SEED_FILE], { KUBECONFIG: "/nonexistent" }, "node"),
    ]);
    assert.equal(a.code, 0, explainResult(a));
    assert.equal(a.stdout, b.stdout);
    assert.equal(
      a.stdout,
      readdirSync(join(ROOT, "manifests", "seed"))
        .filter((f) => f.endsWith(".yaml"))
        .sort()
        .map((f) => readFileSync(join(ROOT, "manifests", "seed", f), "utf8"))
        .join(""),
    );
  });
});
