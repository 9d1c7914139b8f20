// User-facing errors: every failure the CLI knows about becomes one line that says what to do. Internal errors
// (bugs) keep their stack; everything here does not.
import { ApiException } from "@kubernetes/client-node";
import { installHint, kindInfo } from "./names.ts";

export const EXIT = {
  ok: 0,
  /** Cluster or API failure: unreachable, refused, missing CRD, conflict. */
  failure: 1,
  /** The command line or the deployment file is invalid. */
  usage: 2,
  /** A model did not become ready: AbortProcessing, or the wait timed out. */
  notReady: 3,
} as const;

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.failure) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** The API version + kind the API server does not serve: its CRD is not installed. */
export class MissingKindError extends CliError {
  constructor(apiVersion: string, kind: string) {
    const info = kindInfo(apiVersion, kind);
    const what = info && info.crd !== "" ? `CRD ${info.crd} (${kind} ${apiVersion})` : `${kind} ${apiVersion}`;
    super(`the cluster does not know ${what}: ${info ? installHint(info.installer) : "install the CRD that defines it"}`);
  }
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string };
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNRESET",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_HAS_EXPIRED",
]);

/** A Node network error code anywhere in the cause chain (node-fetch puts it on the error itself). */
export function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === "object" && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function pointAtClusterHint(): string {
  return "point KUBECONFIG at a kubeconfig file, create ~/.kube/config, or run inside a cluster";
}

/** The `message` of a Kubernetes Status body, however client-node handed it over. */
export function statusMessage(err: ApiException<unknown>): string {
  let body: unknown = err.body;
  if (typeof body === "string") {
    const text = body;
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      return text.trim() || `HTTP ${err.code}`;
    }
  }
  if (body !== null && typeof body === "object") {
    const m = (body as { message?: unknown }).message;
    if (typeof m === "string" && m !== "") return m;
  }
  return `HTTP ${err.code}`;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404 && !isMissingKind(err);
}

/** client-node's discovery failures: an unknown group/version (404), or a known group without this kind. */
export function isMissingKind(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.message.startsWith("Unrecognized API version and kind")) return true;
  return err instanceof ApiException && err.code === 404 && err.message.startsWith("Failed to fetch resource metadata");
}

function refText(ref: ObjectRef): string {
  const ns = ref.metadata.namespace;
  return `${ref.kind} ${ns ? `${ns}/` : ""}${ref.metadata.name ?? ""}`.trim();
}

/**
 * One line for a failed API call. `server` names the cluster in connection errors; `ref` the object acted on.
 * Returns a CliError; anything unrecognised is returned as is so its stack is kept.
 */
export function explain(err: unknown, server: string, ref?: ObjectRef): unknown {
  if (err instanceof CliError) return err;
  const net = networkCode(err);
  if (net !== undefined) {
    return new CliError(`cannot reach the Kubernetes API server at ${server} (${net}): ${pointAtClusterHint()}`);
  }
  if (isMissingKind(err) && ref) return new MissingKindError(ref.apiVersion, ref.kind);
  if (err instanceof ApiException) {
    const msg = statusMessage(err);
    const what = ref ? refText(ref) : "the request";
    switch (err.code) {
      case 401:
        return new CliError(`the API server at ${server} refused the credentials (401 Unauthorized): check the kubeconfig's user`);
      case 403:
        return new CliError(`not allowed to change ${what} (403 Forbidden): ${msg}`);
      case 404:
        if (/namespaces? "[^"]+" not found/.test(msg)) {
          const ns = ref?.metadata.namespace ?? "";
          return new CliError(`the API server rejected ${what}: ${msg} (create it: kubectl create namespace ${ns})`);
        }
        return new CliError(`the API server rejected ${what}: ${msg}`);
      case 409:
        return new CliError(`conflict on ${what}: ${msg} (someone changed it meanwhile; run the command again)`);
      default:
        return new CliError(`the API server rejected ${what} (HTTP ${err.code}): ${msg}`);
    }
  }
  return err;
}
