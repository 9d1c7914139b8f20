// Every name, label, API version and default the deploy CLI uses, in one place: the renderer, the cluster
// commands and the tests all read them from here.

export const FIELD_MANAGER = "llm-gateway-deploy";

export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_DEPLOYMENT = "llm-gateway.io/deployment";
/** On the shared McpBridge: which registries each deployment put there (value: comma-separated names). */
export const ANNOTATION_REGISTRIES_PREFIX = "registries.llm-gateway.io/";

/** llmaz pod label naming the OpenModel a pod serves. */
export const LABEL_LLMAZ_MODEL = "llmaz.io/model-name";

export const DEFAULT_MODELS_NAMESPACE = "default";
export const DEFAULT_GATEWAY_NAMESPACE = "higress-system";
export const DEFAULT_INGRESS_CLASS = "higress";
export const DEFAULT_GATEWAY_SERVICE = "higress-gateway";
export const DEFAULT_MODEL_HUB = "Huggingface";
export const DEFAULT_ROUTING_HEADER = "x-higress-llm-model";
/** gateway.type envoy: the listener's port and the admin port (Envoy's customary ones). */
export const DEFAULT_ENVOY_LISTEN_PORT = 10000;
export const DEFAULT_ENVOY_ADMIN_PORT = 9901;
export const DEFAULT_FALLBACK_ON: readonly string[] = ["5xx"];
/** Bytes the gateway buffers for a fallback replay when neither fallback.maxRequestBytes nor plugin.config.maxBodyBytes says. */
export const DEFAULT_FALLBACK_MAX_REQUEST_BYTES = 10 * 1024 * 1024;

export const HF_TOKEN_ENV = "HF_TOKEN";
export const HF_SECRET_NAME = "modelhub-secret";
export const HF_SECRET_KEY = "HF_TOKEN";

export const BACKEND_NAME = "vllm";
/** LeaderWorkerSet's pod labels, which llmaz's `<model>-lb` Service selects by: the set's name and the leader (index 0). */
export const LABEL_LWS_NAME = "leaderworkerset.sigs.k8s.io/name";
export const LABEL_LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index";
export const GPU_RESOURCE = "nvidia.com/gpu";
/** llmaz's per-Playground Service `<model>-lb` listens here; vLLM serves on it too. */
export const MODEL_SERVICE_PORT = 8080;

export const MCP_BRIDGE_NAME = "default";

// Prefix affinity (models[].affinity). Defaults: the plugin's (prefixAffinity.prefixBytes) and a bounded-load
// factor of 1.25 (no replica takes more than 125% of the average load).
export const DEFAULT_AFFINITY_LOAD_FACTOR = 1.25;
export const DEFAULT_AFFINITY_PREFIX_BYTES = 2048;
/** Suffix of the EnvoyFilter (Higress) that sets a model's cluster's bounded load, outlier detection and retry predicate. */
export const AFFINITY_FILTER_SUFFIX = ".affinity";

// Token quotas in mode cluster (quotas.service.deploy: true): envoyproxy/ratelimit and its Redis, in the models'
// namespace. The image is the commit the tests build the service from (tests/quota/build-ratelimit.sh pins the Go
// module's pseudo-version v1.4.1-0.20260122083618-3fb702589d36; the project's CI pushes an image per main commit,
// tagged with the commit's first 8 hex digits), so the cluster runs what the tests ran.
export const RATELIMIT_NAME = "llm-gateway-ratelimit";
export const RATELIMIT_IMAGE = "envoyproxy/ratelimit:3fb70258";
export const RATELIMIT_GRPC_PORT = 8081;
export const RATELIMIT_HTTP_PORT = 8080;
export const RATELIMIT_CONFIG_NAME = "llm-gateway-ratelimit-config";
export const REDIS_NAME = "llm-gateway-redis";
export const REDIS_IMAGE = "redis:7-alpine";
export const REDIS_PORT = 6379;
export const PLUGIN_NAME = "llm-gateway";
// AUTHN, priority 900: the slot of Higress's own model-router, ahead of the AI plugins in later phases
// (see deploy-scripts/oci/spec.yaml), so the route and the body's model are settled before they run.
export const PLUGIN_PHASE = "AUTHN";
export const PLUGIN_PRIORITY = 900;
// FAIL_OPEN, the better of Higress's two (no FAIL_RELOAD there): why is printed above the field in the rendered
// WasmPlugin (render.ts, WASM_PLUGIN_COMMENTS).
export const PLUGIN_FAIL_STRATEGY = "FAIL_OPEN";

export const FALLBACK_FROM_HEADER = "x-higress-fallback-from";
export const FALLBACK_INGRESS_SUFFIX = ".fallback";
export const GLOBAL_CUSTOM_RESPONSE_FILTER = "llm-gateway-global-custom-response";

// Higress's gateway as its Helm chart names it, and our addition to its Envoy bootstrap (manifests/higress-bootstrap/).
export const HIGRESS_GATEWAY_DEPLOYMENT = "higress-gateway";
export const HIGRESS_GATEWAY_CONTAINER = "higress-gateway";
export const BOOTSTRAP_CONFIGMAP_NAME = "llm-gateway-bootstrap";

