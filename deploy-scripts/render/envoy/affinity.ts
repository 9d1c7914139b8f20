// Prefix affinity in Envoy's terms (issue 14): the plugin writes a prefix key into a request header; the model's
// route hashes on it and the model's cluster maps the hash onto its replicas with consistent hashing under a load
// bound, so one prompt prefix keeps landing on the replica whose vLLM prefix cache holds it, until that replica
// has more than loadFactor times the average load (Envoy counts each host's active requests) and the request
// spills over to the next replica on the ring. A request without the header (no prompt text) hashes to a random
// replica.
//
// Dead replicas: outlier detection ejects a replica after consecutive gateway failures (connect failures and
// resets count as 503s), and the ring then skips it; a request that meets the failure is retried at once on
// another replica (previous_hosts: ring hash then acts as if the failed host were not on the ring).
//
// The same values go into Higress's gateway through an EnvoyFilter (deploy-scripts/render/affinity.ts): Istio's
// DestinationRule has no field for the load bound.

export interface ReplicaBalancing {
  /** Envoy's hash_balance_factor: a replica takes at most this percentage of the average load (>= 100). */
  hashBalanceFactor: number;
  /**
   * Load-aware picking (prefixAffinity.loadAware): the request header in which the plugin names the replicas
   * it chose, best first. Absent: Envoy alone balances.
   */
  pickedHostHeader?: string;
}

/** loadFactor 1.25 -> hash_balance_factor 125. */
export function hashBalanceFactor(loadFactor: number): number {
  return Math.max(100, Math.round(loadFactor * 100));
}

/**
 * The cluster fields for consistent hashing with bounded load; RING_HASH with its default ring (1024 entries and
 * up). With a picked-host header, Envoy's override-host policy goes first: it sends a request to the first
 * replica the header names that is one of the cluster's hosts (a retry to the next one named), and to the
 * same bounded-load ring when the header is absent or names none of them (a replica gone, the plugin not
 * yet knowing any: docs/replica-routing.md).
 */
export function boundedLoadHashing(b: ReplicaBalancing): Record<string, unknown> {
  const hashing = { consistent_hashing_lb_config: { hash_balance_factor: b.hashBalanceFactor } };
  if (b.pickedHostHeader === undefined) return { lb_policy: "RING_HASH", common_lb_config: hashing };
  const ring = {
    name: "envoy.load_balancing_policies.ring_hash",
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash", ...hashing },
  };
  const overrideHost = {
    name: "envoy.load_balancing_policies.override_host",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost",
      override_host_sources: [{ header: b.pickedHostHeader }],
      fallback_policy: { policies: [{ typed_extension_config: ring }] },
    },
  };
  return { load_balancing_policy: { policies: [{ typed_extension_config: overrideHost }] } };
}

/**
 * Ejects a replica after 3 consecutive gateway failures (502, 503, 504, and connect failures and resets, which
 * Envoy counts as 503 unless local-origin errors are split) for 10 s, longer each time it is ejected again. Plain
 * 5xx answers do not eject (enforcing_consecutive_5xx 0): vLLM answers 500 to some requests it cannot serve, which
 * says nothing about the replica. Up to half of the replicas may be out at once (Envoy's default is 10%, i.e. one).
 */
export function replicaOutlierDetection(): Record<string, unknown> {
  return {
    consecutive_gateway_failure: 3,
    enforcing_consecutive_gateway_failure: 100,
    enforcing_consecutive_5xx: 0,
    base_ejection_time: "10s",
    max_ejection_percent: 50,
  };
}

/** The route's hash policy: the plugin's prefix-key header (absent: Envoy picks a replica at random). */
export function prefixHashPolicy(header: string): Record<string, unknown>[] {
  return [{ header: { header_name: header } }];
}

export const PREVIOUS_HOSTS_PREDICATE = {
  name: "envoy.retry_host_predicates.previous_hosts",
  typed_config: { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" },
} as const;

/** Host selection tries before Envoy gives up avoiding previous hosts (Istio's default). */
const HOST_SELECTION_ATTEMPTS = 5;

/** What a retry policy needs so that a retry goes to another replica than the one that failed. */
export function anotherReplicaOnRetry(): Record<string, unknown> {
  return { retry_host_predicate: [structuredClone(PREVIOUS_HOSTS_PREDICATE)], host_selection_retry_max_attempts: HOST_SELECTION_ATTEMPTS };
}

/**
 * The retry policy of a model with affinity and no backups: a connection that fails or is reset before the answer
 * started is sent again at once to another replica, twice at most. Envoy retries only before any byte of the
 * answer went to the client, so a stream is never repeated.
 */
export function replicaRetryPolicy(): Record<string, unknown> {
  return {
    retry_on: "connect-failure,reset",
    num_retries: 2,
    retry_back_off: { base_interval: "0.001s", max_interval: "0.002s" },
    ...anotherReplicaOnRetry(),
  };
}
