// The Grafana dashboard (manifests/grafana/, from deploy-scripts/generators/gen-dashboard.ts) against the real
// Envoy's /stats/prometheus: every metric a query names is exported, with the type the query
// assumes (rate() over counters and histogram parts, histogram_quantile() over buckets, a bare
// gauge), and every label a query filters or groups by is on those series. Traffic covers plain and
// streamed answers, reasoning, failures, a fallback, a request whose every attempt failed and an unparsed
// stream, so each panel's series exist (the OpenTelemetry GenAI histograms included).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { startSeed, post, type Seed } from "../harness/seed.ts";
import { AI_PREFIX, parsePrometheus, scrapeUntil, type Sample } from "../harness/metrics.ts";
import {
  CONFIGMAP_FILE,
  CONFIGMAP_KEY,
  DASHBOARD_FILE,
  DS_VAR,
  GEN_AI_PREFIX,
  ROOT,
} from "../../deploy-scripts/generators/gen-dashboard.ts";

// ---- a small PromQL reader: the metric selectors, label matchers and groupings of an expression ----

type Tok = { kind: "ident" | "str" | "num" | "punct"; text: string };

function tokenize(expr: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i] ?? "";
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < expr.length && expr[j] !== c) j += expr[j] === "\\" ? 2 : 1;
      out.push({ kind: "str", text: expr.slice(i + 1, j) });
      i = j + 1;
      continue;
    }
    if (c === "[") {
      // range or subquery window, e.g. [$__rate_interval]: nothing to check inside
      const j = expr.indexOf("]", i);
      assert.ok(j > i, `unclosed [ in ${expr}`);
      i = j + 1;
      continue;
    }
    const id = /^[a-zA-Z_:][\w:]*/.exec(expr.slice(i));
    if (id) {
      out.push({ kind: "ident", text: id[0] });
      i += id[0].length;
      continue;
    }
    const num = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?/i.exec(expr.slice(i));
    if (num) {
      out.push({ kind: "num", text: num[0] });
      i += num[0].length;
      continue;
    }
    const op = /^(?:=~|!~|!=|==|<=|>=|[-+*/%^(){},=<>])/.exec(expr.slice(i));
    assert.ok(op, `unexpected character ${JSON.stringify(c)} in ${expr}`);
    out.push({ kind: "punct", text: op[0] });
    i += op[0].length;
  }
  return out;
}

const AGGREGATIONS = new Set([
  "sum",
  "avg",
  "min",
  "max",
  "count",
  "group",
  "stddev",
  "stdvar",
  "topk",
  "bottomk",
  "quantile",
  "count_values",
]);
const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan",
]);
const RATE_FUNCTIONS = new Set(["rate", "irate", "increase"]);

interface Selector {
  metric: string;
  labels: string[];
  within: string[];
} // within: enclosing functions, innermost last
interface Query {
  selectors: Selector[];
  grouping: string[];
  madeLabels: string[];
}

