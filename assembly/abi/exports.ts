// Exactly the module's exports: the ABI marker, malloc, and the proxy_on_* callbacks Envoy calls,
// forwarded to typed contexts. An entry file re-exports this whole module (`export *`). Unknown
// context ids are ignored rather than looked up blindly: Map.get of a missing key aborts in
// AssemblyScript, and Envoy does send done/delete for root contexts on every reconfiguration.
import { Action } from "./enums";
import { RootContext, HttpContext } from "./context";
import { hostAlloc, takeCollectRequest } from "./memory";
import { rootFactory } from "./registry";

// The module uses AssemblyScript's "minimal" runtime: a mark & sweep collector that runs only when
// called (44 KB smaller than the incremental one). Envoy enters the VM only through these callbacks,
// so between them nothing lives on the stack and a collection is safe: one after every few finished
// requests keeps the heap small and flat.
const COLLECT_EVERY: u32 = 8;
let finishedSinceCollect: u32 = 0;

const roots = new Map<u32, RootContext>();
const streams = new Map<u32, HttpContext>();

export function proxy_abi_version_0_2_1(): void {}

export function malloc(size: usize): usize {
  return hostAlloc(size);
}

export function proxy_on_context_create(id: u32, parentId: u32): void {
  if (parentId == 0) {
    const f = rootFactory();
    if (f == null) return;
    roots.set(id, f(id));
    return;
  }
  if (!roots.has(parentId)) return;
  const ctx = roots.get(parentId).createHttpContext(id);
  if (ctx != null) streams.set(id, ctx);
}

export function proxy_on_vm_start(rootId: u32, size: usize): bool {
  if (!roots.has(rootId)) return true;
  return roots.get(rootId).onVmStart(size);
}

export function proxy_on_configure(rootId: u32, size: usize): bool {
  if (!roots.has(rootId)) return false;
  return roots.get(rootId).onConfigure(size);
}

export function proxy_on_tick(rootId: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onTick();
}

export function proxy_on_request_headers(id: u32, numHeaders: u32, endOfStream: bool): Action {
  if (!streams.has(id)) return Action.Continue;
  return streams.get(id).onRequestHeaders(numHeaders, endOfStream);
}

export function proxy_on_request_body(id: u32, size: u32, endOfStream: bool): Action {
  if (!streams.has(id)) return Action.Continue;
  return streams.get(id).onRequestBody(size, endOfStream);
}

export function proxy_on_request_trailers(id: u32, numTrailers: u32): Action {
  if (!streams.has(id)) return Action.Continue;
  return streams.get(id).onRequestTrailers(numTrailers);
}

export function proxy_on_response_headers(id: u32, numHeaders: u32, endOfStream: bool): Action {
  if (!streams.has(id)) return Action.Continue;
  return streams.get(id).onResponseHeaders(numHeaders, endOfStream);
}

export function proxy_on_response_body(id: u32, size: u32, endOfStream: bool): Action {
  if (!streams.has(id)) return Action.Continue;
  return streams.get(id).onResponseBody(size, endOfStream);
}

export function proxy_on_response_trailers(id: u32, numTrailers: u32): Action {
  if (!streams.has(id)) return Action.Continue;
  return streams.get(id).onResponseTrailers(numTrailers);
}

// Envoy calls this on the context that made the call: an HTTP context for calls made on behalf of a
// request, the root context for its own.
export function proxy_on_http_call_response(id: u32, token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
  if (streams.has(id)) {
    const ctx = streams.get(id);
    ctx.root.forgetCall(token);
    ctx.onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
    return;
  }
  if (roots.has(id)) roots.get(id).dispatchCallResponse(token, numHeaders, bodySize, numTrailers);
}

export function proxy_on_log(id: u32): void {
  if (streams.has(id)) streams.get(id).onLog();
}

export function proxy_on_done(id: u32): bool {
  if (streams.has(id)) return streams.get(id).onDone();
  if (roots.has(id)) return roots.get(id).onDone();
  return true;
}

export function proxy_on_delete(id: u32): void {
  if (streams.has(id)) {
    const ctx = streams.get(id);
    streams.delete(id);
    ctx.root.forgetCallsOf(ctx);
    ctx.onDelete();
    if (++finishedSinceCollect >= COLLECT_EVERY || takeCollectRequest()) {
      finishedSinceCollect = 0;
      __collect();
    }
    return;
  }
  if (roots.has(id)) {
    const root = roots.get(id);
    roots.delete(id);
    root.onDelete();
    __collect(); // a whole configuration just became garbage
  }
}
