// Envoy cluster names for the models. They are Higress's names for the McpBridge dns registry llm-<model> on the
// model Service's port, so the local harness, the upstream-Envoy target and Higress label metrics alike (ai_cluster)
// and the plugin's default fallback.clusterTemplate (`outbound|8080||llm-{route}.dns`) names a real cluster.
import { MODEL_SERVICE_PORT, registryName } from "../../names.ts";

export function modelClusterName(model: string): string {
  return `outbound|${MODEL_SERVICE_PORT}||${registryName(model)}.dns`;
}

/** The aggregate cluster a model with backups is routed to: the model's cluster, then its backups'. */
export function fallbackClusterName(model: string): string {
  return `outbound|${MODEL_SERVICE_PORT}||${registryName(model)}.fallback`;
}
