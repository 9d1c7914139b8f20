// The configuration is described three times: by the code (assembly/plugin/config.ts, fallback.ts), by the
// README's configuration tables and by the console schema (deploy-scripts/oci/spec.yaml). This test reads
// all three and requires the same keys, defaults, types, ranges and required fields; then the real Envoy
// must accept the README's seed configuration, the schema's example and a configuration that sets every
// documented field, and refuse every integer just outside its documented range.
//
// The code is AssemblyScript, so its defaults are read from the source text: the `export const DEFAULT_*`
// constants, the field initialisers of GatewayConfig, ModelRoute and FallbackPolicy, and the read* calls of
// the parser (which key fills which field, and with what range). Anything that cannot be read fails the test
// with the reason: a reader that silently skips would let the documents drift.
import { PLUGIN_CONFIG_KEYS } from "../../deploy-scripts/spec.ts";
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { checkPluginSpec } from "../../deploy-scripts/oci/speccheck.ts";
import { ROOT } from "../harness/envoy.ts";
import { seedPluginConfig, startSeed, type Seed } from "../harness/seed.ts";

// The configuration parser spans three files; their sources are read as one.
const CONFIG_TS = ["config/gateway-config.ts", "config/checker.ts", "config/fallback-config.ts"]
  .map((f) => readFileSync(join(ROOT, "assembly/plugin", f), "utf8")).join("\n");
const FALLBACK_TS = readFileSync(join(ROOT, "assembly/plugin/fallback/policy.ts"), "utf8");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const SPEC_TEXT = readFileSync(join(ROOT, "deploy-scripts/oci/spec.yaml"), "utf8");

// Keys are paths: "maxBodyBytes", "models[].cluster", "fallback.cooldown.failures".
type FieldType = "string" | "boolean" | "integer" | "array" | "object";
type Default = { kind: "none" } | { kind: "value"; value: unknown } | { kind: "described"; text: string };

interface CodeField { type: FieldType; default: Default; range?: [number, number] }
interface DocField { type: string; required: boolean; default: Default }
interface SpecField { type: unknown; default: unknown; minimum: unknown; maximum: unknown; required: boolean }

const NONE: Default = { kind: "none" };

// ---- the code ------------------------------------------------------------------------------------

// The text of `<keyword> <name>` up to its closing brace in column 0.
function block(src: string, opening: string, file: string): string {
  const start = src.indexOf(opening);
  if (start < 0) throw new Error(`${file}: "${opening}" not found; update tests/e2e/config-docs.test.ts`);
  const end = src.indexOf("\n}", start);
  if (end < 0) throw new Error(`${file}: no closing brace after "${opening}"`);
  return src.slice(start, end);
}

function stringArrayConst(name: string): string[] {
  const m = new RegExp(`const ${name}: Array<string> = \\[([^\\]]*)\\];`).exec(CONFIG_TS);
  if (m === null) throw new Error(`config.ts: cannot find the array ${name}`);
  const items = [...(m[1] ?? "").matchAll(/"([^"]*)"/g)].map((x) => x[1] ?? "");
  if (items.length === 0) throw new Error(`config.ts: ${name} holds no strings`);
  return items;
}

// A literal as AssemblyScript writes these defaults: strings, booleans, integer products, string arrays.
function literal(expr: string, what: string): unknown {
  const e = expr.trim();
  if (/^"(?:[^"\\]|\\.)*"$/.test(e)) return JSON.parse(e);
  if (e === "true" || e === "false") return e === "true";
  if (/^\d+(\s*\*\s*\d+)*$/.test(e)) return e.split("*").reduce((p, n) => p * Number(n.trim()), 1);
  if (/^\[\s*("(?:[^"\\]|\\.)*"\s*,?\s*)*\]$/.test(e)) return JSON.parse(e);
  const triggers = [...e.matchAll(/new StatusTrigger\((\d+), (true|false)\)/g)];
  if (/^\[.*\]$/.test(e) && triggers.length > 0 && e.replace(/new StatusTrigger\(\d+, (true|false)\)|[\s,[\]]/g, "") === "") {
    // A class (5, true) is written "5xx" in the configuration; a code (429, false) as the number.
    return triggers.map((t) => (t[2] === "true" ? `${t[1]}xx` : Number(t[1])));
  }
  throw new Error(`cannot read the value of ${what}: ${e}`);
}

