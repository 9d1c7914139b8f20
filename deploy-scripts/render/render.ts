// Pure rendering: deployment file -> Kubernetes objects, grouped by concern, and their YAML. No I/O, no clock, no
// environment: what varies (is HF_TOKEN set?) comes in as an argument, and the token itself never does.
import { Document, isMap, isScalar, stringify } from "yaml";
import { affinityFilter, hashByAnnotation, replicaService } from "./affinity.ts";
import { envoyBootstrap, type EnvoyRenderOptions } from "./envoy/bootstrap.ts";
import { renderFallback } from "./fallback.ts";
import {
  ANNOTATION_REGISTRIES_PREFIX,
  BACKEND_NAME,
  GPU_RESOURCE,
  HF_SECRET_KEY,
  HF_SECRET_NAME,
  HF_TOKEN_ENV,
  KINDS,
  MCP_BRIDGE_NAME,
  MODEL_SERVICE_PORT,
  PLUGIN_FAIL_STRATEGY,
  PLUGIN_NAME,
  PLUGIN_PHASE,
  PLUGIN_PRIORITY,
  modelServiceName,
  registryDestination,
  registryName,
  replicaServiceName,
} from "../names.ts";
import { header, higressIngress, type K8sObject } from "./objects.ts";
import { PICKED_HOST_HEADER, PREFIX_KEY_HEADER, pluginConfig } from "./plugin-config.ts";
import { quotaServiceObjects } from "./quota-service.ts";
import { routingHeader, type DeploySpec, type ModelSpec } from "../spec.ts";

export interface RenderOptions {
  /** Whether HF_TOKEN is set where apply runs: only changes the note about the Secret. */
  hfTokenSet: boolean;
}

export interface Group {
  /** File name under manifests/<deployment>/. */
  file: string;
  /** Comment lines printed above the objects. */
  notes: string[];
  objects: K8sObject[];
  /** Comments printed above fields of the objects. */
  comments?: FieldComment[];
}

/** A comment above one field of the objects of a kind, e.g. why a WasmPlugin's failStrategy is what it is. */
export interface FieldComment {
  kind: string;
  path: string[];
  lines: string[];
  /** Only when the field has this value. */
  when?: unknown;
}

export function openModel(spec: DeploySpec, m: ModelSpec): K8sObject {
  const modelHub: Record<string, unknown> = { name: m.hub, modelID: m.modelID };
  if (m.revision !== undefined) modelHub["revision"] = m.revision;
  return {
    ...header(KINDS.OpenModel, spec, m.name),
    spec: { familyName: m.familyName, source: { modelHub } },
  };
}

export function playground(spec: DeploySpec, m: ModelSpec): K8sObject {
  // GPUs are asked for here, as requests and limits, like the reference scenario's Playgrounds; no OpenModel
  // flavor, which would also put the annotation llmaz.io/inference-service-flavors on the pods. llmaz merges these
  // resources over the BackendRuntime's recommended ones (vllm: cpu 4, memory 8Gi).
  const backend: Record<string, unknown> = { backendName: BACKEND_NAME };
  if (m.backendVersion !== undefined) backend["version"] = m.backendVersion;
  if (m.args.length > 0) backend["args"] = [...m.args];
  backend["resources"] = {
    requests: { ...m.resources?.requests, [GPU_RESOURCE]: m.gpus },
    limits: { ...m.resources?.limits, [GPU_RESOURCE]: m.gpus },
  };
  return {
    ...header(KINDS.Playground, spec, m.name, spec.namespace),
    spec: {
      replicas: m.replicas,
      modelClaim: { modelName: m.name },
      backendRuntimeConfig: backend,
    },
  };
}

// A model with affinity is reached through its headless Service (one DNS address per replica), so that the
// registry's Envoy cluster (STRICT_DNS) has a host per replica to hash onto; see affinity.ts.
export function registries(spec: DeploySpec): Record<string, unknown>[] {
  return spec.models.map((m) => ({
    name: registryName(m.name),
    domain: `${m.affinity !== undefined ? replicaServiceName(m.name) : modelServiceName(m.name)}.${spec.namespace}.svc.cluster.local`,
    port: MODEL_SERVICE_PORT,
    type: "dns",
    protocol: "http",
  }));
}

