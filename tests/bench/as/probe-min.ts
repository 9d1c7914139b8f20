// Benchmark probe (not the plugin): the least a Wasm filter that routes can do. It creates an HTTP
// context per request, writes a fixed routing header in the request-headers phase (Envoy re-picks the
// route, which then matches as the plugin's would) and continues in every phase. Envoy with this probe
// minus plain Envoy is the cost of having a Wasm filter at all (VM calls per request), whatever the
// plugin does.
import { setRootFactory } from "../../../assembly/abi/exports";
import { RootContext, HttpContext } from "../../../assembly/abi/context";
import { Action, MapType } from "../../../assembly/abi/enums";
import * as host from "../../../assembly/abi/host";

export {
  proxy_abi_version_0_2_1, malloc, proxy_on_context_create, proxy_on_vm_start, proxy_on_configure,
  proxy_on_tick, proxy_on_request_headers, proxy_on_request_body, proxy_on_request_trailers,
  proxy_on_response_headers, proxy_on_response_body, proxy_on_response_trailers,
  proxy_on_http_call_response, proxy_on_log, proxy_on_done, proxy_on_delete,
} from "../../../assembly/abi/exports";

const ROUTING_HEADER = "x-higress-llm-model";
const ROUTE = "qwen2-1-5b";

class MinimalHttp extends HttpContext {
  onRequestHeaders(_numHeaders: u32, _endOfStream: bool): Action {
    host.replaceHeader(MapType.HttpRequestHeaders, ROUTING_HEADER, ROUTE);
    return Action.Continue;
  }
}

class MinimalRoot extends RootContext {
  createHttpContext(id: u32): HttpContext | null {
    return new MinimalHttp(id, this);
  }
}

setRootFactory((id: u32): RootContext => new MinimalRoot(id));
