// The deployment file: its schema, defaults and validation. parseSpec never throws on bad input: it returns
// every problem it finds, one line each, naming the field path and the offending value.
import { parseDocument } from "yaml";
import { CONFIG_FIELDS, childKeys } from "../assembly/plugin/config/schema.ts";
import { Checker, show, type Obj } from "./checker.ts";
import { parseQuotas, type QuotaSpec } from "./spec-quotas.ts";
import {
  DEFAULT_AFFINITY_LOAD_FACTOR,
  DEFAULT_AFFINITY_PREFIX_BYTES,
  DEFAULT_FALLBACK_MAX_REQUEST_BYTES,
  DEFAULT_ENVOY_ADMIN_PORT,
  DEFAULT_ENVOY_LISTEN_PORT,
  DEFAULT_FALLBACK_ON,
  DEFAULT_GATEWAY_NAMESPACE,
  DEFAULT_GATEWAY_SERVICE,
  DEFAULT_INGRESS_CLASS,
  DEFAULT_MODEL_HUB,
  DEFAULT_MODELS_NAMESPACE,
  DEFAULT_ROUTING_HEADER,
} from "./names.ts";

export type ModelHub = "Huggingface" | "ModelScope";
/** What the file deploys to: Higress (Kubernetes objects) or upstream Envoy (a bootstrap file, plus the llmaz objects). */
export type GatewayType = "higress" | "envoy";
export type ResponseClass = "4xx" | "5xx";
export type PullPolicy = "IfNotPresent" | "Always" | "UNSPECIFIED_POLICY";
export type Quantity = string | number;

export interface Resources {
  requests?: Record<string, Quantity>;
  limits?: Record<string, Quantity>;
}

/** Prefix affinity for a model's replicas (issue 14): consistent hashing with bounded load on the plugin's prefix key. */
export interface Affinity {
  /** No replica takes more than this times the average load (Envoy's hash_balance_factor / 100). */
  loadFactor: number;
  /** The plugin's prefixAffinity.prefixBytes, one value for every model. */
  prefixBytes: number;
  /** The plugin picks the replica (prefixAffinity.loadAware); absent: Envoy's ring alone. One value for every model. */
  loadAware?: LoadAware;
}

/** The deployment file's side of prefixAffinity.loadAware, with the plugin's defaults filled in. */
export interface LoadAware {
  /** A replica reporting more waiting requests than this is avoided. */
  maxWaiting: number;
  /** A replica reporting a fuller KV cache (percent) is avoided. */
  maxKvCacheUsage: number;
  /** A replica not heard from for this long is forgotten. */
  reportTtlMs: number;
}

export interface ModelSpec {
  name: string;
  modelID: string;
  hub: ModelHub;
  revision?: string;
  familyName: string;
  gpus: number;
  replicas: number;
  /** Models to fall back to, in order; Higress's native fallback uses the first (see fallback.ts). */
  fallback: string[];
  /** Ingress name = Envoy route name; defaults to the model name. */
  route: string;
  upstreamModel?: string;
  needsHfToken: boolean;
  resources?: Resources;
  args: string[];
  backendVersion?: string;
  affinity?: Affinity;
}

export interface DeploySpec {
  name: string;
  namespace: string;
  gateway: {
    type: GatewayType;
    namespace: string;
    host?: string;
    ingressClassName: string;
    service: string;
    /** gateway.type envoy: the listener's port and the admin port (loopback only). */
    listenPort: number;
    adminPort: number;
  };
  plugin: {
    url: string;
    imagePullPolicy?: PullPolicy;
    imagePullSecret?: string;
    sha256?: string;
    /** Plugin settings from the file, merged over the derived defaultConfig. Never holds `models`. */
    config: Record<string, unknown>;
  };
  fallback: { on: ResponseClass[]; bufferRequestBody: boolean; maxRequestBytes: number; globalFilter: boolean };
  models: ModelSpec[];
  /** Token quotas (issue 16): the plugin's `quotas`, and for mode cluster where its rate-limit service is. */
  quotas?: QuotaSpec;
}

export type ParseResult = { ok: true; spec: DeploySpec } | { ok: false; errors: string[] };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/;
const SHA256 = /^[a-f0-9]{64}$/;
const QUANTITY = /^[+]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$/;
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;
const PLUGIN_URL = /^(oci|https?|file):\/\/\S+$/;
const FILE_URL = /^file:\/\/\/\S+$/;
/** `<model>-lb` must stay a DNS label (63). */
const MAX_MODEL_NAME = 60;

