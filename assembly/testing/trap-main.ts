// Test-only entry (build/plugin.trap.wasm, never shipped): the plugin, plus a request header that makes
// the VM trap, so a test can prove that Envoy's failure policy replaces a failed VM and that the
// failure shows in the metrics.
import { setRootFactory } from "../abi/registry";
import { HttpContext, RootContext } from "../abi/context";
import { Action, MapType } from "../abi/enums";
import * as host from "../abi/host";
import { GatewayRoot } from "../plugin/root";
import { GatewayHttp } from "../plugin/stages/request-stage";
import { STAGE_ATTEMPT } from "../plugin/config/gateway-config";

export * from "../abi/exports";

export const TRAP_HEADER = "x-llm-gateway-test-trap";

class TrapHttp extends GatewayHttp {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    if (host.getHeader(MapType.HttpRequestHeaders, TRAP_HEADER) != null) unreachable();
    return super.onRequestHeaders(numHeaders, endOfStream);
  }
}

class TrapRoot extends GatewayRoot {
  createHttpContext(id: u32): HttpContext | null {
    if (this.config.global.stage == STAGE_ATTEMPT) return super.createHttpContext(id);
    return new TrapHttp(id, this);
  }
}

setRootFactory((id: u32): RootContext => new TrapRoot(id));
