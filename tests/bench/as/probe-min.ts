// Benchmark probe (not the plugin): the least a Wasm filter that routes can do. It creates an HTTP
// context per request, writes a fixed routing header in the request-headers phase (Envoy re-picks the
// route, which then matches as the plugin's would) and continues in every phase. Envoy with this probe
// minus plain Envoy is the cost of having a Wasm filter at all (VM calls per request), whatever the
// plugin does.
import { setRootFactory } from "../../../assembly/abi/registry";
import { RootContext, HttpContext } from "../../../assembly/abi/context";
import { Action, MapType } from "../../../assembly/abi/enums";
import * as host from "../../../assembly/abi/host";

// The module's exports: the ABI 0.2.1 marker, malloc and the proxy_on_* callbacks.
export * from "../../../assembly/abi/exports";

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