const ROOT_KEYS = ["name", "namespace", "gateway", "plugin", "fallback", "models", "quotas"] as const;
const GATEWAY_KEYS = ["type", "namespace", "host", "ingressClassName", "service", "listenPort", "adminPort"] as const;
const GATEWAY_TYPES = ["higress", "envoy"] as const;
const PLUGIN_KEYS = ["url", "imagePullPolicy", "imagePullSecret", "sha256", "config"] as const;
const FALLBACK_KEYS = ["on", "bufferRequestBody", "maxRequestBytes", "globalFilter"] as const;
const MODEL_KEYS = [
  "name",
  "modelID",
  "hub",
  "revision",
  "familyName",
  "gpus",
  "replicas",
  "fallback",
  "route",
  "upstreamModel",
  "needsHfToken",
  "resources",
  "args",
  "backendVersion",
  "affinity",
] as const;
const AFFINITY_KEYS = ["loadFactor", "prefixBytes", "loadAware"] as const;
/** What models[].affinity.loadAware may set; the plugin's other loadAware fields are derived (loadFactor, header) or left at its defaults. */
const LOAD_AWARE_KEYS = ["maxWaiting", "maxKvCacheUsage", "reportTtlMs"] as const;
/** What each loadAware number means, for the error that refuses it. */
const LOAD_AWARE_UNITS: Record<(typeof LOAD_AWARE_KEYS)[number], string> = {
  maxWaiting: "requests waiting in vLLM's queue",
  maxKvCacheUsage: "a percentage: 95 means 95%",
  reportTtlMs: "milliseconds",
};
/** hash_balance_factor is a percentage of at least 100; above 100x the average, bounded load bounds nothing. */
const MAX_LOAD_FACTOR = 100;
/** The plugin's range for prefixAffinity.prefixBytes (assembly/plugin/config/schema.ts). */
const PREFIX_BYTES_RANGE = { min: 16, max: 1048576 } as const;

const DNS_LABEL_WHAT = 'a DNS-1123 label (lowercase letters, digits, "-"; starts and ends alphanumeric)';
const DNS_SUBDOMAIN_WHAT = 'a DNS-1123 subdomain (lowercase letters, digits, "-", ".")';

export function parseSpec(text: string): ParseResult {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { ok: false, errors: doc.errors.map((e) => `file: invalid YAML: ${e.message.split("\n")[0] ?? e.message}`) };
  }
  return validateSpec(doc.toJS({ maxAliasCount: 100 }) as unknown);
}

export function validateSpec(raw: unknown): ParseResult {
  const c = new Checker();
  if (!c.isObject(raw)) {
    return { ok: false, errors: [`file: must be a mapping with ${ROOT_KEYS.join(", ")}, got ${show(raw)}`] };
  }
  c.keys(raw, "", ROOT_KEYS);

  const name = c.string(raw, "name", "name", { required: true, pattern: DNS_LABEL, what: DNS_LABEL_WHAT, max: 63 });
  const namespace =
    c.string(raw, "namespace", "namespace", { pattern: DNS_LABEL, what: DNS_LABEL_WHAT, max: 63 }) ?? DEFAULT_MODELS_NAMESPACE;

  const gatewayRaw = c.object(raw, "gateway", "gateway", false);
  const gateway: DeploySpec["gateway"] = {
    type: "higress",
    namespace: DEFAULT_GATEWAY_NAMESPACE,
    ingressClassName: DEFAULT_INGRESS_CLASS,
    service: DEFAULT_GATEWAY_SERVICE,
    listenPort: DEFAULT_ENVOY_LISTEN_PORT,
    adminPort: DEFAULT_ENVOY_ADMIN_PORT,
  };
  if (gatewayRaw) {
    c.keys(gatewayRaw, "gateway", GATEWAY_KEYS);
    gateway.type = c.oneOf(gatewayRaw, "type", "gateway.type", GATEWAY_TYPES) ?? gateway.type;
    gateway.namespace =
      c.string(gatewayRaw, "namespace", "gateway.namespace", { pattern: DNS_LABEL, what: DNS_LABEL_WHAT, max: 63 }) ?? gateway.namespace;
    const host = c.string(gatewayRaw, "host", "gateway.host", {
      pattern: /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
      what: "a DNS name such as llm.example.com (optionally *.example.com), without scheme or port",
      max: 253,
    });
    if (host !== undefined) gateway.host = host;
    gateway.ingressClassName =
      c.string(gatewayRaw, "ingressClassName", "gateway.ingressClassName", { pattern: DNS_SUBDOMAIN, what: DNS_SUBDOMAIN_WHAT }) ??
      gateway.ingressClassName;
    gateway.service =
      c.string(gatewayRaw, "service", "gateway.service", { pattern: DNS_LABEL, what: DNS_LABEL_WHAT, max: 63 }) ?? gateway.service;
    gateway.listenPort = port(c, gatewayRaw, "listenPort", "gateway.listenPort", gateway.listenPort);
    gateway.adminPort = port(c, gatewayRaw, "adminPort", "gateway.adminPort", gateway.adminPort);
  }

  const models = parseModels(c, raw);
  const modelNames = new Set(models.map((m) => m.name));
  const plugin = parsePlugin(c, raw, modelNames);
  const fallback = parseFallback(c, raw, plugin?.config);
  checkGatewayType(c, raw, gateway.type);
  const quotas = parseQuotas(c, raw, modelNames, namespace, gateway.type);

  if (c.errors.length > 0 || name === undefined || plugin === undefined || fallback === undefined) {
    return { ok: false, errors: c.errors.length > 0 ? c.errors : ["file: invalid"] };
  }
  return { ok: true, spec: { name, namespace, gateway, plugin, fallback, models, ...(quotas !== undefined ? { quotas } : {}) } };
}

