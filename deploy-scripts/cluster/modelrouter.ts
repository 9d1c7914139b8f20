// Higress's own model-router next to llm-gateway.
//
// What the Higress console does (checked in higress-group/higress-console, backend/sdk):
// - AiRouteServiceImpl.writeModelRouterResources: saving an AI route with model predicates enables the built-in
//   plugin `model-router` globally with `modelToHeader: x-higress-llm-model`, unless the console runs with
//   AI_ROUTE_AUTO_ENABLE_MODEL_ROUTER=false. It sets the instance enabled again on every such save.
// - KubernetesModelConverter.wasmPluginToCr: that internal instance is the WasmPlugin `model-router.internal`
//   (a plugin enabled from Plugin Management is `model-router-<version>`), labelled
//   `higress.io/wasm-plugin-name: model-router`, in the gateway namespace; "enabled" globally means
//   `spec.defaultConfigDisable` is not true. Its spec.yaml: phase AUTHN, priority 900, llm-gateway's slot.
//
// Both plugins read the body's `model` and write the routing header, in the same phase and priority, so which runs
// last is not up to the user. When model-router runs after llm-gateway it writes the body's model (after
// llm-gateway rewrote it to upstreamModel, or filled in defaultModel) over the route llm-gateway chose, and the
// request misses its route or takes another. apply and status warn; `apply --disable-model-router` disables it.
import { PatchStrategy } from "@kubernetes/client-node";
import { CliError, explain } from "../errors.ts";
import { line, type Io } from "../io.ts";
import { listByLabels, type Cluster } from "./kube.ts";
import { FIELD_MANAGER, KINDS } from "../names.ts";
import { describeRef, type K8sObject } from "../render/objects.ts";
import type { DeploySpec } from "../spec.ts";

export const MODEL_ROUTER_SELECTOR = "higress.io/wasm-plugin-name=model-router";
/** Set on a model-router that `apply --disable-model-router` disabled: which deployment did it. */
export const DISABLED_BY_ANNOTATION = "llm-gateway.io/disabled-model-router";

interface WasmPluginLike extends K8sObject {
  spec?: { defaultConfigDisable?: boolean; matchRules?: Array<Record<string, unknown> & { configDisable?: boolean }> };
}

/** Whether the plugin runs anywhere: its global config, or any match rule not disabled. */
export function isActive(p: WasmPluginLike): boolean {
  const spec = p.spec ?? {};
  return spec.defaultConfigDisable !== true || (spec.matchRules ?? []).some((r) => r.configDisable !== true);
}

/** The model-router WasmPlugins that are active in the gateway namespace (none for gateway.type envoy). */
export async function activeModelRouters(cluster: Cluster, spec: DeploySpec): Promise<WasmPluginLike[]> {
  if (spec.gateway.type !== "higress") return [];
  const all = await listByLabels<WasmPluginLike>(cluster, KINDS.WasmPlugin, spec.gateway.namespace, MODEL_ROUTER_SELECTOR);
  return all.filter(isActive).sort((a, b) => (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""));
}

export function modelRouterWarning(p: WasmPluginLike, spec: DeploySpec): string {
  const header = String(spec.plugin.config["routingHeader"] ?? "x-higress-llm-model");
  return (
    `warning: ${describeRef(p)} is Higress's model-router (the console enables it once an AI route exists): it also ` +
    `writes x-higress-llm-model from the body's model, in llm-gateway's slot (AUTHN, priority 900), so it can ` +
    `overwrite the route llm-gateway wrote to ${header} (upstreamModel, defaultModel, routes named unlike their model). ` +
    `Run apply --disable-model-router (sets its spec.defaultConfigDisable: true) or disable it in the console, and start ` +
    `the console with AI_ROUTE_AUTO_ENABLE_MODEL_ROUTER=false so that saving an AI route does not enable it again`
  );
}

/** apply and status: one warning line (stderr) per active model-router. */
export async function warnAboutModelRouter(cluster: Cluster, spec: DeploySpec, io: Io): Promise<void> {
  let found: WasmPluginLike[];
  try {
    found = await activeModelRouters(cluster, spec);
  } catch (err) {
    // No WasmPlugin CRD yet (status before Higress is installed), or not allowed to list: nothing to warn about.
    if (err instanceof CliError) return;
    throw err;
  }
  for (const p of found) line(io.err, modelRouterWarning(p, spec));
}

/**
 * apply --disable-model-router: a JSON merge patch (guarded by the resourceVersion read) that sets
 * spec.defaultConfigDisable and every match rule's configDisable to true and records who did it. Nothing is
 * deleted: the console (or `kubectl patch`) can enable it again.
 */
export async function disableModelRouters(cluster: Cluster, spec: DeploySpec, io: Io): Promise<void> {
  for (const p of await activeModelRouters(cluster, spec)) {
    const rules = p.spec?.matchRules;
    const patch = {
      apiVersion: p.apiVersion,
      kind: p.kind,
      metadata: {
        name: p.metadata.name,
        namespace: p.metadata.namespace,
        resourceVersion: p.metadata.resourceVersion,
        annotations: { [DISABLED_BY_ANNOTATION]: spec.name },
      },
      spec: {
        defaultConfigDisable: true,
        ...(rules !== undefined && rules.length > 0 ? { matchRules: rules.map((r) => ({ ...r, configDisable: true })) } : {}),
      },
    };
    try {
      await cluster.objects.patch(patch as K8sObject, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
    } catch (err) {
      throw explain(err, cluster.server, p);
    }
    line(io.out, `${"disabled".padEnd(10)} ${describeRef(p)} (Higress's model-router: spec.defaultConfigDisable true)`);
  }
}
