// Routing by the request body's `model`: pure functions over the body bytes and the compiled config,
// so they are unit-tested without a host. The phase glue in gateway.ts applies the result.
import { JsonScan, JsonType, JsonError, scanJson, decodeString, errorText } from "../../json/reader";
import { jsonString } from "../../json/writer";
import { GatewayConfig, ModelRoute } from "../config/gateway-config";
import { MAX_ROUTE_VALUE_BYTES, hasControl, isHeaderValue } from "../../util/ascii";
import { Edit, Splice } from "../../util/splice";
import * as errors from "../replies";
import { prefixKey } from "./prefix-key";

// Root members of a request body the plugin reads; indices into JsonScan.fields.
export const REQUEST_KEYS: Array<string> = ["model", "stream", "stream_options", "messages", "prompt", "input", "instructions"];
export const F_MODEL: i32 = 0;
export const F_STREAM: i32 = 1;
export const F_STREAM_OPTIONS: i32 = 2;
// The prompt, for the prefix-affinity key.
export const F_MESSAGES: i32 = 3;
export const F_PROMPT: i32 = 4;
const F_INPUT: i32 = 5;
const F_INSTRUCTIONS: i32 = 6;
const STREAM_OPTIONS_KEYS: Array<string> = ["include_usage"];
const streamOptionsScan = new JsonScan(STREAM_OPTIONS_KEYS);

export class RoutingResult {
  reply: errors.LocalReply | null = null; // set when the plugin answers the request itself
  model: string = ""; // the model the client asked for (or the default)
  routeValue: string = ""; // value of the routing header
  route: ModelRoute | null = null;
  splice: Splice = new Splice(); // the body edits for the upstream (routed model, usage)
  stream: bool = false;
  usageInjected: bool = false; // we asked the upstream for a usage chunk the client did not
  prefixKey: string = ""; // prefixAffinity: the prompt-prefix key; "" = none
  // What editsFor needs to rebuild the edits for another served model (a fallback attempt).
  modelStart: i32 = -1; // span of the body's model value; -1: none in the body
  modelEnd: i32 = -1;
  modelWasNull: bool = false;
  rootObjectEdit: Edit | null = null; // where root members go in (its text: the separator)
  rootExtra: string = ""; // members inserted besides model (stream_options)
  optionsEdit: Edit | null = null; // an edit inside stream_options

  // The body edits that make the upstream see `served` as the model (and send usage if injected).
  editsFor(served: string): Splice {
    const edits = new Splice();
    let root = this.rootExtra;
    if (this.modelStart < 0) {
      root = root.length > 0 ? '"model":' + jsonString(served) + "," + root : '"model":' + jsonString(served);
    } else if (this.modelWasNull || served != this.model) {
      edits.add(new Edit(this.modelStart, this.modelEnd, jsonString(served)));
    }
    const at = this.rootObjectEdit;
    if (root.length > 0 && at != null) edits.add(new Edit(at.start, at.end, root + at.text));
    const o = this.optionsEdit;
    if (o != null) edits.add(o);
    return edits;
  }
}

// A byte range of the request body.
export class Span {
  constructor(
    public start: i32,
    public end: i32,
  ) {}
}

const MODEL_MEMBER = '"model":';

// Where the JSON string of `model` lies once `edits` (r.editsFor(served)) are applied to the body: the
// attempt stage rewrites exactly these bytes when Envoy retries the request on a backup model.
export function modelSpan(r: RoutingResult, splice: Splice, served: string): Span {
  const edits = splice.edits;
  let shift: i32 = 0;
  for (let i = 0; i < edits.length; i++) {
    const e = unchecked(edits[i]);
    const textLen = String.UTF8.byteLength(e.text);
    if (r.modelStart >= 0 && e.start == r.modelStart && e.end == r.modelEnd) {
      return new Span(e.start + shift, e.start + shift + textLen); // the model's own edit
    }
    if (r.modelStart < 0 && e.text.startsWith(MODEL_MEMBER)) {
      // Inserted at the root: "model":<value>,...
      const at = e.start + shift + MODEL_MEMBER.length;
      return new Span(at, at + String.UTF8.byteLength(jsonString(served)));
    }
    if (r.modelStart >= 0 && e.start >= r.modelEnd) break;
    shift += textLen - (e.end - e.start);
  }
  return new Span(r.modelStart + shift, r.modelEnd + shift);
}

