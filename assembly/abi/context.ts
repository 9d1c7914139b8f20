// Typed contexts. A root context lives per plugin configuration (Envoy creates a new one on every
// reconfiguration and sends done/delete to the old one); an HTTP context lives per request.
// Plugins subclass these and override only the phases they use.
import { Action } from "./enums";
import { HeaderPair } from "./headers";
import { grpcCall, httpCall, setEffectiveContext } from "./host";

export class RootContext {
  // Outstanding http calls (a few at a time): tokens and the HTTP contexts that made them.
  private callTokens: Array<u32> = new Array<u32>();
  private callers: Array<HttpContext> = new Array<HttpContext>();

  constructor(public readonly id: u32) {}

  onVmStart(_configSize: usize): bool {
    return true;
  }
  onConfigure(_configSize: usize): bool {
    return true;
  }
  onTick(): void {}
  onDone(): bool {
    return true;
  }
  onDelete(): void {}
  createHttpContext(_id: u32): HttpContext | null {
    return null;
  }
  // Calls the root made itself (not on behalf of a request).
  onRootHttpCallResponse(_token: u32, _numHeaders: u32, _bodySize: u32, _numTrailers: u32): void {}
  // gRPC calls the root made itself, or whose request is gone: a message, or the end without one
  // (status: gRPC's code; non-zero when the call failed).
  onGrpcReceive(_token: u32, _size: u32): void {}
  onGrpcClose(_token: u32, _status: u32): void {}

  registerCall(token: u32, ctx: HttpContext): void {
    this.callTokens.push(token);
    this.callers.push(ctx);
  }

  forgetCall(token: u32): void {
    const i = this.callTokens.indexOf(token);
    if (i >= 0) this.removeCall(i);
  }

  forgetCallsOf(ctx: HttpContext): void {
    for (let i = this.callers.length - 1; i >= 0; i--) {
      if (unchecked(this.callers[i]) === ctx) this.removeCall(i);
    }
  }

  dispatchCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
    const i = this.callTokens.indexOf(token);
    if (i < 0) {
      this.onRootHttpCallResponse(token, numHeaders, bodySize, numTrailers);
      return;
    }
    const ctx = unchecked(this.callers[i]);
    this.removeCall(i);
    // Make the request's context current, so its header/body calls act on that stream.
    setEffectiveContext(ctx.id);
    ctx.onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
  }

  // gRPC answers, routed like http call responses (Envoy delivers both to the root context).
  dispatchGrpcReceive(token: u32, size: u32): void {
    const ctx = this.takeCaller(token);
    if (ctx == null) this.onGrpcReceive(token, size);
    else ctx.onGrpcReceive(token, size);
  }

  dispatchGrpcClose(token: u32, status: u32): void {
    const ctx = this.takeCaller(token);
    if (ctx == null) this.onGrpcClose(token, status);
    else ctx.onGrpcClose(token, status);
  }

  // The context that made call `token` (made current, so its host calls act on its stream), or null.
  private takeCaller(token: u32): HttpContext | null {
    const i = this.callTokens.indexOf(token);
    if (i < 0) return null;
    const ctx = unchecked(this.callers[i]);
    this.removeCall(i);
    setEffectiveContext(ctx.id);
    return ctx;
  }

  private removeCall(i: i32): void {
    const last = this.callTokens.length - 1;
    unchecked((this.callTokens[i] = unchecked(this.callTokens[last])));
    unchecked((this.callers[i] = unchecked(this.callers[last])));
    this.callTokens.pop();
    this.callers.pop();
  }
}

export class HttpContext {
  constructor(
    public readonly id: u32,
    public readonly root: RootContext,
  ) {}

  onRequestHeaders(_numHeaders: u32, _endOfStream: bool): Action {
    return Action.Continue;
  }
  onRequestBody(_bodySize: u32, _endOfStream: bool): Action {
    return Action.Continue;
  }
  onRequestTrailers(_numTrailers: u32): Action {
    return Action.Continue;
  }
  onResponseHeaders(_numHeaders: u32, _endOfStream: bool): Action {
    return Action.Continue;
  }
  onResponseBody(_bodySize: u32, _endOfStream: bool): Action {
    return Action.Continue;
  }
  onResponseTrailers(_numTrailers: u32): Action {
    return Action.Continue;
  }
  onHttpCallResponse(_token: u32, _numHeaders: u32, _bodySize: u32, _numTrailers: u32): void {}
  onLog(): void {}
  onDone(): bool {
    return true;
  }
  onDelete(): void {}
  // A deadline this context set (deadlines.ts) has passed; host calls act on its stream.
  onDeadline(): void {}
  // This context's gRPC call answered (the message is in the GrpcReceive buffer)...
  onGrpcReceive(_token: u32, _size: u32): void {}
  // ...or ended without an answer (status: gRPC's code, e.g. 4 deadline exceeded, 14 unavailable).
  onGrpcClose(_token: u32, _status: u32): void {}

  // A gRPC call whose answer comes back to this context; an answer after the request ended goes to
  // the root. Returns 0 if the host refused it.
  dispatchGrpcCall(cluster: string, service: string, method: string, message: ArrayBuffer, timeoutMs: u32): u32 {
    const token = grpcCall(cluster, service, method, message, timeoutMs);
    if (token != 0) this.root.registerCall(token, this);
    return token;
  }

  // A gRPC call made as the root context, whose answer goes to the root: it completes after this
  // request is gone (a charge sent from the access-log callback).
  dispatchRootGrpcCall(cluster: string, service: string, method: string, message: ArrayBuffer, timeoutMs: u32): u32 {
    setEffectiveContext(this.root.id);
    const token = grpcCall(cluster, service, method, message, timeoutMs);
    setEffectiveContext(this.id);
    return token;
  }

  // Starts an http call whose response comes back to this context. Returns 0 if the host refused it.
  dispatchHttpCall(cluster: string, headers: Array<HeaderPair>, body: usize, bodyLen: usize, timeoutMs: u32): u32 {
    const token = httpCall(cluster, headers, body, bodyLen, timeoutMs);
    if (token != 0) this.root.registerCall(token, this);
    return token;
  }
}

export type RootFactory = (id: u32) => RootContext;
