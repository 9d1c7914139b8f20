// Test-only entry (build/plugin.trap.wasm, never shipped): the plugin, plus a request header that makes
// the VM trap, so a test can prove that Envoy's failure policy replaces a failed VM and that the
// failure shows in the metrics.
import { setRootFactory } from "../abi/registry";
import { HttpContext, RootContext } from "../abi/context";
import { Action, MapType } from "../abi/enums";
import * as host from "../abi/host";
import { GatewayRoot } from "../plugin/root";
import { RequestStage } from "../plugin/stages/request-stage";
import { AttemptStage } from "../plugin/stages/attempt-stage";

export * from "../abi/exports";

export const TRAP_HEADER = "x-llm-gateway-test-trap";

class TrapStage extends RequestStage {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    if (host.getHeader(MapType.HttpRequestHeaders, TRAP_HEADER) != null) unreachable();
    return super.onRequestHeaders(numHeaders, endOfStream);
  }
}

function requestStage(id: u32, root: GatewayRoot): HttpContext {
  return new TrapStage(id, root);
}
function attemptStage(id: u32, root: GatewayRoot): HttpContext {
  return new AttemptStage(id, root);
}

setRootFactory((id: u32): RootContext => new GatewayRoot(id, requestStage, attemptStage));