function answer(r: RoutingResult, reply: errors.LocalReply): RoutingResult {
  r.reply = reply;
  return r;
}

// Decides where a request goes. `scan` is reused across requests to avoid allocating per request.
// `wantsUsage`: the path is one whose streams carry OpenAI usage chunks (chat/completions, completions),
// so the plugin may add `stream_options.include_usage` (config injectStreamUsage).
export function routeRequest(cfg: GatewayConfig, p: usize, len: i32, scan: JsonScan, wantsUsage: bool): RoutingResult {
  const r = new RoutingResult();
  scanJson(p, len, scan);
  if (scan.error == JsonError.DuplicateKey) return answer(r, errors.duplicateKey(scan.duplicateKey));
  if (scan.error != JsonError.Ok)
    return answer(r, errors.invalidJson(errorText(scan.error) + " (at byte " + scan.errorAt.toString() + ")"));
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
    const s = decodeString(p, f.start, f.end, MAX_ROUTE_VALUE_BYTES);
    // A control character (a trailing newline, say) is a malformed name, not an unknown model.
    if (s == null || s.length == 0 || hasControl(s)) return answer(r, errors.badModelName());
    requested = s;
  }
  r.model = requested;

  const route = cfg.findRoute(requested);
  if (route == null) return answer(r, errors.modelNotFound(requested, cfg.servedNames));
  r.route = route;
  r.routeValue = route.routeFor(requested);
  // A pattern route sends the client's own name as a header value: it must be a valid one.
  if (!isHeaderValue(r.routeValue)) return answer(r, errors.badModelName());

  if (f.found && !insertDefault) {
    r.modelStart = f.start;
    r.modelEnd = f.end;
    r.modelWasNull = f.type == JsonType.Null;
  }
  if (r.stream && wantsUsage && cfg.injectStreamUsage) {
    const opts = scan.field(F_STREAM_OPTIONS);
    if (!opts.found) {
      r.rootExtra = '"stream_options":{"include_usage":true}';
      r.usageInjected = true;
    } else if (opts.type == JsonType.Null) {
      r.optionsEdit = new Edit(opts.start, opts.end, '{"include_usage":true}');
      r.usageInjected = true;
    } else if (opts.type == JsonType.Object) {
      r.optionsEdit = includeUsageEdit(p, opts.start, opts.end);
      if (r.optionsEdit != null) r.usageInjected = true;
    }
  }
  const affinity = cfg.affinity;
  if (affinity.appliesTo(requested)) {
    const sf = scan.fields;
    r.prefixKey = prefixKey(p, sf[F_MESSAGES], sf[F_PROMPT], sf[F_INPUT], sf[F_INSTRUCTIONS], affinity.prefixBytes);
  }
  if (r.modelStart < 0 || r.rootExtra.length > 0) r.rootObjectEdit = insertAtRoot(p, len, "");
  r.splice = r.editsFor(route.servedFor(requested));
  return r;
}

// Makes stream_options (the object at [start, end)) say include_usage: true; null when it already does.
function includeUsageEdit(p: usize, start: i32, end: i32): Edit | null {
  scanJson(p + <usize>start, end - start, streamOptionsScan);
  if (!streamOptionsScan.ok()) return null; // cannot happen: the parent scan validated this span
  const iu = streamOptionsScan.field(0);
  if (iu.found) {
    if (iu.type == JsonType.Bool && load<u8>(p + <usize>(start + iu.start)) == 0x74) return null;
    return new Edit(start + iu.start, start + iu.end, "true");
  }
  return insertAtObject(p, start, end, '"include_usage":true');
}

// Adds members at the start of the root object (the body was validated as an object).
function insertAtRoot(p: usize, len: i32, members: string): Edit {
  return insertAtObject(p, 0, len, members);
}

// Adds members right after the '{' of the object found in [start, end). `members` empty: only the
// separator (",", or nothing for an empty object), for the caller to prefix members to.
function insertAtObject(p: usize, start: i32, end: i32, members: string): Edit {
  let i = start;
  while (i < end && load<u8>(p + <usize>i) != 0x7b) i++;
  let j = i + 1;
  while (j < end) {
    const c = load<u8>(p + <usize>j);
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
    j++;
  }
  const empty = j < end && load<u8>(p + <usize>j) == 0x7d;
  return new Edit(i + 1, i + 1, members + (empty ? "" : ","));
}
