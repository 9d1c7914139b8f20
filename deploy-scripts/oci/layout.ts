// OCI image layout on disk (image-spec image-layout.md): oci-layout, index.json, blobs/sha256/<hex>.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BuiltImage, Descriptor, ImageManifest } from "./image.ts";
import { sha256Digest } from "./image.ts";
import { ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, OCI_LAYOUT_VERSION } from "./mediatypes.ts";

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Tag grammar of the distribution spec. */
export const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
}

export function blobPath(dir: string, digest: string): string {
  if (!DIGEST_RE.test(digest)) {
    throw new Error(`unsupported digest "${digest}" (only sha256 is used here)`);
  }
  return join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}

export function renderIndex(image: BuiltImage, tag: string): ImageIndex {
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_INDEX,
    manifests: [
      {
        mediaType: MEDIA_TYPE_MANIFEST,
        digest: image.manifestDigest,
        size: image.manifestBytes.length,
        annotations: { [ANNOTATION_REF_NAME]: tag },
      },
    ],
  };
}

/**
 * Writes the layout afresh: an existing layout at `dir` is replaced (so no stale blobs of an earlier
 * build stay behind); a directory that is neither empty nor a layout is refused rather than wiped.
 */
export function writeLayout(dir: string, image: BuiltImage, tag: string): void {
  if (!TAG_RE.test(tag)) {
    throw new Error(`invalid tag "${tag}": use letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')`);
  }
  if (existsSync(dir)) {
    const entries = readdirSync(dir);
    if (entries.length > 0 && !entries.includes("oci-layout")) {
      throw new Error(`${dir} exists and is not an OCI layout; refusing to overwrite it`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
  for (const [digest, data] of image.blobs) {
    writeFileSync(blobPath(dir, digest), data);
  }
  writeFileSync(blobPath(dir, image.manifestDigest), image.manifestBytes);
  writeFileSync(join(dir, "index.json"), JSON.stringify(renderIndex(image, tag)));
}

export interface LoadedImage {
  refName: string | undefined;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
  /** Config first, then the layers, in manifest order. */
  blobs: Array<{ descriptor: Descriptor; data: Buffer }>;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${what} ${path} is not valid JSON`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asDescriptor(value: unknown, where: string): Descriptor {
  if (
    !isRecord(value) ||
    typeof value["mediaType"] !== "string" ||
    typeof value["digest"] !== "string" ||
    typeof value["size"] !== "number"
  ) {
    throw new Error(`${where}: not a descriptor (mediaType, digest, size)`);
  }
  const d: Descriptor = { mediaType: value["mediaType"], digest: value["digest"], size: value["size"] };
  const ann = value["annotations"];
  if (isRecord(ann)) {
    const annotations: Record<string, string> = {};
    for (const [k, v] of Object.entries(ann)) {
      if (typeof v === "string") {
        annotations[k] = v;
      }
    }
    d.annotations = annotations;
  }
  return d;
}

function readBlob(dir: string, d: Descriptor, where: string): Buffer {
  const path = blobPath(dir, d.digest);
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    throw new Error(`${where}: blob ${d.digest} missing from ${dir}`);
  }
  if (data.length !== d.size || sha256Digest(data) !== d.digest) {
    throw new Error(`${where}: blob ${d.digest} in ${dir} does not match its descriptor (corrupt layout?)`);
  }
  return data;
}

/**
 * Loads one image manifest of the layout: the one whose ref name is `refName`, or the only one.
 */
export function readLayout(dir: string, refName?: string): LoadedImage {
  const layoutFile = readJson(join(dir, "oci-layout"), "layout marker");
  if (!isRecord(layoutFile) || typeof layoutFile["imageLayoutVersion"] !== "string") {
    throw new Error(`${dir}/oci-layout has no imageLayoutVersion`);
  }
  const index = readJson(join(dir, "index.json"), "index");
  if (!isRecord(index) || !Array.isArray(index["manifests"])) {
    throw new Error(`${dir}/index.json has no manifests list`);
  }
  const entries = index["manifests"].map((m, i) => asDescriptor(m, `index.json manifests[${i}]`));
  const named = (d: Descriptor): string | undefined => d.annotations?.[ANNOTATION_REF_NAME];
  let chosen: Descriptor | undefined;
  if (refName !== undefined) {
    chosen = entries.find((d) => named(d) === refName);
    if (chosen === undefined && entries.length === 1) {
      chosen = entries[0];
    }
  } else if (entries.length === 1) {
    chosen = entries[0];
  }
  if (chosen === undefined) {
    const names = entries.map((d) => named(d) ?? d.digest).join(", ");
    throw new Error(`${dir}/index.json: cannot pick a manifest${refName !== undefined ? ` named "${refName}"` : ""} among [${names}]`);
  }
  if (chosen.mediaType !== MEDIA_TYPE_MANIFEST) {
    throw new Error(`${dir}: manifest ${chosen.digest} has media type ${chosen.mediaType}, expected ${MEDIA_TYPE_MANIFEST}`);
  }
  const manifestBytes = readBlob(dir, chosen, "index.json");
  let parsed: unknown;
  try {
    parsed = JSON.parse(manifestBytes.toString("utf8")) as unknown;
  } catch {
    throw new Error(`${dir}: manifest ${chosen.digest} is not valid JSON`);
  }
  if (!isRecord(parsed) || !Array.isArray(parsed["layers"])) {
    throw new Error(`${dir}: manifest ${chosen.digest} has no layers`);
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: typeof parsed["mediaType"] === "string" ? parsed["mediaType"] : MEDIA_TYPE_MANIFEST,
    config: asDescriptor(parsed["config"], "manifest config"),
    layers: parsed["layers"].map((l, i) => asDescriptor(l, `manifest layers[${i}]`)),
  };
  const blobs = [manifest.config, ...manifest.layers].map((d, i) => ({
    descriptor: d,
    data: readBlob(dir, d, i === 0 ? "manifest config" : `manifest layers[${i - 1}]`),
  }));
  return { refName: named(chosen), manifest, manifestBytes, manifestDigest: chosen.digest, blobs };
}
