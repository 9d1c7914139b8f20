// The plugin configuration in its runtime form: read against the field table (settings.ts) and
// compiled once at configure time (route table built, /v1/models answer rendered). A bad configuration
// is refused with the JSON path of the offending field, so Envoy keeps the previous one.
import { JsonValue, parseJson } from "../../json/value";
import { JsonType } from "../../json/reader";
import { jsonString } from "../../json/writer";
import { asciiLower, isHeaderValue } from "../../util/ascii";
import { AffinityPolicy, compileAffinity } from "./affinity-policy";
import { QuotaPolicy, compileQuotas } from "./quota-policy";
import { Checker, Settings, checkTextList, defaultSettings, describe, joinPath, readObject, statusTrigger, texts } from "./settings";

export const STAGE_REQUEST = "request";
// Envoy's upstream filter chain, once per upstream attempt: puts the attempt's model in the body when
// Envoy retries a request on a backup model's cluster (stages/attempt-stage.ts).
export const STAGE_ATTEMPT = "attempt";
// fallback.mechanism: who sends a failed request again.
export const MECHANISM_ENVOY = "envoy"; // Envoy's router retries on the backup's cluster (streams)
export const MECHANISM_DISPATCH = "dispatch"; // the plugin holds the body and calls the backup itself
// Paths whose streams carry usage chunks when asked (stream_options.include_usage).
const USAGE_PATH_SUFFIXES: Array<string> = ["/v1/chat/completions", "/v1/completions"];

export class ModelRoute {
  name: string = ""; // exact name, or the prefix of a pattern
  isPrefix: bool = false; // configured as "prefix*"
  route: string = ""; // routing header value; "" = the requested model itself
  upstreamModel: string = ""; // "" = leave the body's model as is
  fallback: Array<string> = new Array<string>();
  cluster: string = ""; // Envoy cluster for backup calls; "" = from fallback.clusterTemplate

  // One routing header value whatever the requested name: an exact name, or a pattern with `route`.
  get hasFixedRoute(): bool {
    return !this.isPrefix || this.route.length > 0;
  }

  // The routing header's value for a request naming `requested` (for a pattern: the name itself).
  routeFor(requested: string): string {
    return this.route.length > 0 ? this.route : requested;
  }

  // The name the upstream must see for a request naming `requested`.
  servedFor(requested: string): string {
    return this.upstreamModel.length > 0 ? this.upstreamModel : requested;
  }
}

// A fallback trigger: one status code (e.g. 503) or a class (5 = any 5xx).
export class StatusTrigger {
  constructor(
    public code: i32,
    public isClass: bool,
  ) {}

  matches(status: i32): bool {
    return this.isClass ? status / 100 == this.code : status == this.code;
  }
}

// The `fallback` object (the field table documents each member).
export class FallbackPolicy {
  enabled: bool = true;
  mechanism: string = MECHANISM_ENVOY;
  onStatus: Array<StatusTrigger> = new Array<StatusTrigger>();
  // Envoy's own answers (response.code_details other than via_upstream) for connection failures,
  // resets and timeouts: 503/504 with details such as upstream_reset_before_response_started{...}.
  onLocalReply: bool = true;
  maxAttempts: i32 = 0; // the primary and its backups together
  attemptTimeoutMs: u32 = 0; // each backup attempt (an http call)
  slowFailureMs: i64 = 0; // 0 = off
  firstByteTimeoutMs: i64 = 0; // 0 = off
  cooldownFailures: i32 = 0; // 0 = no cooldown
  cooldownWindowMs: i64 = 0;
  cooldownMs: i64 = 0;
  clusterTemplate: string = ""; // {route} is replaced by the route value

  // The Envoy cluster of a route, for the backup call.
  clusterFor(route: string): string {
    const t = this.clusterTemplate;
    const at = t.indexOf("{route}");
    return at < 0 ? t : t.substring(0, at) + route + t.substring(at + 7);
  }
}

export class GatewayConfig {
  routingHeader: string = "";
  pathSuffixes: Array<string> = new Array<string>();
  maxBodyBytes: i32 = 0;
  serveModelList: bool = false;
  defaultModel: string = "";
  ownedBy: string = "";
  injectStreamUsage: bool = false;
  consumerHeader: string = "";
  trustConsumerHeader: bool = false;
  maxSseEventBytes: i32 = 0;
  maxResponseBytes: i32 = 0;
  memoryBudgetBytes: i32 = 0;
  stage: string = STAGE_REQUEST;
  models: Array<ModelRoute> = new Array<ModelRoute>();
  fallback: FallbackPolicy = new FallbackPolicy();
  affinity: AffinityPolicy = new AffinityPolicy();
  quotas: QuotaPolicy = new QuotaPolicy();

