// The Hugging Face token Secret llmaz's model loader reads. Built only by apply, from the environment, and never
// rendered, printed or written: render.ts only learns whether the token is set.
import { HF_SECRET_KEY, HF_SECRET_NAME, HF_TOKEN_ENV, KINDS } from "../names.ts";
import { header, type K8sObject } from "../render/objects.ts";
import type { DeploySpec } from "../spec.ts";

export function hfToken(env: NodeJS.ProcessEnv): string | undefined {
  const token = env[HF_TOKEN_ENV];
  return token !== undefined && token !== "" ? token : undefined;
}

export function hfTokenSecret(spec: DeploySpec, token: string): K8sObject {
  return {
    ...header(KINDS.Secret, spec, HF_SECRET_NAME, spec.namespace),
    type: "Opaque",
    data: { [HF_SECRET_KEY]: Buffer.from(token, "utf8").toString("base64") },
  };
}

/** Replaces every occurrence of the secret (and its base64 form) in text meant for a terminal or a log. */
export function redactor(token: string | undefined): (text: string) => string {
  if (token === undefined || token.length < 4) return (text) => text;
  const forms = [token, Buffer.from(token, "utf8").toString("base64")];
  return (text) => forms.reduce((t, f) => t.split(f).join("<redacted>"), text);
}
