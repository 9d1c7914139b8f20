// Proves the test Kubernetes env: a real kube-apiserver with our CRDs accepts the objects the deploy CLI
// writes (server-side apply, as the CLI does), rejects malformed ones the way a cluster would, and the
// fake llmaz controller drives Playgrounds to Available or AbortProcessing.
//
// Run: node --import tsx --test tests/k8s/env.test.ts
// Needs: tests/k8s/install-deps.sh (etcd) and tests/k8s/build-kube-apiserver.sh (kube-apiserver).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  VersionApi,
  type KubernetesObject,
} from "@kubernetes/client-node";

import { DEFAULT_KUBE_VERSION, startKubeEnv, type KubeEnv } from "./env.ts";
import {
  BACKEND_PORT,
  FAIL_ANNOTATION,
  MESSAGE_MODEL_MISSING,
  REASON_ABORT,
  REASON_PENDING,
  REASON_READY,
  startFakeController,
  type FakeController,
} from "./fake-llmaz-controller.ts";

const FIELD_MANAGER = "llm-gateway-test";
const NS = "llmgw-test";
const HIGRESS_NS = "higress-system";
const WAIT_MS = 15_000;
const POLL_MS = 50;

type Obj = KubernetesObject & Record<string, unknown>;

/** Reads a dotted path ("spec.source.modelHub.name", array indexes as numbers) out of an object. */
function pick(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}

function conditionOf(obj: unknown, type: string): Condition | undefined {
  const conditions = pick(obj, "status.conditions");
  return Array.isArray(conditions) ? (conditions as Condition[]).find((c) => c.type === type) : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let env: KubeEnv;
let objects: KubernetesObjectApi;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let kc: KubeConfig;
let controller: FakeController | undefined;
let watchRounds = 0;

async function apply(obj: Obj): Promise<Obj> {
  return objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}

async function read(obj: Obj): Promise<Obj> {
  const { apiVersion, kind, metadata } = obj;
  if (apiVersion === undefined || kind === undefined || metadata?.name === undefined)
    throw new Error("object without apiVersion/kind/name");
  return objects.read<Obj>({ apiVersion, kind, metadata: { name: metadata.name, namespace: metadata.namespace } });
}

/** Re-reads obj until accept() holds; fails with the last object seen. */
async function waitFor(obj: Obj, what: string, accept: (current: Obj) => boolean): Promise<Obj> {
  const deadline = Date.now() + WAIT_MS;
  let last: Obj | undefined;
  while (Date.now() < deadline) {
    last = await read(obj);
    if (accept(last)) return last;
    await sleep(POLL_MS);
  }
  assert.fail(`timed out waiting for ${what}; last status: ${JSON.stringify(last?.["status"])}`);
}

async function expectApiError(promise: Promise<unknown>): Promise<ApiException<unknown>> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiException) return err;
    throw err;
  }
  assert.fail("expected the API server to refuse the object");
}

const openModel = (name: string): Obj => ({
  apiVersion: "llmaz.io/v1alpha1",
  kind: "OpenModel",
  metadata: { name },
  spec: {
    familyName: "qwen2",
    source: {
      modelHub: {
        modelID: "Qwen/Qwen2-0.5B-Instruct-GGUF",
        filename: "qwen2-0_5b-instruct-q5_k_m.gguf",
        allowPatterns: ["*.gguf"],
        ignorePatterns: ["*.bin"],
      },
    },
    inferenceConfig: {
      flavors: [
        { name: "cpu", limits: { cpu: "2", memory: "4Gi" }, nodeSelector: { "kubernetes.io/arch": "amd64" }, params: { foo: "bar" } },
      ],
    },
  },
});

const playground = (name: string, model: string, annotations?: Record<string, string>): Obj => ({
  apiVersion: "inference.llmaz.io/v1alpha1",
  kind: "Playground",
  metadata: { name, namespace: NS, ...(annotations === undefined ? {} : { annotations }) },
  spec: {
    replicas: 2,
    modelClaim: { modelName: model, inferenceFlavors: ["cpu"] },
    backendRuntimeConfig: {
      backendName: "llamacpp",
      version: "server",
      args: ["--ctx-size", "4096"],
      envs: [{ name: "LOG_LEVEL", value: "debug" }],
      resources: { requests: { cpu: 1, memory: "2Gi" }, limits: { cpu: "2", memory: "4Gi" } },
      sharedMemorySize: "1Gi",
    },
    elasticConfig: { minReplicas: 1, maxReplicas: 3 },
  },
});