function defaultConstants(): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const m of CONFIG_TS.matchAll(/^export const (DEFAULT_\w+)\s*(?::[^=]+)?=\s*(.+);\s*$/gm)) {
    out.set(m[1] ?? "", literal(m[2] ?? "", m[1] ?? ""));
  }
  if (out.size === 0) throw new Error("config.ts: no `export const DEFAULT_*` constants found");
  return out;
}

function fieldType(tsType: string, what: string): FieldType {
  if (tsType === "string") return "string";
  if (tsType === "bool") return "boolean";
  if (/^[iu](8|16|32|64)$/.test(tsType)) return "integer";
  if (/^Array<\w+>$/.test(tsType)) return "array";
  if (tsType === "FallbackPolicy") return "object";
  throw new Error(`${what}: no configuration type for the AssemblyScript type ${tsType}`);
}

// A class's fields with their initial values, which are the configuration's defaults.
function classFields(src: string, file: string, className: string, constants: Map<string, unknown>): Map<string, CodeField> {
  const body = block(src, `export class ${className} {`, file);
  const out = new Map<string, CodeField>();
  for (const m of body.matchAll(/^ {2}(\w+): ([\w<>]+) = (.+?);[ \t]*(?:\/\/.*)?$/gm)) {
    const [name, tsType, init] = [m[1] ?? "", m[2] ?? "", (m[3] ?? "").trim()];
    const what = `${file}: ${className}.${name}`;
    let value: Default;
    if (/^DEFAULT_\w+$/.test(init)) {
      if (!constants.has(init)) throw new Error(`${what}: ${init} is not an exported DEFAULT_* constant`);
      value = { kind: "value", value: constants.get(init) };
    } else if (init === '""' || /^new (Array<\w+>|FallbackPolicy)\(\)$/.test(init)) {
      value = NONE; // "" and an empty list mean "not set"; the fallback object has its own fields
    } else {
      value = { kind: "value", value: literal(init, what) };
    }
    out.set(name, { type: fieldType(tsType, what), default: value });
  }
  if (out.size === 0) throw new Error(`${file}: no fields read from class ${className}`);
  return out;
}

function field(fields: Map<string, CodeField>, name: string, where: string): CodeField {
  const f = fields.get(name);
  if (f === undefined) throw new Error(`${where} has no field ${name} with an initial value`);
  return { ...f };
}

