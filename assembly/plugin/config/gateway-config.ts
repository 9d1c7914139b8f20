// The plugin configuration: parsed and checked once at configure time into an immutable runtime form
// (route table built, /v1/models answer rendered). A bad configuration is refused with the JSON path of
// the offending field, so Envoy keeps the previous one.
import { JsonValue, parseJson } from "../../json/value";
import { JsonType } from "../../json/reader";
import { jsonString } from "../../json/writer";
import { FallbackPolicy, clusterFor } from "../fallback/policy";
import { Checker, describe, isHeaderName, isHeaderValue, readBoolField, readBytes, readString, readStringArray } from "./checker";
import { parseFallback } from "./fallback-config";

// Defaults: the README's configuration table lists these same values.
export const DEFAULT_ROUTING_HEADER = "x-higress-llm-model";
export const DEFAULT_PATH_SUFFIXES: Array<string> = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"];
export const DEFAULT_MAX_BODY_BYTES: i32 = 10 * 1024 * 1024;
export const DEFAULT_SERVE_MODEL_LIST = true;
export const DEFAULT_OWNED_BY = "llm-gateway";
export const DEFAULT_INJECT_STREAM_USAGE = true;
export const DEFAULT_CONSUMER_HEADER = "x-mse-consumer";
export const DEFAULT_MAX_SSE_EVENT_BYTES: i32 = 1024 * 1024;
export const DEFAULT_MAX_RESPONSE_BYTES: i32 = 10 * 1024 * 1024;
export const DEFAULT_MEMORY_BUDGET_BYTES: i32 = 256 * 1024 * 1024;
// Where this filter runs: "request" (the HTTP filter chain: routing, usage, fallback decisions) or
// "attempt" (Envoy's upstream filter chain, once per upstream attempt: puts the attempt's model in the
// body when Envoy retries a request on a backup model's cluster; see attempt.ts).
export const DEFAULT_STAGE = "request";
export const STAGE_REQUEST = "request";
export const STAGE_ATTEMPT = "attempt";
export const USAGE_PATH_SUFFIXES: Array<string> = ["/v1/chat/completions", "/v1/completions"];
export const MODEL_LIST_SUFFIX = "/v1/models";
export const MODEL_RETRIEVE_INFIX = "/v1/models/"; // GET …/v1/models/{id}
export const MAX_MODEL_NAME_BYTES: i32 = 256;

export class ModelRoute {
  name: string = "";          // exact name, or the prefix of a pattern
  isPrefix: bool = false;     // configured as "prefix*"
  route: string = "";         // routing header value; "" = the requested model itself
  upstreamModel: string = ""; // "" = leave the body's model as is
  fallback: Array<string> = new Array<string>();
  cluster: string = "";       // Envoy cluster for backup calls; "" = from fallback.clusterTemplate

  // The routing header's value for a request naming `requested` (for a pattern: the name itself).
  routeFor(requested: string): string { return this.route.length > 0 ? this.route : requested; }

  // The name the upstream must see for a request naming `requested`.
  servedFor(requested: string): string { return this.upstreamModel.length > 0 ? this.upstreamModel : requested; }
}

export class GatewayConfig {
  routingHeader: string = DEFAULT_ROUTING_HEADER;
  pathSuffixes: Array<string> = DEFAULT_PATH_SUFFIXES;
  maxBodyBytes: i32 = DEFAULT_MAX_BODY_BYTES;
  serveModelList: bool = DEFAULT_SERVE_MODEL_LIST;
  defaultModel: string = "";
  ownedBy: string = DEFAULT_OWNED_BY;
  injectStreamUsage: bool = DEFAULT_INJECT_STREAM_USAGE;
  consumerHeader: string = DEFAULT_CONSUMER_HEADER;
  maxSseEventBytes: i32 = DEFAULT_MAX_SSE_EVENT_BYTES;
  maxResponseBytes: i32 = DEFAULT_MAX_RESPONSE_BYTES;
  memoryBudgetBytes: i32 = DEFAULT_MEMORY_BUDGET_BYTES;
  stage: string = DEFAULT_STAGE;
  models: Array<ModelRoute> = new Array<ModelRoute>();
  fallback: FallbackPolicy = new FallbackPolicy();

