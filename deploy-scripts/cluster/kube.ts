// Where the cluster is: KUBECONFIG, then ~/.kube/config, then the in-cluster service account, like kubectl.
// client-node would silently fall back to http://localhost:8080; we say instead that no cluster is configured.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { CoreV1Api, KubeConfig, KubernetesObjectApi } from "@kubernetes/client-node";
import { CliError, explain, isNotFound, pointAtClusterHint, type ObjectRef } from "../errors.ts";

const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

export interface Cluster {
  kc: KubeConfig;
  objects: KubernetesObjectApi;
  core: CoreV1Api;
  /** API server URL, for messages. */
  server: string;
}

export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  const files = (env["KUBECONFIG"] ?? "").split(delimiter).filter((f) => f !== "");
  const home = env["HOME"] ?? homedir();
  if (files.length > 0) {
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length === files.length) {
      throw new CliError(`KUBECONFIG names ${missing.join(", ")}, which does not exist: ${pointAtClusterHint()}`);
    }
  } else if (!existsSync(join(home, ".kube", "config")) && !existsSync(SERVICE_ACCOUNT_TOKEN)) {
    throw new CliError(
      `no cluster configured (no KUBECONFIG, no ${join(home, ".kube", "config")}, not in a cluster): ${pointAtClusterHint()}`,
    );
  }
  const saved = { KUBECONFIG: process.env["KUBECONFIG"], HOME: process.env["HOME"] };
  try {
    // loadFromDefault reads process.env; an explicit env (tests, embedding) is honoured by swapping it in.
    setEnv("KUBECONFIG", files.filter((f) => existsSync(f)).join(delimiter) || undefined);
    setEnv("HOME", home);
    kc.loadFromDefault();
  } catch (err) {
    throw new CliError(`cannot read the kubeconfig: ${(err as Error).message.split("\n")[0] ?? String(err)}`);
  } finally {
    setEnv("KUBECONFIG", saved.KUBECONFIG);
    setEnv("HOME", saved.HOME);
  }
  if (!kc.getCurrentCluster()) {
    throw new CliError(`the kubeconfig has no current context with a cluster: ${pointAtClusterHint()} (kubectl config use-context NAME)`);
  }
  return kc;
}

function setEnv(key: string, value: string | undefined): void {
  if (value === undefined) delete process.env[key];
  else process.env[key] = value;
}

export function connect(env: NodeJS.ProcessEnv = process.env): Cluster {
  const kc = loadKubeConfig(env);
  return {
    kc,
    objects: KubernetesObjectApi.makeApiClient(kc),
    core: kc.makeApiClient(CoreV1Api),
    server: kc.getCurrentCluster()?.server ?? "(unknown server)",
  };
}

/** The object as the cluster has it, or null when it does not exist. Other failures become one-line errors. */
export async function readOrNull<T extends ObjectRef>(cluster: Cluster, ref: ObjectRef): Promise<T | null> {
  try {
    return (await cluster.objects.read({
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.metadata.name ?? "", ...(ref.metadata.namespace ? { namespace: ref.metadata.namespace } : {}) },
    })) as unknown as T;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw explain(err, cluster.server, ref);
  }
}

/** Lists a kind (in a namespace, or cluster-wide for cluster-scoped kinds) by label selector. */
export async function listByLabels<T extends ObjectRef>(
  cluster: Cluster,
  kind: { apiVersion: string; kind: string; namespaced: boolean },
  namespace: string,
  labelSelector: string,
): Promise<T[]> {
  try {
    const list = await cluster.objects.list(
      kind.apiVersion,
      kind.kind,
      kind.namespaced ? namespace : undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      labelSelector,
    );
    return list.items as unknown as T[];
  } catch (err) {
    throw explain(err, cluster.server, { apiVersion: kind.apiVersion, kind: kind.kind, metadata: { namespace } });
  }
}
