// McpBridge `default` is shared: the Higress console and every deployment file keep their registries in it, and
// its registry list is atomic for server-side apply (the CRD declares no list keys), so whoever applies it owns the
// whole list. We therefore merge: keep everyone else's entries, replace the ones this deployment recorded in its
// `registries.llm-gateway.io/<deployment>` annotation, and send the result with the resourceVersion we read, so a
// concurrent writer makes the apply fail (409) instead of losing an entry. These functions are pure.
import { ANNOTATION_REGISTRIES_PREFIX, FIELD_MANAGER, LABEL_DEPLOYMENT, LABEL_MANAGED_BY } from "../names.ts";
import type { K8sObject } from "../render/objects.ts";
import { registriesAnnotation } from "../render/render.ts";
import type { DeploySpec } from "../spec.ts";

type Registry = Record<string, unknown> & { name?: unknown };

function registriesOf(o: K8sObject | null): Registry[] {
  const spec = o?.["spec"];
  const regs = spec !== null && typeof spec === "object" ? (spec as { registries?: unknown }).registries : undefined;
  return Array.isArray(regs) ? (regs.filter((r) => r !== null && typeof r === "object") as Registry[]) : [];
}

function recordedBy(o: K8sObject | null): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [k, v] of Object.entries(o?.metadata.annotations ?? {})) {
    if (!k.startsWith(ANNOTATION_REGISTRIES_PREFIX)) continue;
    out.set(k.slice(ANNOTATION_REGISTRIES_PREFIX.length), new Set(v.split(",").filter((n) => n !== "")));
  }
  return out;
}

/** Labels we restate: ours if we created the object (we keep the creator's values), none otherwise. */
function ourLabels(existing: K8sObject | null, desired: K8sObject): Record<string, string> | undefined {
  if (existing === null) return desired.metadata.labels;
  const labels = existing.metadata.labels ?? {};
  if (labels[LABEL_MANAGED_BY] !== FIELD_MANAGER) return undefined;
  const out: Record<string, string> = { [LABEL_MANAGED_BY]: FIELD_MANAGER };
  const dep = labels[LABEL_DEPLOYMENT];
  if (dep !== undefined) out[LABEL_DEPLOYMENT] = dep;
  return out;
}

function ourAnnotations(existing: K8sObject | null, without: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(existing?.metadata.annotations ?? {})) {
    if (k.startsWith(ANNOTATION_REGISTRIES_PREFIX) && k !== without) out[k] = v;
  }
  return out;
}

function withBody(
  desired: K8sObject,
  existing: K8sObject | null,
  labels: Record<string, string> | undefined,
  annotations: Record<string, string>,
  registries: Registry[],
): K8sObject {
  const metadata: K8sObject["metadata"] = { name: desired.metadata.name };
  if (desired.metadata.namespace !== undefined) metadata.namespace = desired.metadata.namespace;
  if (labels !== undefined) metadata.labels = labels;
  const sortedAnnotations: Record<string, string> = {};
  for (const k of Object.keys(annotations).sort()) sortedAnnotations[k] = annotations[k] ?? "";
  if (Object.keys(sortedAnnotations).length > 0) metadata.annotations = sortedAnnotations;
  const rv = existing?.metadata.resourceVersion;
  if (rv !== undefined) metadata.resourceVersion = rv;
  return { apiVersion: desired.apiVersion, kind: desired.kind, metadata, spec: { registries } };
}

export type BridgeMerge = { ok: true; object: K8sObject } | { ok: false; conflicts: string[] };

/** The McpBridge to apply: `desired` (as rendered) merged into what the cluster has. */
export function mergeBridge(spec: DeploySpec, desired: K8sObject, existing: K8sObject | null): BridgeMerge {
  const [ourKey] = registriesAnnotation(spec);
  const recorded = recordedBy(existing);
  const previous = recorded.get(spec.name) ?? new Set<string>();
  const wanted = registriesOf(desired);
  const wantedNames = new Set(wanted.map((r) => String(r.name)));

  const conflicts: string[] = [];
  for (const r of registriesOf(existing)) {
    const name = String(r.name);
    if (!wantedNames.has(name) || previous.has(name)) continue;
    const other = [...recorded].find(([dep, names]) => dep !== spec.name && names.has(name))?.[0];
    conflicts.push(
      `McpBridge ${desired.metadata.namespace ?? ""}/${desired.metadata.name} already has registry ${name}, ` +
        (other !== undefined ? `which deployment "${other}" put there` : "which llm-gateway-deploy did not put there") +
        ": remove it or rename the model",
    );
  }
  if (conflicts.length > 0) return { ok: false, conflicts };

  const keep = registriesOf(existing).filter((r) => !previous.has(String(r.name)) && !wantedNames.has(String(r.name)));
  const annotations = ourAnnotations(existing, ourKey);
  Object.assign(annotations, desired.metadata.annotations ?? {});
  return { ok: true, object: withBody(desired, existing, ourLabels(existing, desired), annotations, [...keep, ...wanted]) };
}

export type BridgeRemoval = { action: "none" } | { action: "delete" } | { action: "apply"; object: K8sObject; removed: string[] };

/** What delete does to the shared McpBridge: drop this deployment's registries; delete it only if we made it and it is empty. */
export function removeFromBridge(spec: DeploySpec, desired: K8sObject, existing: K8sObject | null): BridgeRemoval {
  if (existing === null) return { action: "none" };
  const [ourKey] = registriesAnnotation(spec);
  const recorded = recordedBy(existing);
  const previous = recorded.get(spec.name);
  if (previous === undefined) return { action: "none" };
  const remaining = registriesOf(existing).filter((r) => !previous.has(String(r.name)));
  const removed = registriesOf(existing)
    .filter((r) => previous.has(String(r.name)))
    .map((r) => String(r.name));
  const annotations = ourAnnotations(existing, ourKey);
  const createdByUs = existing.metadata.labels?.[LABEL_MANAGED_BY] === FIELD_MANAGER;
  if (createdByUs && remaining.length === 0 && Object.keys(annotations).length === 0) return { action: "delete" };
  return { action: "apply", object: withBody(desired, existing, ourLabels(existing, desired), annotations, remaining), removed };
}
