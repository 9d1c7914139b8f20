// Pure rendering: deployment file -> Kubernetes objects, grouped by concern, and their YAML. No I/O, no clock, no
// environment: what varies (is HF_TOKEN set?) comes in as an argument, and the token itself never does.
import { stringify } from 'yaml';
import { renderFallback } from './fallback.ts';
import {
  ANNOTATION_REGISTRIES_PREFIX,
  BACKEND_NAME,
  GPU_FLAVOR,
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
} from './names.ts';
import { header, higressIngress, type K8sObject } from './objects.ts';
import { pluginConfig } from './plugin-config.ts';
import { routingHeader, type DeploySpec, type ModelSpec } from './spec.ts';

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
}

export function openModel(spec: DeploySpec, m: ModelSpec): K8sObject {
  const modelHub: Record<string, unknown> = { name: m.hub, modelID: m.modelID };
  if (m.revision !== undefined) modelHub['revision'] = m.revision;
  return {
    ...header(KINDS.OpenModel, spec, m.name),
    spec: {
      familyName: m.familyName,
      source: { modelHub },
      inferenceConfig: { flavors: [{ name: GPU_FLAVOR, limits: { [GPU_RESOURCE]: m.gpus } }] },
    },
  };
}

export function playground(spec: DeploySpec, m: ModelSpec): K8sObject {
  // GPUs live on the OpenModel flavor: llmaz overwrites accelerator resources given here with the flavor's.
  const backend: Record<string, unknown> = { backendName: BACKEND_NAME };
  if (m.backendVersion !== undefined) backend['version'] = m.backendVersion;
  if (m.args.length > 0) backend['args'] = [...m.args];
  if (m.resources !== undefined) backend['resources'] = m.resources;
  return {
    ...header(KINDS.Playground, spec, m.name, spec.namespace),
    spec: {
      replicas: m.replicas,
      modelClaim: { modelName: m.name, inferenceFlavors: [GPU_FLAVOR] },
      backendRuntimeConfig: backend,
    },
  };
}

export function registries(spec: DeploySpec): Record<string, unknown>[] {
  return spec.models.map((m) => ({
    name: registryName(m.name),
    domain: `${modelServiceName(m.name)}.${spec.namespace}.svc.cluster.local`,
    port: MODEL_SERVICE_PORT,
    type: 'dns',
    protocol: 'http',
  }));
}

/** The annotation recording which registries of the shared McpBridge belong to this deployment. */
export function registriesAnnotation(spec: DeploySpec): [string, string] {
  return [`${ANNOTATION_REGISTRIES_PREFIX}${spec.name}`, spec.models.map((m) => registryName(m.name)).join(',')];
}

export function mcpBridge(spec: DeploySpec): K8sObject {
  const h = header(KINDS.McpBridge, spec, MCP_BRIDGE_NAME, spec.gateway.namespace);
  const [key, value] = registriesAnnotation(spec);
  return { ...h, metadata: { ...h.metadata, annotations: { [key]: value } }, spec: { registries: registries(spec) } };
}

export function modelIngress(spec: DeploySpec, m: ModelSpec): K8sObject {
  return higressIngress(spec, m.route, {
    'higress.io/destination': registryDestination(m.name),
    [`higress.io/exact-match-header-${routingHeader(spec)}`]: m.name,
  });
}

export function wasmPlugin(spec: DeploySpec): K8sObject {
  const s: Record<string, unknown> = { url: spec.plugin.url };
  if (spec.plugin.sha256 !== undefined) s['sha256'] = spec.plugin.sha256;
  if (spec.plugin.imagePullPolicy !== undefined) s['imagePullPolicy'] = spec.plugin.imagePullPolicy;
  if (spec.plugin.imagePullSecret !== undefined) s['imagePullSecret'] = spec.plugin.imagePullSecret;
  s['phase'] = PLUGIN_PHASE;
  s['priority'] = PLUGIN_PRIORITY;
  s['failStrategy'] = PLUGIN_FAIL_STRATEGY;
  s['defaultConfig'] = pluginConfig(spec);
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
    `${gated.join(', ')} needs a Hugging Face token: run apply with $${HF_TOKEN_ENV} set, or create ${ref} yourself:`,
    `  kubectl -n ${spec.namespace} create secret generic ${HF_SECRET_NAME} --from-literal=${HF_SECRET_KEY}=<token>`,
  ];
}

/** Every object of the deployment, grouped by concern, in apply order. Groups without objects are left out. */
export function renderGroups(spec: DeploySpec, opts: RenderOptions): Group[] {
  const groups: Group[] = [
    {
      file: '10-models.yaml',
      notes: [
        'llmaz models: an OpenModel (cluster-scoped) and a Playground per model; llmaz serves each as Service <model>-lb:8080.',
        ...secretNotes(spec, opts),
      ],
      objects: spec.models.flatMap((m) => [openModel(spec, m), playground(spec, m)]),
    },
    {
      file: '20-routes.yaml',
      notes: [
        `Higress routes: a dns registry per model in McpBridge ${MCP_BRIDGE_NAME}, and an Ingress per model matching the ${routingHeader(spec)} header.`,
        `McpBridge ${MCP_BRIDGE_NAME} is shared (the Higress console writes to it too): the deploy CLI merges these registries`,
        'into it, while kubectl apply of this file would replace its whole registry list.',
      ],
      objects: [mcpBridge(spec), ...spec.models.map((m) => modelIngress(spec, m))],
    },
    {
      file: '30-fallback.yaml',
      notes: [
        `Fallback, as Higress does it natively: on ${spec.fallback.on.join('/')} the custom_response filter replays the request`,
        'with x-higress-fallback-from: <route>, which the <route>.fallback Ingress matches (see deploy-scripts/fallback.ts).',
      ],
      objects: renderFallback(spec),
    },
    {
      file: '40-plugin.yaml',
      notes: [
        'The llm-gateway Wasm plugin; defaultConfig is derived from the deployment file.',
        'plugin.url may also be http(s)://.../plugin.wasm, the form the Higress console\'s URL field takes',
        '(manifests/seed/alternatives/40-plugin-http-url.yaml shows it).',
      ],
      objects: [wasmPlugin(spec)],
    },
  ];
  return groups.filter((g) => g.objects.length > 0);
}

export function renderObjects(spec: DeploySpec, opts: RenderOptions): K8sObject[] {
  return renderGroups(spec, opts).flatMap((g) => g.objects);
}

export function toYaml(o: unknown): string {
  return stringify(o, { lineWidth: 0, aliasDuplicateObjects: false });
}

export function formatGroup(spec: DeploySpec, g: Group): string {
  const lines = [`# llm-gateway deployment "${spec.name}" (generated by deploy-scripts/cli.ts; edit the deployment file instead).`];
  for (const n of g.notes) lines.push(`# ${n}`);
  let out = `${lines.join('\n')}\n`;
  for (const o of g.objects) out += `---\n${toYaml(o)}`;
  return out;
}

/** The whole deployment as one multi-document YAML stream, deterministic for a given file. */
export function renderYaml(spec: DeploySpec, opts: RenderOptions): string {
  return renderGroups(spec, opts)
    .map((g) => formatGroup(spec, g))
    .join('');
}
