// The AssemblyScript code's architecture, checked on its import graph: no import cycles, the lower
// floors (abi/, json/, sse/, util/) never reach up into the plugin, the features (config, routing,
// response, fallback, telemetry) never reach the stages that compose them, the root context does not
// depend on the HTTP contexts, and assembly/plugin/ holds only feature folders plus its few shared files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { ROOT } from "../harness/envoy.ts";

const ASSEMBLY = join(ROOT, "assembly");
// Node-only: the documented field table, read by the generators (never imported by the module).
const NODE_ONLY = new Set(["plugin/config/schema.ts"]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith(".ts") ? [path] : [];
  });
}

// file (relative to assembly/) -> the files it imports
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(ASSEMBLY)) {
    const from = relative(ASSEMBLY, file);
    const targets: string[] = [];
    for (const m of readFileSync(file, "utf8").matchAll(/^(?:import|export)\b[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)) {
      targets.push(normalize(join(dirname(from), (m[1] ?? "") + ".ts")));
    }
    graph.set(from, targets);
  }
  return graph;
}

const graph = importGraph();
const edges = [...graph].flatMap(([from, tos]) => tos.map((to) => [from, to] as const));

test("every import names a file that exists", () => {
  // The reader sees imports of every form (named, namespace, re-exports).
  assert.ok(graph.get("plugin/stages/request-stage.ts")?.includes("plugin/root.ts"));
  assert.ok(graph.get("plugin/stages/request-stage.ts")?.includes("abi/host.ts"), "import * as host");
  assert.ok(graph.get("main.ts")?.includes("abi/exports.ts"), "export * from");
  for (const [from, to] of edges) assert.ok(graph.has(to), `${from} imports ${to}, which does not exist`);
});

test("no import cycles", () => {
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (f: string): void => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "visiting") assert.fail(`import cycle: ${[...stack.slice(stack.indexOf(f)), f].join(" -> ")}`);
    state.set(f, "visiting");
    stack.push(f);
    for (const to of graph.get(f) ?? []) visit(to);
    stack.pop();
    state.set(f, "done");
  };
  for (const f of graph.keys()) visit(f);
});

test("the lower floors never import the plugin", () => {
  for (const [from, to] of edges) {
    if (/^(abi|json|sse|util)\//.test(from)) assert.ok(!to.startsWith("plugin/"), `${from} imports ${to}`);
  }
});

test("features never import the stages or the root context; the root never imports the stages", () => {
  for (const [from, to] of edges) {
    if (/^plugin\/(config|routing|response|fallback|telemetry)\//.test(from)) {
      assert.ok(!to.startsWith("plugin/stages/") && to !== "plugin/root.ts", `${from} imports ${to}`);
    }
    if (from === "plugin/root.ts") assert.ok(!to.startsWith("plugin/stages/"), `plugin/root.ts imports ${to}`);
  }
});

test("configuration depends on no feature: the features read it, not the other way round", () => {
  for (const [from, to] of edges) {
    if (from.startsWith("plugin/config/"))
      assert.ok(!/^plugin\/(routing|response|fallback|quota|telemetry|stages)\//.test(to), `${from} imports ${to}`);
  }
});

test("assembly/plugin/ is feature folders plus the shared root, replies, request facts and Envoy names", () => {
  const top = readdirSync(join(ASSEMBLY, "plugin")).sort();
  assert.deepEqual(top, [
    "config",
    "envoy-names.ts",
    "fallback",
    "quota",
    "replies.ts",
    "request-facts.ts",
    "response",
    "root.ts",
    "routing",
    "stages",
    "telemetry",
  ]);
});

test("the Node-only field table is imported by no AssemblyScript file", () => {
  for (const [from, to] of edges) assert.ok(!NODE_ONLY.has(to), `${from} imports ${to}`);
});