function parsePlugin(c: Checker, raw: Obj, modelNames: Set<string>): DeploySpec["plugin"] | undefined {
  const p = c.object(raw, "plugin", "plugin", true);
  if (!p) return undefined;
  c.keys(p, "plugin", PLUGIN_KEYS);
  const url = c.string(p, "url", "plugin.url", {
    required: true,
    pattern: PLUGIN_URL,
    what: "an oci://, http(s):// or file:// URL of the plugin",
  });
  const plugin: DeploySpec["plugin"] = { url: url ?? "", config: {} };
  const pull = c.oneOf(p, "imagePullPolicy", "plugin.imagePullPolicy", ["IfNotPresent", "Always", "UNSPECIFIED_POLICY"] as const);
  if (pull) plugin.imagePullPolicy = pull;
  const secret = c.string(p, "imagePullSecret", "plugin.imagePullSecret", { pattern: DNS_SUBDOMAIN, what: DNS_SUBDOMAIN_WHAT });
  if (secret) plugin.imagePullSecret = secret;
  const sha = c.string(p, "sha256", "plugin.sha256", { pattern: SHA256, what: `64 lowercase hex digits (${sha256Meaning(url)})` });
  if (sha) plugin.sha256 = sha;
  const pinned = url === undefined ? undefined : /^oci:\/\/[^@]+@sha256:([a-f0-9]{64})$/.exec(url)?.[1];
  if (sha && pinned !== undefined && pinned !== sha) {
    c.fail("plugin.sha256", `must equal the digest in plugin.url (${pinned}) when the url pins one`, sha);
  }
  const config = c.object(p, "config", "plugin.config", false);
  if (config) plugin.config = parsePluginConfig(c, config, modelNames);
  return url === undefined ? undefined : plugin;
}

/**
 * What plugin.sha256 is checked against, by URL scheme. oci://: the image's MANIFEST digest, hex without "sha256:"
 * (Higress's fetcher is istio's pkg/wasm: cache.go compares it with what imagefetcher.go PrepareFetch returns, the
 * manifest digest; `make push` prints it). http(s)://: the sha256 of the fetched .wasm file (sha256sum plugin.wasm).
 */
function sha256Meaning(url: string | undefined): string {
  if (url?.startsWith("oci://"))
    return 'for oci://: the image manifest digest without "sha256:", as make push prints it; not plugin.wasm\'s sha256';
  if (url !== undefined && /^https?:/.test(url)) return "for http(s)://: sha256sum of the .wasm file";
  return "oci://: the image manifest digest; http(s)://: sha256sum of the .wasm file";
}

// The plugin's top-level configuration keys, from its schema table (`models` is derived from the
// description's models). The plugin refuses any other key, so the CLI refuses it first, with the file's path.
export const PLUGIN_CONFIG_KEYS: readonly string[] = childKeys("").filter((k) => k !== "models");

/**
 * Plugin settings the renderer derives from other parts of the file, so that what Envoy or Higress is configured
 * with (hash policies, the rate-limit cluster) and what the plugin does cannot disagree.
 */
const DERIVED_PLUGIN_KEYS: ReadonlyMap<string, string> = new Map([
  ["prefixAffinity", "models[].affinity (loadFactor, prefixBytes, loadAware)"],
  ["quotas", "the top-level quotas"],
]);

