// Entry point: the module's exports (proxy-wasm ABI 0.2.1) and which root context serves them.
// Named main.ts, not index.ts: some AssemblyScript transforms treat assembly/index as a library.
import { setRootFactory } from "./abi/registry";
import { RootContext } from "./abi/context";
import { GatewayRoot } from "./plugin/root";

// The module's exports: the ABI 0.2.1 marker, malloc and the proxy_on_* callbacks.
export * from "./abi/exports";

setRootFactory((id: u32): RootContext => new GatewayRoot(id));
