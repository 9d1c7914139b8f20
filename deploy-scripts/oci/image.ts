// Builds the plugin image in memory: pure function from file bytes to blobs + manifest.
//
// Shape (what Higress's fetcher and console read, see mediatypes.ts):
//   config  application/vnd.oci.image.config.v1+json   {architecture, os, rootfs.diff_ids}
//   layer 0 README.md      application/vnd.module.wasm.doc.v1+markdown
//   layer 1 spec.yaml      application/vnd.module.wasm.spec.v1+yaml
//   layer 2 plugin.tar.gz  application/vnd.oci.image.layer.v1.tar+gzip  (LAST: plugin.wasm at root)
// JSON is serialised with a fixed key order and no whitespace, so equal inputs give equal digests.

import { createHash } from "node:crypto";
import {
  ANNOTATION_TITLE,
  FILE_PLUGIN_TARGZ,
  FILE_PLUGIN_WASM,
  FILE_README,
  FILE_SPEC,
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_LAYER_TAR_GZIP,
  MEDIA_TYPE_MANIFEST,
  MEDIA_TYPE_WASM_DOC,
  MEDIA_TYPE_WASM_SPEC,
} from "./mediatypes.ts";
import { gzipDeterministic, tarFiles } from "./tar.ts";

/** GOARCH/GOOS spelling for WASI preview 1 modules, as the image-spec asks for these fields. */
export const CONFIG_ARCHITECTURE = "wasm";
export const CONFIG_OS = "wasip1";

const WASM_MAGIC = Buffer.from([0x00, 0x61, 0x73, 0x6d]);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageInputs {
  wasm: Uint8Array;
  readme: Uint8Array;
  spec: Uint8Array;
  /** tar mtime in seconds (0, or SOURCE_DATE_EPOCH). */
  mtime: number;
}

export interface BuiltImage {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
  /** Every blob the manifest references (config first, then layers in order), by digest. */
  blobs: Map<string, Buffer>;
  /** Size of the uncompressed plugin.wasm, for the summary line. */
  wasmSize: number;
}

export function sha256Digest(data: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

function descriptor(mediaType: string, data: Uint8Array, title: string): Descriptor {
  return { mediaType, digest: sha256Digest(data), size: data.length, annotations: { [ANNOTATION_TITLE]: title } };
}

export function buildImage(inputs: ImageInputs): BuiltImage {
  if (inputs.wasm.length < WASM_MAGIC.length || !WASM_MAGIC.equals(Buffer.from(inputs.wasm.subarray(0, 4)))) {
    throw new Error(`${FILE_PLUGIN_WASM} is not a WebAssembly module (missing \\0asm magic)`);
  }
  const readme = Buffer.from(inputs.readme);
  const spec = Buffer.from(inputs.spec);
  const tar = tarFiles([{ name: FILE_PLUGIN_WASM, data: inputs.wasm, mtime: inputs.mtime }]);
  const tarGz = gzipDeterministic(tar);

  // diff_ids are digests of the *uncompressed* layers: the two documents are stored as-is,
  // the plugin layer's uncompressed form is the tar.
  const config = {
    architecture: CONFIG_ARCHITECTURE,
    os: CONFIG_OS,
    rootfs: { type: "layers", diff_ids: [sha256Digest(readme), sha256Digest(spec), sha256Digest(tar)] },
  };
  const configBytes = Buffer.from(JSON.stringify(config), "utf8");

  const layers: Array<[Descriptor, Buffer]> = [
    [descriptor(MEDIA_TYPE_WASM_DOC, readme, FILE_README), readme],
    [descriptor(MEDIA_TYPE_WASM_SPEC, spec, FILE_SPEC), spec],
    [descriptor(MEDIA_TYPE_LAYER_TAR_GZIP, tarGz, FILE_PLUGIN_TARGZ), tarGz],
  ];
  const configDescriptor: Descriptor = { mediaType: MEDIA_TYPE_CONFIG, digest: sha256Digest(configBytes), size: configBytes.length };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: configDescriptor,
    layers: layers.map(([d]) => d),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest), "utf8");

  const blobs = new Map<string, Buffer>();
  blobs.set(configDescriptor.digest, configBytes);
  for (const [d, data] of layers) {
    blobs.set(d.digest, data);
  }
  return { manifest, manifestBytes, manifestDigest: sha256Digest(manifestBytes), blobs, wasmSize: inputs.wasm.length };
}
