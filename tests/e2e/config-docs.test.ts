// The configuration is described once, by the field table assembly/plugin/config/schema.ts; the table the
// plugin's parser walks (schema-table.ts), the README's configuration tables and Higress's console schema
// (deploy-scripts/oci/spec.yaml) are generated from it (make generate). This test requires the generated
// files to be current, spec.yaml to be a usable plugin spec that reads back as the table, and the deploy
// CLI to let through exactly the table's top-level keys; then the real Envoy, running the plugin's own
// parser, must accept the README's seed configuration, the schema's example and a configuration that sets
// every field, and refuse every integer just outside its range with the table's range in the message.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_FIELDS, childKeys } from "../../assembly/plugin/config/schema.ts";
import { generatedFiles } from "../../deploy-scripts/generators/gen-config-schema.ts";
import { checkPluginSpec } from "../../deploy-scripts/oci/speccheck.ts";
import { PLUGIN_CONFIG_KEYS } from "../../deploy-scripts/spec.ts";
import { ROOT } from "../harness/envoy.ts";
import { seedPluginConfig, startSeed, type Seed } from "../harness/seed.ts";

const README = readFileSync(join(ROOT, "README.md"), "utf8");
const SPEC_TEXT = readFileSync(join(ROOT, "deploy-scripts/oci/spec.yaml"), "utf8");
const sorted = (keys: Iterable<string>): string[] => [...keys].sort();

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === "object" && v !== null && !Array.isArray(v);

function readmeSeedConfig(): unknown {
  const m = /The seed scenario's configuration:\s*```json\n([\s\S]*?)```/.exec(README);
  if (m === null) throw new Error('README.md: no ```json block after "The seed scenario\'s configuration:"');
  return JSON.parse(m[1] ?? "");
}

function specSchema(): Node {
  const doc: unknown = parseYaml(SPEC_TEXT);
  const schema =
    isNode(doc) && isNode(doc["spec"]) && isNode(doc["spec"]["configSchema"]) ? doc["spec"]["configSchema"]["openAPIV3Schema"] : undefined;
  if (!isNode(schema)) throw new Error("spec.yaml: no spec.configSchema.openAPIV3Schema");
  return schema;
}

interface SpecField {
  type: unknown;
  default: unknown;
  minimum: unknown;
  maximum: unknown;
  required: boolean;
}

// spec.yaml read back as key paths ("fallback.cooldown.failures", "models[].name").
function specFields(schema: Node, prefix = "", out = new Map<string, SpecField>()): Map<string, SpecField> {
  const props = schema["properties"];
  if (!isNode(props)) throw new Error(`spec.yaml: ${prefix || "the schema"} has no properties`);
  const required = Array.isArray(schema["required"]) ? schema["required"] : [];
  for (const [name, node] of Object.entries(props)) {
    if (!isNode(node)) throw new Error(`spec.yaml: ${prefix}${name} is not a schema`);
    const key = prefix + name;
    out.set(key, {
      type: node["type"],
      default: node["default"],
      minimum: node["minimum"],
      maximum: node["maximum"],
      required: required.includes(name),
    });
    if (isNode(node["properties"])) specFields(node, `${key}.`, out);
    const items = node["items"];
    if (isNode(items) && isNode(items["properties"])) specFields(items, `${key}[].`, out);
  }
  return out;
}

const JSON_TYPE: Record<string, string> = {
  flag: "boolean",
  integer: "integer",
  textList: "array",
  nonEmptyTextList: "array",
  statusList: "array",
  group: "object",
  groupList: "array",
};