export const HELM = {
  higressRepoName: "higress.io",
  higressRepoUrl: "https://higress.io/helm-charts",
  higressChart: "higress.io/higress",
  llmazChart: "oci://registry-1.docker.io/inftyai/llmaz",
  llmazVersion: "0.0.10",
  llmazNamespace: "llmaz-system",
} as const;

export type Installer = "llmaz" | "higress" | "kubernetes";

/** The kinds the CLI writes, with what a user must install when the API server does not know one. */
export interface KindInfo {
  readonly apiVersion: string;
  readonly kind: string;
  /** CustomResourceDefinition name, or '' for built-in kinds. */
  readonly crd: string;
  readonly namespaced: boolean;
  readonly installer: Installer;
}

export const KINDS = {
  Secret: { apiVersion: "v1", kind: "Secret", crd: "", namespaced: true, installer: "kubernetes" },
  OpenModel: { apiVersion: "llmaz.io/v1alpha1", kind: "OpenModel", crd: "openmodels.llmaz.io", namespaced: false, installer: "llmaz" },
  Playground: {
    apiVersion: "inference.llmaz.io/v1alpha1",
    kind: "Playground",
    crd: "playgrounds.inference.llmaz.io",
    namespaced: true,
    installer: "llmaz",
  },
  McpBridge: {
    apiVersion: "networking.higress.io/v1",
    kind: "McpBridge",
    crd: "mcpbridges.networking.higress.io",
    namespaced: true,
    installer: "higress",
  },
  Ingress: { apiVersion: "networking.k8s.io/v1", kind: "Ingress", crd: "", namespaced: true, installer: "kubernetes" },
  Service: { apiVersion: "v1", kind: "Service", crd: "", namespaced: true, installer: "kubernetes" },
  ConfigMap: { apiVersion: "v1", kind: "ConfigMap", crd: "", namespaced: true, installer: "kubernetes" },
  Deployment: { apiVersion: "apps/v1", kind: "Deployment", crd: "", namespaced: true, installer: "kubernetes" },
  EnvoyFilter: {
    apiVersion: "networking.istio.io/v1alpha3",
    kind: "EnvoyFilter",
    crd: "envoyfilters.networking.istio.io",
    namespaced: true,
    installer: "higress",
  },
  WasmPlugin: {
    apiVersion: "extensions.higress.io/v1alpha1",
    kind: "WasmPlugin",
    crd: "wasmplugins.extensions.higress.io",
    namespaced: true,
    installer: "higress",
  },
} as const satisfies Record<string, KindInfo>;

export function kindInfo(apiVersion: string, kind: string): KindInfo | undefined {
  return Object.values(KINDS).find((k) => k.apiVersion === apiVersion && k.kind === kind);
}

export const HIGRESS_INSTALL_HINT =
  `install Higress: helm repo add ${HELM.higressRepoName} ${HELM.higressRepoUrl}; ` +
  `helm install higress -n ${DEFAULT_GATEWAY_NAMESPACE} ${HELM.higressChart} --create-namespace --render-subchart-notes ` +
  "(or run apply with --install-helm)";
export const LLMAZ_INSTALL_HINT =
  `install llmaz: helm install llmaz ${HELM.llmazChart} --namespace ${HELM.llmazNamespace} --create-namespace ` +
  `--version ${HELM.llmazVersion} (or run apply with --install-helm)`;

export function installHint(installer: Installer): string {
  switch (installer) {
    case "llmaz":
      return LLMAZ_INSTALL_HINT;
    case "higress":
      return HIGRESS_INSTALL_HINT;
    case "kubernetes":
      return "this API is built into Kubernetes: check the cluster version";
  }
}

export function ownerLabels(deployment: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: FIELD_MANAGER, [LABEL_DEPLOYMENT]: deployment };
}

/** Service that llmaz creates in front of a Playground's pods. */
export function modelServiceName(model: string): string {
  return `${model}-lb`;
}

/**
 * Headless Service we add for a model with affinity: the same pods as llmaz's `<model>-lb` (the leaders), but
 * DNS answers one address per ready replica, so Envoy (STRICT_DNS) sees every replica as a host and can hash
 * onto them; through the ClusterIP of `<model>-lb` it would see one host and kube-proxy would pick the pod.
 */
export function replicaServiceName(model: string): string {
  return `${model}-ep`;
}

/** Istio's (and so Higress's) name of the Envoy cluster of a service host and port. */
export function istioClusterName(host: string, port: number): string {
  return `outbound|${port}||${host}`;
}

/** McpBridge registry name for a model; Higress addresses it as `<name>.dns:<port>`. */
export function registryName(model: string): string {
  return `llm-${model}`;
}

export function registryDestination(model: string): string {
  return `${registryName(model)}.dns:${MODEL_SERVICE_PORT}`;
}