// One sample per CRD kind, with a field to read back that proves the schema kept (or defaulted) it.
const SAMPLES: { kind: string; obj: Obj; path: string; want: unknown }[] = [
  { kind: "OpenModel (modelHub name defaulted)", obj: openModel("sample-model"), path: "spec.source.modelHub.name", want: "Huggingface" },
  { kind: "OpenModel (revision defaulted)", obj: openModel("sample-model"), path: "spec.source.modelHub.revision", want: "main" },
  {
    kind: "OpenModel from a URI",
    obj: {
      apiVersion: "llmaz.io/v1alpha1",
      kind: "OpenModel",
      metadata: { name: "uri-model" },
      spec: { familyName: "llama3", source: { uri: "ollama://llama3.2" } },
    },
    path: "spec.source.uri",
    want: "ollama://llama3.2",
  },
  {
    kind: "BackendRuntime",
    obj: {
      apiVersion: "inference.llmaz.io/v1alpha1",
      kind: "BackendRuntime",
      metadata: { name: "llamacpp" },
      spec: {
        command: ["./llama-server"],
        image: "ghcr.io/ggerganov/llama.cpp",
        version: "server",
        envs: [{ name: "A", value: "b" }],
        readinessProbe: { httpGet: { path: "/health", port: 8080 } },
        recommendedConfigs: [{ name: "default", args: ["--host", "0.0.0.0"], resources: { limits: { cpu: 2 } }, sharedMemorySize: "1Gi" }],
      },
    },
    path: "spec.readinessProbe.httpGet.path",
    want: "/health",
  },
  { kind: "Playground", obj: playground("sample-pg", "sample-model"), path: "spec.backendRuntimeConfig.sharedMemorySize", want: "1Gi" },
  {
    kind: "Playground (replicas defaulted)",
    obj: {
      apiVersion: "inference.llmaz.io/v1alpha1",
      kind: "Playground",
      metadata: { name: "minimal-pg", namespace: NS },
      spec: { modelClaim: { modelName: "sample-model" } },
    },
    path: "spec.replicas",
    want: 1,
  },
  {
    kind: "WasmPlugin",
    obj: {
      apiVersion: "extensions.higress.io/v1alpha1",
      kind: "WasmPlugin",
      metadata: { name: "llm-gateway", namespace: HIGRESS_NS },
      spec: {
        url: "oci://registry.local/llm-gateway:0.1.0",
        sha256: "a".repeat(64),
        imagePullPolicy: "IfNotPresent",
        imagePullSecret: "regcred",
        phase: "STATS",
        priority: 100,
        failStrategy: "FAIL_OPEN",
        defaultConfig: { routes: [{ model: "qwen2-0-5b", fallback: ["llama3"] }], nested: { deep: [1, "two", { three: true }] } },
        defaultConfigDisable: false,
        matchRules: [
          { ingress: ["default/ai-route"], config: { x: 1 }, configDisable: false },
          { domain: ["api.example.test"], config: { y: 2 } },
          { service: ["llm-qwen2.dns"], config: {} },
        ],
      },
    },
    path: "spec.defaultConfig.nested.deep.2.three",
    want: true,
  },
  {
    kind: "McpBridge",
    obj: {
      apiVersion: "networking.higress.io/v1",
      kind: "McpBridge",
      metadata: { name: "default", namespace: HIGRESS_NS },
      spec: {
        registries: [
          { name: "llm-qwen2-0-5b", type: "dns", domain: "qwen2-0-5b-lb.llmgw-test.svc.cluster.local", port: 8080, protocol: "http" },
        ],
      },
    },
    path: "spec.registries.0.domain",
    want: "qwen2-0-5b-lb.llmgw-test.svc.cluster.local",
  },
  {
    kind: "EnvoyFilter",
    obj: {
      apiVersion: "networking.istio.io/v1alpha3",
      kind: "EnvoyFilter",
      metadata: { name: "llm-gateway-buffer", namespace: HIGRESS_NS },
      spec: {
        configPatches: [
          {
            applyTo: "LISTENER",
            match: { context: "GATEWAY" },
            patch: { operation: "MERGE", value: { per_connection_buffer_limit_bytes: 10485760 } },
          },
        ],
      },
    },
    path: "spec.configPatches.0.patch.value.per_connection_buffer_limit_bytes",
    want: 10485760,
  },
];