/** The annotation recording which registries of the shared McpBridge belong to this deployment. */
export function registriesAnnotation(spec: DeploySpec): [string, string] {
  return [`${ANNOTATION_REGISTRIES_PREFIX}${spec.name}`, spec.models.map((m) => registryName(m.name)).join(",")];
}

export function mcpBridge(spec: DeploySpec): K8sObject {
  const h = header(KINDS.McpBridge, spec, MCP_BRIDGE_NAME, spec.gateway.namespace);
  const [key, value] = registriesAnnotation(spec);
  return { ...h, metadata: { ...h.metadata, annotations: { [key]: value } }, spec: { registries: registries(spec) } };
}

export function modelIngress(spec: DeploySpec, m: ModelSpec): K8sObject {
  return higressIngress(spec, m.route, {
    "higress.io/destination": registryDestination(m.name),
    [`higress.io/exact-match-header-${routingHeader(spec)}`]: m.name,
    ...(m.affinity !== undefined ? hashByAnnotation() : {}),
  });
}

// Why the WasmPlugin says what it says; printed above the fields in the rendered YAML.
export const WASM_PLUGIN_COMMENTS: FieldComment[] = [
  {
    kind: KINDS.WasmPlugin.kind,
    path: ["spec", "failStrategy"],
    when: "FAIL_OPEN",
    lines: [
      "FAIL_OPEN: Higress's WasmPlugin offers only FAIL_CLOSE and FAIL_OPEN; its istio does not pass on Envoy's",
      "FAIL_RELOAD, which would replace a failed VM (higress-group/higress#4748; higress-group/istio#58 fixed passing",
      "FAIL_OPEN). While the VM is down, requests skip the plugin: the gateway's other routes and plugins keep working",
      "(FAIL_CLOSE would answer 503 to every request the plugin applies to, i.e. all of the gateway's). Model requests",
      "and GET /v1/models do not: without the routing header they match no model route (404, unless another route takes",
      "them); a routing header a client sends itself is not removed then and reaches that model unchecked and uncounted.",
    ],
  },
  {
    kind: KINDS.WasmPlugin.kind,
    path: ["spec", "defaultConfig", "fallback", "mechanism"],
    when: "envoy",
    lines: [
      "envoy: the gateway, not the plugin, sends a failed request again, so answers stream. In Higress that is",
      "Higress's native replay (30-fallback.yaml: custom_response redirects to the <route>.fallback Ingress), since a",
      "WasmPlugin cannot place the plugin's attempt stage (an upstream filter of Envoy's router). The plugin's part is",
      "to rewrite `model` on the replayed request, which it recognises by x-higress-fallback-from, and to count it.",
    ],
  },
];

export function wasmPlugin(spec: DeploySpec): K8sObject {
  const s: Record<string, unknown> = { url: spec.plugin.url };
  if (spec.plugin.sha256 !== undefined) s["sha256"] = spec.plugin.sha256;
  if (spec.plugin.imagePullPolicy !== undefined) s["imagePullPolicy"] = spec.plugin.imagePullPolicy;
  if (spec.plugin.imagePullSecret !== undefined) s["imagePullSecret"] = spec.plugin.imagePullSecret;
  s["phase"] = PLUGIN_PHASE;
  s["priority"] = PLUGIN_PRIORITY;
  s["failStrategy"] = PLUGIN_FAIL_STRATEGY;
  s["defaultConfig"] = pluginConfig(spec);
  return { ...header(KINDS.WasmPlugin, spec, PLUGIN_NAME, spec.gateway.namespace), spec: s };
}