  // Compiled at configure time.
  maxBodyBytesText: string = ""; // maxBodyBytes in decimal, for set_decoder_buffer_limit
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

  carriesStreamUsage(path: string): bool {
    return endsWithAny(path, USAGE_PATH_SUFFIXES);
  }

  // The Envoy cluster that serves a route, for calls the plugin makes itself (fallback attempts).
  clusterOf(route: ModelRoute, routeValue: string): string {
    return route.cluster.length > 0 ? route.cluster : this.fallback.clusterFor(routeValue);
  }

  isRoutedPath(path: string): bool {
    return endsWithAny(path, this.pathSuffixes);
  }
}

function endsWithAny(path: string, suffixes: Array<string>): bool {
  for (let i = 0; i < suffixes.length; i++) {
    if (path.endsWith(unchecked(suffixes[i]))) return true;
  }
  return false;
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

// ---- compiling settings into the runtime form ---------------------------------------------------

function compileModel(c: Checker, v: JsonValue, path: string): ModelRoute {
  const m = new ModelRoute();
  if (v.type != JsonType.Object) {
    c.fail(path, "must be an object, got " + describe(v));
    return m;
  }
  const s = new Settings();
  readObject(c, v, s, "models[]", path);
  let n = s.text("models[].name");
  if (n.endsWith("*")) {
    m.isPrefix = true;
    n = n.substring(0, n.length - 1);
  }
  m.name = n;
  m.route = s.text("models[].route");
  if (m.route.length == 0 && !m.isPrefix) {
    // Without `route`, the name itself becomes the header value.
    m.route = n;
    if (n.length > 0 && !isHeaderValue(n)) c.fail(path + ".name", "must be printable ASCII (it becomes a header value)");
  }
  m.upstreamModel = s.text("models[].upstreamModel");
  m.fallback = s.textList("models[].fallback");
  m.cluster = s.text("models[].cluster");
  return m;
}

function compileFallback(s: Settings): FallbackPolicy {
  const p = new FallbackPolicy();
  p.enabled = s.flag("fallback.enabled");
  p.mechanism = s.text("fallback.mechanism");
  const triggers = s.items("fallback.onStatus");
  for (let i = 0; i < triggers.length; i++) {
    const t = statusTrigger(unchecked(triggers[i]));
    if (t > 0) p.onStatus.push(new StatusTrigger(t, t < 10));
  }
  p.onLocalReply = s.flag("fallback.onUpstreamUnreachable");
  p.maxAttempts = <i32>s.int("fallback.maxAttempts");
  p.attemptTimeoutMs = <u32>s.int("fallback.attemptTimeoutMs");
  p.slowFailureMs = s.int("fallback.slowFailureMs");
  p.firstByteTimeoutMs = s.int("fallback.firstByteTimeoutMs");
  p.cooldownFailures = <i32>s.int("fallback.cooldown.failures");
  p.cooldownWindowMs = s.int("fallback.cooldown.windowMs");
  p.cooldownMs = s.int("fallback.cooldown.durationMs");
  p.clusterTemplate = s.text("fallback.clusterTemplate");
  return p;
}

// The runtime form of `s`; problems (cross-field ones included) are reported at `path`.
function compile(c: Checker, s: Settings, path: string): GatewayConfig {
  const g = new GatewayConfig();
  g.routingHeader = s.text("routingHeader");
  g.pathSuffixes = s.textList("pathSuffixes");
  g.maxBodyBytes = <i32>s.int("maxBodyBytes");
  g.serveModelList = s.flag("serveModelList");
  g.defaultModel = s.text("defaultModel");
  g.ownedBy = s.text("ownedBy");
  g.injectStreamUsage = s.flag("injectStreamUsage");
  g.consumerHeader = s.text("consumerHeader");
  g.trustConsumerHeader = s.flag("trustConsumerHeader");
  g.maxSseEventBytes = <i32>s.int("maxSseEventBytes");
  g.maxResponseBytes = <i32>s.int("maxResponseBytes");
  g.memoryBudgetBytes = <i32>s.int("memoryBudgetBytes");
  g.stage = s.text("stage");
  g.fallback = compileFallback(s);
  g.affinity = compileAffinity(s);
  g.quotas = compileQuotas(c, s, path);
  const models = s.items("models");
  const mpath = joinPath(path, "models");
  if (models.length == 0) c.fail(mpath, "at least one model is required");
  for (let i = 0; i < models.length; i++) {
    g.models.push(compileModel(c, unchecked(models[i]), mpath + "[" + i.toString() + "]"));
  }
  indexModels(c, g, mpath);
  if (g.defaultModel.length > 0 && g.findRoute(g.defaultModel) == null) {
    c.fail(joinPath(path, "defaultModel"), "is not one of the configured models: " + jsonString(g.defaultModel));
  }
  g.modelListBody = renderModelList(g);
  g.maxBodyBytesText = g.maxBodyBytes.toString();
  g.maxResponseBytesText = g.maxResponseBytes.toString();
  return g;
}

// The route table: exact names in a map, patterns longest first; every fallback must name a model.
function indexModels(c: Checker, g: GatewayConfig, mpath: string): void {
  for (let i = 0; i < g.models.length; i++) {
    const m = unchecked(g.models[i]);
    const at = mpath + "[" + i.toString() + "].name";
    if (m.isPrefix) {
      for (let j = 0; j < g.prefixes.length; j++) {
        if (unchecked(g.prefixes[j]).name == m.name) c.fail(at, "duplicate model " + jsonString(m.name + "*"));
      }
      g.prefixes.push(m);
      continue;
    }
    if (g.exact.has(m.name)) c.fail(at, "duplicate model " + jsonString(m.name));
    g.exact.set(m.name, m);
    g.servedNames.push(m.name);
  }
  // Longest prefix first, so "qwen2-*" wins over "qwen*" (an insertion sort: patterns are few, and
  // std's sort costs module size).
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
        c.fail(mpath + "[" + i.toString() + "].fallback[" + j.toString() + "]", "unknown model " + jsonString(unchecked(m.fallback[j])));
      }
    }
  }
}

