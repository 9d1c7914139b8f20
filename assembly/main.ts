// Entry point: the module's exports (proxy-wasm ABI 0.2.1) and which root context serves them.
// Named main.ts, not index.ts: some AssemblyScript transforms treat assembly/index as a library.
import { setRootFactory } from "./abi/exports";
import { RootContext } from "./abi/context";
import { GatewayRoot } from "./plugin/root";

export {
  proxy_abi_version_0_2_1,
  malloc,
  proxy_on_context_create,
  proxy_on_vm_start,
  proxy_on_configure,
  proxy_on_tick,
  proxy_on_request_headers,
  proxy_on_request_body,
  proxy_on_request_trailers,
  proxy_on_response_headers,
  proxy_on_response_body,
  proxy_on_response_trailers,
  proxy_on_http_call_response,
  proxy_on_log,
  proxy_on_done,
  proxy_on_delete,
} from "./abi/exports";

setRootFactory((id: u32): RootContext => new GatewayRoot(id));