function secretNotes(spec: DeploySpec, opts: RenderOptions): string[] {
  const ref = `Secret ${spec.namespace}/${HF_SECRET_NAME} (key ${HF_SECRET_KEY})`;
  if (opts.hfTokenSet) {
    return [`${ref} is created by apply from $${HF_TOKEN_ENV}; its value is never printed or written to disk.`];
  }
  const gated = spec.models.filter((m) => m.needsHfToken).map((m) => m.name);
  if (gated.length === 0) return [];
  return [
    `${gated.join(", ")} needs a Hugging Face token: run apply with $${HF_TOKEN_ENV} set, or create ${ref} yourself:`,
    `  kubectl -n ${spec.namespace} create secret generic ${HF_SECRET_NAME} --from-literal=${HF_SECRET_KEY}=<token>`,
  ];
}

/**
 * Every Kubernetes object of the deployment, grouped by concern, in apply order. Groups without objects are left
 * out. gateway.type envoy: only the llmaz models (the gateway is the bootstrap from renderEnvoyYaml).
 */
export function renderGroups(spec: DeploySpec, opts: RenderOptions): Group[] {
  const withAffinity = spec.models.filter((m) => m.affinity !== undefined);
  const models: Group = {
    file: "10-models.yaml",
    notes: [
      "llmaz models: an OpenModel (cluster-scoped) and a Playground per model; llmaz serves each as Service <model>-lb:8080.",
      ...(withAffinity.length > 0
        ? [
            `Prefix affinity (${withAffinity.map((m) => m.name).join(", ")}): a headless Service <model>-ep over the same pods, one DNS`,
            "address per ready replica, which the gateway's cluster for the model resolves so that it can hash onto each replica.",
          ]
        : []),
      ...secretNotes(spec, opts),
    ],
    objects: spec.models.flatMap((m) => [
      openModel(spec, m),
      playground(spec, m),
      ...(m.affinity !== undefined ? [replicaService(spec, m)] : []),
    ]),
  };
  const quotaService: Group = {
    file: "35-quota-service.yaml",
    notes: [
      "Token quotas, mode cluster: envoyproxy/ratelimit (gRPC on 8081) and its Redis; every gateway replica charges the",
      "same counters. Its configuration declares only the domain: each limit travels with the plugin's request.",
    ],
    objects: quotaServiceObjects(spec),
  };
  if (spec.gateway.type === "envoy") return [models, quotaService].filter((g) => g.objects.length > 0);
  const groups: Group[] = [
    models,
    {
      file: "20-routes.yaml",
      notes: [
        `Higress routes: a dns registry per model in McpBridge ${MCP_BRIDGE_NAME}, and an Ingress per model matching the ${routingHeader(spec)} header.`,
        `McpBridge ${MCP_BRIDGE_NAME} is shared (the Higress console writes to it too): the deploy CLI merges these registries`,
        "into it, while kubectl apply of this file would replace its whole registry list.",
      ],
      objects: [mcpBridge(spec), ...spec.models.map((m) => modelIngress(spec, m))],
    },
    {
      file: "25-affinity.yaml",
      notes: [
        `Prefix affinity: the Ingresses hash on ${PREFIX_KEY_HEADER} (higress.io/upstream-hash-by, which Higress turns into the`,
        "DestinationRule's consistentHash); these EnvoyFilters add what Istio's API has no field for: the bounded load",
        "(hash_balance_factor), outlier detection, and retries that skip the replica that failed (see deploy-scripts/render/affinity.ts).",
        ...(withAffinity.some((m) => m.affinity?.loadAware !== undefined)
          ? [
              `loadAware: the cluster patch sets load_balancing_policy instead: Envoy's override-host policy sends a request to the`,
              `replica the plugin names in ${PICKED_HOST_HEADER}, else to the same bounded-load ring. Needs Envoy >= 1.35; not`,
              "verified on Higress's Envoy build (docs/deploy-replicas-quotas.md).",
            ]
          : []),
      ],
      objects: withAffinity.map((m) => affinityFilter(spec, m)),
    },
    {
      file: "30-fallback.yaml",
      notes: [
        `Fallback, as Higress does it natively: on ${spec.fallback.on.join("/")} the custom_response filter replays the request`,
        "with x-higress-fallback-from: <route>, which the <route>.fallback Ingress matches (see deploy-scripts/render/fallback.ts).",
        "This is the fallback in Higress (the backup's answer streams); the plugin rewrites the replay's model.",
      ],
      objects: renderFallback(spec),
    },
    quotaService,
    {
      file: "40-plugin.yaml",
      notes: [
        "The llm-gateway Wasm plugin; defaultConfig is derived from the deployment file.",
        "plugin.url may also be http(s)://.../plugin.wasm, the form the Higress console's URL field takes",
        "(manifests/seed/alternatives/40-plugin-http-url.yaml shows it).",
      ],
      objects: [wasmPlugin(spec)],
      comments: WASM_PLUGIN_COMMENTS,
    },
  ];
  return groups.filter((g) => g.objects.length > 0);
}