describe("one configuration table: the plugin's parser, the README and spec.yaml are generated from it", () => {
  test("the generated files are current (make generate)", () => {
    for (const f of generatedFiles()) {
      assert.equal(readFileSync(f.path, "utf8"), f.content, `${relative(ROOT, f.path)} is stale: run make generate`);
    }
  });

  test("spec.yaml is a usable plugin spec, without third-party URLs", () => {
    assert.deepEqual(checkPluginSpec(SPEC_TEXT), []);
    assert.doesNotMatch(SPEC_TEXT, /iconUrl/);
  });

  test("spec.yaml reads back as the table: keys, types, defaults, ranges, required fields", () => {
    const spec = specFields(specSchema());
    assert.deepEqual(sorted(spec.keys()), sorted(CONFIG_FIELDS.map((f) => f.key)));
    for (const f of CONFIG_FIELDS) {
      const s = spec.get(f.key);
      assert.equal(s?.type, JSON_TYPE[f.kind] ?? "string", `type of ${f.key}`);
      assert.deepEqual(s?.default, f.default, `default of ${f.key}`);
      assert.deepEqual([s?.minimum, s?.maximum], [f.min, f.max], `range of ${f.key}`);
      assert.equal(s?.required, f.required === true, `required ${f.key}`);
    }
  });

  test("the README's tables name every field of the table", () => {
    for (const f of CONFIG_FIELDS) {
      // Each object's table shows keys relative to it (quotas.rules[] has its own table).
      const parent = ["models[].", "fallback.", "prefixAffinity.", "quotas.rules[].", "quotas."].find((p) => f.key.startsWith(p));
      const shown = parent !== undefined ? f.key.slice(parent.length) : f.key;
      if (f.kind === "group" && f.key.includes(".")) continue; // fallback.cooldown's rows document it
      assert.ok(README.includes("| `" + shown + "` |"), `README.md has a row for ${f.key}`);
    }
  });

  test("the deploy CLI lets through exactly the plugin's own top-level settings", () => {
    assert.deepEqual(sorted(PLUGIN_CONFIG_KEYS), sorted(childKeys("").filter((k) => k !== "models")));
    assert.ok(PLUGIN_CONFIG_KEYS.includes("memoryBudgetBytes") && PLUGIN_CONFIG_KEYS.includes("fallback"));
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
  trustConsumerHeader: true,
  maxSseEventBytes: 65536,
  maxResponseBytes: 1024 * 1024,
  memoryBudgetBytes: 128 * 1024 * 1024,
  stage: "attempt",
  models: [
    {
      name: "qwen2-1-5b",
      route: "qwen",
      upstreamModel: "Qwen/Qwen2-1.5B-Instruct",
      fallback: ["gemma-2-2b", "llama-3"],
      cluster: "outbound|8080||qwen.dns",
    },
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
  prefixAffinity: {
    enabled: true,
    header: "x-prefix",
    prefixBytes: 4096,
    models: ["qwen2-1-5b"],
    loadAware: {
      enabled: true,
      header: "x-endpoint",
      loadFactor: 150,
      maxWaiting: 2,
      maxKvCacheUsage: 90,
      reportTtlMs: 30000,
      scrapeIntervalMs: 500,
      metricsPath: "/vllm/metrics",
      discoverEvery: 32,
    },
  },
  quotas: {
    mode: "cluster",
    localSlots: 128,
    service: { cluster: "outbound|8081||ratelimit.dns", domain: "acme", timeoutMs: 50, onUnavailable: "deny" },
    rules: [
      {
        name: "team-a",
        consumerHeader: "x-mse-consumer",
        apiKeyHeader: "authorization",
        models: ["qwen*"],
        perModel: true,
        window: "hour",
        requests: 100,
        inputTokens: 1000,
        outputTokens: 2000,
        totalTokens: 3000,
      },
    ],
  },
};

// A quota rule the range tests put their value in (a rule needs a name and some limit).
const BASE_RULE = { name: "r", requests: 1, inputTokens: 1, outputTokens: 1, totalTokens: 1 };

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

// `base` with `key` set to `value`; "a.b[].c" sets c in the first item of the list a.b (a BASE_RULE).
function withValue(base: unknown, key: string, value: unknown): Record<string, unknown> {
  const out = structuredClone(base) as Record<string, unknown>;
  const parts = key.split(".");
  let node = out;
  for (const p of parts.slice(0, -1)) {
    if (p.endsWith("[]")) {
      const name = p.slice(0, -2);
      if (!Array.isArray(node[name]) || (node[name] as unknown[]).length === 0) node[name] = [{ ...BASE_RULE }];
      node = (node[name] as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
      continue;
    }
    if (!isNode(node[p])) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] ?? ""] = value;
  return out;
}

test("the every-field configuration sets each field of the table to a value other than its default", () => {
  const set = setKeys(EVERY_FIELD);
  assert.deepEqual(sorted(set.keys()), sorted(CONFIG_FIELDS.map((f) => f.key)));
  for (const f of CONFIG_FIELDS) {
    if (f.default !== undefined) assert.notDeepEqual(set.get(f.key), f.default, `${f.key} is set to its default`);
  }
});

describe("Envoy accepts the documented configurations and refuses values outside the documented ranges", () => {
  let seed: Seed;
  // Started on a configuration of its own, so that each one below is a change Envoy has to apply.
  before(async () => {
    seed = await startSeed({ pluginConfig: { models: [{ name: "gemma-2-2b" }] } });
  });
  after(async () => {
    await seed?.stop();
  });

  const accepts = async (config: unknown, what: string): Promise<void> => {
    const outcome = await seed.gateway.reconfigure(config);
    assert.equal(
      outcome,
      "accepted",
      `${what} was refused:\n${seed.gateway
        .log()
        .split("\n")
        .filter((l) => l.includes("configuration refused"))
        .slice(-1)
        .join("")}`,
    );
  };

  test("the README's seed configuration", async () => {
    await accepts(readmeSeedConfig(), "the README's seed configuration");
  });

  test("spec.yaml's example", async () => {
    await accepts(specSchema()["example"], "spec.yaml's example");
  });

  test("every documented field set to a non-default value", async () => {
    await accepts(EVERY_FIELD, "the every-field configuration");
  });

  const ranged = CONFIG_FIELDS.filter((f) => f.kind === "integer").map((f): [string, [number, number]] => [
    f.key,
    [f.min ?? 0, f.max ?? 0],
  ]);

  test("every integer at the ends of its documented range", async () => {
    const base = readmeSeedConfig();
    let lowest: unknown = base;
    let highest: unknown = base;
    for (const [key, [min, max]] of ranged) {
      // A rule with every limit at 0 sets no limit (refused on its own): list items keep BASE_RULE's.
      if (key.includes("[]")) continue;
      lowest = withValue(lowest, key, min);
      highest = withValue(highest, key, max);
    }
    await accepts(lowest, "every integer at its minimum");
    await accepts(highest, "every integer at its maximum");
  });

  for (const [key, [min, max]] of ranged) {
    for (const bad of [min - 1, max + 1]) {
      test(`${key}: ${bad} is refused, naming the documented range`, async () => {
        assert.equal(await seed.gateway.reconfigure(withValue(readmeSeedConfig(), key, bad)), "rejected");
        assert.ok(
          seed.gateway.log().includes(`${key.replace("[]", "[0]")}: must be an integer between ${min} and ${max}, got ${bad}`),
          `log names ${key} and its range`,
        );
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