  // Compiled at configure time.
  maxBodyBytesText: string = "";     // maxBodyBytes in decimal, for set_decoder_buffer_limit
  maxResponseBytesText: string = ""; // maxResponseBytes in decimal, for set_encoder_buffer_limit
  exact: Map<string, ModelRoute> = new Map<string, ModelRoute>();
  prefixes: Array<ModelRoute> = new Array<ModelRoute>(); // longest prefix first
  servedNames: Array<string> = new Array<string>();
  modelListBody: string = "";

  // The route for a requested model name: exact names win, then the longest matching prefix.
  findRoute(model: string): ModelRoute | null {
    if (this.exact.has(model)) return this.exact.get(model);
    for (let i = 0; i < this.prefixes.length; i++) {
      const r = unchecked(this.prefixes[i]);
      if (model.startsWith(r.name)) return r;
    }
    return null;
  }

  // Paths whose streams carry usage chunks when asked (stream_options.include_usage).
  carriesStreamUsage(path: string): bool {
    for (let i = 0; i < USAGE_PATH_SUFFIXES.length; i++) {
      if (path.endsWith(unchecked(USAGE_PATH_SUFFIXES[i]))) return true;
    }
    return false;
  }

  // The Envoy cluster that serves a route, for calls the plugin makes itself (fallback attempts).
  clusterOf(route: ModelRoute, routeValue: string): string {
    return route.cluster.length > 0 ? route.cluster : clusterFor(this.fallback, routeValue);
  }

  isRoutedPath(path: string): bool {
    for (let i = 0; i < this.pathSuffixes.length; i++) {
      if (path.endsWith(unchecked(this.pathSuffixes[i]))) return true;
    }
    return false;
  }
}

// A `_rules_` entry: overrides for requests matching any of its routes, domains or services.
export class Rule {
  routes: Array<string> = new Array<string>();
  domains: Array<string> = new Array<string>();
  services: Array<string> = new Array<string>();
  config: GatewayConfig = new GatewayConfig();
}

export class PluginConfig {
  global: GatewayConfig = new GatewayConfig();
  rules: Array<Rule> = new Array<Rule>();

  // First rule whose match fits, else the global config (Higress's semantics for `_rules_`).
  select(route: string, host: string, service: string): GatewayConfig {
    for (let i = 0; i < this.rules.length; i++) {
      const r = unchecked(this.rules[i]);
      if (route.length > 0 && r.routes.includes(route)) return r.config;
      if (host.length > 0 && domainMatches(r.domains, host)) return r.config;
      if (service.length > 0 && serviceMatches(r.services, service)) return r.config;
    }
    return this.global;
  }
}

// Host names are case-insensitive; clients write :authority as they like.
function domainMatches(domains: Array<string>, host: string): bool {
  host = asciiLower(host);
  for (let i = 0; i < domains.length; i++) {
    const d = asciiLower(unchecked(domains[i]));
    if (d == host) return true;
    // "*.example.com" matches any subdomain.
    if (d.startsWith("*.") && host.endsWith(d.substring(1))) return true;
  }
  return false;
}

// ASCII-only lowercasing: host names are ASCII (IDNs arrive as punycode), and String#toLowerCase
// would pull Unicode case tables (~8 KB) into the module.
function asciiLower(s: string): string {
  let upper = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) { upper = true; break; }
  }
  if (!upper) return s;
  const out = new Array<string>(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    unchecked((out[i] = String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 32 : c)));
  }
  return out.join("");
}

