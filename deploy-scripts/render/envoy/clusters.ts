// The clusters: one per model, whose endpoints say which model they serve, and one aggregate cluster per model
// with backups (the fallback chain as priorities); an HTTP/2 cluster for a gRPC service the plugin calls.
import { boundedLoadHashing, replicaOutlierDetection, type ReplicaBalancing } from "./affinity.ts";

/** Filter-metadata namespace the plugin's attempt stage reads (assembly/plugin/stages/attempt-stage.ts). */
export const METADATA_NAMESPACE = "llm-gateway";

/**
 * An endpoint's metadata naming the model it serves and its cluster: the attempt stage reads
 * `filter_metadata["llm-gateway"].model` of the host an attempt goes to, which stays exact even when Envoy skips
 * an unhealthy priority (the attempt count alone would then name the wrong backup), and `.cluster` to label the
 * attempt's metrics with the model's own cluster (inside an aggregate cluster Envoy only names the aggregate).
 */
export function modelEndpointMetadata(model: string, cluster: string): Record<string, unknown> {
  return { filter_metadata: { [METADATA_NAMESPACE]: { model, cluster } } };
}

export interface ModelClusterOptions {
  name: string;
  model: string;
  /** STATIC for an IP address, STRICT_DNS for a name (every address it resolves to is an endpoint). */
  type: "STATIC" | "STRICT_DNS";
  address: string;
  port: number;
  /** Above the plugin's maxBodyBytes: the router buffers the request body for retries up to it. */
  bufferLimitBytes: number;
  /** More endpoints (replicas at fixed addresses, e.g. local stubs) besides address:port. */
  moreEndpoints?: { address: string; port: number }[];
  /** Prefix affinity: consistent hashing with bounded load over the endpoints, and outlier detection. */
  balancing?: ReplicaBalancing;
}

export function modelCluster(o: ModelClusterOptions): Record<string, unknown> {
  return {
    name: o.name,
    type: o.type,
    // Istio's (and so Higress's) default connect timeout; a shorter one fails requests when a busy
    // worker takes a moment to see a connection complete (a burst of long prompts).
    connect_timeout: "10s",
    per_connection_buffer_limit_bytes: o.bufferLimitBytes,
    ...(o.balancing !== undefined ? { ...boundedLoadHashing(o.balancing), outlier_detection: replicaOutlierDetection() } : {}),
    // vLLM's server (uvicorn) closes a keep-alive connection after 5 s idle; a request Envoy sends on it
    // at that moment is lost ("connection termination"). Envoy closing idle connections first avoids
    // the race.
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        explicit_http_config: { http_protocol_options: {} },
        common_http_protocol_options: { idle_timeout: "4s" },
      },
    },
    load_assignment: {
      cluster_name: o.name,
      endpoints: [
        {
          lb_endpoints: [{ address: o.address, port: o.port }, ...(o.moreEndpoints ?? [])].map((e) => ({
            endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
            metadata: modelEndpointMetadata(o.model, o.name),
          })),
        },
      ],
    },
  };
}

/**
 * `clusters` in order as priorities 0, 1, …: the route's retry policy (previous_priorities) moves each retry
 * to the next one. lb_policy must be CLUSTER_PROVIDED for an aggregate cluster.
 */
export function aggregateCluster(name: string, clusters: string[]): Record<string, unknown> {
  return {
    name,
    connect_timeout: "10s",
    lb_policy: "CLUSTER_PROVIDED",
    // Retries are this cluster's (the route's): Envoy's default allows 3 at a time, so when a primary dies
    // under load most requests would get its 503 instead of the backup. A fallback is a retry of every
    // failed request: allow as many retries as requests in flight.
    circuit_breakers: {
      thresholds: [{ priority: "DEFAULT", retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 64 } }],
    },
    cluster_type: {
      name: "envoy.clusters.aggregate",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
        clusters,
      },
    },
  };
}

export interface GrpcClusterOptions {
  name: string;
  address: string;
  port: number;
}

/**
 * A cluster for a gRPC service the plugin calls with dispatch_grpc_call (the rate-limit service of quotas mode
 * cluster): HTTP/2 to its gRPC port, STATIC for an IP address, STRICT_DNS for a name (a ClusterIP Service: one
 * address; kube-proxy spreads connections over its pods).
 */
export function grpcCluster(o: GrpcClusterOptions): Record<string, unknown> {
  return {
    name: o.name,
    type: /^[0-9.]+$/.test(o.address) ? "STATIC" : "STRICT_DNS",
    // The plugin's call timeout (quotas.service.timeoutMs) bounds each call; this bounds a connection attempt.
    connect_timeout: "1s",
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    load_assignment: {
      cluster_name: o.name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: o.address, port_value: o.port } } } }] }],
    },
  };
}