/** Checks the plugin settings: only keys the plugin knows, with the types it takes where we can tell. */
function parsePluginConfig(c: Checker, config: Obj, modelNames: Set<string>): Record<string, unknown> {
  const at = (k: string): string => `plugin.config.${k}`;
  if ("models" in config) {
    c.errors.push(`${at("models")}: is derived from models[]; set name, route, upstreamModel and fallback there`);
  }
  for (const [k, where] of DERIVED_PLUGIN_KEYS) {
    if (k in config) c.errors.push(`${at(k)}: is derived from ${where}: set it there`);
  }
  for (const k of Object.keys(config)) {
    if (k !== "models" && !DERIVED_PLUGIN_KEYS.has(k) && !PLUGIN_CONFIG_KEYS.includes(k)) {
      c.errors.push(`${at(k)}: unknown plugin setting (known: ${PLUGIN_CONFIG_KEYS.join(", ")})`);
    }
  }
  c.string(config, "routingHeader", at("routingHeader"), {
    pattern: HEADER_NAME,
    what: "a lowercase HTTP header name such as x-higress-llm-model",
  });
  c.stringList(config, "pathSuffixes", at("pathSuffixes"), { pattern: /^\/\S*$/, what: 'a path suffix starting with "/"' });
  c.integer(config, "maxBodyBytes", at("maxBodyBytes"), 1, 0);
  c.boolean(config, "serveModelList", at("serveModelList"), false);
  const defaultModel = c.string(config, "defaultModel", at("defaultModel"), { what: "a model name" });
  if (defaultModel !== undefined && !modelNames.has(defaultModel)) {
    c.fail(at("defaultModel"), `must name one of models[] (${[...modelNames].join(", ")})`, defaultModel);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) if (k !== "models" && !DERIVED_PLUGIN_KEYS.has(k)) out[k] = v;
  return out;
}

function parseFallback(c: Checker, raw: Obj, pluginConfig: Record<string, unknown> | undefined): DeploySpec["fallback"] | undefined {
  const f = c.object(raw, "fallback", "fallback", false);
  if (!f) return undefined;
  c.keys(f, "fallback", FALLBACK_KEYS);
  let on = [...DEFAULT_FALLBACK_ON] as ResponseClass[];
  if (f["on"] !== undefined) {
    const list = c.stringList(f, "on", "fallback.on", { pattern: /^[45]xx$/, what: "4xx or 5xx" });
    if (Array.isArray(f["on"]) && f["on"].length === 0) c.fail("fallback.on", "must list at least one of 4xx, 5xx", f["on"]);
    else if (list !== undefined) on = [...new Set(list)].sort() as ResponseClass[];
  }
  const bodyLimit = typeof pluginConfig?.["maxBodyBytes"] === "number" ? pluginConfig["maxBodyBytes"] : DEFAULT_FALLBACK_MAX_REQUEST_BYTES;
  return {
    on,
    bufferRequestBody: c.boolean(f, "bufferRequestBody", "fallback.bufferRequestBody", true),
    maxRequestBytes: c.integer(f, "maxRequestBytes", "fallback.maxRequestBytes", 1, bodyLimit),
    globalFilter: c.boolean(f, "globalFilter", "fallback.globalFilter", false),
  };
}

function port(c: Checker, o: Obj, key: string, path: string, fallback: number): number {
  const p = c.integer(o, key, path, 1, fallback);
  if (p > 65535) {
    c.fail(path, "must be a port number (1 to 65535)", p);
    return fallback;
  }
  return p;
}

// Settings that only one gateway type uses: set for the other, they would silently do nothing, so they are refused.
const HIGRESS_ONLY: readonly { path: string; why: string }[] = [
  { path: "gateway.namespace", why: "where Higress runs" },
  { path: "gateway.ingressClassName", why: "Higress's Ingresses" },
  { path: "gateway.service", why: "Higress's gateway Service" },
  { path: "plugin.imagePullPolicy", why: "Envoy pulls no images" },
  { path: "plugin.imagePullSecret", why: "Envoy pulls no images" },
  { path: "fallback.bufferRequestBody", why: "Higress's native fallback; Envoy's router keeps the body for its retries" },
  { path: "fallback.maxRequestBytes", why: "Higress's native fallback; Envoy's router keeps the body for its retries" },
  { path: "fallback.globalFilter", why: "Higress's native fallback" },
];
const ENVOY_ONLY: readonly string[] = ["gateway.listenPort", "gateway.adminPort"];