// Objects a cluster with the real CRDs refuses. Value errors (enum, minimum, required) come back as 422
// Invalid naming the field. Type errors and undeclared fields sent by server-side apply fail earlier, while
// the apply patch is converted to the schema's types, and kube-apiserver answers 500 with "failed to create
// typed patch object" (kubernetes/kubernetes#139253, still open in 1.36); the same type error sent as a
// create is a 422. The deploy CLI has to report both kinds as a bad manifest.
const INVALID: { name: string; obj: Obj; field: string; applyCode: 422 | 500 }[] = [
  {
    name: 'Playground with replicas "x"',
    obj: { ...playground("bad-replicas", "sample-model"), spec: { replicas: "x", modelClaim: { modelName: "sample-model" } } },
    field: "spec.replicas",
    applyCode: 500,
  },
  {
    name: "Playground with a misspelt field (modelClam)",
    obj: { ...playground("typo-pg", "sample-model"), spec: { modelClam: { modelName: "sample-model" } } },
    field: "spec.modelClam",
    applyCode: 500,
  },
  {
    name: "Playground with elasticConfig.maxReplicas 0",
    obj: { ...playground("bad-elastic", "sample-model"), spec: { elasticConfig: { maxReplicas: 0 } } },
    field: "spec.elasticConfig.maxReplicas",
    applyCode: 422,
  },
  {
    name: "OpenModel without familyName",
    obj: {
      apiVersion: "llmaz.io/v1alpha1",
      kind: "OpenModel",
      metadata: { name: "no-family" },
      spec: { source: { uri: "host:///models/x" } },
    },
    field: "spec.familyName",
    applyCode: 422,
  },
  {
    name: "OpenModel with an unknown model hub",
    obj: {
      apiVersion: "llmaz.io/v1alpha1",
      kind: "OpenModel",
      metadata: { name: "bad-hub" },
      spec: { familyName: "x", source: { modelHub: { name: "GitHub", modelID: "a/b" } } },
    },
    field: "spec.source.modelHub.name",
    applyCode: 422,
  },
  {
    name: "WasmPlugin with phase BOGUS",
    obj: {
      apiVersion: "extensions.higress.io/v1alpha1",
      kind: "WasmPlugin",
      metadata: { name: "bad-phase", namespace: HIGRESS_NS },
      spec: { url: "oci://x/y:1", phase: "BOGUS" },
    },
    field: "spec.phase",
    applyCode: 422,
  },
  {
    name: "WasmPlugin with failStrategy FAIL_SOMETIMES",
    obj: {
      apiVersion: "extensions.higress.io/v1alpha1",
      kind: "WasmPlugin",
      metadata: { name: "bad-fail", namespace: HIGRESS_NS },
      spec: { failStrategy: "FAIL_SOMETIMES" },
    },
    field: "spec.failStrategy",
    applyCode: 422,
  },
  {
    name: "OpenModel named with a dot (llmaz webhook: DNS-1123 label)",
    obj: {
      apiVersion: "llmaz.io/v1alpha1",
      kind: "OpenModel",
      metadata: { name: "qwen2.5" },
      spec: { familyName: "qwen2", source: { uri: "host:///models/x" } },
    },
    field: "metadata.name must be a DNS-1123 label",
    applyCode: 422,
  },
  {
    name: "Playground named with a dot (llmaz webhook: DNS-1123 label)",
    obj: playground("qwen2.5", "sample-model"),
    field: "metadata.name must be a DNS-1123 label",
    applyCode: 422,
  },
  {
    name: "Playground with a limit below its request (llmaz webhook)",
    obj: {
      ...playground("low-limit", "sample-model"),
      spec: {
        modelClaim: { modelName: "sample-model" },
        backendRuntimeConfig: { resources: { requests: { cpu: "4", memory: "16Gi" }, limits: { cpu: "4000m", memory: "16G" } } },
      },
    },
    field: "spec.backendRuntimeConfig.resources",
    applyCode: 422,
  },
  {
    name: "EnvoyFilter with targetRefs (Higress's EnvoyFilter has none)",
    obj: {
      apiVersion: "networking.istio.io/v1alpha3",
      kind: "EnvoyFilter",
      metadata: { name: "bad-target", namespace: HIGRESS_NS },
      spec: { targetRefs: [{ kind: "Gateway", name: "x" }] },
    },
    field: "spec.targetRefs",
    applyCode: 500,
  },
  {
    name: "EnvoyFilter matching a listener and a route configuration at once (oneOf)",
    obj: {
      apiVersion: "networking.istio.io/v1alpha3",
      kind: "EnvoyFilter",
      metadata: { name: "bad-match", namespace: HIGRESS_NS },
      spec: {
        configPatches: [
          {
            applyTo: "HTTP_ROUTE",
            match: { listener: { name: "x" }, routeConfiguration: { vhost: { route: { name: "r" } } } },
            patch: { operation: "MERGE", value: {} },
          },
        ],
      },
    },
    field: "spec.configPatches[0].match",
    applyCode: 422,
  },
  {
    name: "EnvoyFilter with a field the match does not declare (routeConfiguration.vhost.route.nam)",
    obj: {
      apiVersion: "networking.istio.io/v1alpha3",
      kind: "EnvoyFilter",
      metadata: { name: "bad-route", namespace: HIGRESS_NS },
      spec: {
        configPatches: [
          {
            applyTo: "HTTP_ROUTE",
            match: { routeConfiguration: { vhost: { route: { nam: "r" } } } },
            patch: { operation: "MERGE", value: {} },
          },
        ],
      },
    },
    field: "nam",
    applyCode: 500,
  },
  {
    name: "McpBridge with a port that is not a number",
    obj: {
      apiVersion: "networking.higress.io/v1",
      kind: "McpBridge",
      metadata: { name: "bad-port", namespace: HIGRESS_NS },
      spec: { registries: [{ name: "a", type: "dns", domain: "a.b", port: "http" }] },
    },
    field: "spec.registries[0].port",
    applyCode: 500,
  },
];

