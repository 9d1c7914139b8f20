// Benchmark probe (not the plugin): what routing by body costs Envoy before any parsing. It holds the
// request headers of a POST, lets Envoy buffer the whole body, copies it into the VM once (as the
// plugin does), frees it, writes a fixed routing header (Envoy re-picks the route) and continues.
// Envoy with this probe minus Envoy with probe-min is the cost of buffering and re-routing; the
// plugin minus this probe is the plugin's own work (JSON scan, model lookup, response accounting).
import { setRootFactory } from "../../../assembly/abi/registry";
import { RootContext, HttpContext } from "../../../assembly/abi/context";
import { Action, BufferType, MapType } from "../../../assembly/abi/enums";
import * as host from "../../../assembly/abi/host";

// The module's exports: the ABI 0.2.1 marker, malloc and the proxy_on_* callbacks.
export * from "../../../assembly/abi/exports";

const ROUTING_HEADER = "x-higress-llm-model";
const ROUTE = "qwen2-1-5b";

class BufferHttp extends HttpContext {
  private holding: bool = false;

  onRequestHeaders(_numHeaders: u32, endOfStream: bool): Action {
    host.removeHeader(MapType.HttpRequestHeaders, ROUTING_HEADER);
    const method = host.getHeader(MapType.HttpRequestHeaders, ":method");
    if (endOfStream || method == null || method != "POST") return Action.Continue;
    this.holding = true;
    return Action.Pause;
  }

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    if (!this.holding) return Action.Continue;
    if (!endOfStream) return Action.Pause;
    const body = host.getBufferBytes(BufferType.HttpRequestBody, 0, bodySize);
    if (body != null) body.release();
    host.replaceHeader(MapType.HttpRequestHeaders, ROUTING_HEADER, ROUTE);
    this.holding = false;
    return Action.Continue;
  }
}

class BufferRoot extends RootContext {
  createHttpContext(id: u32): HttpContext | null {
    return new BufferHttp(id, this);
  }
}

setRootFactory((id: u32): RootContext => new BufferRoot(id));
