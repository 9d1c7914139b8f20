// Token quotas, mode cluster, with quotas.service.deploy: true (issue 16): envoyproxy/ratelimit and a Redis in the
// models' namespace, so every gateway replica (Higress's, or several upstream Envoys) charges one budget.
//
// Checked in envoyproxy/ratelimit's source (README.md, src/settings/settings.go, src/config/config_impl.go):
// - gRPC ShouldRateLimit on 8081 (GRPC_PORT), HTTP on 8080 (PORT: /healthcheck, /json); statsd is on by
//   default (USE_STATSD) and would log errors without a statsd sink, so it is off.
// - Redis: REDIS_SOCKET_TYPE (default unix) and REDIS_URL (host:port for tcp).
// - Configuration files: RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/RUNTIME_APPDIRECTORY (default "config")/*.yaml. A
//   ConfigMap volume updates its files in place (through a `..data` symlink), so RUNTIME_WATCH_ROOT=false
//   (watch the directory, not a swapped root) and RUNTIME_IGNOREDOTFILES=true (the `..data` and `..<timestamp>`
//   entries would otherwise load the file twice: "duplicate domain").
// - A descriptor that carries a `limit` override is limited by it without any descriptor in the configuration
//   (GetLimit returns the override once the domain is known; an unknown domain is not limited at all). The plugin
//   sends every limit that way, so the configuration declares only the domain.
import { stringify } from "yaml";
import { header, type K8sObject } from "./objects.ts";
import {
  KINDS,
  LABEL_DEPLOYMENT,
  RATELIMIT_CONFIG_NAME,
  RATELIMIT_GRPC_PORT,
  RATELIMIT_HTTP_PORT,
  RATELIMIT_IMAGE,
  RATELIMIT_NAME,
  REDIS_IMAGE,
  REDIS_NAME,
  REDIS_PORT,
} from "../names.ts";
import type { DeploySpec } from "../spec.ts";
import type { QuotaService } from "../spec-quotas.ts";

const APP_LABEL = "app.kubernetes.io/name";
/** Where the ConfigMap is mounted: RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config. */
const RUNTIME_ROOT = "/data";
const RUNTIME_SUBDIRECTORY = "ratelimit";
export const RATELIMIT_CONFIG_FILE = "config.yaml";

function podLabels(spec: DeploySpec, app: string): Record<string, string> {
  return { [APP_LABEL]: app, [LABEL_DEPLOYMENT]: spec.name };
}

/** The service's configuration file: only the domain; the limits come with each descriptor. */
export function ratelimitConfigFile(domain: string): string {
  return `# Every limit comes from the llm-gateway plugin's quota rules, as a limit override on each descriptor: only the domain is declared.\n${stringify({ domain })}`;
}

export function redisAddress(spec: DeploySpec, service: QuotaService): string {
  return service.redisUrl ?? `${REDIS_NAME}.${spec.namespace}.svc.cluster.local:${REDIS_PORT}`;
}

/** The container environment of envoyproxy/ratelimit (tests run the pinned service with it). */
export function ratelimitEnv(redisUrl: string): { name: string; value: string }[] {
  return [
    { name: "USE_STATSD", value: "false" },
    { name: "REDIS_SOCKET_TYPE", value: "tcp" },
    { name: "REDIS_URL", value: redisUrl },
    { name: "RUNTIME_ROOT", value: RUNTIME_ROOT },
    { name: "RUNTIME_SUBDIRECTORY", value: RUNTIME_SUBDIRECTORY },
    { name: "RUNTIME_WATCH_ROOT", value: "false" },
    { name: "RUNTIME_IGNOREDOTFILES", value: "true" },
  ];
}

function ratelimitConfigMap(spec: DeploySpec, service: QuotaService): K8sObject {
  return {
    ...header(KINDS.ConfigMap, spec, RATELIMIT_CONFIG_NAME, spec.namespace),
    data: { [RATELIMIT_CONFIG_FILE]: ratelimitConfigFile(service.domain) },
  };
}

// One pod template with one container (and its volumes), one replica: both services here are that.
function singleContainerDeployment(spec: DeploySpec, name: string, container: object, volumes?: object[]): K8sObject {
  const labels = podLabels(spec, name);
  return {
    ...header(KINDS.Deployment, spec, name, spec.namespace),
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: volumes === undefined ? { containers: [container] } : { containers: [container], volumes },
      },
    },
  };
}

// Stateless (the counters are in Redis): scale it with the gateway's load.
function ratelimitDeployment(spec: DeploySpec, service: QuotaService): K8sObject {
  return singleContainerDeployment(
    spec,
    RATELIMIT_NAME,
    {
      name: "ratelimit",
      image: RATELIMIT_IMAGE,
      command: ["/bin/ratelimit"],
      env: ratelimitEnv(redisAddress(spec, service)),
      ports: [
        { name: "grpc", containerPort: RATELIMIT_GRPC_PORT },
        { name: "http", containerPort: RATELIMIT_HTTP_PORT },
      ],
      readinessProbe: { httpGet: { path: "/healthcheck", port: RATELIMIT_HTTP_PORT }, periodSeconds: 5 },
      resources: { requests: { cpu: "100m", memory: "64Mi" }, limits: { memory: "256Mi" } },
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true },
      volumeMounts: [{ name: "config", mountPath: `${RUNTIME_ROOT}/${RUNTIME_SUBDIRECTORY}/config`, readOnly: true }],
    },
    [{ name: "config", configMap: { name: RATELIMIT_CONFIG_NAME } }],
  );
}

function ratelimitService(spec: DeploySpec): K8sObject {
  return {
    ...header(KINDS.Service, spec, RATELIMIT_NAME, spec.namespace),
    spec: {
      selector: podLabels(spec, RATELIMIT_NAME),
      // Port name and appProtocol grpc: Istio (Higress) then builds an HTTP/2 cluster for it, which gRPC needs.
      ports: [
        { name: "grpc", appProtocol: "grpc", protocol: "TCP", port: RATELIMIT_GRPC_PORT, targetPort: RATELIMIT_GRPC_PORT },
        { name: "http", protocol: "TCP", port: RATELIMIT_HTTP_PORT, targetPort: RATELIMIT_HTTP_PORT },
      ],
    },
  };
}

function redisDeployment(spec: DeploySpec): K8sObject {
  return singleContainerDeployment(spec, REDIS_NAME, {
    name: "redis",
    image: REDIS_IMAGE,
    // Counters of fixed windows (a day at most): nothing worth persisting. A restart resets the windows.
    args: ["--save", "", "--appendonly", "no"],
    ports: [{ name: "redis", containerPort: REDIS_PORT }],
    readinessProbe: { tcpSocket: { port: REDIS_PORT }, periodSeconds: 5 },
    resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
  });
}

function redisService(spec: DeploySpec): K8sObject {
  return {
    ...header(KINDS.Service, spec, REDIS_NAME, spec.namespace),
    spec: {
      selector: podLabels(spec, REDIS_NAME),
      ports: [{ name: "tcp-redis", protocol: "TCP", port: REDIS_PORT, targetPort: REDIS_PORT }],
    },
  };
}

/** The service's objects in apply order (Redis first), or none when the file does not ask the CLI to deploy it. */
export function quotaServiceObjects(spec: DeploySpec): K8sObject[] {
  const service = spec.quotas?.service;
  if (service === undefined || !service.deploy) return [];
  return [
    ...(service.redisUrl === undefined ? [redisDeployment(spec), redisService(spec)] : []),
    ratelimitConfigMap(spec, service),
    ratelimitDeployment(spec, service),
    ratelimitService(spec),
  ];
}