function valueAt(raw: Obj, path: string): unknown {
  let v: unknown = raw;
  for (const k of path.split(".")) v = v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj)[k] : undefined;
  return v;
}

/**
 * What the gateway type asks of the rest of the file. gateway.type envoy: plain Envoy loads Wasm code from a
 * local file or over http(s) (its `remote` code source, which requires the sha256), and cannot fetch OCI images.
 */
function checkGatewayType(c: Checker, raw: Obj, type: GatewayType): void {
  const stage = valueAt(raw, "plugin.config.stage");
  if (stage !== undefined) {
    c.fail(
      "plugin.config.stage",
      "is set per filter by the renderer (the request stage; on Envoy also the attempt stage): leave it out",
      stage,
    );
  }
  if (type === "higress") {
    for (const path of ENVOY_ONLY) {
      const v = valueAt(raw, path);
      if (v !== undefined && v !== null) c.fail(path, "only for gateway.type envoy", v);
    }
    return;
  }
  for (const { path, why } of HIGRESS_ONLY) {
    const v = valueAt(raw, path);
    if (v !== undefined && v !== null) c.fail(path, `only for gateway.type higress (${why})`, v);
  }
  checkLoadAwareFallback(c, raw);
  const url = valueAt(raw, "plugin.url");
  if (typeof url !== "string" || !PLUGIN_URL.test(url)) return; // already reported
  if (url.startsWith("oci://")) {
    c.fail(
      "plugin.url",
      "must be an http(s):// URL of plugin.wasm or a file:/// path for gateway.type envoy (plain Envoy cannot fetch OCI images)",
      url,
    );
  } else if (url.startsWith("file://") && !FILE_URL.test(url)) {
    c.fail("plugin.url", "must be file:///absolute/path/plugin.wasm (a path on Envoy's host)", url);
  } else if (/^https?:/.test(url) && valueAt(raw, "plugin.sha256") === undefined) {
    c.fail(
      "plugin.sha256",
      "is required with an http(s):// plugin.url for gateway.type envoy (Envoy checks the fetched code against it)",
      undefined,
    );
  }
}

/**
 * gateway.type envoy: a model with backups is routed to an aggregate cluster (its fallback chain as priorities), and
 * there the override-host policy of the model's cluster never sees the picked-replica header (Envoy 1.39.3 places
 * every such request by its ring: tests/deploy/envoy-affinity.test.ts; likely because the policy needs the request's
 * stream info, which the aggregate cluster's load-balancer context does not pass on in the sources we read). The
 * plugin's picks would do nothing, so the pair is refused. Higress's fallback replays to another route instead.
 */
function checkLoadAwareFallback(c: Checker, raw: Obj): void {
  const list = raw["models"];
  if (!Array.isArray(list)) return;
  list.forEach((m: unknown, i: number) => {
    if (!c.isObject(m) || !Array.isArray(m["fallback"]) || m["fallback"].length === 0) return;
    const loadAware = valueAt(m, "affinity.loadAware");
    if (loadAware === undefined || loadAware === null || loadAware === false) return;
    c.fail(
      `models[${i}].affinity.loadAware`,
      "cannot be combined with fallback for gateway.type envoy: the model's requests go through its fallback chain's aggregate" +
        " cluster, where Envoy ignores the picked replica and its ring places every request; drop loadAware or fallback",
      loadAware,
    );
  });
}

function parseModels(c: Checker, raw: Obj): ModelSpec[] {
  const list = raw["models"];
  if (!Array.isArray(list) || list.length === 0) {
    c.fail("models", "must be a non-empty list of models", list);
    return [];
  }
  const parsed: { index: number; model: ModelSpec }[] = [];
  list.forEach((m: unknown, i: number) => {
    const model = parseModel(c, m, `models[${i}]`);
    if (model) parsed.push({ index: i, model });
  });

  const byName = new Map<string, number>();
  const byRoute = new Map<string, number>();
  for (const { index, model } of parsed) {
    const sameName = byName.get(model.name);
    if (sameName !== undefined) c.fail(`models[${index}].name`, `duplicates models[${sameName}].name`, model.name);
    else byName.set(model.name, index);
    const sameRoute = byRoute.get(model.route);
    if (sameRoute !== undefined && sameName === undefined) {
      c.fail(`models[${index}].route`, `duplicates the route of models[${sameRoute}] (routes name Ingresses)`, model.route);
    } else if (sameRoute === undefined) byRoute.set(model.route, index);
  }
  const models = parsed.map((p) => p.model);
  checkAffinityAgreement(c, parsed);

  // Checked only when every model parsed: a broken entry would make its name look unknown.
  if (parsed.length !== list.length) return models;
  const names = new Set(models.map((m) => m.name));
  list.forEach((m: unknown, i: number) => {
    if (!c.isObject(m) || !Array.isArray(m["fallback"])) return;
    const self = m["name"];
    const seen = new Set<string>();
    (m["fallback"] as unknown[]).forEach((f, j) => {
      if (typeof f !== "string") return;
      const path = `models[${i}].fallback[${j}]`;
      if (f === self) c.fail(path, "must not be the model itself", f);
      else if (!names.has(f)) c.fail(path, `must name another model in models[] (${[...names].join(", ")})`, f);
      else if (seen.has(f)) c.fail(path, "is listed twice", f);
      seen.add(f);
    });
  });
  return models;
}