before(async () => {
  env = await startKubeEnv();
  console.log(`kube env (${DEFAULT_KUBE_VERSION}) ready in ${env.startMs} ms at ${env.server}`);
  kc = new KubeConfig();
  kc.loadFromFile(env.kubeconfigPath);
  objects = KubernetesObjectApi.makeApiClient(kc);
  custom = kc.makeApiClient(CustomObjectsApi);
  core = kc.makeApiClient(CoreV1Api);
  for (const name of [NS, HIGRESS_NS]) await apply({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  controller = await startFakeController(env.kubeconfigPath, {
    progressDelayMs: 50,
    readyDelayMs: 150,
    watchTimeoutSeconds: 1, // so the tests see the controller survive the server ending its watch
    log: (message) => {
      const round = /^watch round (\d+) /.exec(message)?.[1];
      if (round !== undefined) watchRounds = Number(round);
    },
  });
});

after(async () => {
  await controller?.stop();
  await env?.stop();
});

describe("kube env", () => {
  it("serves the pinned Kubernetes release", async () => {
    const version = await kc.makeApiClient(VersionApi).getCode();
    assert.equal(version.gitVersion, process.env["KUBE_VERSION"] ?? DEFAULT_KUBE_VERSION);
  });

  it("writes a kubeconfig whose admin token is accepted", async () => {
    const namespaces = await core.listNamespace();
    const names = namespaces.items.map((n) => n.metadata?.name);
    assert.ok(names.includes("default") && names.includes(NS), `namespaces: ${names.join(", ")}`);
  });
});

describe("CRDs accept the objects the deploy CLI applies (server-side apply)", () => {
  for (const sample of SAMPLES) {
    it(`${sample.kind}: ${sample.path} reads back as ${JSON.stringify(sample.want)}`, async () => {
      const applied = await apply(sample.obj);
      assert.deepEqual(pick(applied, sample.path), sample.want);
      const managers = (applied.metadata?.managedFields ?? []).map((f) => `${f.manager}/${f.operation}`);
      assert.ok(managers.includes(`${FIELD_MANAGER}/Apply`), `managedFields: ${managers.join(", ")}`);
      assert.deepEqual(pick(await read(sample.obj), sample.path), sample.want);
    });
  }

  it("re-applying the same object changes nothing (resourceVersion stays)", async () => {
    const obj = SAMPLES.find((s) => s.kind === "WasmPlugin")?.obj;
    assert.ok(obj !== undefined);
    const first = await apply(obj);
    const second = await apply(obj);
    assert.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion);
  });
});

describe("CRDs reject malformed objects", () => {
  for (const bad of INVALID) {
    it(`${bad.name}: server-side apply -> ${bad.applyCode} naming ${bad.field}`, async () => {
      const err = await expectApiError(apply(bad.obj));
      assert.equal(err.code, bad.applyCode, String(err.body));
      const status = JSON.parse(String(err.body)) as { reason?: string; message?: string };
      if (bad.applyCode === 422) assert.equal(status.reason, "Invalid");
      else assert.match(status.message ?? "", /^failed to create typed patch object/);
      assert.ok(status.message?.includes(bad.field), `message: ${status.message}`);
    });
  }

  it('Playground with replicas "x": create -> 422 Invalid naming spec.replicas', async () => {
    const bad = INVALID[0]?.obj;
    assert.ok(bad !== undefined);
    const err = await expectApiError(objects.create(bad));
    assert.equal(err.code, 422, String(err.body));
    const status = JSON.parse(String(err.body)) as { reason?: string; message?: string };
    assert.equal(status.reason, "Invalid");
    assert.match(status.message ?? "", /spec\.replicas/);
  });
});

describe("fake llmaz controller", () => {
  it("makes a Playground Available (PlaygroundReady) after Progressing (Pending), with its -lb Service", async () => {
    await apply(openModel("qwen2-0-5b"));
    const pg = playground("qwen2-0-5b", "qwen2-0-5b");
    await apply(pg);
    const ready = await waitFor(pg, "Available=True", (o) => conditionOf(o, "Available")?.status === "True");
    assert.equal(conditionOf(ready, "Available")?.reason, REASON_READY);
    assert.equal(conditionOf(ready, "Progressing")?.status, "True");
    assert.equal(conditionOf(ready, "Progressing")?.reason, REASON_PENDING);
    assert.equal(pick(ready, "status.replicas"), 2);

    const svc = await core.readNamespacedService({ namespace: NS, name: "qwen2-0-5b-lb" });
    assert.equal(svc.spec?.type, "ClusterIP");
    assert.deepEqual(
      svc.spec?.ports?.map((p) => [p.name, p.port]),
      [["http", BACKEND_PORT]],
    );

    // The scale subresource is wired like llmaz's (spec.replicas / status.replicas / status.selector).
    const scale = (await custom.getNamespacedCustomObjectScale({
      group: "inference.llmaz.io",
      version: "v1alpha1",
      namespace: NS,
      plural: "playgrounds",
      name: "qwen2-0-5b",
    })) as { spec?: { replicas?: number }; status?: { replicas?: number; selector?: string } };
    assert.equal(scale.spec?.replicas, 2);
    assert.equal(scale.status?.replicas, 2);
    assert.match(scale.status?.selector ?? "", /qwen2-0-5b/);
  });

  it("aborts a Playground annotated to fail, with the annotation as message", async () => {
    const message = "no GPU of type H100 in this cluster";
    const pg = playground("doomed", "qwen2-0-5b", { [FAIL_ANNOTATION]: message });
    await apply(pg);
    const failed = await waitFor(pg, "Progressing=False", (o) => conditionOf(o, "Progressing")?.status === "False");
    assert.equal(conditionOf(failed, "Progressing")?.reason, REASON_ABORT);
    assert.equal(conditionOf(failed, "Progressing")?.message, message);
    assert.equal(conditionOf(failed, "Available"), undefined);
  });

  it("waits for a missing OpenModel like llmaz, then proceeds once it exists", async () => {
    const pg = playground("late-model", "late-model");
    await apply(pg);
    const waiting = await waitFor(pg, "AbortProcessing", (o) => conditionOf(o, "Progressing")?.reason === REASON_ABORT);
    assert.equal(conditionOf(waiting, "Progressing")?.message, MESSAGE_MODEL_MISSING);
    await apply(openModel("late-model"));
    const ready = await waitFor(pg, "Available=True", (o) => conditionOf(o, "Available")?.status === "True");
    assert.equal(conditionOf(ready, "Progressing")?.status, "True");
  });

  it("keeps reconciling after the server ends its watch (re-lists and watches again)", async () => {
    const deadline = Date.now() + WAIT_MS;
    const roundsBefore = watchRounds;
    while (watchRounds < roundsBefore + 2) {
      assert.ok(Date.now() < deadline, `still in watch round ${watchRounds}`);
      await sleep(POLL_MS);
    }
    const pg = playground("after-rewatch", "qwen2-0-5b");
    await apply(pg);
    await waitFor(pg, "Available=True", (o) => conditionOf(o, "Available")?.status === "True");
  });

  it("deletes the -lb Service when its Playground goes (no garbage collector runs here)", async () => {
    const pg = playground("short-lived", "qwen2-0-5b");
    await apply(pg);
    await waitFor(pg, "Available=True", (o) => conditionOf(o, "Available")?.status === "True");
    await core.readNamespacedService({ namespace: NS, name: "short-lived-lb" });
    await objects.delete(pg);
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      try {
        await core.readNamespacedService({ namespace: NS, name: "short-lived-lb" });
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) break;
        throw err;
      }
      assert.ok(Date.now() < deadline, "Service short-lived-lb still there");
      await sleep(POLL_MS);
    }
  });
});
