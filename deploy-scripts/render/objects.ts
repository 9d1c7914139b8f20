// Small builders shared by the renderers: object metadata and the Higress-flavoured Ingress.
import { KINDS, MCP_BRIDGE_NAME, ownerLabels, type KindInfo } from "../names.ts";
import type { DeploySpec } from "../spec.ts";

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
}

/** What the renderer produces and apply sends: plain JSON, keys in the order they are printed. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export function header(
  kind: KindInfo,
  spec: DeploySpec,
  name: string,
  namespace?: string,
): Pick<K8sObject, "apiVersion" | "kind" | "metadata"> {
  const metadata: ObjectMeta = { name };
  if (kind.namespaced && namespace !== undefined) metadata.namespace = namespace;
  metadata.labels = ownerLabels(spec.name);
  return { apiVersion: kind.apiVersion, kind: kind.kind, metadata };
}

/** `Kind ns/name` (or `Kind name` when cluster-scoped), as messages print an object. */
export function describeRef(o: { kind: string; metadata: { name?: string; namespace?: string } }): string {
  const ns = o.metadata.namespace;
  return `${o.kind} ${ns ? `${ns}/` : ""}${o.metadata.name ?? "?"}`;
}

/**
 * An Ingress that Higress routes by header to an McpBridge registry: the backend is the McpBridge resource and
 * the real destination is the `higress.io/destination` annotation (`<registry>.dns:<port>`).
 */
export function higressIngress(spec: DeploySpec, name: string, annotations: Record<string, string>): K8sObject {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(annotations).sort()) sorted[k] = annotations[k] ?? "";
  const h = header(KINDS.Ingress, spec, name, spec.gateway.namespace);
  const rule: Record<string, unknown> = {};
  if (spec.gateway.host !== undefined) rule["host"] = spec.gateway.host;
  rule["http"] = {
    paths: [
      {
        path: "/",
        pathType: "Prefix",
        backend: { resource: { apiGroup: "networking.higress.io", kind: KINDS.McpBridge.kind, name: MCP_BRIDGE_NAME } },
      },
    ],
  };
  return {
    ...h,
    metadata: { ...h.metadata, annotations: sorted },
    spec: { ingressClassName: spec.gateway.ingressClassName, rules: [rule] },
  };
}
