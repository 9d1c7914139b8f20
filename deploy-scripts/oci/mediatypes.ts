// Media types and annotation keys of the plugin image, in one place.
//
// Sources (facts only):
// - OCI image-spec v1.1 (media-types.md, image-layout.md, annotations.md): manifest, config,
//   index, tar+gzip layer, org.opencontainers.image.ref.name / .title.
// - Higress "Wasm plugin image specification" (higress.io docs, user/wasm-image-spec) and the
//   oras push lines of Higress's plugin build scripts: spec.yaml, README.md and the plugin.wasm
//   tar.gz layer (which must be LAST) use the three layer types below.

export const MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json";
export const MEDIA_TYPE_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
export const MEDIA_TYPE_WASM_DOC = "application/vnd.module.wasm.doc.v1+markdown";
export const MEDIA_TYPE_WASM_SPEC = "application/vnd.module.wasm.spec.v1+yaml";

export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";
export const ANNOTATION_TITLE = "org.opencontainers.image.title";

/** Accept header for the token service answer. */
export const MEDIA_TYPE_JSON = "application/json";

/** File names inside the image, as Higress's console and fetcher look for them. */
export const FILE_README = "README.md";
export const FILE_SPEC = "spec.yaml";
export const FILE_PLUGIN_TARGZ = "plugin.tar.gz";
export const FILE_PLUGIN_WASM = "plugin.wasm";

export const OCI_LAYOUT_VERSION = "1.0.0";