/**
 * The plugin has one prefixAffinity.prefixBytes and one prefixAffinity.loadAware (whose load bound is the ring's
 * loadFactor): models with affinity must agree on them, so the first model with affinity sets them for all.
 */
function checkAffinityAgreement(c: Checker, parsed: { index: number; model: ModelSpec }[]): void {
  const withAffinity = parsed.filter((p) => p.model.affinity !== undefined);
  const first = withAffinity[0];
  if (first === undefined) return;
  const want = first.model.affinity?.prefixBytes;
  const wantLoadAware = first.model.affinity?.loadAware;
  for (const p of withAffinity.slice(1)) {
    const got = p.model.affinity?.prefixBytes;
    if (got !== want) {
      c.fail(
        `models[${p.index}].affinity.prefixBytes`,
        `must equal models[${first.index}].affinity.prefixBytes (${want ?? "?"}): the plugin keys every model's prompts with one length` +
          ` (an unset prefixBytes is ${DEFAULT_AFFINITY_PREFIX_BYTES})`,
        got,
      );
    }
    const gotLoadAware = p.model.affinity?.loadAware;
    if (describeLoadAware(gotLoadAware) !== describeLoadAware(wantLoadAware)) {
      c.errors.push(
        `models[${p.index}].affinity.loadAware: must match models[${first.index}].affinity.loadAware (${describeLoadAware(wantLoadAware)}):` +
          ` the plugin picks replicas the same way for every model with affinity, got ${describeLoadAware(gotLoadAware)}`,
      );
    }
    const loadFactor = p.model.affinity?.loadFactor;
    // Checked only where both pick replicas: a loadAware that differs is reported above.
    if (wantLoadAware !== undefined && gotLoadAware !== undefined && loadFactor !== first.model.affinity?.loadFactor) {
      c.fail(
        `models[${p.index}].affinity.loadFactor`,
        `must equal models[${first.index}].affinity.loadFactor (${first.model.affinity?.loadFactor ?? "?"}) with loadAware:` +
          ` the plugin bounds every model's replicas with one load factor (an unset loadFactor is ${DEFAULT_AFFINITY_LOAD_FACTOR})`,
        loadFactor,
      );
    }
  }
}

function describeLoadAware(l: LoadAware | undefined): string {
  if (l === undefined) return "off";
  return `on: ${LOAD_AWARE_KEYS.map((k) => `${k} ${l[k]}`).join(", ")}`;
}

