// The listener and its HTTP connection manager: access log with the plugin's ai_log, one virtual host whose
// routes come last after the plugin's filters.

/**
 * Envoy buffers a request body up to this before answering 413 itself (and the router keeps a body for retries up
 * to it); kept above the plugin's own maxBodyBytes so the plugin's OpenAI-style 413 is the one clients see.
 */
export const DEFAULT_BUFFER_LIMIT = 64 * 1024 * 1024;

/** The buffer limit for a plugin configuration: the default, or more when maxBodyBytes asks for more. */
export function bufferLimitFor(pluginConfig: unknown): number {
  const max = (pluginConfig as { maxBodyBytes?: unknown } | null)?.maxBodyBytes;
  return typeof max === "number" && max + 1024 * 1024 > DEFAULT_BUFFER_LIMIT ? max + 1024 * 1024 : DEFAULT_BUFFER_LIMIT;
}

/** A file path, or Envoy's standard output. */
export type AccessLogTarget = { path: string } | "stdout";

export function accessLog(target: AccessLogTarget): Record<string, unknown> {
  const log_format = {
    json_format: {
      start_time: "%START_TIME%",
      method: "%REQ(:METHOD)%",
      path: "%REQ(:PATH)%",
      status: "%RESPONSE_CODE%",
      details: "%RESPONSE_CODE_DETAILS%",
      route: "%ROUTE_NAME%",
      cluster: "%UPSTREAM_CLUSTER%",
      duration_ms: "%DURATION%",
      ai_log: "%FILTER_STATE(wasm.ai_log:PLAIN)%",
      // The request buffer limit the plugin asked for (set_decoder_buffer_limit): Higress's Envoy applies
      // it; upstream Envoy only keeps it in filter state, which shows here.
      decoder_buffer_limit: "%FILTER_STATE(wasm.set_decoder_buffer_limit:PLAIN)%",
    },
  };
  return target === "stdout"
    ? {
        name: "envoy.access_loggers.stdout",
        typed_config: { "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", log_format },
      }
    : {
        name: "envoy.access_loggers.file",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
          path: target.path,
          log_format,
        },
      };
}

export interface ListenerOptions {
  name: string;
  address: string;
  port: number;
  bufferLimitBytes: number;
  accessLog: AccessLogTarget;
  /** Virtual host domains ("*": any Host). */
  domains: string[];
  routes: unknown[];
  httpFilters: unknown[];
  /** Match domains without the Host header's port (a gateway reached on a non-default port). */
  stripAnyHostPort?: boolean;
}

/** A Listener (without "@type": add it where the listener travels as an Any, e.g. LDS). */
export function listener(o: ListenerOptions): Record<string, unknown> {
  return {
    name: o.name,
    address: { socket_address: { address: o.address, port_value: o.port } },
    per_connection_buffer_limit_bytes: o.bufferLimitBytes,
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
              stat_prefix: "llm_gateway",
              access_log: [accessLog(o.accessLog)],
              route_config: {
                name: "llm-gateway-routes",
                // x-envoy-attempt-count tells the attempt stage which model an attempt is for when the host carries
                // no model metadata.
                virtual_hosts: [{ name: "llm", domains: o.domains, routes: o.routes, include_request_attempt_count: true }],
              },
              http_filters: o.httpFilters,
              ...(o.stripAnyHostPort === true ? { strip_any_host_port: true } : {}),
            },
          },
        ],
      },
    ],
  };
}
