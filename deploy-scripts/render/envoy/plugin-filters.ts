// The plugin in Envoy's HTTP filter chain: the request stage (an HTTP filter before the router) and, when Envoy
// does the fallback, the attempt stage (an upstream HTTP filter of the router, run once per upstream attempt;
// Envoy >= 1.31 takes Wasm there). Both load the same code into one VM per worker (same vm_config, so they share
// the attempt journal and the memory budget) but need different root_ids: with one root_id they would share one
// root context and its configuration, and the attempt stage would run as the request stage.

const WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
export const PLUGIN_VM_ID = "llm-gateway";

export type Stage = "request" | "attempt";

/** vm_config.code: the module from a file on Envoy's host, or fetched over http(s) and checked against sha256. */
export type WasmCode =
  | { local: { filename: string } }
  | { remote: { http_uri: { uri: string; cluster: string; timeout: string }; sha256: string; retry_policy?: Record<string, unknown> } };

export function stageName(stage: Stage): string {
  return stage === "request" ? "llm-gateway" : "llm-gateway-attempt";
}

/** The Wasm filter's plugin config for one stage; the attempt stage's configuration is the same plus "stage": "attempt". */
export function wasmPluginConfig(pluginConfig: unknown, code: WasmCode, stage: Stage): Record<string, unknown> {
  const configuration = stage === "request" ? pluginConfig : { ...(pluginConfig as Record<string, unknown>), stage: "attempt" };
  return {
    name: stageName(stage),
    root_id: stageName(stage),
    // Lets the plugin hold request headers while it reads the body (Envoy >= 1.39; without it proxy-wasm turns
    // StopIteration into StopAllIteration and the body never arrives). Higress's Envoy behaves this way by
    // default, which is how its model-router works.
    allow_on_headers_stop_iteration: true,
    // A VM that failed (a trap) is replaced by a new one, after 1 s then backing off; meanwhile the filter
    // answers 503 (docs/memory.md, "When a VM fails anyway").
    failure_policy: "FAIL_RELOAD",
    configuration: {
      "@type": "type.googleapis.com/google.protobuf.StringValue",
      value: JSON.stringify(configuration),
    },
    vm_config: {
      vm_id: PLUGIN_VM_ID,
      runtime: "envoy.wasm.runtime.v8",
      // A copy per stage: one shared object would print as a YAML anchor and alias.
      code: structuredClone(code),
    },
  };
}

export interface HttpFiltersOptions {
  pluginConfig: unknown;
  code: WasmCode;
  /** false: no plugin at all, only the router (a plain-Envoy baseline). */
  withPlugin: boolean;
  /** Whether any route retries on backups, i.e. the attempt stage is needed. */
  attemptStage: boolean;
}

/** The HTTP connection manager's http_filters: the request stage, then the router with the attempt stage. */
export function httpFilters(o: HttpFiltersOptions): Record<string, unknown>[] {
  return [
    ...(o.withPlugin
      ? [
          {
            name: stageName("request"),
            typed_config: { "@type": WASM_FILTER_TYPE, config: wasmPluginConfig(o.pluginConfig, o.code, "request") },
          },
        ]
      : []),
    {
      name: "envoy.filters.http.router",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
        ...(o.withPlugin && o.attemptStage
          ? {
              upstream_http_filters: [
                {
                  name: stageName("attempt"),
                  typed_config: { "@type": WASM_FILTER_TYPE, config: wasmPluginConfig(o.pluginConfig, o.code, "attempt") },
                },
                // An upstream filter chain must end with the codec filter.
                {
                  name: "envoy.filters.http.upstream_codec",
                  typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec" },
                },
              ],
            }
          : {}),
      },
    },
  ];
}

/** How many Wasm filter configs the plugin has (each VM configures each once). */
export function pluginStages(withPlugin: boolean, attemptStage: boolean): number {
  if (!withPlugin) return 0;
  return attemptStage ? 2 : 1;
}
