// status: per model, what llmaz reports (Playground conditions), its pods and its Service, then the gateway.
import type { V1Pod, V1Service } from "@kubernetes/client-node";
import { gatewayEndpoint, printEndpoint, printEnvoyGateway } from "./endpoint.ts";
import { EXIT, explain } from "../errors.ts";
import { line, type Io } from "../io.ts";
import { readOrNull, type Cluster } from "./kube.ts";
import { warnAboutModelRouter } from "./modelrouter.ts";
import {
  KINDS,
  LABEL_LLMAZ_MODEL,
  MODEL_SERVICE_PORT,
  RATELIMIT_NAME,
  REDIS_NAME,
  modelServiceName,
  replicaServiceName,
} from "../names.ts";
import { conditionsOf, playgroundState, type PlaygroundLike } from "./wait.ts";
import type { DeploySpec } from "../spec.ts";

export function podLine(pod: V1Pod): string {
  const statuses = pod.status?.containerStatuses ?? [];
  const ready = statuses.filter((c) => c.ready).length;
  const restarts = statuses.reduce((n, c) => n + (c.restartCount ?? 0), 0);
  const waiting = statuses.map((c) => c.state?.waiting?.reason).find((r) => r !== undefined);
  const parts = [
    `${pod.metadata?.name ?? "?"} ${pod.status?.phase ?? "Unknown"}`,
    `ready ${ready}/${statuses.length || (pod.spec?.containers.length ?? 0)}`,
  ];
  if (restarts > 0) parts.push(`restarts ${restarts}`);
  if (waiting !== undefined) parts.push(waiting);
  return parts.join(", ");
}

export function serviceLine(name: string, svc: V1Service | null): string {
  if (svc === null) return `${name} missing (llmaz creates it with the Playground)`;
  const port = svc.spec?.ports?.find((p) => p.port === MODEL_SERVICE_PORT) ?? svc.spec?.ports?.[0];
  return `${name} ${svc.spec?.clusterIP ?? "?"}:${port?.port ?? "?"}`;
}

export async function status(spec: DeploySpec, cluster: Cluster, io: Io, envoyBootstrap = "(render -f FILE prints it)"): Promise<number> {
  const where = spec.gateway.type === "envoy" ? "gateway: upstream Envoy" : `gateway in ${spec.gateway.namespace}`;
  line(io.out, `deployment ${spec.name}: models in namespace ${spec.namespace}, ${where}`);
  for (const m of spec.models) {
    const pgRef = {
      apiVersion: KINDS.Playground.apiVersion,
      kind: KINDS.Playground.kind,
      metadata: { name: m.name, namespace: spec.namespace },
    };
    const pg = await readOrNull<PlaygroundLike & typeof pgRef>(cluster, pgRef);
    line(io.out, "");
    if (pg === null) {
      line(io.out, `${m.name}: not deployed (no Playground ${spec.namespace}/${m.name})`);
      continue;
    }
    line(io.out, `${m.name}: ${playgroundState(m.name, pg).phase}`);
    const conditions = conditionsOf(pg);
    if (conditions.length === 0) line(io.out, "  playground  no conditions yet");
    for (const c of conditions) {
      const why = [c.reason, c.message].filter((x) => x !== undefined && x !== "").join(": ");
      line(io.out, `  playground  ${c.type ?? "?"}=${c.status ?? "?"}${why ? ` ${why}` : ""}`);
    }
    let pods: V1Pod[];
    try {
      pods = (await cluster.core.listNamespacedPod({ namespace: spec.namespace, labelSelector: `${LABEL_LLMAZ_MODEL}=${m.name}` })).items;
    } catch (err) {
      throw explain(err, cluster.server, { apiVersion: "v1", kind: "Pod", metadata: { namespace: spec.namespace } });
    }
    if (pods.length === 0) line(io.out, "  pods        none yet");
    for (const p of pods.sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? "")))
      line(io.out, `  pod         ${podLine(p)}`);
    const svcName = modelServiceName(m.name);
    const svcRef = { apiVersion: "v1", kind: "Service", metadata: { name: svcName, namespace: spec.namespace } };
    line(io.out, `  service     ${serviceLine(svcName, await readOrNull<V1Service & typeof svcRef>(cluster, svcRef))}`);
    if (m.affinity !== undefined) {
      const ep = replicaServiceName(m.name);
      const epRef = { apiVersion: "v1", kind: "Service", metadata: { name: ep, namespace: spec.namespace } };
      const found = await readOrNull<V1Service & typeof epRef>(cluster, epRef);
      line(
        io.out,
        `  service     ${found === null ? `${ep} missing (apply creates it)` : `${ep} headless, one address per ready replica`}`,
      );
    }
  }
  await quotaServiceStatus(cluster, spec, io);
  line(io.out, "");
  await warnAboutModelRouter(cluster, spec, io);
  if (spec.gateway.type === "envoy") printEnvoyGateway(io, spec, envoyBootstrap);
  else printEndpoint(io, spec, await gatewayEndpoint(cluster, spec));
  return EXIT.ok;
}

interface DeploymentLike {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string };
  spec?: { replicas?: number };
  status?: { readyReplicas?: number };
}

/** quotas mode cluster with the service deployed here: how many of its pods are ready. */
async function quotaServiceStatus(cluster: Cluster, spec: DeploySpec, io: Io): Promise<void> {
  const service = spec.quotas?.service;
  if (service === undefined) return;
  line(io.out, "");
  if (!service.deploy) {
    line(io.out, `quota service: ${service.cluster} (not deployed by this file)`);
    return;
  }
  line(io.out, `quota service: ${service.cluster}`);
  for (const name of [RATELIMIT_NAME, ...(service.redisUrl === undefined ? [REDIS_NAME] : [])]) {
    const ref = { apiVersion: KINDS.Deployment.apiVersion, kind: KINDS.Deployment.kind, metadata: { name, namespace: spec.namespace } };
    const d = await readOrNull<DeploymentLike>(cluster, ref);
    line(
      io.out,
      `  deployment  ${name} ${d === null ? "missing (apply creates it)" : `ready ${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 1}`}`,
    );
  }
  if (service.redisUrl !== undefined) line(io.out, `  redis       ${service.redisUrl} (not deployed by this file)`);
}
