// Typed contexts. A root context lives per plugin configuration (Envoy creates a new one on every
// reconfiguration and sends done/delete to the old one); an HTTP context lives per request.
// Plugins subclass these and override only the phases they use.
import { Action } from "./enums";
import { HeaderPair } from "./headers";
import { httpCall, setEffectiveContext } from "./host";

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

  // Starts an http call whose response comes back to this context. Returns 0 if the host refused it.
  dispatchHttpCall(cluster: string, headers: Array<HeaderPair>, body: usize, bodyLen: usize, timeoutMs: u32): u32 {
    const token = httpCall(cluster, headers, body, bodyLen, timeoutMs);
    if (token != 0) this.root.registerCall(token, this);
    return token;
  }
}

export type RootFactory = (id: u32) => RootContext;
