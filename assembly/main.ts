// Entry point: the module's exports (proxy-wasm ABI 0.2.1) and which contexts serve them.
// Named main.ts, not index.ts: some AssemblyScript transforms treat assembly/index as a library.
import { setRootFactory } from "./abi/registry";
import { HttpContext, RootContext } from "./abi/context";
import { GatewayRoot } from "./plugin/root";
import { RequestStage } from "./plugin/stages/request-stage";
import { AttemptStage } from "./plugin/stages/attempt-stage";

// The module's exports: the ABI 0.2.1 marker, malloc and the proxy_on_* callbacks.
export * from "./abi/exports";

function requestStage(id: u32, root: GatewayRoot): HttpContext {
  return new RequestStage(id, root);
}
function attemptStage(id: u32, root: GatewayRoot): HttpContext {
  return new AttemptStage(id, root);
}

setRootFactory((id: u32): RootContext => new GatewayRoot(id, requestStage, attemptStage));
