// Names shared with Envoy and clients, defined once: the properties the plugin reads or sets, and the
// headers it reads or writes.

// ---- properties (get_property / set_property paths) ----
// Higress's Envoy answers "route_name"/"cluster_name"; upstream Envoy's attributes are "xds.*".
export const ROUTE_NAME: Array<string> = ["route_name"];
export const XDS_ROUTE_NAME: Array<string> = ["xds", "route_name"];
export const CLUSTER_NAME: Array<string> = ["cluster_name"];
export const XDS_CLUSTER_NAME: Array<string> = ["xds", "cluster_name"];
export const CODE_DETAILS: Array<string> = ["response", "code_details"];
export const RESPONSE_CODE: Array<string> = ["response", "code"];
// Filter state Higress's access log prints (%FILTER_STATE(wasm.ai_log:PLAIN)%).
export const AI_LOG: Array<string> = ["ai_log"];
// Higress's Envoy: per-request buffer limits, decimal bytes (upstream Envoy only stores them).
export const DECODER_BUFFER_LIMIT: Array<string> = ["set_decoder_buffer_limit"];
export const ENCODER_BUFFER_LIMIT: Array<string> = ["set_encoder_buffer_limit"];
// The request stage's fallback plan for the attempt stage (fallback/plan.ts), in filter state.
export const PLAN_PROPERTY: Array<string> = ["llm_gateway_plan"];
// The upstream host's metadata naming the model its cluster serves (the attempt stage reads it).
export const HOST_MODEL: Array<string> = ["xds", "upstream_host_metadata", "filter_metadata", "llm-gateway", "model"];
// ... and the cluster of that model (inside an aggregate cluster, Envoy's cluster name is the aggregate's).
export const HOST_CLUSTER: Array<string> = ["xds", "upstream_host_metadata", "filter_metadata", "llm-gateway", "cluster"];

// The address of the upstream host that served (the last attempt's), as Envoy's host map names it.
export const UPSTREAM_ADDRESS: Array<string> = ["upstream", "address"];

// ---- headers ----
// Response headers: the model that answered, and the one it stands in for (client-visible).
export const MODEL_HEADER = "x-llm-gateway-model";
export const FALLBACK_FROM_HEADER = "x-llm-gateway-fallback-from";
// Internal: why the request fell back (for the fallback metric); removed by the request stage.
export const FALLBACK_REASON_HEADER = "x-llm-gateway-fallback-reason";
// Internal: the attempt stage counted this attempt's status; the value is the cluster that served
// (from HOST_CLUSTER). Removed by the request stage.
export const ATTEMPT_CLUSTER_HEADER = "x-llm-gateway-attempt-cluster";
export const REQUEST_ID_HEADER = "x-request-id";
// Set by Envoy's router on every attempt (route retry policy: include_attempt_count_in_request).
export const ATTEMPT_COUNT_HEADER = "x-envoy-attempt-count";
// Set by Higress on a request it replays to a fallback route (its custom_response redirect).
export const HIGRESS_FALLBACK_HEADER = "x-higress-fallback-from";
