// The example deployment files with replicas, affinity and quotas, shared by the tests that render them.
import { join } from "node:path";
import { ROOT } from "../../deploy-scripts/generators/gen-manifests.ts";

export const REPLICAS_FILE = join(ROOT, "deploy-scripts", "examples", "replicas-quotas.yaml");
export const REPLICAS_ENVOY_FILE = join(ROOT, "deploy-scripts", "examples", "replicas-quotas-envoy.yaml");