function parseModel(c: Checker, m: unknown, path: string): ModelSpec | undefined {
  if (!c.isObject(m)) {
    c.fail(path, "must be a mapping with name, modelID, gpus, ...", m);
    return undefined;
  }
  c.keys(m, path, MODEL_KEYS);
  const name = c.string(m, "name", `${path}.name`, {
    required: true,
    pattern: DNS_LABEL,
    what: `${DNS_LABEL_WHAT}, at most ${MAX_MODEL_NAME} characters so that "<name>-lb" is a valid Service name`,
    max: MAX_MODEL_NAME,
  });
  const modelID = c.string(m, "modelID", `${path}.modelID`, {
    required: true,
    pattern: MODEL_ID,
    what: "a model hub ID such as Qwen/Qwen2-1.5B-Instruct",
  });
  const hub = c.oneOf(m, "hub", `${path}.hub`, ["Huggingface", "ModelScope"] as const) ?? DEFAULT_MODEL_HUB;
  const revision = c.string(m, "revision", `${path}.revision`, { pattern: /^\S+$/, what: "a revision without spaces" });
  const familyName = c.string(m, "familyName", `${path}.familyName`, { pattern: DNS_LABEL, what: DNS_LABEL_WHAT });
  const gpus = c.integer(m, "gpus", `${path}.gpus`, 1, 1);
  const replicas = c.integer(m, "replicas", `${path}.replicas`, 1, 1);
  let fallback: string[] = [];
  if (typeof m["fallback"] === "string") {
    c.fail(`${path}.fallback`, "must be a list of model names (write [name])", m["fallback"]);
  } else {
    fallback = c.stringList(m, "fallback", `${path}.fallback`) ?? [];
  }
  const route = c.string(m, "route", `${path}.route`, { pattern: DNS_LABEL, what: DNS_LABEL_WHAT, max: MAX_MODEL_NAME });
  const upstreamModel = c.string(m, "upstreamModel", `${path}.upstreamModel`, { what: "a non-empty string" });
  const needsHfToken = c.boolean(m, "needsHfToken", `${path}.needsHfToken`, false);
  const resources = parseResources(c, m, `${path}.resources`);
  const args = c.stringList(m, "args", `${path}.args`) ?? [];
  const backendVersion = c.string(m, "backendVersion", `${path}.backendVersion`, { pattern: /^\S+$/, what: "an image tag" });
  const affinity = parseAffinity(c, m, `${path}.affinity`);

  if (name === undefined || modelID === undefined) return undefined;
  const model: ModelSpec = {
    name,
    modelID,
    hub,
    familyName: familyName ?? name,
    gpus,
    replicas,
    fallback,
    route: route ?? name,
    needsHfToken,
    args,
  };
  if (revision !== undefined) model.revision = revision;
  if (upstreamModel !== undefined) model.upstreamModel = upstreamModel;
  if (resources !== undefined) model.resources = resources;
  if (backendVersion !== undefined) model.backendVersion = backendVersion;
  if (affinity !== undefined) model.affinity = affinity;
  return model;
}

/** models[].affinity: its presence turns prefix affinity on for the model; `{}` takes the defaults. */
function parseAffinity(c: Checker, m: Obj, path: string): Affinity | undefined {
  if (m["affinity"] === undefined || m["affinity"] === null) return undefined;
  const a = c.object(m, "affinity", path, false);
  if (!a) return undefined;
  c.keys(a, path, AFFINITY_KEYS);
  let loadFactor = DEFAULT_AFFINITY_LOAD_FACTOR;
  const lf = a["loadFactor"];
  if (lf !== undefined && lf !== null) {
    if (typeof lf !== "number" || !Number.isFinite(lf) || lf < 1 || lf > MAX_LOAD_FACTOR) {
      c.fail(`${path}.loadFactor`, `must be a number from 1 to ${MAX_LOAD_FACTOR} (1.25: no replica above 125% of the average load)`, lf);
    } else loadFactor = lf;
  }
  let prefixBytes = DEFAULT_AFFINITY_PREFIX_BYTES;
  const pb = a["prefixBytes"];
  if (pb !== undefined && pb !== null) {
    if (typeof pb !== "number" || !Number.isSafeInteger(pb) || pb < PREFIX_BYTES_RANGE.min || pb > PREFIX_BYTES_RANGE.max) {
      c.fail(`${path}.prefixBytes`, `must be an integer from ${PREFIX_BYTES_RANGE.min} to ${PREFIX_BYTES_RANGE.max}`, pb);
    } else prefixBytes = pb;
  }
  const loadAware = parseLoadAware(c, a, `${path}.loadAware`);
  return { loadFactor, prefixBytes, ...(loadAware !== undefined ? { loadAware } : {}) };
}

/**
 * models[].affinity.loadAware: `true` (or `{}`) turns the plugin's replica picking on with its defaults, a mapping
 * sets some of them, `false` or nothing leaves Envoy's ring alone. Ranges and defaults are the plugin's schema's.
 */
function parseLoadAware(c: Checker, a: Obj, path: string): LoadAware | undefined {
  const v = a["loadAware"];
  if (v === undefined || v === null || v === false) return undefined;
  if (v !== true && !c.isObject(v)) {
    c.fail(path, `must be true, false or a mapping (${LOAD_AWARE_KEYS.join(", ")})`, v);
    return undefined;
  }
  const given: Obj = v === true ? {} : v;
  c.keys(given, path, LOAD_AWARE_KEYS);
  const out = {} as LoadAware;
  for (const k of LOAD_AWARE_KEYS) {
    const f = loadAwareField(k);
    out[k] = f.default;
    const x = given[k];
    if (x === undefined || x === null) continue;
    if (typeof x !== "number" || !Number.isSafeInteger(x) || x < f.min || x > f.max) {
      c.fail(`${path}.${k}`, `must be an integer from ${f.min} to ${f.max} (${LOAD_AWARE_UNITS[k]})`, x);
    } else out[k] = x;
  }
  return out;
}

