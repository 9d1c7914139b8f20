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
// requests keeps the heap small and flat. Every 16: in make bench's request mix, every 8 cost a third
// more per request for the same linear memory (1 MiB); every 32 doubled the memory.
const COLLECT_EVERY: u32 = 16;
let finishedSinceCollect: u32 = 0;

// Root contexts are few (one per filter configuration, briefly two across a reconfiguration): a list
// searched by id costs less module than a second Map instantiation. Streams are many: a Map.
const roots = new Array<RootContext>();
const streams = new Map<u32, HttpContext>();

function rootOf(id: u32): RootContext | null {
  for (let i = 0; i < roots.length; i++) {
    const r = unchecked(roots[i]);
    if (r.id == id) return r;
  }
  return null;
}

export function proxy_abi_version_0_2_1(): void {}

export function malloc(size: usize): usize {
  return hostAlloc(size);
}

export function proxy_on_context_create(id: u32, parentId: u32): void {
  if (parentId == 0) {
    const f = rootFactory();
    if (f == null) return;
    roots.push(f(id));
    return;
  }
  const parent = rootOf(parentId);
  if (parent == null) return;
  const ctx = parent.createHttpContext(id);
  if (ctx != null) streams.set(id, ctx);
}

export function proxy_on_vm_start(rootId: u32, size: usize): bool {
  const root = rootOf(rootId);
  return root == null ? true : root.onVmStart(size);
}

export function proxy_on_configure(rootId: u32, size: usize): bool {
  const root = rootOf(rootId);
  return root == null ? false : root.onConfigure(size);
}

export function proxy_on_tick(rootId: u32): void {
  const root = rootOf(rootId);
  if (root != null) root.onTick();
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
  const root = rootOf(id);
  if (root != null) root.dispatchCallResponse(token, numHeaders, bodySize, numTrailers);
}

// gRPC answers, delivered like http call responses.
export function proxy_on_grpc_receive(id: u32, token: u32, size: u32): void {
  if (streams.has(id)) {
    const ctx = streams.get(id);
    ctx.root.forgetCall(token);
    ctx.onGrpcReceive(token, size);
    return;
  }
  const root = rootOf(id);
  if (root != null) root.dispatchGrpcReceive(token, size);
}

export function proxy_on_grpc_close(id: u32, token: u32, status: u32): void {
  if (streams.has(id)) {
    const ctx = streams.get(id);
    ctx.root.forgetCall(token);
    ctx.onGrpcClose(token, status);
    return;
  }
  const root = rootOf(id);
  if (root != null) root.dispatchGrpcClose(token, status);
}

export function proxy_on_log(id: u32): void {
  if (streams.has(id)) streams.get(id).onLog();
}

export function proxy_on_done(id: u32): bool {
  if (streams.has(id)) return streams.get(id).onDone();
  const root = rootOf(id);
  if (root != null) return root.onDone();
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
  const root = rootOf(id);
  if (root != null) {
    const at = roots.indexOf(root);
    unchecked((roots[at] = unchecked(roots[roots.length - 1])));
    roots.pop();
    root.onDelete();
    __collect(); // a whole configuration just became garbage
  }
}
