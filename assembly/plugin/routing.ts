// Routing by the request body's `model`: pure functions over the body bytes and the compiled config,
// so they are unit-tested without a host. The phase glue in gateway.ts applies the result.
import { JsonScan, JsonType, JsonError, scanJson, decodeString, errorText } from "../json/reader";
import { jsonString } from "../json/writer";
import { GatewayConfig, ModelRoute, isHeaderValue, MAX_MODEL_NAME_BYTES } from "./config";
import * as errors from "./errors";

// Root members of a request body the plugin reads; indices into JsonScan.fields.
export const REQUEST_KEYS: Array<string> = ["model", "stream"];
export const F_MODEL: i32 = 0;
export const F_STREAM: i32 = 1;

// A body edit Envoy can apply without re-serialising: bytes [start, end) become `text`.
export class BodyEdit {
  constructor(public start: i32, public end: i32, public text: string) {}
}

export class RoutingResult {
  reply: errors.LocalReply | null = null; // set when the plugin answers the request itself
  model: string = "";                     // the model the client asked for (or the default)
  routeValue: string = "";                // value of the routing header
  route: ModelRoute | null = null;
  edit: BodyEdit | null = null;
  stream: bool = false;
}

function answer(r: RoutingResult, reply: errors.LocalReply): RoutingResult {
  r.reply = reply;
  return r;
}

// Decides where a request goes. `scan` is reused across requests to avoid allocating per request.
export function routeRequest(cfg: GatewayConfig, p: usize, len: i32, scan: JsonScan): RoutingResult {
  const r = new RoutingResult();
  scanJson(p, len, scan);
  if (scan.error == JsonError.DuplicateKey) return answer(r, errors.duplicateKey(scan.duplicateKey));
  if (scan.error != JsonError.Ok) return answer(r, errors.invalidJson(errorText(scan.error) + " (at byte " + scan.errorAt.toString() + ")"));
  if (scan.rootType != JsonType.Object) return answer(r, errors.notAnObject());

  const stream = scan.field(F_STREAM);
  r.stream = stream.found && stream.type == JsonType.Bool && load<u8>(p + <usize>stream.start) == 0x74;

  const f = scan.field(F_MODEL);
  let requested: string;
  let insertDefault = false;
  if (!f.found || f.type == JsonType.Null) {
    if (cfg.defaultModel.length == 0) return answer(r, errors.missingModel());
    requested = cfg.defaultModel;
    insertDefault = !f.found;
  } else {
    if (f.type != JsonType.String) return answer(r, errors.modelNotString());
    const s = decodeString(p, f.start, f.end, MAX_MODEL_NAME_BYTES);
    if (s == null || s.length == 0) return answer(r, errors.badModelName());
    requested = s;
  }
  r.model = requested;

  const route = cfg.findRoute(requested);
  if (route == null) return answer(r, errors.modelNotFound(requested, cfg.servedNames));
  r.route = route;
  r.routeValue = route.route.length > 0 ? route.route : requested;
  // A pattern route sends the client's own name as a header value: it must be a valid one.
  if (!isHeaderValue(r.routeValue)) return answer(r, errors.badModelName());

  const served = route.upstreamModel.length > 0 ? route.upstreamModel : requested;
  if (insertDefault) {
    r.edit = insertModel(p, len, served);
  } else if (f.type == JsonType.Null || served != requested) {
    r.edit = new BodyEdit(f.start, f.end, jsonString(served));
  }
  return r;
}

// Adds "model" as the first member of the root object (the body was validated as an object).
function insertModel(p: usize, len: i32, model: string): BodyEdit {
  let i = 0;
  while (i < len && load<u8>(p + <usize>i) != 0x7b) i++;
  let j = i + 1;
  while (j < len) {
    const c = load<u8>(p + <usize>j);
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
    j++;
  }
  const empty = j < len && load<u8>(p + <usize>j) == 0x7d;
  return new BodyEdit(i + 1, i + 1, "\"model\":" + jsonString(model) + (empty ? "" : ","));
}
