// delete: removes what apply created for this deployment, found by our labels (so objects from an older version
// of the file go too), and this deployment's registries from the shared McpBridge. Everything else stays, even
// objects with the same names.
import { PatchStrategy } from "@kubernetes/client-node";
import { EXIT, MissingKindError, explain, isNotFound } from "../errors.ts";
import { line, type Io } from "../io.ts";
import { listByLabels, readOrNull, type Cluster } from "./kube.ts";
import { removeFromBridge } from "./mcpbridge.ts";
import { FIELD_MANAGER, KINDS, type KindInfo } from "../names.ts";
import { describeRef, type K8sObject } from "../render/objects.ts";
import { ownedBy, ownerSelector } from "./ownership.ts";
import { mcpBridge, renderObjects } from "../render/render.ts";
import type { DeploySpec } from "../spec.ts";

/** Reverse of apply order: the plugin and routes go before the registries and models they point at. */
const DELETE_ORDER: ({ kind: KindInfo; where: "models" | "gateway" } | "registries")[] = [
  { kind: KINDS.WasmPlugin, where: "gateway" },
  { kind: KINDS.EnvoyFilter, where: "gateway" },
  { kind: KINDS.Ingress, where: "gateway" },
  "registries",
  // The quota service (ratelimit, Redis, its configuration) and the models' headless Services.
  { kind: KINDS.Deployment, where: "models" },
  { kind: KINDS.Service, where: "models" },
  { kind: KINDS.ConfigMap, where: "models" },
  { kind: KINDS.Playground, where: "models" },
  { kind: KINDS.OpenModel, where: "models" },
  { kind: KINDS.Secret, where: "models" },
];

async function deleteOne(cluster: Cluster, o: K8sObject): Promise<boolean> {
  try {
    await cluster.objects.delete(o);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw explain(err, cluster.server, o);
  }
}

/** Returns whether the McpBridge was changed. */
async function removeRegistries(cluster: Cluster, spec: DeploySpec, io: Io): Promise<boolean> {
  const desired = mcpBridge(spec);
  let existing: K8sObject | null;
  try {
    existing = await readOrNull<K8sObject>(cluster, desired);
  } catch (err) {
    if (err instanceof MissingKindError) return false;
    throw err;
  }
  const removal = removeFromBridge(spec, desired, existing);
  if (removal.action === "none") return false;
  if (removal.action === "delete") {
    const deleted = await deleteOne(cluster, desired);
    if (deleted) line(io.out, `deleted    ${describeRef(desired)}`);
    return deleted;
  }
  try {
    await cluster.objects.patch(removal.object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  } catch (err) {
    throw explain(err, cluster.server, removal.object);
  }
  const what = removal.removed.length > 0 ? `registries ${removal.removed.join(", ")}` : "its record";
  line(io.out, `updated    ${describeRef(desired)} (removed ${what} of deployment ${spec.name}; kept the rest)`);
  return true;
}

export async function del(spec: DeploySpec, cluster: Cluster, io: Io): Promise<number> {
  const selector = ownerSelector(spec.name);
  const named = renderObjects(spec, { hfTokenSet: false });
  let changed = 0;
  for (const step of DELETE_ORDER) {
    if (step === "registries") {
      if (await removeRegistries(cluster, spec, io)) changed++;
      continue;
    }
    const { kind, where } = step;
    const namespace = where === "models" ? spec.namespace : spec.gateway.namespace;
    let owned: K8sObject[];
    try {
      owned = await listByLabels<K8sObject>(cluster, kind, namespace, selector);
    } catch (err) {
      if (err instanceof MissingKindError) continue; // no CRD, so nothing of ours of that kind
      throw err;
    }
    for (const o of owned.filter((x) => ownedBy(x, spec.name))) {
      const ref = { ...o, apiVersion: kind.apiVersion, kind: kind.kind };
      if (await deleteOne(cluster, ref)) {
        line(io.out, `deleted    ${describeRef(ref)}`);
        changed++;
      }
    }
    for (const o of named.filter((x) => x.kind === kind.kind && x.apiVersion === kind.apiVersion)) {
      if (owned.some((x) => x.metadata.name === o.metadata.name)) continue;
      const found = await readOrNull<K8sObject>(cluster, o);
      if (found !== null) line(io.out, `kept       ${describeRef(o)} (not created by deployment ${spec.name})`);
    }
  }
  if (changed === 0) line(io.out, `nothing else of deployment ${spec.name} was found`);
  return EXIT.ok;
}