/** A prefixAffinity.loadAware integer field of the plugin's schema: its default and range. */
function loadAwareField(key: string): { default: number; min: number; max: number } {
  const f = CONFIG_FIELDS.find((x) => x.key === `prefixAffinity.loadAware.${key}`);
  if (f === undefined || typeof f.default !== "number" || f.min === undefined || f.max === undefined) {
    throw new Error(`the plugin's schema has no integer prefixAffinity.loadAware.${key}`);
  }
  return { default: f.default, min: f.min, max: f.max };
}

function parseResources(c: Checker, m: Obj, path: string): Resources | undefined {
  if (m["resources"] === undefined || m["resources"] === null) return undefined;
  const r = c.object(m, "resources", path, false);
  if (!r) return undefined;
  c.keys(r, path, ["requests", "limits"]);
  const out: Resources = {};
  for (const part of ["requests", "limits"] as const) {
    if (r[part] === undefined) continue;
    const list = c.object(r, part, `${path}.${part}`, false);
    if (!list) continue;
    const quantities: Record<string, Quantity> = {};
    for (const [res, q] of Object.entries(list)) {
      const at = `${path}.${part}.${res}`;
      if (res === "nvidia.com/gpu") {
        c.fail(at, "GPUs are set with gpus (rendered as nvidia.com/gpu in both requests and limits)", q);
      } else if (typeof q === "number" ? !(q >= 0) : typeof q !== "string" || !QUANTITY.test(q)) {
        c.fail(at, "must be a Kubernetes quantity such as 4, 500m or 16Gi", q);
      } else {
        quantities[res] = q as Quantity;
      }
    }
    out[part] = quantities;
  }
  // llmaz's Playground webhook (fail closed) refuses a limit below the request of the same resource.
  for (const [res, limit] of Object.entries(out.limits ?? {})) {
    const request = out.requests?.[res];
    if (request === undefined) continue;
    const cmp = compareQuantities(limit, request);
    if (cmp !== undefined && cmp < 0) c.fail(`${path}.limits.${res}`, `must be at least the request (${request})`, limit);
  }
  return out;
}

/** A Kubernetes quantity as num * 10^exp10 * 1024^exp1024, exactly. */
function parseQuantity(q: Quantity): { num: bigint; exp10: number; exp1024: number } | undefined {
  const m = /^\+?([0-9]*)(?:\.([0-9]*))?(([KMGTPE]i)|[numkMGTPE]|[eE]([+-]?[0-9]+))?$/.exec(String(q));
  if (m === null || (m[1] === "" && (m[2] ?? "") === "")) return undefined;
  const frac = m[2] ?? "";
  const num = BigInt(`${m[1]}${frac}` || "0");
  let exp10 = -frac.length;
  let exp1024 = 0;
  const suffix = m[3] ?? "";
  if (m[4] !== undefined) exp1024 = "KMGTPE".indexOf(suffix[0] ?? "") + 1;
  else if (m[5] !== undefined) exp10 += Number(m[5]);
  else if (suffix !== "") exp10 += { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 }[suffix] ?? 0;
  return { num, exp10, exp1024 };
}

/** Sign of a - b for two Kubernetes quantities; undefined if either does not parse. */
export function compareQuantities(a: Quantity, b: Quantity): number | undefined {
  const x = parseQuantity(a);
  const y = parseQuantity(b);
  if (x === undefined || y === undefined) return undefined;
  const e10 = Math.min(x.exp10, y.exp10);
  const e1024 = Math.min(x.exp1024, y.exp1024);
  const scale = (q: { num: bigint; exp10: number; exp1024: number }): bigint =>
    q.num * 10n ** BigInt(q.exp10 - e10) * 1024n ** BigInt(q.exp1024 - e1024);
  const d = scale(x) - scale(y);
  return d > 0n ? 1 : d < 0n ? -1 : 0;
}

/** The routing header the plugin writes and the Ingresses match on. */
export function routingHeader(spec: DeploySpec): string {
  const h = spec.plugin.config["routingHeader"];
  return typeof h === "string" ? h : DEFAULT_ROUTING_HEADER;
}
