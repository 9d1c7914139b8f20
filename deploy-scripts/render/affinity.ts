// Prefix affinity for a model's replicas in Kubernetes and Higress (issue 14). What Envoy does with it:
// deploy-scripts/render/envoy/affinity.ts.
//
// - A headless Service `<model>-ep` per model with affinity, selecting what llmaz's `<model>-lb` selects (the
//   LeaderWorkerSet's leader pods): its DNS name resolves to one address per ready replica. The McpBridge dns
//   registry of the model (Higress) and the model's cluster (upstream Envoy) point at it, so Envoy's STRICT_DNS
//   cluster has a host per replica; through `<model>-lb`'s ClusterIP it would have one host and hashing would
//   choose nothing.
// - Higress: the model's Ingress (and a fallback Ingress whose backup has affinity) carries
//   `higress.io/upstream-hash-by: $http_<prefix-key header>`. Higress turns it into the traffic policy of the
//   destination's DestinationRule, `loadBalancer.consistentHash.httpHeaderName` (alibaba/higress
//   pkg/ingress/kube/annotations/loadbalance.go, for an McpBridge destination too:
//   pkg/ingress/kube/ingressv1/controller.go storeBackendTrafficPolicy), which Istio renders as RING_HASH on the
//   cluster and a header hash_policy on the route.
// - Higress: an EnvoyFilter `<route>.affinity` adds what Istio's API has no field for. Istio's ConsistentHashLB
//   (istio/api networking/v1alpha3/destination_rule.proto) offers httpHeaderName, httpCookie, useSourceIp,
//   httpQueryParameterName, ringHash.minimumRingSize and maglev.tableSize: no hash_balance_factor. So a CLUSTER
//   patch merges `common_lb_config.consistent_hashing_lb_config.hash_balance_factor` and the outlier detection
//   into the model's cluster (Istio builds it with lb_policy RING_HASH and a common_lb_config of its own, which
//   MERGE keeps), and an HTTP_ROUTE patch adds the previous_hosts retry predicate: Istio leaves it out of its
//   default retry policy when the route hashes (istio/istio#50759, merged 2024; Higress 2.2 runs an Istio 1.27 fork), so
//   a retry after a connect failure would go back to the same dead replica.
// - With loadAware, the CLUSTER patch merges `load_balancing_policy` (override-host over the bounded-load ring)
//   instead of the hash_balance_factor. Envoy then ignores Istio's lb_policy RING_HASH and ring_hash_lb_config
//   (ClusterInfoImpl uses load_balancing_policy when set), but refuses the cluster if common_lb_config carries
//   consistent_hashing_lb_config, locality_weighted_lb_config or zone_aware_lb_config beside it, so the bound
//   moves into the ring policy's own config (tests/deploy/envoy-affinity.test.ts runs both against Envoy).
import { header, type K8sObject } from "./objects.ts";
import { AFFINITY_FILTER_SUFFIX, KINDS, LABEL_LWS_NAME, LABEL_LWS_WORKER_INDEX, MODEL_SERVICE_PORT, replicaServiceName } from "../names.ts";
import {
  anotherReplicaOnRetry,
  boundedLoadHashing,
  hashBalanceFactor,
  replicaOutlierDetection,
  type ReplicaBalancing,
} from "./envoy/affinity.ts";
import { modelClusterName } from "./envoy/names.ts";
import { PICKED_HOST_HEADER, PREFIX_KEY_HEADER } from "./plugin-config.ts";
import type { Affinity, DeploySpec, ModelSpec } from "../spec.ts";

/** Higress's consistent-hash annotation (nginx's upstream-hash-by; `$http_<name>` hashes on a request header). */
export const HASH_BY_ANNOTATION = "higress.io/upstream-hash-by";

export function hashByAnnotation(): Record<string, string> {
  return { [HASH_BY_ANNOTATION]: `$http_${PREFIX_KEY_HEADER}` };
}

/** The headless Service over a model's replicas. */
export function replicaService(spec: DeploySpec, m: ModelSpec): K8sObject {
  return {
    ...header(KINDS.Service, spec, replicaServiceName(m.name), spec.namespace),
    spec: {
      clusterIP: "None",
      // The pods llmaz's <model>-lb serves (llmaz service_controller.go: the LeaderWorkerSet named like the
      // Playground, worker index 0); not-ready ones stay out of DNS (publishNotReadyAddresses false).
      selector: { [LABEL_LWS_NAME]: m.name, [LABEL_LWS_WORKER_INDEX]: "0" },
      ports: [{ name: "http", protocol: "TCP", port: MODEL_SERVICE_PORT, targetPort: MODEL_SERVICE_PORT }],
    },
  };
}

export function affinityFilterName(m: ModelSpec): string {
  return `${m.route}${AFFINITY_FILTER_SUFFIX}`;
}

/** How a model's cluster spreads requests over its replicas, on either gateway: the ring's bound, and with loadAware the plugin's picks first. */
export function replicaBalancing(a: Affinity): ReplicaBalancing {
  return {
    hashBalanceFactor: hashBalanceFactor(a.loadFactor),
    ...(a.loadAware !== undefined ? { pickedHostHeader: PICKED_HOST_HEADER } : {}),
  };
}

/** Higress: the load bound, outlier detection and retry predicate for a model with affinity (see above). */
export function affinityFilter(spec: DeploySpec, m: ModelSpec): K8sObject {
  if (m.affinity === undefined) throw new Error(`model ${m.name} has no affinity`);
  // Istio already sets lb_policy RING_HASH from the DestinationRule: the rest merges into its cluster.
  const { lb_policy: _istios, ...balancing } = boundedLoadHashing(replicaBalancing(m.affinity));
  return {
    ...header(KINDS.EnvoyFilter, spec, affinityFilterName(m), spec.gateway.namespace),
    spec: {
      configPatches: [
        {
          applyTo: "CLUSTER",
          match: { context: "GATEWAY", cluster: { name: modelClusterName(m.name) } },
          patch: {
            operation: "MERGE",
            value: { ...balancing, outlier_detection: replicaOutlierDetection() },
          },
        },
        {
          applyTo: "HTTP_ROUTE",
          match: { context: "GATEWAY", routeConfiguration: { vhost: { route: { name: m.route } } } },
          patch: { operation: "MERGE", value: { route: { retry_policy: anotherReplicaOnRetry() } } },
        },
      ],
    },
  };
}