// Everything the code accepts, with its default, type and range.
function codeFields(): Map<string, CodeField> {
  const constants = defaultConstants();
  const gateway = classFields(CONFIG_TS, "config.ts", "GatewayConfig", constants);
  const model = classFields(CONFIG_TS, "config.ts", "ModelRoute", constants);
  const policy = classFields(FALLBACK_TS, "fallback.ts", "FallbackPolicy", constants);
  const out = new Map<string, CodeField>();

  // Top level: field name = key; readBytes calls give the byte limits their ranges.
  const sized = new Map<string, [number, number]>();
  for (const m of CONFIG_TS.matchAll(/readBytes\(c, v, path, "(\w+)", (\d+), (\d+),/g)) sized.set(m[1] ?? "", [Number(m[2]), Number(m[3])]);
  if (sized.size === 0) throw new Error("config.ts: no readBytes(c, v, path, \"key\", min, max, …) calls found");
  for (const key of stringArrayConst("KNOWN_KEYS")) {
    const f = field(gateway, key, "GatewayConfig");
    const range = sized.get(key);
    if (range !== undefined) f.range = range;
    out.set(key, f);
  }
  for (const key of stringArrayConst("MODEL_KEYS")) out.set(`models[].${key}`, field(model, key, "ModelRoute"));

  // The fallback object: parseFallback says which key fills which FallbackPolicy field.
  const parse = block(CONFIG_TS, "function parseFallback(", "config.ts");
  const objects = new Map<string, string>([["v", "fallback"]]);
  for (const m of parse.matchAll(/const (\w+) = v\.get\("(\w+)"\)/g)) objects.set(m[1] ?? "", `fallback.${m[2] ?? ""}`);
  const keyOfField = new Map<string, { key: string; range?: [number, number] }>();
  for (const m of parse.matchAll(/p\.(\w+) = (?:<\w+>)?read(?:Int|BoolField)\(c, (\w+), [^,]+, "(\w+)"(?:, (\d+), (\d+))?/g)) {
    const parent = objects.get(m[2] ?? "");
    if (parent === undefined) throw new Error(`config.ts parseFallback: cannot tell which object ${m[2]} is`);
    keyOfField.set(m[1] ?? "", { key: `${parent}.${m[3] ?? ""}`, ...(m[4] !== undefined ? { range: [Number(m[4]), Number(m[5])] as [number, number] } : {}) });
  }
  for (const [name] of policy) if (!keyOfField.has(name)) keyOfField.set(name, { key: `fallback.${name}` }); // same name
  const wanted = [
    ...stringArrayConst("FALLBACK_KEYS").filter((k) => k !== "cooldown").map((k) => `fallback.${k}`),
    ...stringArrayConst("COOLDOWN_KEYS").map((k) => `fallback.cooldown.${k}`),
  ];
  for (const key of wanted) {
    const entry = [...keyOfField.entries()].find(([, v]) => v.key === key);
    if (entry === undefined) throw new Error(`config.ts parseFallback: no FallbackPolicy field is read from ${key}`);
    const f = field(policy, entry[0], "FallbackPolicy");
    if (entry[1].range !== undefined) f.range = entry[1].range;
    out.set(key, f);
  }
  out.set("fallback.cooldown", { type: "object", default: NONE });

  for (const [key, f] of out) {
    if (f.type === "integer" && f.range === undefined) throw new Error(`config.ts: no readInt/readSize range found for ${key}`);
  }
  return out;
}

// Keys the code refuses to go without: `c.fail(path + "<key>", "... required")` in the parser of its object.
function codeRequired(): string[] {
  const out: string[] = [];
  for (const [fn, prefix] of [["function parseGateway(", ""], ["function parseModel(", "models[]."]] as const) {
    for (const m of block(CONFIG_TS, fn, "config.ts").matchAll(/c\.fail\(path \+ "\.?(\w+)", "[^"]*\brequired\b/g)) {
      out.push(`${prefix}${m[1] ?? ""}`);
    }
  }
  return out.sort();
}

// ---- the README ----------------------------------------------------------------------------------

interface Table { heading: string; caption: string; rows: Record<string, string>[] }

function configurationSection(): string {
  const start = README.indexOf("\n## Configuration\n");
  if (start < 0) throw new Error("README.md: no \"## Configuration\" section");
  const end = README.indexOf("\n## ", start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

// Cells split on `|` unless escaped; `\|` (how a table writes a pipe inside code) becomes `|`.
function cells(line: string): string[] {
  return line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "").split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function tables(section: string): Table[] {
  const out: Table[] = [];
  const lines = section.split("\n");
  let heading = "";
  let caption = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (!line.startsWith("|")) {
      if (line.startsWith("#")) heading = line;
      if (line.trim() !== "") caption = line;
      continue;
    }
    const header = cells(line);
    const rows: Record<string, string>[] = [];
    i += 2; // the header and the |---| line
    for (; i < lines.length && (lines[i] ?? "").startsWith("|"); i++) {
      const row = cells(lines[i] ?? "");
      rows.push(Object.fromEntries(header.map((h, j) => [h, row[j] ?? ""])));
    }
    i--; // the line after the table is read by the outer loop
    out.push({ heading, caption, rows });
    caption = "";
  }
  return out;
}

function readmeDefault(cell: string): Default {
  if (cell === "") return NONE;
  // One code span, optionally followed by a remark in parentheses: `0` (off).
  const m = /^`([^`]*)`(\s*\([^)]*\))?$/.exec(cell);
  if (m === null) return { kind: "described", text: cell };
  const text = m[1] ?? "";
  try { return { kind: "value", value: JSON.parse(text) }; } catch { return { kind: "value", value: text }; }
}

function readmeFields(): { fields: Map<string, DocField>; reserved: string[] } {
  const all = tables(configurationSection());
  const top = all[0];
  const models = all.find((t) => t.caption.includes("`models`"));
  const fallback = all.find((t) => t.heading.includes("`fallback`"));
  if (top === undefined || models === undefined || fallback === undefined) {
    throw new Error("README.md Configuration: expected the top-level table, the `models` table and a \"The `fallback` object\" heading with its table");
  }
  const fields = new Map<string, DocField>();
  const reserved: string[] = [];
  for (const [table, prefix] of [[top, ""], [models, "models[]."], [fallback, "fallback."]] as const) {
    for (const row of table.rows) {
      for (const col of ["Name", "Type", "Required", "Default"]) {
        if (!(col in row)) throw new Error(`README.md: a configuration table has no ${col} column`);
      }
      const name = /^`([^`]+)`$/.exec(row["Name"] ?? "")?.[1];
      if (name === undefined) throw new Error(`README.md: Name cell ${JSON.stringify(row["Name"])} is not one code span`);
      if (name.startsWith("_")) { reserved.push(name); continue; }
      const key = prefix + name;
      assert.ok(!fields.has(key), `README.md documents ${key} twice`);
      fields.set(key, { type: row["Type"] ?? "", required: row["Required"] === "yes", default: readmeDefault(row["Default"] ?? "") });
      // `cooldown.failures` documents the object `cooldown` too.
      const parts = key.split(".");
      for (let n = parts.length - 1; n > 0; n--) {
        const parent = parts.slice(0, n).join(".");
        if (!fields.has(parent) && parent !== "models[]") fields.set(parent, { type: "object", required: false, default: NONE });
      }
    }
  }
  return { fields, reserved };
}

function readmeSeedConfig(): unknown {
  const m = /The seed scenario's configuration:\s*```json\n([\s\S]*?)```/.exec(configurationSection());
  if (m === null) throw new Error("README.md: no ```json block after \"The seed scenario's configuration:\"");
  return JSON.parse(m[1] ?? "");
}

// ---- spec.yaml -----------------------------------------------------------------------------------

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === "object" && v !== null && !Array.isArray(v);

function specSchema(): Node {
  const doc: unknown = parseYaml(SPEC_TEXT);
  const schema = isNode(doc) && isNode(doc["spec"]) && isNode(doc["spec"]["configSchema"]) ? doc["spec"]["configSchema"]["openAPIV3Schema"] : undefined;
  if (!isNode(schema)) throw new Error("spec.yaml: no spec.configSchema.openAPIV3Schema");
  return schema;
}

function specFields(schema: Node, prefix = "", out = new Map<string, SpecField>()): Map<string, SpecField> {
  const props = schema["properties"];
  if (!isNode(props)) throw new Error(`spec.yaml: ${prefix || "the schema"} has no properties`);
  const required = Array.isArray(schema["required"]) ? schema["required"] : [];
  for (const [name, node] of Object.entries(props)) {
    if (!isNode(node)) throw new Error(`spec.yaml: ${prefix}${name} is not a schema`);
    const key = prefix + name;
    out.set(key, { type: node["type"], default: node["default"], minimum: node["minimum"], maximum: node["maximum"], required: required.includes(name) });
    if (isNode(node["properties"])) specFields(node, `${key}.`, out);
    const items = node["items"];
    if (isNode(items) && isNode(items["properties"])) specFields(items, `${key}[].`, out);
  }
  return out;
}

// ---- the comparison ------------------------------------------------------------------------------

const code = codeFields();
const readme = readmeFields();
const spec = specFields(specSchema());
const sorted = (keys: Iterable<string>): string[] => [...keys].sort();

describe("the README, spec.yaml and the code describe the same configuration", () => {
  test("the code's keys are read: KNOWN_KEYS, MODEL_KEYS, FALLBACK_KEYS, COOLDOWN_KEYS", () => {
    assert.ok(code.has("routingHeader") && code.has("models[].cluster") && code.has("fallback.cooldown.durationMs"));
    assert.deepEqual(code.get("maxBodyBytes"), { type: "integer", default: { kind: "value", value: 10485760 }, range: [1, 536870912] });
  });

  test("the README documents every key the code accepts, and no other", () => {
    assert.deepEqual(sorted(readme.fields.keys()), sorted(code.keys()));
    // Higress's reserved keys (`_rules_`) are read by the parser by name.
    for (const name of readme.reserved) assert.ok(CONFIG_TS.includes(`"${name}"`), `README documents ${name}, config.ts never reads it`);
  });

  test("the deploy CLI lets through exactly the plugin's own top-level settings", () => {
    const topLevel = stringArrayConst("KNOWN_KEYS").filter((k) => k !== "models");
    assert.deepEqual(sorted(PLUGIN_CONFIG_KEYS), sorted(topLevel));
  });

  test("spec.yaml describes every key the code accepts, and no other", () => {
    assert.deepEqual(sorted(spec.keys()), sorted(code.keys()));
  });

  test("defaults agree", () => {
    for (const [key, c] of code) {
      const doc = readme.fields.get(key);
      const sp = spec.get(key);
      if (c.default.kind === "value") {
        assert.deepEqual(doc?.default, c.default, `README default of ${key}`);
        assert.deepEqual(sp?.default, c.default.value, `spec.yaml default of ${key}`);
      } else {
        assert.notEqual(doc?.default.kind, "value", `README gives ${key} a default the code does not have`);
        assert.equal(sp?.default, undefined, `spec.yaml gives ${key} a default the code does not have`);
      }
    }
  });

  test("types agree", () => {
    for (const [key, c] of code) {
      assert.equal(readme.fields.get(key)?.type.split(" ")[0], c.type, `README type of ${key}`);
      assert.equal(spec.get(key)?.type, c.type, `spec.yaml type of ${key}`);
    }
  });

  test("spec.yaml's integer ranges are the ones the code checks", () => {
    for (const [key, c] of code) {
      if (c.range === undefined) continue;
      assert.deepEqual([spec.get(key)?.minimum, spec.get(key)?.maximum], c.range, `spec.yaml minimum/maximum of ${key}`);
    }
  });

  test("required fields agree", () => {
    const req = (m: Map<string, { required: boolean }>): string[] => sorted([...m].filter(([, f]) => f.required).map(([k]) => k));
    assert.deepEqual(codeRequired(), ["models", "models[].name"]);
    assert.deepEqual(req(readme.fields), codeRequired(), "README Required column");
    assert.deepEqual(req(spec), codeRequired(), "spec.yaml required lists");
  });

  test("spec.yaml is a usable plugin spec, without third-party URLs", () => {
    assert.deepEqual(checkPluginSpec(SPEC_TEXT), []);
    assert.doesNotMatch(SPEC_TEXT, /iconUrl/);
  });

  test("the README's seed configuration is the one the seed scenario runs", () => {
    assert.deepEqual(readmeSeedConfig(), seedPluginConfig());
  });
});

// ---- the real Envoy ------------------------------------------------------------------------------

// Every documented field, each set to a valid value other than its default.
const EVERY_FIELD = {
  routingHeader: "x-llm-route",
  pathSuffixes: ["/v1/chat/completions", "/openai/v1/chat/completions"],
  maxBodyBytes: 2 * 1024 * 1024,
  serveModelList: false,
  ownedBy: "acme",
  defaultModel: "gemma-2-2b",
  injectStreamUsage: false,
  consumerHeader: "x-consumer",
  maxSseEventBytes: 65536,
  maxResponseBytes: 1024 * 1024,
  memoryBudgetBytes: 128 * 1024 * 1024,
  stage: "attempt",
  models: [
    { name: "qwen2-1-5b", route: "qwen", upstreamModel: "Qwen/Qwen2-1.5B-Instruct", fallback: ["gemma-2-2b", "llama-3"], cluster: "outbound|8080||qwen.dns" },
    { name: "gemma-2-2b", cluster: "gemma" },
    { name: "llama-*", route: "llama" },
  ],
  fallback: {
    enabled: false,
    mechanism: "dispatch",
    onStatus: [503, "502", "4xx"],
    onUpstreamUnreachable: false,
    maxAttempts: 2,
    attemptTimeoutMs: 5000,
    slowFailureMs: 20000,
    firstByteTimeoutMs: 15000,
    cooldown: { failures: 0, windowMs: 60000, durationMs: 120000 },
    clusterTemplate: "outbound|80||{route}.static",
  },
};

// key path -> value, for every key (objects and list items included) a configuration sets.
function setKeys(v: unknown, prefix = "", out = new Map<string, unknown>()): Map<string, unknown> {
  if (!isNode(v)) return out;
  for (const [k, x] of Object.entries(v)) {
    out.set(prefix + k, x);
    if (isNode(x)) setKeys(x, `${prefix}${k}.`, out);
    if (Array.isArray(x)) for (const item of x) setKeys(item, `${prefix}${k}[].`, out);
  }
  return out;
}

function withValue(base: unknown, key: string, value: unknown): Record<string, unknown> {
  const out = structuredClone(base) as Record<string, unknown>;
  const parts = key.split(".");
  let node = out;
  for (const p of parts.slice(0, -1)) {
    if (!isNode(node[p])) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] ?? ""] = value;
  return out;
}