function readQuery(expr: string): Query {
  const toks = tokenize(expr);
  const q: Query = { selectors: [], grouping: [], madeLabels: [] };
  const stack: string[] = []; // what each open "(" belongs to: a function name, or "" for grouping parens
  const argIndex: number[] = [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    const next = toks[i + 1];
    if (t.kind === "punct" && t.text === "(") {
      stack.push("");
      argIndex.push(0);
      continue;
    }
    if (t.kind === "punct" && t.text === ")") {
      stack.pop();
      argIndex.pop();
      continue;
    }
    if (t.kind === "punct" && t.text === ",") {
      if (argIndex.length > 0) argIndex[argIndex.length - 1]!++;
      continue;
    }
    if (t.kind === "str") {
      // label_replace(v, "dst", …): the label it makes may be grouped by later.
      if (stack.at(-1) === "label_replace" && argIndex.at(-1) === 1) q.madeLabels.push(t.text);
      continue;
    }
    if (t.kind === "punct" && t.text === "{") assert.fail(`a selector without a metric name in ${expr}`);
    if (t.kind !== "ident") continue;
    if (["by", "without", "on", "ignoring", "group_left", "group_right"].includes(t.text) && next?.text === "(") {
      let j = i + 2;
      for (; toks[j] !== undefined && toks[j]!.text !== ")"; j++) if (toks[j]!.kind === "ident") q.grouping.push(toks[j]!.text);
      i = j;
      continue;
    }
    // Functions name their parentheses; aggregations (sum, max, …) don't matter to the checks.
    if (next?.text === "(") {
      stack.push(AGGREGATIONS.has(t.text) ? "" : t.text);
      argIndex.push(0);
      i++;
      continue;
    }
    if (AGGREGATIONS.has(t.text) || KEYWORDS.has(t.text)) continue;
    // A metric name, with optional matchers.
    const sel: Selector = { metric: t.text, labels: [], within: stack.filter((s) => s !== "") };
    if (next?.text === "{") {
      let j = i + 2;
      for (; toks[j] !== undefined && toks[j]!.text !== "}"; j++) {
        const tj = toks[j]!;
        if (tj.kind === "ident" && toks[j + 1]?.kind === "punct" && /^(=|!=|=~|!~)$/.test(toks[j + 1]!.text)) sel.labels.push(tj.text);
      }
      assert.ok(toks[j] !== undefined, `unclosed { in ${expr}`);
      i = j;
    }
    assert.notEqual(sel.metric, "__name__", `select by name regex is not supported: ${expr}`);
    q.selectors.push(sel);
  }
  return q;
}

test("the PromQL reader finds metrics, matchers, groupings and made labels", () => {
  const q = readQuery(
    'histogram_quantile(0.5, sum by (ai_model, le) (rate(x_bucket{a="1", b=~"$v"}[$__rate_interval]))) / sum(label_replace(rate(y{c!="z,w"}[5m]), "class", "v", "", "")) or vector(0)',
  );
  assert.deepEqual(q.selectors, [
    { metric: "x_bucket", labels: ["a", "b"], within: ["histogram_quantile", "rate"] },
    { metric: "y", labels: ["c"], within: ["label_replace", "rate"] },
  ]);
  assert.deepEqual(q.grouping, ["ai_model", "le"]);
  assert.deepEqual(q.madeLabels, ["class"]);
  assert.deepEqual(readQuery("max(llm_gateway_vm_memory_bytes)").selectors, [
    { metric: "llm_gateway_vm_memory_bytes", labels: [], within: [] },
  ]);
});

// ---- the dashboard --------------------------------------------------------------------------------

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
  gridPos: { x: number; y: number; w: number; h: number };
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
}
interface Dashboard {
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboardText = readFileSync(DASHBOARD_FILE, "utf8");
const dash = JSON.parse(dashboardText) as Dashboard;

function queries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of dash.panels) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of dash.templating.list) {
    if (v.type !== "query") continue;
    const text = typeof v.query === "string" ? v.query : v.query.query;
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(text);
    assert.ok(m, `variable ${v.name}: ${text}`);
    // The label a variable lists must be on the metric it lists it from: check it as a matcher.
    const selector = m[1]!.includes("{") ? m[1]!.replace("{", `{${m[2]}=~".*", `) : `${m[1]}{${m[2]}=~".*"}`;
    out.push({ where: `variable ${v.name}`, expr: selector });
  }
  return out;
}

test("the dashboard's shape: unique ids, the data source variable everywhere, the filter variables, a 24-column grid", () => {
  assert.equal(dash.uid, "llm-gateway");
  assert.ok(dash.schemaVersion >= 36);
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  assert.deepEqual(
    dash.templating.list.map((v) => v.name),
    [DS_VAR, "ai_model", "ai_route", "ai_consumer"],
  );
  for (const p of dash.panels) {
    assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the grid`);
    if (p.type === "row") continue;
    assert.equal(p.datasource?.uid, `\${${DS_VAR}}`, `panel "${p.title}" uses the data source variable`);
    assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has queries`);
    for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, `\${${DS_VAR}}`);
  }
  // Every per-request selector is narrowed by all three variables, so a filter applies to every panel; the
  // OpenTelemetry GenAI histograms, which have no route or consumer, by the model.
  for (const { where, expr } of queries()) {
    if (where.startsWith("variable")) continue;
    for (const s of readQuery(expr).selectors) {
      if (s.metric.startsWith(GEN_AI_PREFIX))
        assert.ok(s.labels.includes("gen_ai_request_model"), `${where}: ${s.metric} is filtered by $ai_model`);
      if (!s.metric.startsWith(AI_PREFIX)) continue;
      for (const v of ["ai_model", "ai_route", "ai_consumer"])
        assert.ok(s.labels.includes(v), `${where}: ${s.metric} is filtered by $${v}`);
    }
  }
});

