// apply: server-side apply of every object of the deployment, refusing to take over objects that are not ours,
// then (optionally) waiting for the models and printing how to reach them.
import { PatchStrategy } from "@kubernetes/client-node";
import { warnAboutClusterPush } from "./cluster-push.ts";
import { gatewayEndpoint, printEndpoint, printEnvoyGateway } from "./endpoint.ts";
import { CliError, EXIT, explain } from "../errors.ts";
import { line, type Io } from "../io.ts";
import { readOrNull, type Cluster } from "./kube.ts";
import { mergeBridge } from "./mcpbridge.ts";
import { disableModelRouters, warnAboutModelRouter } from "./modelrouter.ts";
import { FIELD_MANAGER, HF_SECRET_NAME, HF_TOKEN_ENV, KINDS, MCP_BRIDGE_NAME } from "../names.ts";
import { describeRef, type K8sObject } from "../render/objects.ts";
import { takeoverConflict } from "./ownership.ts";
import { renderObjects } from "../render/render.ts";
import { hfToken, hfTokenSecret } from "./secret.ts";
import type { DeploySpec } from "../spec.ts";
import { waitForModels, type WaitOptions } from "./wait.ts";

export interface ApplyOptions {
  /** Skip waiting for the Playgrounds when undefined. */
  wait?: WaitOptions;
  /** gateway.type envoy: where the Envoy bootstrap is (what to tell the user; apply does not run Envoy). */
  envoyBootstrap?: string;
  /** --disable-model-router: disable Higress's model-router WasmPlugins instead of warning about them. */
  disableModelRouter?: boolean;
}

type Outcome = "created" | "configured" | "unchanged";

function isBridge(o: K8sObject): boolean {
  return o.kind === KINDS.McpBridge.kind && o.apiVersion === KINDS.McpBridge.apiVersion && o.metadata.name === MCP_BRIDGE_NAME;
}

/** The objects apply writes, in order: the token Secret (only when HF_TOKEN is set) first, then the rendered ones. */
export function objectsToApply(spec: DeploySpec, env: NodeJS.ProcessEnv): K8sObject[] {
  const token = hfToken(env);
  const rendered = renderObjects(spec, { hfTokenSet: token !== undefined });
  return token !== undefined ? [hfTokenSecret(spec, token), ...rendered] : rendered;
}

async function serverSideApply(cluster: Cluster, o: K8sObject): Promise<K8sObject> {
  try {
    return (await cluster.objects.patch(o, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)) as K8sObject;
  } catch (err) {
    throw explain(err, cluster.server, o);
  }
}

interface Step {
  /** As rendered; for the shared McpBridge, merged with what exists just before it is sent. */
  desired: K8sObject;
  existing: K8sObject | null;
}

/** Reads what exists and refuses (all conflicts at once) before anything is written. */
async function plan(cluster: Cluster, spec: DeploySpec, objects: K8sObject[]): Promise<Step[]> {
  const steps: Step[] = [];
  const conflicts: string[] = [];
  for (const desired of objects) {
    const existing = await readOrNull<K8sObject>(cluster, desired);
    const merged = isBridge(desired) ? mergeBridge(spec, desired, existing) : undefined;
    const conflict = merged === undefined && existing !== null ? takeoverConflict(existing, spec.name) : undefined;
    if (merged !== undefined && !merged.ok) conflicts.push(...merged.conflicts);
    else if (conflict !== undefined) conflicts.push(conflict);
    else steps.push({ desired, existing });
  }
  if (conflicts.length > 0) {
    throw new CliError(`refusing to apply, nothing was changed:\n${conflicts.map((c) => `  ${c}`).join("\n")}`);
  }
  return steps;
}

/** Applies the merged McpBridge; its resourceVersion makes a concurrent change fail with 409: read, merge, retry. */
async function applyBridge(cluster: Cluster, spec: DeploySpec, step: Step): Promise<{ result: K8sObject; existing: K8sObject | null }> {
  let existing = step.existing;
  for (let attempt = 1; ; attempt++) {
    const merged = mergeBridge(spec, step.desired, existing);
    if (!merged.ok) throw new CliError(merged.conflicts.join("\n"));
    try {
      return { result: await serverSideApply(cluster, merged.object), existing };
    } catch (err) {
      if (attempt >= 3 || !(err instanceof CliError) || !err.message.startsWith("conflict on")) throw err;
    }
    existing = await readOrNull<K8sObject>(cluster, step.desired);
  }
}

export async function apply(spec: DeploySpec, cluster: Cluster, io: Io, opts: ApplyOptions): Promise<number> {
  const objects = objectsToApply(spec, io.env);
  const steps = await plan(cluster, spec, objects);
  for (const step of steps) {
    const { result, existing } = isBridge(step.desired)
      ? await applyBridge(cluster, spec, step)
      : { result: await serverSideApply(cluster, step.desired), existing: step.existing };
    const outcome: Outcome =
      existing === null ? "created" : existing.metadata.resourceVersion === result.metadata.resourceVersion ? "unchanged" : "configured";
    line(io.out, `${outcome.padEnd(10)} ${describeRef(step.desired)}`);
  }

  if (opts.disableModelRouter === true) await disableModelRouters(cluster, spec, io);
  else await warnAboutModelRouter(cluster, spec, io);
  await warnAboutToken(cluster, spec, io);
  await warnAboutClusterPush(cluster, spec, io);
  if (opts.wait !== undefined) {
    line(io.out, "");
    const result = await waitForModels(cluster, spec, io, opts.wait);
    if (!result.ok) {
      line(io.err, result.message);
      return EXIT.notReady;
    }
  }
  line(io.out, "");
  if (spec.gateway.type === "envoy") printEnvoyGateway(io, spec, opts.envoyBootstrap ?? "(render -f FILE prints it)");
  else printEndpoint(io, spec, await gatewayEndpoint(cluster, spec));
  return EXIT.ok;
}

/** A gated model without a token fails to download; say so now rather than after a long wait. */
async function warnAboutToken(cluster: Cluster, spec: DeploySpec, io: Io): Promise<void> {
  const gated = spec.models.filter((m) => m.needsHfToken).map((m) => m.name);
  if (gated.length === 0 || hfToken(io.env) !== undefined) return;
  const ref = { apiVersion: "v1", kind: "Secret", metadata: { name: HF_SECRET_NAME, namespace: spec.namespace } };
  try {
    if ((await readOrNull(cluster, ref)) !== null) return;
  } catch (err) {
    // Not allowed to read Secrets, say: there is nothing we could check.
    if (err instanceof CliError) return;
    throw err;
  }
  line(
    io.err,
    `warning: ${gated.join(", ")} needs a Hugging Face token, but ${HF_TOKEN_ENV} is not set and Secret ` +
      `${spec.namespace}/${HF_SECRET_NAME} does not exist: set ${HF_TOKEN_ENV} and apply again`,
  );
}
