// Generates everything that describes the plugin's configuration from its one table
// (assembly/plugin/config/schema.ts): the table the plugin's parser walks, the README's configuration
// tables and Higress's console schema (deploy-scripts/oci/spec.yaml).
//
//   npx tsx deploy-scripts/generators/gen-config-schema.ts           write the files (make generate)
//   npx tsx deploy-scripts/generators/gen-config-schema.ts --check   exit 1 if a committed file differs
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { stringify } from "yaml";
import {
  CONFIG_EXAMPLE,
  CONFIG_FIELDS,
  RULES_HELP,
  childFields,
  type ConfigField,
  type Kind,
} from "../../assembly/plugin/config/schema.ts";
import { syncGeneratedFiles, type GeneratedFile } from "./generated-files.ts";
import { ROOT } from "./gen-manifests.ts";

export const SCHEMA_TABLE_FILE = join(ROOT, "assembly", "plugin", "config", "schema-table.ts");
export const SPEC_FILE = join(ROOT, "deploy-scripts", "oci", "spec.yaml");
export const README_FILE = join(ROOT, "README.md");

// ---- the plugin's table (AssemblyScript) -----------------------------------------------------------

function kindName(k: Kind): string {
  return k.charAt(0).toUpperCase() + k.slice(1);
}

export function renderSchemaTable(fields: ConfigField[] = CONFIG_FIELDS): string {
  const rows = fields.map((f) => {
    const def = f.default === undefined ? "" : JSON.stringify(f.default);
    const args = [
      JSON.stringify(f.key),
      `Kind.${kindName(f.kind)}`,
      JSON.stringify(def),
      String(f.min ?? 0),
      String(f.max ?? 0),
      JSON.stringify((f.choices ?? []).join("|")),
      String(f.required === true),
    ];
    return `  new Field(${args.join(", ")}),`;
  });
  return [
    "// Generated from schema.ts by deploy-scripts/generators/gen-config-schema.ts (make generate): do not edit.",
    '// key, kind, default (JSON, "" = none), min, max, choices ("a|b"), required',
    'import { Field, Kind } from "./field";',
    "",
    "export const FIELDS: Array<Field> = [",
    ...rows,
    "];",
    "",
  ].join("\n");
}

// ---- README tables ---------------------------------------------------------------------------------

function docType(f: ConfigField): string {
  switch (f.kind) {
    case "flag":
      return "boolean";
    case "integer":
      return `integer, ${f.min} to ${f.max}`;
    case "textList":
    case "nonEmptyTextList":
      return "array of strings";
    case "statusList":
      return "array of status codes and classes";
    case "group":
      return "object";
    case "groupList":
      return "array of objects";
    case "choice":
      return `string: ${(f.choices ?? []).map((c) => "`" + c + "`").join(" or ")}`;
    default:
      return "string";
  }
}

function docDefault(f: ConfigField): string {
  if (f.defaultText !== undefined) return f.defaultText;
  if (f.default === undefined) return "";
  return "`" + (typeof f.default === "string" ? f.default : JSON.stringify(f.default)) + "`";
}

/** A Markdown cell: pipes escaped (also inside code spans, which GitHub's tables require). */
function cell(s: string): string {
  return s.replace(/\|/g, "\\|");
}

function table(rows: Array<[string, string, string, string, string]>): string {
  const head = "| Name | Type | Required | Default | Description |\n|---|---|---|---|---|";
  return [head, ...rows.map((r) => "| " + r.map(cell).join(" | ") + " |")].join("\n");
}

function row(f: ConfigField, shownKey: string): [string, string, string, string, string] {
  return ["`" + shownKey + "`", docType(f), f.required === true ? "yes" : "no", docDefault(f), f.help ?? f.summary];
}

/** The README's tables, by the name of the region each fills. */
export function renderReadmeTables(fields: ConfigField[] = CONFIG_FIELDS): Record<string, string> {
  const top = fields.filter((f) => !f.key.includes(".") && !f.key.includes("[]"));
  // `models` first: the one required field.
  top.sort((a, b) => Number(b.required === true) - Number(a.required === true));
  const topRows = top.map((f) => row(f, f.key));
  topRows.push(["`_rules_`", "array", "no", "", RULES_HELP]);
  const modelRows = fields.filter((f) => f.key.startsWith("models[].")).map((f) => row(f, f.key.slice("models[].".length)));
  const fallbackRows = fields
    .filter((f) => f.key.startsWith("fallback.") && f.kind !== "group")
    .map((f) => row(f, f.key.slice("fallback.".length)));
  const under = (parent: string) =>
    fields.filter((f) => f.key.startsWith(parent) && f.kind !== "group").map((f) => row(f, f.key.slice(parent.length)));
  return {
    "config-fields": table(topRows),
    "config-models": table(modelRows),
    "config-fallback": table(fallbackRows),
    "config-prefix-affinity": table(under("prefixAffinity.")),
    "config-quotas": table(under("quotas.").filter((r) => !r[0].startsWith("`rules[]."))),
    "config-quota-rules": table(under("quotas.rules[].")),
  };
}

/** `text` with each `<!-- BEGIN GENERATED: name -->` … `<!-- END GENERATED: name -->` region refilled. */
export function fillRegions(text: string, regions: Record<string, string>, file: string): string {
  let out = text;
  for (const [name, body] of Object.entries(regions)) {
    const begin = `<!-- BEGIN GENERATED: ${name} -->`;
    const end = `<!-- END GENERATED: ${name} -->`;
    const i = out.indexOf(begin);
    const j = out.indexOf(end);
    if (i < 0 || j < i) throw new Error(`${file}: no "${begin}" … "${end}" region`);
    out = out.slice(0, i + begin.length) + "\n" + body + "\n" + out.slice(j);
  }
  return out;
}