test("the every-field configuration sets each documented key to a value other than its default", () => {
  const set = setKeys(EVERY_FIELD);
  assert.deepEqual(sorted(set.keys()), sorted(code.keys()));
  for (const [key, c] of code) {
    if (c.default.kind === "value") assert.notDeepEqual(set.get(key), c.default.value, `${key} is set to its default`);
  }
});

describe("Envoy accepts the documented configurations and refuses values outside the documented ranges", () => {
  let seed: Seed;
  // Started on a configuration of its own, so that each one below is a change Envoy has to apply.
  before(async () => { seed = await startSeed({ pluginConfig: { models: [{ name: "gemma-2-2b" }] } }); });
  after(async () => { await seed?.stop(); });

  const accepts = async (config: unknown, what: string): Promise<void> => {
    const outcome = await seed.gateway.reconfigure(config);
    assert.equal(outcome, "accepted", `${what} was refused:\n${seed.gateway.log().split("\n").filter((l) => l.includes("configuration refused")).slice(-1).join("")}`);
  };

  test("the README's seed configuration", async () => { await accepts(readmeSeedConfig(), "the README's seed configuration"); });

  test("spec.yaml's example", async () => { await accepts(specSchema()["example"], "spec.yaml's example"); });

  test("every documented field set to a non-default value", async () => { await accepts(EVERY_FIELD, "the every-field configuration"); });

  const ranged = [...code].filter(([, c]) => c.range !== undefined);

  test("every integer at the ends of its documented range", async () => {
    const base = readmeSeedConfig();
    let lowest: unknown = base;
    let highest: unknown = base;
    for (const [key, c] of ranged) {
      const [min, max] = c.range ?? [0, 0];
      lowest = withValue(lowest, key, min);
      highest = withValue(highest, key, max);
    }
    await accepts(lowest, "every integer at its minimum");
    await accepts(highest, "every integer at its maximum");
  });

  for (const [key, c] of ranged) {
    const [min, max] = c.range ?? [0, 0];
    for (const bad of [min - 1, max + 1]) {
      test(`${key}: ${bad} is refused, naming the documented range`, async () => {
        assert.equal(await seed.gateway.reconfigure(withValue(readmeSeedConfig(), key, bad)), "rejected");
        assert.ok(seed.gateway.log().includes(`${key}: must be an integer between ${min} and ${max}, got ${bad}`), `log names ${key} and its range`);
      });
    }
  }

  for (const bad of [99, 600, "6xx", "50"]) {
    test(`fallback.onStatus: ${JSON.stringify(bad)} is refused (codes 100 to 599, classes "1xx" to "5xx")`, async () => {
      assert.equal(await seed.gateway.reconfigure(withValue(readmeSeedConfig(), "fallback.onStatus", [bad])), "rejected");
      assert.ok(seed.gateway.log().includes(`fallback.onStatus[0]: must be a status code`), "log names fallback.onStatus[0]");
    });
  }
});