test("the ConfigMap carries exactly the dashboard JSON, labelled for the Grafana sidecar", () => {
  const cm = parseYaml(readFileSync(CONFIGMAP_FILE, "utf8")) as {
    kind: string;
    metadata: { labels: Record<string, string> };
    data: Record<string, string>;
  };
  assert.equal(cm.kind, "ConfigMap");
  assert.equal(cm.metadata.labels["grafana_dashboard"], "1");
  assert.ok(cm.data[CONFIGMAP_KEY] === dashboardText, `${CONFIGMAP_KEY} in the ConfigMap differs from llm-gateway-dashboard.json`);
});

test("the generator's --check passes: the committed files are what it generates", () => {
  execFileSync(process.execPath, ["--import", "tsx", join(ROOT, "deploy-scripts/generators/gen-dashboard.ts"), "--check"], {
    cwd: ROOT,
    stdio: "pipe",
  });
});

// ---- against the real Envoy ---------------------------------------------------------------------

// Requests for this host get a configuration (a `_match_domain_` rule) under which SSE events over
// 64 bytes are not parsed: every streamed answer is then counted as unparsed.
const UNPARSED_HOST = "unparsed.example.test";
let seed: Seed;
let samples: Sample[];
let types: Map<string, string>;

// fetch() sets Host from the URL whatever the headers say; node:http sends the one given.
function postWithHost(url: string, host: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { host, "content-type": "application/json" } }, (res) => {
      res.resume();
      res.on("end", () => resolve());
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

before(async () => {
  seed = await startSeed({
    stub: { ttftMs: 40, tokenIntervalMs: 2, completionTokens: 8 },
    pluginConfig: {
      models: [{ name: "qwen2-1-5b", fallback: ["gemma-2-2b"] }, { name: "gemma-2-2b" }],
      trustConsumerHeader: true, // the requests below name their consumer on purpose
      _rules_: [{ _match_domain_: [UNPARSED_HOST], maxSseEventBytes: 64 }],
    },
  });
  const url = `${seed.gateway.url}/v1/chat/completions`;
  const messages = [{ role: "user", content: "what does the dashboard show" }];
  const send = async (body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<void> => {
    const r = await post(url, { messages, ...body }, headers);
    await r.text().catch(() => ""); // a cut stream rejects
  };
  for (const model of ["qwen2-1-5b", "gemma-2-2b"]) {
    await send({ model });
    await send({ model, stream: true }, { "x-mse-consumer": "team-a" });
  }
  await send({ model: "gemma-2-2b" }, { "x-stub-status": "503" }); // upstream 5xx
  await send({ model: "gemma-2-2b" }, { "x-stub-status": "400" }); // upstream 4xx
  await send({ model: "gemma-2-2b" }, { "x-stub-drop": "1" }); // local 5xx (Envoy)
  await send({ model: "no-such-model" }); // local 4xx (plugin)
  await send({ model: "qwen2-1-5b" }, { "x-stub-status": "503", "x-stub-target": "qwen2-1-5b" }); // fallback
  await send({ model: "qwen2-1-5b" }, { "x-stub-status": "503" }); // every attempt failed
  await send({ model: "qwen2-1-5b", stream: true }, { "x-stub-reasoning-tokens": "3" }); // reasoning, first answer token
  await send({ model: "gemma-2-2b", stream: true }, { "x-stub-cut-after": "3" }); // incomplete stream
  await send({ model: "gemma-2-2b", stream: true }, { "x-stub-no-usage": "1" }); // estimated usage
  await postWithHost(url, UNPARSED_HOST, { model: "gemma-2-2b", messages, stream: true }); // unparsed stream
  const models = await fetch(`${seed.gateway.url}/v1/models`); // local 2xx
  await models.text();
  // Histograms reach the admin output at the next stats flush.
  const flushed = [
    `${AI_PREFIX}inter_token_ms_bucket`,
    `${AI_PREFIX}first_answer_token_ms_bucket`,
    `${GEN_AI_PREFIX}server_time_per_output_token_milliseconds_bucket`,
  ];
  await scrapeUntil(seed.gateway.adminUrl, (s) => flushed.every((n) => s.some((x) => x.name === n)));
  const text = await (await fetch(`${seed.gateway.adminUrl}/stats/prometheus`)).text();
  samples = parsePrometheus(text);
  types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
});
after(async () => {
  await seed?.stop();
});

// The type of the family a series belongs to: its own name, or for _bucket/_sum/_count the histogram
// it is part of (a counter may itself end in _count: llm_duration_count).
function family(name: string): { family: string; type: string; part?: string } | undefined {
  const own = types.get(name);
  if (own !== undefined) return { family: name, type: own };
  const m = /^(.+)_(bucket|sum|count)$/.exec(name);
  if (m === null) return undefined;
  const t = types.get(m[1]!);
  return t === undefined ? undefined : { family: m[1]!, type: t, part: m[2]! };
}

test("every metric a dashboard query names is exported, with the type the query assumes", () => {
  const problems: string[] = [];
  for (const { where, expr } of queries()) {
    for (const s of readQuery(expr).selectors) {
      const series = samples.filter((x) => x.name === s.metric);
      const f = family(s.metric);
      if (series.length === 0 || f === undefined) {
        problems.push(`${where}: ${s.metric} is not in /stats/prometheus`);
        continue;
      }
      const rated = s.within.some((fn) => RATE_FUNCTIONS.has(fn));
      const isHistogramPart = f.type === "histogram" && f.part !== undefined;
      if (s.within.includes("histogram_quantile") && !(isHistogramPart && f.part === "bucket"))
        problems.push(`${where}: histogram_quantile over ${s.metric}, not a histogram's _bucket`);
      if (rated && !(f.type === "counter" || isHistogramPart)) problems.push(`${where}: rate() over ${s.metric}, a ${f.type}`);
      if (!rated && !where.startsWith("variable") && f.type !== "gauge")
        problems.push(`${where}: ${s.metric} (a ${f.type}) used without rate()`);
    }
  }
  assert.deepEqual(problems, []);
});

test("every label a dashboard query filters or groups by is on the series it selects", () => {
  const problems: string[] = [];
  for (const { where, expr } of queries()) {
    const q = readQuery(expr);
    for (const s of q.selectors) {
      const series = samples.filter((x) => x.name === s.metric);
      const wanted = [...s.labels, ...q.grouping.filter((l) => !q.madeLabels.includes(l))];
      for (const label of new Set(wanted)) {
        const lacking = series.filter((x) => !(label in x.labels));
        if (series.length > 0 && lacking.length > 0)
          problems.push(`${where}: ${lacking.length} of ${series.length} ${s.metric} series lack ${label}`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

test("the traffic reached the panels' series for both models", () => {
  // Not a test of the counts (usage.test.ts does that): that the filters would list what was sent.
  const models = new Set(samples.filter((x) => x.name === `${AI_PREFIX}llm_duration_count`).map((x) => x.labels["ai_model"]));
  for (const m of ["qwen2-1-5b", "gemma-2-2b"]) assert.ok(models.has(m), `ai_model ${m} listed`);
  const consumers = new Set(samples.filter((x) => x.name === `${AI_PREFIX}llm_duration_count`).map((x) => x.labels["ai_consumer"]));
  assert.ok(consumers.has("team-a") && consumers.has("none"));
});
