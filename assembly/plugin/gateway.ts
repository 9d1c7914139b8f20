// Per-request phase glue: which feature runs in which phase. Decisions live in routing.ts; this file
// only reads what Envoy gives, applies the result and answers when the plugin must.
import { HttpContext } from "../abi/context";
import { Action, BufferType, MapType } from "../abi/enums";
import * as host from "../abi/host";
import { HeaderPair } from "../abi/headers";
import { HostBytes } from "../abi/memory";
import { JsonScan } from "../json/reader";
import { GatewayConfig, MODEL_LIST_SUFFIX } from "./config";
import { LocalReply, bodyTooLarge, emptyBody } from "./errors";
import { REQUEST_KEYS, BodyEdit, routeRequest } from "./routing";
import { GatewayRoot } from "./root";

// One scan object per VM, reused by every request (a VM runs one callback at a time).
const requestScan = new JsonScan(REQUEST_KEYS);

const enum Phase { PassThrough = 0, ReadingBody = 1, Answered = 2, Routed = 3 }

const APPEND: u32 = u32.MAX_VALUE; // start offset meaning "append" to Envoy

export class GatewayHttp extends HttpContext {
  private phase: Phase = Phase.PassThrough;
  private cfg: GatewayConfig;
  private wantsUsage: bool = false;

  constructor(id: u32, private gateway: GatewayRoot) {
    super(id, gateway);
    this.cfg = gateway.config.global;
  }

  onRequestHeaders(_numHeaders: u32, endOfStream: bool): Action {
    this.cfg = this.gateway.selectConfig();
    const cfg = this.cfg;
    // Whatever the path, a client never chooses its own route.
    host.removeHeader(MapType.HttpRequestHeaders, cfg.routingHeader);

    const method = host.getHeader(MapType.HttpRequestHeaders, ":method");
    const rawPath = host.getHeader(MapType.HttpRequestHeaders, ":path");
    if (method == null || rawPath == null) return Action.Continue;
    const q = rawPath.indexOf("?");
    const path = q >= 0 ? rawPath.substring(0, q) : rawPath;

    if (method == "GET" && cfg.serveModelList && path.endsWith(MODEL_LIST_SUFFIX)) {
      const headers: Array<HeaderPair> = [new HeaderPair("content-type", "application/json")];
      host.sendLocalResponse(200, "llm_gateway_model_list", cfg.modelListBody, headers);
      this.phase = Phase.Answered;
      return Action.Pause;
    }
    if (method != "POST" || !cfg.isRoutedPath(path)) return Action.Continue;
    this.wantsUsage = cfg.carriesStreamUsage(path);

    const cl = host.getHeader(MapType.HttpRequestHeaders, "content-length");
    if (cl != null && declaredTooLarge(cl, cfg.maxBodyBytes)) return this.answer(bodyTooLarge(cfg.maxBodyBytes));
    if (endOfStream) return this.answer(emptyBody());
    // Hold the headers: the routing header is only known once the whole body is read, and Envoy
    // re-picks the route when they change.
    this.phase = Phase.ReadingBody;
    return Action.Pause;
  }

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    if (this.phase != Phase.ReadingBody) return Action.Continue;
    const cfg = this.cfg;
    if (<i64>bodySize > <i64>cfg.maxBodyBytes) return this.answer(bodyTooLarge(cfg.maxBodyBytes));
    if (!endOfStream) return Action.Pause; // Envoy buffers until the end of the body
    if (bodySize == 0) return this.answer(emptyBody());

    const body = host.getBufferBytes(BufferType.HttpRequestBody, 0, bodySize);
    if (body == null) {
      // Fail open: without the body we cannot route, but Envoy's own routes still apply.
      host.logWarn("llm-gateway: request body unavailable; passing the request through unrouted");
      this.phase = Phase.PassThrough;
      return Action.Continue;
    }
    const res = routeRequest(cfg, body.ptr, body.len, requestScan, this.wantsUsage);
    if (res.reply != null) {
      body.release();
      return this.answer(res.reply!);
    }
    host.replaceHeader(MapType.HttpRequestHeaders, cfg.routingHeader, res.routeValue);
    if (res.edits.length > 0) {
      applyEdits(body, res.edits);
      // The length changed; Envoy then frames the upstream request itself.
      host.removeHeader(MapType.HttpRequestHeaders, "content-length");
    }
    body.release();
    this.phase = Phase.Routed;
    return Action.Continue;
  }

  private answer(reply: LocalReply): Action {
    const headers: Array<HeaderPair> = [new HeaderPair("content-type", "application/json")];
    host.sendLocalResponse(reply.status, reply.details(), reply.body(), headers);
    this.phase = Phase.Answered;
    return Action.Pause;
  }
}

// content-length larger than the limit (a malformed value is left to Envoy's codec).
function declaredTooLarge(value: string, limit: i32): bool {
  if (value.length == 0 || value.length > 12) return value.length > 12;
  let n: i64 = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return false;
    n = n * 10 + c;
  }
  return n > <i64>limit;
}

// Rewrites the buffered body from slices of the copy we already hold plus the edits' texts: Envoy's
// set_buffer_bytes only prepends (after draining) or appends, and this avoids building a second copy.
function applyEdits(body: HostBytes, edits: Array<BodyEdit>): void {
  let from: i32 = 0;
  for (let i = 0; i < edits.length; i++) {
    const e = unchecked(edits[i]);
    if (i == 0) host.setBufferBytes(BufferType.HttpRequestBody, 0, <u32>body.len, body.ptr, <usize>e.start);
    else host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, body.ptr + <usize>from, <usize>(e.start - from));
    const t = String.UTF8.encode(e.text);
    host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, changetype<usize>(t), <usize>t.byteLength);
    from = e.end;
  }
  host.setBufferBytes(BufferType.HttpRequestBody, APPEND, 0, body.ptr + <usize>from, <usize>(body.len - from));
}