export function renderObjects(spec: DeploySpec, opts: RenderOptions): K8sObject[] {
  return renderGroups(spec, opts).flatMap((g) => g.objects);
}

export function toYaml(o: unknown, comments: FieldComment[] = []): string {
  if (comments.length === 0) return stringify(o, { lineWidth: 0, aliasDuplicateObjects: false });
  const doc = new Document(o, { aliasDuplicateObjects: false });
  for (const c of comments) {
    const parent = doc.getIn(c.path.slice(0, -1), true);
    if (!isMap(parent)) continue;
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === c.path[c.path.length - 1]);
    if (pair === undefined || !isScalar(pair.key)) continue;
    if (c.when !== undefined && !(isScalar(pair.value) && pair.value.value === c.when)) continue;
    pair.key.commentBefore = c.lines.map((l) => ` ${l}`).join("\n");
  }
  return doc.toString({ lineWidth: 0 });
}

export function formatGroup(spec: DeploySpec, g: Group): string {
  const lines = [`# llm-gateway deployment "${spec.name}" (generated by deploy-scripts/cli.ts; edit the deployment file instead).`];
  for (const n of g.notes) lines.push(`# ${n}`);
  let out = `${lines.join("\n")}\n`;
  for (const o of g.objects)
    out += `---\n${toYaml(
      o,
      (g.comments ?? []).filter((c) => c.kind === o.kind),
    )}`;
  return out;
}

/** The whole deployment as one multi-document YAML stream, deterministic for a given file. */
export function renderYaml(spec: DeploySpec, opts: RenderOptions): string {
  return renderGroups(spec, opts)
    .map((g) => formatGroup(spec, g))
    .join("");
}

/** gateway.type envoy: the Envoy bootstrap, one YAML document for `envoy -c`. */
export function renderEnvoyYaml(spec: DeploySpec, opts: EnvoyRenderOptions = {}): string {
  const sha = spec.plugin.sha256 !== undefined ? ` (sha256 ${spec.plugin.sha256})` : "";
  const lines = [
    `llm-gateway deployment "${spec.name}" for upstream Envoy (generated by deploy-scripts/cli.ts; edit the deployment file instead).`,
    "Run: envoy -c <this file>, Envoy >= 1.39 with the V8 Wasm runtime (e.g. the envoyproxy/envoy:v1.39.3 image).",
    `Listens on :${spec.gateway.listenPort}${spec.gateway.host !== undefined ? ` for Host ${spec.gateway.host}` : ""}; admin and /stats/prometheus on 127.0.0.1:${spec.gateway.adminPort}.`,
    `Its clusters are llmaz's Services <model>-lb.${spec.namespace}.svc.cluster.local:8080: run it where cluster DNS resolves them.`,
    `The plugin: ${spec.plugin.url}${sha}, as a request stage and, for models with fallbacks, an attempt stage`,
    "(an upstream filter of the router that renames `model` for the attempts that go to a backup).",
  ];
  return `${lines.map((l) => `# ${l}`).join("\n")}\n${toYaml(envoyBootstrap(spec, opts))}`;
}