// Higress service matches name either bare or as in the cluster name `outbound|port||name`.
function serviceMatches(services: Array<string>, cluster: string): bool {
  for (let i = 0; i < services.length; i++) {
    const s = unchecked(services[i]);
    if (s == cluster || cluster.endsWith("||" + s)) return true;
  }
  return false;
}

export class ConfigResult {
  config: PluginConfig | null = null;
  error: string = "";
}

const KNOWN_KEYS: Array<string> = ["routingHeader", "pathSuffixes", "maxBodyBytes", "serveModelList", "defaultModel", "ownedBy",
  "injectStreamUsage", "consumerHeader", "maxSseEventBytes", "maxResponseBytes", "memoryBudgetBytes", "stage", "models", "fallback"];
const MODEL_KEYS: Array<string> = ["name", "route", "upstreamModel", "fallback", "cluster"];
function parseModel(c: Checker, v: JsonValue, path: string): ModelRoute {
  const m = new ModelRoute();
  if (v.type != JsonType.Object) { c.fail(path, "must be an object, got " + describe(v)); return m; }
  for (let i = 0; i < v.keys.length; i++) {
    const k = unchecked(v.keys[i]);
    if (!MODEL_KEYS.includes(k)) c.fail(path + "." + k, "unknown field (known: " + MODEL_KEYS.join(", ") + ")");
  }
  const name = v.get("name");
  if (name == null) { c.fail(path + ".name", "is required"); return m; }
  let n = readString(c, name, path + ".name", false);
  if (n.endsWith("*")) {
    m.isPrefix = true;
    n = n.substring(0, n.length - 1);
    if (n.indexOf("*") >= 0) c.fail(path + ".name", "only a trailing '*' is supported, got " + jsonString(n + "*"));
  } else if (n.indexOf("*") >= 0) {
    c.fail(path + ".name", "only a trailing '*' is supported, got " + jsonString(n));
  }
  m.name = n;
  const route = v.get("route");
  if (route != null) {
    m.route = readString(c, route, path + ".route", false);
    if (!isHeaderValue(m.route)) c.fail(path + ".route", "must be printable ASCII (it becomes a header value)");
  } else if (!m.isPrefix) {
    m.route = n;
    // Without `route`, the name itself becomes the header value.
    if (n.length > 0 && !isHeaderValue(n)) c.fail(path + ".name", "must be printable ASCII (it becomes a header value)");
  }
  const up = v.get("upstreamModel");
  if (up != null) m.upstreamModel = readString(c, up, path + ".upstreamModel", false);
  const fb = v.get("fallback");
  if (fb != null) m.fallback = readStringArray(c, fb, path + ".fallback");
  const cl = v.get("cluster");
  if (cl != null) m.cluster = readString(c, cl, path + ".cluster", false);
  return m;
}

