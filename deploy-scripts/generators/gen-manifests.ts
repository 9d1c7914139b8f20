// Writes manifests/seed/ from deploy-scripts/examples/seed.yaml, manifests/seed-envoy/envoy.yaml (the upstream
// Envoy bootstrap) from deploy-scripts/examples/seed-envoy.yaml, and manifests/higress-bootstrap/ (stats tags and
// histogram buckets for Higress's bootstrap), with the same renderer the CLI uses, so the checked-in manifests
// cannot drift (tests/deploy/render.test.ts compares them byte for byte).
//
//   npx tsx deploy-scripts/generators/gen-manifests.ts           write the files
//   npx tsx deploy-scripts/generators/gen-manifests.ts --check   exit 1 if any file differs (CI)
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { syncGeneratedFiles } from "./generated-files.ts";
import { globalCustomResponseFilter } from "../render/fallback.ts";
import { higressBootstrapFiles } from "../render/higress-bootstrap.ts";
import { formatGroup, renderEnvoyYaml, renderGroups, type Group, type RenderOptions } from "../render/render.ts";
import { parseSpec, type DeploySpec } from "../spec.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SEED_FILE = join(ROOT, "deploy-scripts", "examples", "seed.yaml");
export const SEED_DIR = join(ROOT, "manifests", "seed");
export const ENVOY_SEED_FILE = join(ROOT, "deploy-scripts", "examples", "seed-envoy.yaml");
export const ENVOY_SEED_DIR = join(ROOT, "manifests", "seed-envoy");
export const HIGRESS_BOOTSTRAP_DIR = join(ROOT, "manifests", "higress-bootstrap");
/** The directories this generator owns: every file in them is generated. */
export const GENERATED_DIRS = [SEED_DIR, ENVOY_SEED_DIR, HIGRESS_BOOTSTRAP_DIR];
/** Placeholder for a plain-HTTP plugin URL: a .wasm file served inside the cluster. */
export const HTTP_URL_EXAMPLE = "http://llm-gateway-plugin.higress-system.svc.cluster.local/llm-gateway/0.1.0/plugin.wasm";
/** Manifests are generated as if HF_TOKEN were unset: they carry no Secret, only the note on how to make it. */
export const MANIFEST_OPTIONS: RenderOptions = { hfTokenSet: false };

export function loadSeed(file: string = SEED_FILE): DeploySpec {
  const result = parseSpec(readFileSync(file, "utf8"));
  if (!result.ok) throw new Error(`${file} is invalid:\n${result.errors.join("\n")}`);
  return result.spec;
}

function alternatives(seed: DeploySpec): { file: string; group: Group; spec: DeploySpec }[] {
  const httpSpec: DeploySpec = { ...seed, plugin: { ...seed.plugin, url: HTTP_URL_EXAMPLE } };
  const plugin = renderGroups(httpSpec, MANIFEST_OPTIONS).find((g) => g.file === "40-plugin.yaml");
  if (plugin === undefined) throw new Error("the renderer produced no plugin group");
  return [
    {
      file: "alternatives/40-plugin-http-url.yaml",
      spec: httpSpec,
      group: {
        ...plugin,
        notes: [
          "ALTERNATIVE to ../40-plugin.yaml, not an addition (same WasmPlugin name): the plugin fetched as a raw .wasm",
          "over plain HTTP, the URL form the Higress console's custom-plugin field takes. The URL is a placeholder for a",
          "server you run; with http:// set plugin.sha256 in the deployment file so the gateway verifies what it loads.",
          "To use it: set plugin.url to this form in the deployment file, or kubectl apply this file instead of 40-plugin.yaml.",
        ],
      },
    },
    {
      file: "alternatives/25-global-custom-response.yaml",
      spec: seed,
      group: {
        file: "25-global-custom-response.yaml",
        notes: [
          "ONLY for a gateway installed without Higress's own higress-gateway-global-custom-response EnvoyFilter",
          "(the Higress Helm chart has shipped it since 2.0; two custom_response filters would both act on a fallback).",
          "It inserts Envoy's custom_response filter first in the gateway's HTTP filters; the deploy CLI renders it",
          "when the deployment file says fallback.globalFilter: true.",
        ],
        objects: [globalCustomResponseFilter(seed)],
      },
    },
  ];
}

/** Every file this generator owns (GENERATED_DIRS) and its exact content. */
export function manifestFiles(): { path: string; content: string }[] {
  const seed = loadSeed();
  const files = renderGroups(seed, MANIFEST_OPTIONS).map((g) => ({ path: join(SEED_DIR, g.file), content: formatGroup(seed, g) }));
  for (const alt of alternatives(seed)) files.push({ path: join(SEED_DIR, alt.file), content: formatGroup(alt.spec, alt.group) });
  // The llmaz objects of the Envoy example are those of manifests/seed/10-models.yaml but for the deployment label.
  files.push({ path: join(ENVOY_SEED_DIR, "envoy.yaml"), content: renderEnvoyYaml(loadSeed(ENVOY_SEED_FILE)) });
  for (const f of higressBootstrapFiles()) files.push({ path: join(HIGRESS_BOOTSTRAP_DIR, f.file), content: f.content });
  return files;
}

/** Files present under a directory, recursively, as paths. */
export function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const files = manifestFiles();
  const stale = syncGeneratedFiles(files, check, ROOT, "npx tsx deploy-scripts/generators/gen-manifests.ts");

  const expected = new Set(files.map((f) => f.path));
  const extra: string[] = [];
  for (const dir of GENERATED_DIRS) {
    try {
      extra.push(...listFiles(dir).filter((p) => !expected.has(p)));
    } catch {
      // no directory yet
    }
  }
  for (const p of extra) console.error(`not generated (remove it): ${relative(ROOT, p)}`);
  if (check && (stale > 0 || extra.length > 0)) return 1;
  if (!check && stale === 0) console.log("manifests/seed, manifests/seed-envoy and manifests/higress-bootstrap are up to date");
  return extra.length > 0 ? 1 : 0;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  process.exitCode = main(process.argv.slice(2));
}
