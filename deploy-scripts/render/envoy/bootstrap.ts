// gateway.type envoy: the deployment file as one upstream-Envoy bootstrap (static resources, `envoy -c FILE`).
// Same routes, fallback and plugin stages as the local harness (tests/harness/envoy-config.ts), whose end-to-end
// tests run these pieces against the real Envoy; here the clusters are llmaz's Services.
import { MODEL_SERVICE_PORT, modelServiceName, replicaServiceName } from "../../names.ts";
import { PREFIX_KEY_HEADER, pluginConfig } from "../plugin-config.ts";
import { routingHeader, type DeploySpec, type ModelSpec } from "../../spec.ts";
import { replicaBalancing } from "../affinity.ts";
import { anotherReplicaOnRetry, prefixHashPolicy, replicaRetryPolicy } from "./affinity.ts";
import { aggregateCluster, grpcCluster, modelCluster } from "./clusters.ts";
import { fallbackChains } from "./fallback-chains.ts";
import { bufferLimitFor, listener } from "./listener.ts";
import { fallbackClusterName, modelClusterName } from "./names.ts";
import { pluginCode } from "./plugin-code.ts";
import { httpFilters } from "./plugin-filters.ts";
import { fallbackRetryPolicy } from "./retry-policy.ts";
import { modelRoute, noRoute } from "./routes.ts";
import { statsConfig } from "./stats.ts";

/** Where a model's Service answers: llmaz's `<model>-lb` in the deployment's namespace. */
export interface ModelAddress {
  address: string;
  port: number;
}

export interface EnvoyRenderOptions {
  /** Per model, other addresses than llmaz's Service (tests: 127.0.0.1 backends; several: one per replica). */
  addresses?: Record<string, ModelAddress | ModelAddress[]>;
  /** Another address of the rate-limit service than the file's (tests: a local one). */
  quotaServiceAddress?: ModelAddress;
}

/**
 * Where a model's replicas answer: llmaz's `<model>-lb` Service (one ClusterIP), or for a model with affinity the
 * headless `<model>-ep` the CLI adds, whose DNS name resolves to every ready replica, so each is a host of the
 * cluster (STRICT_DNS) and the hash can pick among them.
 */
export function modelServiceAddress(spec: DeploySpec, model: string | ModelSpec): ModelAddress {
  const m = typeof model === "string" ? spec.models.find((x) => x.name === model) : model;
  const name = typeof model === "string" ? model : model.name;
  const service = m?.affinity !== undefined ? replicaServiceName(name) : modelServiceName(name);
  return { address: `${service}.${spec.namespace}.svc.cluster.local`, port: MODEL_SERVICE_PORT };
}

/** The rate-limit service's cluster (quotas mode cluster), when the file has one. */
function quotaClusters(spec: DeploySpec, opts: EnvoyRenderOptions): Record<string, unknown>[] {
  const service = spec.quotas?.service;
  const at =
    opts.quotaServiceAddress ??
    (service?.address !== undefined ? { address: service.address.host, port: service.address.port } : undefined);
  if (service === undefined || at === undefined) return [];
  return [grpcCluster({ name: service.cluster, address: at.address, port: at.port })];
}

export function envoyBootstrap(spec: DeploySpec, opts: EnvoyRenderOptions = {}): Record<string, unknown> {
  const config = pluginConfig(spec);
  const header = routingHeader(spec);
  const limit = bufferLimitFor(config);
  const chains = fallbackChains(config, new Set(spec.models.map((m) => m.name)));
  const source = pluginCode(spec.plugin.url, spec.plugin.sha256);

  const routes: unknown[] = spec.models.map((m) => {
    const backups = chains.get(m.name);
    // With affinity, a failed connection is retried on another replica; with backups too, a retry still moves on to
    // the next backup (the fallback order), but never back to the replica that failed.
    const retryPolicy =
      backups !== undefined
        ? { ...fallbackRetryPolicy(config, backups.length), ...(m.affinity !== undefined ? anotherReplicaOnRetry() : {}) }
        : m.affinity !== undefined
          ? replicaRetryPolicy()
          : undefined;
    return modelRoute({
      // Higress names the route after the Ingress, models[].route; metrics label it ai_route.
      name: m.route,
      header,
      value: m.name,
      // No limit on the whole response, as Higress's Ingresses have none by default: a long generation streams
      // as long as it takes. A silent upstream is cut by the stream idle timeout (Envoy's default, 5 min) and,
      // for models with backups, its first answer by the retry policy's per-try timeout.
      timeout: "0s",
      cluster: backups === undefined ? modelClusterName(m.name) : fallbackClusterName(m.name),
      ...(retryPolicy !== undefined ? { retryPolicy } : {}),
      ...(m.affinity !== undefined ? { hashPolicy: prefixHashPolicy(PREFIX_KEY_HEADER) } : {}),
    });
  });
  routes.push(noRoute());

  const clusters = [
    ...spec.models.map((m) => {
      const given = opts.addresses?.[m.name] ?? modelServiceAddress(spec, m);
      const [at, ...more] = Array.isArray(given) ? given : [given];
      if (at === undefined) throw new Error(`no address for model ${m.name}`);
      return modelCluster({
        name: modelClusterName(m.name),
        model: m.name,
        // STRICT_DNS: every address the name resolves to is an endpoint (a ClusterIP Service has one).
        type: /^[0-9.]+$/.test(at.address) ? "STATIC" : "STRICT_DNS",
        address: at.address,
        port: at.port,
        bufferLimitBytes: limit,
        ...(more.length > 0 ? { moreEndpoints: more } : {}),
        ...(m.affinity !== undefined ? { balancing: replicaBalancing(m.affinity) } : {}),
      });
    }),
    ...[...chains].map(([model, backups]) => aggregateCluster(fallbackClusterName(model), [model, ...backups].map(modelClusterName))),
    ...quotaClusters(spec, opts),
    ...source.clusters,
  ];

  return {
    node: { id: `llm-gateway-${spec.name}`, cluster: "llm-gateway" },
    // Loopback only: the admin interface can change and stop Envoy. /stats/prometheus is there too: scrape it
    // from a sidecar, or port-forward.
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: spec.gateway.adminPort } } },
    stats_config: statsConfig(),
    static_resources: {
      listeners: [
        listener({
          name: "llm-gateway",
          address: "0.0.0.0",
          port: spec.gateway.listenPort,
          bufferLimitBytes: limit,
          accessLog: "stdout",
          domains: spec.gateway.host !== undefined ? [spec.gateway.host] : ["*"],
          // Host: llm.example.com:10000 still matches llm.example.com.
          stripAnyHostPort: true,
          routes,
          httpFilters: httpFilters({ pluginConfig: config, code: source.code, withPlugin: true, attemptStage: chains.size > 0 }),
        }),
      ],
      clusters,
    },
  };
}
