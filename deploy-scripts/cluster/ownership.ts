// Which objects a deployment may change or delete: those carrying both of our labels with its name. Anything
// else with the same name belongs to someone else and is left alone.
import { FIELD_MANAGER, LABEL_DEPLOYMENT, LABEL_MANAGED_BY, ownerLabels } from "../names.ts";
import { describeRef, type K8sObject } from "../render/objects.ts";

export function ownedBy(o: { metadata: { labels?: Record<string, string> } }, deployment: string): boolean {
  const labels = o.metadata.labels ?? {};
  return labels[LABEL_MANAGED_BY] === FIELD_MANAGER && labels[LABEL_DEPLOYMENT] === deployment;
}

export function ownerSelector(deployment: string): string {
  return Object.entries(ownerLabels(deployment))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** Why apply must not take `existing` over, or undefined when it may. */
export function takeoverConflict(existing: K8sObject, deployment: string): string | undefined {
  if (ownedBy(existing, deployment)) return undefined;
  const labels = existing.metadata.labels ?? {};
  const owner =
    labels[LABEL_MANAGED_BY] === FIELD_MANAGER && labels[LABEL_DEPLOYMENT] !== undefined
      ? `belongs to deployment "${labels[LABEL_DEPLOYMENT]}"`
      : "was not created by llm-gateway-deploy";
  return `${describeRef(existing)} already exists and ${owner}: delete or rename it, then apply again`;
}
