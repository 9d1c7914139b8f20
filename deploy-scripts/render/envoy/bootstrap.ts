// gateway.type envoy: the deployment file as one upstream-Envoy bootstrap (static resources, `envoy -c FILE`).
// Same routes, fallback and plugin stages as the local harness (tests/harness/envoy-config.ts), whose end-to-end
// tests run these pieces against the real Envoy; here the clusters are llmaz's Services.
import { MODEL_SERVICE_PORT, modelServiceName } from "../../names.ts";
import { pluginConfig } from "../plugin-config.ts";
import { routingHeader, type DeploySpec } from "../../spec.ts";
import { aggregateCluster, modelCluster } from "./clusters.ts";
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
  /** Per model, another address than llmaz's Service (tests: 127.0.0.1 backends). */
  addresses?: Record<string, ModelAddress>;
}

export function modelServiceAddress(spec: DeploySpec, model: string): ModelAddress {
  return { address: `${modelServiceName(model)}.${spec.namespace}.svc.cluster.local`, port: MODEL_SERVICE_PORT };
}

export function envoyBootstrap(spec: DeploySpec, opts: EnvoyRenderOptions = {}): Record<string, unknown> {
  const config = pluginConfig(spec);
  const header = routingHeader(spec);
  const limit = bufferLimitFor(config);
  const chains = fallbackChains(config, new Set(spec.models.map((m) => m.name)));
  const source = pluginCode(spec.plugin.url, spec.plugin.sha256);

  const routes: unknown[] = spec.models.map((m) => {
    const backups = chains.get(m.name);
    return modelRoute({
      // Higress names the route after the Ingress, models[].route; metrics label it ai_route.
      name: m.route,
      header,
      value: m.name,
      // No limit on the whole response, as Higress's Ingresses have none by default: a long generation streams
      // as long as it takes. A silent upstream is cut by the stream idle timeout (Envoy's default, 5 min) and,
      // for models with backups, its first answer by the retry policy's per-try timeout.
      timeout: "0s",
      ...(backups === undefined
        ? { cluster: modelClusterName(m.name) }
        : { cluster: fallbackClusterName(m.name), retryPolicy: fallbackRetryPolicy(config, backups.length) }),
    });
  });
  routes.push(noRoute());

  const clusters = [
    ...spec.models.map((m) => {
      const at = opts.addresses?.[m.name] ?? modelServiceAddress(spec, m.name);
      return modelCluster({
        name: modelClusterName(m.name),
        model: m.name,
        // STRICT_DNS: every address the name resolves to is an endpoint (a ClusterIP Service has one).
        type: /^[0-9.]+$/.test(at.address) ? "STATIC" : "STRICT_DNS",
        address: at.address,
        port: at.port,
        bufferLimitBytes: limit,
      });
    }),
    ...[...chains].map(([model, backups]) => aggregateCluster(fallbackClusterName(model), [model, ...backups].map(modelClusterName))),
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
