// Sanity check of spec.yaml before it goes into an image: the fields of the wasm-image-spec "metadata
// file format" (what Higress's console reads for its bundled plugins; it reads none from a custom image)
// must be present and well-typed.

import { parse } from "yaml";

const PHASES = ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Problems found, as "path: what" strings; empty when the spec is usable. */
export function checkPluginSpec(text: string): string[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return [`not valid YAML: ${(err as Error).message.split("\n")[0] ?? ""}`];
  }
  const problems: string[] = [];
  if (!isRecord(doc)) return ["top level must be a mapping"];
  if (doc["apiVersion"] !== "1.0.0") problems.push(`apiVersion: must be "1.0.0"`);
  const info = doc["info"];
  if (!isRecord(info)) {
    problems.push("info: missing");
  } else {
    for (const key of ["category", "name", "title", "description", "version"]) {
      if (typeof info[key] !== "string" || info[key] === "") problems.push(`info.${key}: missing or not a string`);
    }
  }
  const spec = doc["spec"];
  if (!isRecord(spec)) {
    problems.push("spec: missing");
    return problems;
  }
  if (typeof spec["phase"] !== "string" || !PHASES.includes(spec["phase"])) {
    problems.push(`spec.phase: must be one of ${PHASES.join(", ")}`);
  }
  if (typeof spec["priority"] !== "number" || !Number.isInteger(spec["priority"])) {
    problems.push("spec.priority: must be an integer");
  }
  const schema = isRecord(spec["configSchema"]) ? spec["configSchema"]["openAPIV3Schema"] : undefined;
  if (!isRecord(schema) || schema["type"] !== "object" || !isRecord(schema["properties"])) {
    problems.push("spec.configSchema.openAPIV3Schema: must be an object schema with properties");
  }
  return problems;
}
