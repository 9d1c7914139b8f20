// llm-gateway plugin image tool.
//
//   image --wasm build/plugin.wasm --readme README.md --spec deploy-scripts/oci/spec.yaml --out build/oci [--tag 0.1.0]
//       Writes an OCI image layout (no Docker engine needed), deterministic for equal inputs
//       (tar mtime 0, or SOURCE_DATE_EPOCH).
//   push --layout build/oci --image registry/name[:tag] [--insecure] [--ref NAME] [--timeout SECONDS]
//       Pushes that layout through the OCI distribution API; credentials from
//       $DOCKER_CONFIG/config.json or ~/.docker/config.json. Ends with the value to pin: a WasmPlugin's
//       `sha256` for an oci:// url is the hex of the MANIFEST digest (sha256 of the manifest bytes as pushed, what
//       the registry answers as Docker-Content-Digest), not plugin.wasm's sha256: Higress's fetcher (istio's
//       pkg/wasm, cache.go: PrepareFetch returns the image's manifest digest) compares that. For an http(s):// url
//       of the raw .wasm it is the file's sha256 (sha256sum build/plugin.wasm).
//
// Exit codes: 0 ok, 1 failure (one line on stderr), 2 usage.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { lookupCredentials } from "./auth.ts";
import { PushError } from "./errors.ts";
import { buildImage } from "./image.ts";
import { readLayout, writeLayout } from "./layout.ts";
import { FILE_PLUGIN_TARGZ, FILE_PLUGIN_WASM, FILE_README, FILE_SPEC } from "./mediatypes.ts";
import { parseReference, registryBaseUrl } from "./reference.ts";
import { DEFAULT_TIMEOUT_MS, pushImage } from "./registry.ts";
import { checkPluginSpec } from "./speccheck.ts";
import { sourceDateEpoch } from "./tar.ts";

export const DEFAULT_TAG = "latest";
export const DEFAULT_SPEC = "deploy-scripts/oci/spec.yaml";

const USAGE = `usage:
  cli.ts image --wasm FILE --readme FILE [--spec FILE] --out DIR [--tag TAG]
  cli.ts push --layout DIR --image REGISTRY/NAME[:TAG] [--insecure] [--ref NAME] [--timeout SECONDS]`;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

class UsageError extends Error {}

function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

function runImage(args: string[], env: NodeJS.ProcessEnv, io: Io): void {
  const { values } = parseArgs({
    args,
    options: {
      wasm: { type: "string" },
      readme: { type: "string" },
      spec: { type: "string" },
      out: { type: "string" },
      tag: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const wasmPath = required(values, "wasm");
  const readmePath = required(values, "readme");
  const specPath = values.spec ?? DEFAULT_SPEC;
  const outDir = required(values, "out");
  const tag = values.tag ?? DEFAULT_TAG;

  const spec = readInput(specPath, FILE_SPEC);
  const problems = checkPluginSpec(spec.toString("utf8"));
  if (problems.length > 0) {
    throw new Error(`${specPath} is not a usable plugin spec: ${problems.join("; ")}`);
  }
  const image = buildImage({
    wasm: readInput(wasmPath, FILE_PLUGIN_WASM),
    readme: readInput(readmePath, FILE_README),
    spec,
    mtime: sourceDateEpoch(env),
  });
  writeLayout(outDir, image, tag);

  io.out(`image ${outDir} tag ${tag}`);
  io.out(
    `manifest ${image.manifestDigest} ${image.manifestBytes.length} B (pushed as is: its hex is the plugin.sha256 of an oci:// plugin.url)`,
  );
  io.out(`config   ${image.manifest.config.digest} ${image.manifest.config.size} B ${image.manifest.config.mediaType}`);
  image.manifest.layers.forEach((l, i) => {
    const title = l.annotations?.["org.opencontainers.image.title"] ?? "";
    const extra = title === FILE_PLUGIN_TARGZ ? ` (${FILE_PLUGIN_WASM} ${image.wasmSize} B)` : "";
    io.out(`layer ${i}  ${l.digest} ${l.size} B ${l.mediaType} ${title}${extra}`);
  });
}

async function runPush(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      layout: { type: "string" },
      image: { type: "string" },
      insecure: { type: "boolean", default: false },
      ref: { type: "string" },
      timeout: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const layoutDir = required(values, "layout");
  let ref;
  try {
    ref = parseReference(required(values, "image"));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (values.timeout !== undefined) {
    const seconds = Number(values.timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout must be a positive number of seconds`);
    timeoutMs = Math.round(seconds * 1000);
  }
  const image = readLayout(layoutDir, values.ref ?? ref.tag);
  const tag = ref.tag ?? image.refName;
  if (tag === undefined) {
    throw new UsageError(`--image has no tag and the layout's manifest has no ref name; add :TAG`);
  }
  const target = { registry: ref.registry, repository: ref.repository, baseUrl: registryBaseUrl(ref.registry, values.insecure === true) };
  const result = await pushImage(target, tag, image, {
    credentials: lookupCredentials(ref.registry, env),
    timeoutMs,
    log: io.out,
  });
  io.out(
    `pushed ${ref.registry}/${ref.repository}:${tag}@${result.digest} (${result.uploaded} uploaded, ${result.skipped} already present)`,
  );
  for (const l of pinLines(`${ref.registry}/${ref.repository}`, result.digest)) io.out(l);
}

/**
 * What to put in the deployment file to pin this image: for an oci:// plugin.url, Higress compares plugin.sha256
 * with the manifest digest's hex (no "sha256:" prefix), never with plugin.wasm's sha256.
 */
export function pinLines(repository: string, manifestDigest: string): string[] {
  const hex = manifestDigest.replace(/^sha256:/, "");
  return [
    `pin      plugin.sha256: "${hex}"  (the manifest digest: what Higress checks for an oci:// plugin.url, not plugin.wasm's sha256)`,
    `         or plugin.url: oci://${repository}@${manifestDigest}`,
  ];
}

/** Runs one subcommand; returns the exit code. Never throws. */
export async function run(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "image":
        runImage(rest, env, io);
        return 0;
      case "push":
        await runPush(rest, env, io);
        return 0;
      case "-h":
      case "--help":
        io.out(USAGE);
        return 0;
      default:
        throw new UsageError(command === undefined ? "missing subcommand" : `unknown subcommand "${command}"`);
    }
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err as { code?: unknown }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ||
      (err as { code?: unknown }).code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"
    ) {
      io.err(`oci: ${(err as Error).message}`);
      io.err(USAGE);
      return 2;
    }
    const message = err instanceof PushError || err instanceof Error ? err.message : String(err);
    io.err(`oci: error: ${message.replace(/\s*\n\s*/g, " ")}`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (invokedDirectly) {
  const code = await run(process.argv.slice(2), process.env, {
    out: (line) => process.stdout.write(line + "\n"),
    err: (line) => process.stderr.write(line + "\n"),
  });
  process.exitCode = code;
}
