// Routes: one per model, matching the routing header the plugin writes (as Higress's AI routes do), and a last
// route answering requests that carry no routing header.

export interface ModelRouteOptions {
  /** Envoy's route name (the plugin's metrics label it ai_route). */
  name: string;
  /** The routing header and the value that selects this route. */
  header: string;
  value: string;
  cluster: string;
  /** The whole response's time limit ("0s": none; a stream lasts as long as it generates). */
  timeout: string;
  /**
   * For a model with backups: `cluster` is its aggregate cluster and this retries on the next priority. For a
   * model with prefix affinity: retries on another replica.
   */
  retryPolicy?: Record<string, unknown>;
  /** Prefix affinity: the cluster's consistent hash is taken from this request header. */
  hashPolicy?: Record<string, unknown>[];
}

export function modelRoute(o: ModelRouteOptions): Record<string, unknown> {
  return {
    name: o.name,
    match: { prefix: "/", headers: [{ name: o.header, string_match: { exact: o.value } }] },
    route: {
      cluster: o.cluster,
      timeout: o.timeout,
      ...(o.retryPolicy !== undefined ? { retry_policy: o.retryPolicy } : {}),
      ...(o.hashPolicy !== undefined ? { hash_policy: o.hashPolicy } : {}),
    },
  };
}

/** No routing header: nothing Higress would route either. */
export function noRoute(): Record<string, unknown> {
  return {
    name: "no-ai-route",
    match: { prefix: "/" },
    direct_response: {
      status: 404,
      body: {
        inline_string: '{"error":{"message":"No route for this request.","type":"invalid_request_error","param":null,"code":"no_route"}}',
      },
    },
  };
}