// ---- Higress's console schema (spec.yaml) ----------------------------------------------------------

type Schema = Record<string, unknown>;

function kindSchema(f: ConfigField): Schema {
  switch (f.kind) {
    case "text":
    case "modelName":
      return { type: "string", minLength: 1 };
    case "headerName":
      return { type: "string", minLength: 1, pattern: "^[a-z0-9._-]+$" };
    case "headerValue":
      return { type: "string", minLength: 1, maxLength: 256, pattern: "^[!-~]+$" };
    case "flag":
      return { type: "boolean" };
    case "integer":
      return { type: "integer", minimum: f.min, maximum: f.max };
    case "choice":
      return { type: "string", enum: f.choices };
    case "textList":
      return { type: "array", items: { type: "string", minLength: 1 } };
    case "nonEmptyTextList":
      return { type: "array", minItems: 1, items: { type: "string", minLength: 1 } };
    case "statusList":
      return {
        type: "array",
        items: {
          anyOf: [
            { type: "integer", minimum: 100, maximum: 599 },
            { type: "string", pattern: "^([1-5]xx|[1-5][0-9][0-9])$" },
          ],
        },
      };
    case "group":
      return { type: "object" };
    case "groupList":
      return f.required === true ? { type: "array", minItems: 1 } : { type: "array" };
  }
}

function objectSchema(fields: ConfigField[], parent: string): Schema {
  const prefix = parent.length > 0 ? parent + "." : "";
  const children = childFields(parent, fields);
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const f of children) {
    const name = f.key.slice(prefix.length);
    if (name.endsWith("[]")) continue;
    properties[name] = fieldSchema(fields, f);
    if (f.required === true) required.push(name);
  }
  const s: Schema = { type: "object", properties };
  if (required.length > 0) s["required"] = required;
  return s;
}

function fieldSchema(fields: ConfigField[], f: ConfigField): Schema {
  const { type, ...rest } = kindSchema(f);
  const s: Schema = {
    type,
    title: f.title,
    "x-title-i18n": { "zh-CN": f.titleZh },
    description: f.summary,
    "x-description-i18n": { "zh-CN": f.summaryZh },
  };
  if (f.kind === "group") {
    s["properties"] = (objectSchema(fields, f.key)["properties"] as Schema) ?? {};
  }
  if (f.kind === "groupList") {
    const items = objectSchema(fields, f.key + "[]");
    s["minItems"] = 1;
    s["items"] = items;
  }
  if (f.default !== undefined) s["default"] = f.default;
  for (const [k, v] of Object.entries(rest)) if (!(k in s)) s[k] = v;
  return { ...s, ...(f.spec ?? {}) };
}

const SPEC_HEADER = `# Description of the llm-gateway plugin (Higress "Wasm plugin image" metadata file). Goes into the
# image as the application/vnd.module.wasm.spec.v1+yaml layer, in the format of Higress's bundled
# plugins. It documents: Higress's console does not read it from a custom image (it serves spec.yaml
# only for its bundled plugins; a custom plugin gets an empty schema, configured in the YAML editor).
#
# Phase/priority: AUTHN, 900 — the slot Higress's own model-router uses. AUTHN plugins run before
# AUTHZ, STATS and UNSPECIFIED_PHASE ones (ai-proxy, ai-statistics, ai-token-ratelimit all run in
# UNSPECIFIED_PHASE), so the routing header is set and the body model rewritten before any other AI
# plugin sees the request, and before Envoy re-picks the route. Within AUTHN, 900 runs ahead of the
# auth plugins; consumer names they add are still read later, in the response phase.
#
# Generated from assembly/plugin/config/schema.ts by deploy-scripts/generators/gen-config-schema.ts
# (make generate): edit the table, not this file.
`;

export function renderSpec(fields: ConfigField[] = CONFIG_FIELDS): string {
  const schema = objectSchema(fields, "");
  const doc = {
    apiVersion: "1.0.0",
    info: {
      category: "custom",
      name: "llm-gateway/v1",
      title: "LLM Gateway",
      "x-title-i18n": { "zh-CN": "LLM 网关" },
      description:
        "Routes OpenAI-compatible requests by the model named in the body, rewrites the model for the upstream, answers GET /v1/models, and falls back to backup models.",
      "x-description-i18n": {
        "zh-CN": "按请求体中的 model 路由 OpenAI 兼容请求，可为上游改写 model，应答 GET /v1/models，并可回退到备用模型。",
      },
      version: "0.1.0",
      contact: { name: "llm-gateway maintainers" },
    },
    spec: {
      phase: "AUTHN",
      priority: 900,
      configSchema: { openAPIV3Schema: { ...schema, example: CONFIG_EXAMPLE } },
    },
  };
  return SPEC_HEADER + stringify(doc, { lineWidth: 0 });
}

export function generatedFiles(): GeneratedFile[] {
  const readme = readFileSync(README_FILE, "utf8");
  return [
    { path: SCHEMA_TABLE_FILE, content: renderSchemaTable() },
    { path: SPEC_FILE, content: renderSpec() },
    { path: README_FILE, content: fillRegions(readme, renderReadmeTables(), "README.md") },
  ];
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const stale = syncGeneratedFiles(generatedFiles(), check, ROOT, "make generate");
  return check && stale > 0 ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.exit(main(process.argv.slice(2)));
