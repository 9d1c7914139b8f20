// Where upstream Envoy gets the plugin's code from, for a deployment file's plugin.url.
//
// - file:///path: `local` code, a file on Envoy's host (or in its container).
// - http(s)://…/plugin.wasm: `remote` code, fetched by Envoy itself through a cluster of its own when the filter
//   is configured, and loaded only if its SHA-256 is plugin.sha256 (Envoy requires the hash for remote code).
//   With the hash checking what arrives, the https cluster does not verify the server's certificate: that would
//   tie the file to a CA bundle path on Envoy's host. Envoy 1.39 logs "Wasm remote code fetch is unstable and may
//   cause a crash" for remote code (tests/deploy/envoy-target.test.ts runs it and it works); who would rather
//   avoid that path uses file:// with plugin.wasm fetched and checked beforehand (an init container, say).
// - oci://: an OCI image is something Higress's (and Istio's) agent pulls and unpacks before handing Envoy a
//   local file; plain Envoy has no such fetcher, so spec.ts refuses oci:// for gateway.type envoy. Serve
//   build/plugin.wasm over http(s) (with its sha256) or put it next to Envoy instead.
import { fileURLToPath } from "node:url";
import type { WasmCode } from "./plugin-filters.ts";

export const PLUGIN_SOURCE_CLUSTER = "llm-gateway-plugin-source";

export interface PluginCode {
  code: WasmCode;
  /** The cluster Envoy fetches remote code through (none for a local file). */
  clusters: Record<string, unknown>[];
}

export function pluginCode(url: string, sha256: string | undefined): PluginCode {
  if (url.startsWith("file://")) return { code: { local: { filename: fileURLToPath(url) } }, clusters: [] };
  if (!/^https?:\/\//.test(url) || sha256 === undefined) {
    // spec.ts refuses these for gateway.type envoy; reaching here is a bug.
    throw new Error(`upstream Envoy cannot load the plugin from ${url}${sha256 === undefined ? " without sha256" : ""}`);
  }
  const u = new URL(url);
  const tls = u.protocol === "https:";
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = u.port !== "" ? Number(u.port) : tls ? 443 : 80;
  const cluster: Record<string, unknown> = {
    name: PLUGIN_SOURCE_CLUSTER,
    type: "STRICT_DNS",
    connect_timeout: "5s",
    load_assignment: {
      cluster_name: PLUGIN_SOURCE_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }],
    },
  };
  if (tls) {
    cluster["transport_socket"] = {
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        sni: host,
      },
    };
  }
  return {
    code: {
      remote: {
        http_uri: { uri: url, cluster: PLUGIN_SOURCE_CLUSTER, timeout: "30s" },
        sha256,
        // A server that is briefly away gets a few more tries.
        retry_policy: { num_retries: 5 },
      },
    },
    clusters: [cluster],
  };
}