// Reads one config object over `base` (fields it lacks keep base's values).
function parseGateway(c: Checker, v: JsonValue, base: GatewayConfig | null, path: string): GatewayConfig {
  const g = new GatewayConfig();
  if (base != null) {
    g.routingHeader = base.routingHeader;
    g.pathSuffixes = base.pathSuffixes;
    g.maxBodyBytes = base.maxBodyBytes;
    g.serveModelList = base.serveModelList;
    g.defaultModel = base.defaultModel;
    g.ownedBy = base.ownedBy;
    g.injectStreamUsage = base.injectStreamUsage;
    g.consumerHeader = base.consumerHeader;
    g.maxSseEventBytes = base.maxSseEventBytes;
    g.maxResponseBytes = base.maxResponseBytes;
    g.memoryBudgetBytes = base.memoryBudgetBytes;
    g.stage = base.stage;
    g.models = base.models;
    g.fallback = base.fallback;
  }
  for (let i = 0; i < v.keys.length; i++) {
    const k = unchecked(v.keys[i]);
    if (k.startsWith("_")) continue; // _rules_, _match_*_ and other Higress-reserved keys
    if (!KNOWN_KEYS.includes(k)) c.fail(path + k, "unknown field (known: " + KNOWN_KEYS.join(", ") + ")");
  }
  const rh = v.get("routingHeader");
  if (rh != null) {
    g.routingHeader = readString(c, rh, path + "routingHeader", false);
    if (!isHeaderName(g.routingHeader)) c.fail(path + "routingHeader", "must be a lowercase header name, got " + jsonString(g.routingHeader));
  }
  const ps = v.get("pathSuffixes");
  if (ps != null) {
    g.pathSuffixes = readStringArray(c, ps, path + "pathSuffixes");
    if (g.pathSuffixes.length == 0) c.fail(path + "pathSuffixes", "must not be empty");
  }
  // The ranges keep the VM's memory bounded by design: the budget (at most 384 MiB), one body a
  // callback holds for a moment (at most 512 MiB) and the runtime (64 MiB) fit in the 1 GiB
  // proxy-wasm-cpp-host gives a VM, whatever values are chosen.
  g.maxBodyBytes = readBytes(c, v, path, "maxBodyBytes", 1, 536870912, g.maxBodyBytes);
  g.maxSseEventBytes = readBytes(c, v, path, "maxSseEventBytes", 1, 536870912, g.maxSseEventBytes);
  g.maxResponseBytes = readBytes(c, v, path, "maxResponseBytes", 1, 536870912, g.maxResponseBytes);
  g.memoryBudgetBytes = readBytes(c, v, path, "memoryBudgetBytes", 1048576, 402653184, g.memoryBudgetBytes);
  const st = v.get("stage");
  if (st != null) {
    g.stage = readString(c, st, path + "stage", false);
    if (g.stage != STAGE_REQUEST && g.stage != STAGE_ATTEMPT) c.fail(path + "stage", "must be \"request\" or \"attempt\", got " + jsonString(g.stage));
  }
  g.serveModelList = readBoolField(c, v, path, "serveModelList", g.serveModelList);
  g.injectStreamUsage = readBoolField(c, v, path, "injectStreamUsage", g.injectStreamUsage);
  const ch = v.get("consumerHeader");
  if (ch != null) {
    g.consumerHeader = readString(c, ch, path + "consumerHeader", false);
    if (!isHeaderName(g.consumerHeader)) c.fail(path + "consumerHeader", "must be a lowercase header name, got " + jsonString(g.consumerHeader));
  }
  const ob = v.get("ownedBy");
  if (ob != null) g.ownedBy = readString(c, ob, path + "ownedBy", false);
  const ms = v.get("models");
  if (ms != null) {
    if (ms.type != JsonType.Array) {
      c.fail(path + "models", "must be an array, got " + describe(ms));
    } else {
      const models = new Array<ModelRoute>();
      for (let i = 0; i < ms.items.length; i++) {
        models.push(parseModel(c, unchecked(ms.items[i]), path + "models[" + i.toString() + "]"));
      }
      g.models = models;
    }
  }
  if (g.models.length == 0) c.fail(path + "models", "at least one model is required");
  const fp = v.get("fallback");
  if (fp != null) g.fallback = parseFallback(c, fp, g.fallback, path + "fallback");
  const dm = v.get("defaultModel");
  if (dm != null) g.defaultModel = readString(c, dm, path + "defaultModel", false);
  compile(c, g, path);
  return g;
}

