// Quotas in mode cluster on Higress: the plugin calls the rate-limit service through the Envoy cluster Istio builds
// for its Service (outbound|8081||<service>), which no route uses. Higress's chart sets global.onlyPushRouteCluster
// (default true), which its controller Deployment passes to istio as PILOT_FILTER_GATEWAY_CLUSTER_CONFIG (alibaba/higress
// helm/core/templates/controller-deployment.yaml): the gateway then gets only the clusters routes use, and every
// quota check fails as "service unavailable". apply warns when it finds that setting on.
import { CliError } from "../errors.ts";
import { line, type Io } from "../io.ts";
import { readOrNull, type Cluster } from "./kube.ts";
import { pushesEveryCluster } from "./helm.ts";
import type { DeploySpec } from "../spec.ts";

export const HIGRESS_CONTROLLER_DEPLOYMENT = "higress-controller";
export const CLUSTER_FILTER_ENV = "PILOT_FILTER_GATEWAY_CLUSTER_CONFIG";

interface DeploymentLike {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string };
  spec?: { template?: { spec?: { containers?: { env?: { name: string; value?: string }[] }[] } } };
}

/** Whether Higress's controller pushes only the clusters routes use; undefined when it cannot tell. */
export async function onlyRouteClusters(cluster: Cluster, spec: DeploySpec): Promise<boolean | undefined> {
  const ref = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: HIGRESS_CONTROLLER_DEPLOYMENT, namespace: spec.gateway.namespace },
  };
  let d: DeploymentLike | null;
  try {
    d = await readOrNull<DeploymentLike>(cluster, ref);
  } catch (err) {
    if (err instanceof CliError) return undefined; // not allowed to read it, say
    throw err;
  }
  const env = (d?.spec?.template?.spec?.containers ?? []).flatMap((c) => c.env ?? []).find((e) => e.name === CLUSTER_FILTER_ENV);
  return env === undefined ? undefined : env.value === "true";
}

export async function warnAboutClusterPush(cluster: Cluster, spec: DeploySpec, io: Io): Promise<void> {
  if (!pushesEveryCluster(spec) || (await onlyRouteClusters(cluster, spec)) !== true) return;
  line(
    io.err,
    `warning: quotas mode cluster: Higress pushes only the clusters its routes use (Deployment ${spec.gateway.namespace}/` +
      `${HIGRESS_CONTROLLER_DEPLOYMENT} has ${CLUSTER_FILTER_ENV}=true, the chart's global.onlyPushRouteCluster), so the gateway ` +
      `has no cluster ${spec.quotas?.service?.cluster ?? "for the rate-limit service"} and every quota check counts as the service ` +
      `being unavailable (quotas.service.onUnavailable). Run helm upgrade higress higress.io/higress -n ${spec.gateway.namespace} ` +
      `--reuse-values --set global.onlyPushRouteCluster=false (apply --install-helm sets it)`,
  );
}