// The OpenAI list format of GET /v1/models; prefix patterns cannot be listed.
function renderModelList(g: GatewayConfig): string {
  const parts = new Array<string>();
  for (let i = 0; i < g.servedNames.length; i++) {
    parts.push(
      '{"id":' + jsonString(unchecked(g.servedNames[i])) + ',"object":"model","created":0,"owned_by":' + jsonString(g.ownedBy) + "}",
    );
  }
  return '{"object":"list","data":[' + parts.join(",") + "]}";
}

// Higress's match keys of a rule: each an array of strings.
function readMatch(c: Checker, v: JsonValue, key: string, path: string): Array<string> {
  const m = v.get(key);
  if (m == null || !checkTextList(c, m, path + "." + key, false)) return new Array<string>();
  return texts(m);
}

function parseRule(c: Checker, v: JsonValue, global: Settings, path: string): Rule {
  const r = new Rule();
  if (v.type != JsonType.Object) {
    c.fail(path, "must be an object, got " + describe(v));
    return r;
  }
  r.routes = readMatch(c, v, "_match_route_", path);
  r.domains = readMatch(c, v, "_match_domain_", path);
  r.services = readMatch(c, v, "_match_service_", path);
  if (r.routes.length + r.domains.length + r.services.length == 0) {
    c.fail(path, "needs a non-empty _match_route_, _match_domain_ or _match_service_");
  }
  // Over the global settings: what the rule leaves out keeps the global value.
  const s = global.copy();
  readObject(c, v, s, "", path);
  r.config = compile(c, s, path);
  return r;
}

export function parseConfig(text: string): ConfigResult {
  const res = new ConfigResult();
  if (text.length == 0) {
    res.error = "configuration is empty: at least `models` is required";
    return res;
  }
  const parsed = parseJson(text);
  if (parsed.value == null) {
    res.error = "configuration: " + parsed.error;
    return res;
  }
  const root = parsed.value!;
  if (root.type != JsonType.Object) {
    res.error = "configuration must be a JSON object";
    return res;
  }
  const c = new Checker();
  const pc = new PluginConfig();
  const global = defaultSettings().copy();
  readObject(c, root, global, "", "");
  pc.global = compile(c, global, "");
  const rules = root.get("_rules_");
  if (rules != null) {
    if (rules.type != JsonType.Array) c.fail("_rules_", "must be an array, got " + describe(rules));
    else
      for (let i = 0; i < rules.items.length; i++) {
        pc.rules.push(parseRule(c, unchecked(rules.items[i]), global, "_rules_[" + i.toString() + "]"));
      }
  }
  if (c.error.length > 0) {
    res.error = c.error;
    return res;
  }
  res.config = pc;
  return res;
}