function compile(c: Checker, g: GatewayConfig, path: string): void {
  for (let i = 0; i < g.models.length; i++) {
    const m = unchecked(g.models[i]);
    if (m.isPrefix) {
      for (let j = 0; j < g.prefixes.length; j++) {
        if (unchecked(g.prefixes[j]).name == m.name) c.fail(path + "models[" + i.toString() + "].name", "duplicate model " + jsonString(m.name + "*"));
      }
      g.prefixes.push(m);
      continue;
    }
    if (g.exact.has(m.name)) c.fail(path + "models[" + i.toString() + "].name", "duplicate model " + jsonString(m.name));
    g.exact.set(m.name, m);
    g.servedNames.push(m.name);
  }
  // Longest prefix first, so "qwen2-*" wins over "qwen*".
  // (An insertion sort: patterns are few, and std's sort costs module size.)
  const ps = g.prefixes;
  for (let i = 1; i < ps.length; i++) {
    const m = unchecked(ps[i]);
    let j = i - 1;
    while (j >= 0 && unchecked(ps[j]).name.length < m.name.length) {
      unchecked((ps[j + 1] = unchecked(ps[j])));
      j--;
    }
    unchecked((ps[j + 1] = m));
  }
  for (let i = 0; i < g.models.length; i++) {
    const m = unchecked(g.models[i]);
    for (let j = 0; j < m.fallback.length; j++) {
      if (g.findRoute(unchecked(m.fallback[j])) == null) {
        c.fail(path + "models[" + i.toString() + "].fallback[" + j.toString() + "]", "unknown model " + jsonString(unchecked(m.fallback[j])));
      }
    }
  }
  if (g.defaultModel.length > 0 && g.findRoute(g.defaultModel) == null) {
    c.fail(path + "defaultModel", "is not one of the configured models: " + jsonString(g.defaultModel));
  }
  g.modelListBody = renderModelList(g);
  g.maxBodyBytesText = g.maxBodyBytes.toString();
  g.maxResponseBytesText = g.maxResponseBytes.toString();
}

// The OpenAI list format of GET /v1/models; prefix patterns cannot be listed.
function renderModelList(g: GatewayConfig): string {
  const parts = new Array<string>();
  for (let i = 0; i < g.servedNames.length; i++) {
    parts.push("{\"id\":" + jsonString(unchecked(g.servedNames[i])) + ",\"object\":\"model\",\"created\":0,\"owned_by\":" + jsonString(g.ownedBy) + "}");
  }
  return "{\"object\":\"list\",\"data\":[" + parts.join(",") + "]}";
}

function parseRule(c: Checker, v: JsonValue, global: GatewayConfig, path: string): Rule {
  const r = new Rule();
  if (v.type != JsonType.Object) { c.fail(path, "must be an object, got " + describe(v)); return r; }
  const mr = v.get("_match_route_");
  const md = v.get("_match_domain_");
  const msv = v.get("_match_service_");
  if (mr != null) r.routes = readStringArray(c, mr, path + "._match_route_");
  if (md != null) r.domains = readStringArray(c, md, path + "._match_domain_");
  if (msv != null) r.services = readStringArray(c, msv, path + "._match_service_");
  if (r.routes.length + r.domains.length + r.services.length == 0) {
    c.fail(path, "needs a non-empty _match_route_, _match_domain_ or _match_service_");
  }
  r.config = parseGateway(c, v, global, path + ".");
  return r;
}

export function parseConfig(text: string): ConfigResult {
  const res = new ConfigResult();
  if (text.length == 0) { res.error = "configuration is empty: at least `models` is required"; return res; }
  const parsed = parseJson(text);
  if (parsed.value == null) { res.error = "configuration: " + parsed.error; return res; }
  const root = parsed.value!;
  if (root.type != JsonType.Object) { res.error = "configuration must be a JSON object"; return res; }
  const c = new Checker();
  const pc = new PluginConfig();
  pc.global = parseGateway(c, root, null, "");
  const rules = root.get("_rules_");
  if (rules != null) {
    if (rules.type != JsonType.Array) c.fail("_rules_", "must be an array, got " + describe(rules));
    else for (let i = 0; i < rules.items.length; i++) {
      pc.rules.push(parseRule(c, unchecked(rules.items[i]), pc.global, "_rules_[" + i.toString() + "]"));
    }
  }
  if (c.error.length > 0) { res.error = c.error; return res; }
  res.config = pc;
  return res;
}
