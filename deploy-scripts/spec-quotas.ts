// The deployment file's `quotas` (issue 16): the plugin configuration's `quotas`, checked field by field against the
// plugin's own schema table (so the CLI and the plugin agree on names, kinds and ranges), plus where the rate-limit
// service of mode cluster comes from: deployed by the CLI (envoyproxy/ratelimit and a Redis in the models'
// namespace), or an existing one.
import { CONFIG_FIELDS, childFields, type ConfigField } from "../assembly/plugin/config/schema.ts";
import { Checker, type Obj } from "./checker.ts";
import { RATELIMIT_GRPC_PORT, RATELIMIT_NAME, istioClusterName } from "./names.ts";

export type QuotaMode = "local" | "cluster";

export interface QuotaService {
  /** The Envoy cluster the plugin calls (quotas.service.cluster of the plugin configuration). */
  cluster: string;
  /** Where that cluster points, when the CLI knows it (the Envoy target renders the cluster from it). */
  address?: HostPort;
  /** The CLI renders envoyproxy/ratelimit (and a Redis unless redisUrl names one). */
  deploy: boolean;
  /** deploy: an existing Redis (host:port) instead of the one the CLI would render. */
  redisUrl?: string;
  /** The rate-limit domain, which the service's own configuration must declare. */
  domain: string;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface QuotaSpec {
  mode: QuotaMode;
  /** The plugin configuration's `quotas`, as the file gives it, with service.cluster filled in for mode cluster. */
  config: Record<string, unknown>;
  /** mode cluster only. */
  service?: QuotaService;
}

/** The CLI's own keys in quotas.service, beside the plugin's. */
const SERVICE_DEPLOY_KEYS = ["deploy", "address", "redisUrl"] as const;
const RULE_NAME = /^[A-Za-z0-9_.-]+$/;
const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/;
const HOST = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Plugin settings that only mode local reads: refused in mode cluster, where they would do nothing. */
const LOCAL_ONLY_KEYS = ["localSlots"] as const;
/** The rule limits; a rule must set at least one. */
const LIMIT_KEYS = ["requests", "inputTokens", "outputTokens", "totalTokens"] as const;

function schemaField(key: string): ConfigField | undefined {
  return CONFIG_FIELDS.find((f) => f.key === key);
}

function defaultOf(key: string): unknown {
  return schemaField(key)?.default;
}

/** Keys of the schema below `parent` (e.g. "quotas.rules[]"), relative to it. */
function keysOf(parent: string): string[] {
  return childFields(parent).map((f) => f.key.slice(parent.length + 1));
}

/** `host:port`, the host a DNS name or an IPv4 address. */
export function parseHostPort(value: string): HostPort | undefined {
  const m = /^([^:\s]+):([0-9]{1,5})$/.exec(value);
  if (m === null) return undefined;
  const host = m[1] ?? "";
  const port = Number(m[2]);
  if (!HOST.test(host) || port < 1 || port > 65535) return undefined;
  return { host, port };
}

/**
 * One value checked as the plugin reads a field of that kind. Returns whether it is acceptable; records the
 * problem under `path` otherwise.
 */
function checkKind(c: Checker, field: ConfigField, value: unknown, path: string): boolean {
  const bad = (what: string): boolean => {
    c.fail(path, `must be ${what}`, value);
    return false;
  };
  switch (field.kind) {
    case "text":
    case "modelName":
      return (typeof value === "string" && value !== "") || bad("a non-empty string");
    case "headerName":
      return (typeof value === "string" && HEADER_NAME.test(value)) || bad("a lowercase HTTP header name such as x-mse-consumer");
    case "headerValue":
      return (typeof value === "string" && /^[\x20-\x7e]{1,256}$/.test(value)) || bad("printable ASCII, at most 256 characters");
    case "flag":
      return typeof value === "boolean" || bad("true or false");
    case "integer": {
      const min = field.min ?? 0;
      const max = field.max ?? Number.MAX_SAFE_INTEGER;
      return (
        (typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max) ||
        bad(`an integer from ${min} to ${max}`)
      );
    }
    case "choice":
      return (typeof value === "string" && (field.choices ?? []).includes(value)) || bad(`one of ${(field.choices ?? []).join(", ")}`);
    case "textList":
    case "nonEmptyTextList": {
      if (!Array.isArray(value)) return bad("a list of strings");
      if (field.kind === "nonEmptyTextList" && value.length === 0) return bad("a non-empty list of strings");
      let ok = true;
      value.forEach((x: unknown, i: number) => {
        if (typeof x !== "string" || x === "") {
          c.fail(`${path}[${i}]`, "must be a non-empty string", x);
          ok = false;
        }
      });
      return ok;
    }
    case "group":
      return c.isObject(value) || bad("a mapping");
    case "groupList":
      return Array.isArray(value) || bad("a list");
    case "statusList":
      return Array.isArray(value) || bad("a list of status codes and classes");
  }
}

/** Checks the plugin's scalar fields of `o` below schema `parent`; groups and lists are the caller's. */
function checkScalars(c: Checker, o: Obj, parent: string, path: string): void {
  for (const f of childFields(parent)) {
    const key = f.key.slice(parent.length + 1);
    const v = o[key];
    if (v === undefined || v === null || f.kind === "group" || f.kind === "groupList") continue;
    checkKind(c, f, v, `${path}.${key}`);
  }
}

/** A requested-model name or `prefix*` pattern of a rule: it must be able to match one of the file's models. */
function matchesAModel(pattern: string, models: ReadonlySet<string>): boolean {
  if (!pattern.endsWith("*")) return models.has(pattern);
  const prefix = pattern.slice(0, -1);
  return [...models].some((m) => m.startsWith(prefix));
}

function parseRules(c: Checker, q: Obj, modelNames: ReadonlySet<string>): Record<string, unknown>[] {
  const list = q["rules"];
  if (!Array.isArray(list) || list.length === 0) {
    c.fail("quotas.rules", "must list at least one rule (name, who, which models, limits per window)", list);
    return [];
  }
  const ruleKeys = keysOf("quotas.rules[]");
  const names = new Map<string, number>();
  const out: Record<string, unknown>[] = [];
  list.forEach((r: unknown, i: number) => {
    const path = `quotas.rules[${i}]`;
    if (!c.isObject(r)) {
      c.fail(path, "must be a mapping with name, models, window and limits", r);
      return;
    }
    c.keys(r, path, ruleKeys);
    checkScalars(c, r, "quotas.rules[]", path);
    const name = r["name"];
    if (name === undefined || name === null) c.fail(`${path}.name`, "is required (letters, digits, '.', '_', '-')", name);
    else if (typeof name === "string" && !RULE_NAME.test(name))
      c.fail(`${path}.name`, "must use only letters, digits, '.', '_' and '-'", name);
    else if (typeof name === "string") {
      const first = names.get(name);
      if (first !== undefined) c.fail(`${path}.name`, `duplicates quotas.rules[${first}].name`, name);
      else names.set(name, i);
    }
    if (Array.isArray(r["models"])) {
      (r["models"] as unknown[]).forEach((m, j) => {
        if (typeof m === "string" && m !== "" && !matchesAModel(m, modelNames)) {
          c.fail(`${path}.models[${j}]`, `matches none of models[] (${[...modelNames].join(", ")})`, m);
        }
      });
    }
    if (!LIMIT_KEYS.some((k) => typeof r[k] === "number" && r[k] > 0)) {
      c.fail(path, `sets no limit: give at least one of ${LIMIT_KEYS.join(", ")} above 0`, r["name"]);
    }
    out.push({ ...r });
  });
  return out;
}

/** The cluster the plugin calls, and where it points when known. */
function serviceTarget(
  c: Checker,
  s: Obj,
  deploy: boolean,
  namespace: string,
  gatewayType: "higress" | "envoy",
): Pick<QuotaService, "cluster" | "address"> | undefined {
  const address = s["address"];
  const cluster = s["cluster"];
  if (deploy) {
    for (const [key, v] of [
      ["address", address],
      ["cluster", cluster],
    ] as const) {
      if (v !== undefined && v !== null)
        c.fail(`quotas.service.${key}`, "only with deploy: false (deploy: true renders the service and names its cluster)", v);
    }
    const host = `${RATELIMIT_NAME}.${namespace}.svc.cluster.local`;
    return { cluster: istioClusterName(host, RATELIMIT_GRPC_PORT), address: { host, port: RATELIMIT_GRPC_PORT } };
  }
  if (address !== undefined && address !== null && cluster !== undefined && cluster !== null) {
    c.fail("quotas.service.cluster", "give address or cluster, not both (the cluster is named after the address)", cluster);
    return undefined;
  }
  if (address !== undefined && address !== null) {
    const hp = typeof address === "string" ? parseHostPort(address) : undefined;
    if (hp === undefined) {
      c.fail(
        "quotas.service.address",
        "must be host:port of the service's gRPC port, e.g. ratelimit.infra.svc.cluster.local:8081",
        address,
      );
      return undefined;
    }
    return { cluster: istioClusterName(hp.host, hp.port), address: hp };
  }
  if (typeof cluster === "string" && cluster !== "") {
    if (gatewayType === "envoy") {
      c.fail(
        "quotas.service.cluster",
        "only for gateway.type higress (the CLI renders Envoy's clusters: give address, host:port, instead)",
        cluster,
      );
      return undefined;
    }
    return { cluster };
  }
  if (cluster === undefined || cluster === null) {
    c.fail(
      "quotas.service",
      "with deploy: false, give address (host:port of an existing envoyproxy/ratelimit's gRPC port) or, for Higress, cluster",
      s,
    );
  }
  return undefined; // a bad cluster value was reported by checkScalars
}

function parseService(c: Checker, q: Obj, namespace: string, gatewayType: "higress" | "envoy"): QuotaService | undefined {
  const s = c.object(q, "service", "quotas.service", false);
  if (!s) return undefined;
  c.keys(s, "quotas.service", [...keysOf("quotas.service"), ...SERVICE_DEPLOY_KEYS]);
  checkScalars(c, s, "quotas.service", "quotas.service");
  const deploy = c.boolean(s, "deploy", "quotas.service.deploy", true);
  const redis = s["redisUrl"];
  let redisUrl: string | undefined;
  if (redis !== undefined && redis !== null) {
    if (!deploy) c.fail("quotas.service.redisUrl", "only with deploy: true (the Redis of the ratelimit service the CLI deploys)", redis);
    else if (typeof redis !== "string" || parseHostPort(redis) === undefined) {
      c.fail("quotas.service.redisUrl", "must be host:port of an existing Redis, e.g. redis.infra.svc.cluster.local:6379", redis);
    } else redisUrl = redis;
  }
  const target = serviceTarget(c, s, deploy, namespace, gatewayType);
  if (target === undefined) return undefined;
  const domain = typeof s["domain"] === "string" ? s["domain"] : String(defaultOf("quotas.service.domain") ?? "llm-gateway");
  return { ...target, deploy, domain, ...(redisUrl !== undefined ? { redisUrl } : {}) };
}

/** The plugin's quotas.service: its own fields as given, the cluster filled in. */
function pluginService(raw: Obj, service: QuotaService): Record<string, unknown> {
  const out: Record<string, unknown> = { cluster: service.cluster };
  for (const k of keysOf("quotas.service")) if (k !== "cluster" && raw[k] !== undefined) out[k] = raw[k];
  return out;
}

/** The plugin's quotas in the file's key order: mode first, service (filled in) before the rules when absent. */
function pluginQuotas(q: Obj, rules: Record<string, unknown>[], service: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(q)) {
    if (k === "rules") {
      if (service !== undefined && !("service" in out)) out["service"] = service;
      out["rules"] = rules;
    } else if (k === "service") {
      if (service !== undefined) out["service"] = service;
    } else out[k] = v;
  }
  return out;
}

/**
 * The file's `quotas`, or undefined when it has none. modelNames: the file's models (a rule's models must match
 * one); namespace: where a deployed service goes (and so its cluster's name).
 */
export function parseQuotas(
  c: Checker,
  raw: Obj,
  modelNames: ReadonlySet<string>,
  namespace: string,
  gatewayType: "higress" | "envoy",
): QuotaSpec | undefined {
  if (raw["quotas"] === undefined || raw["quotas"] === null) return undefined;
  const q = c.object(raw, "quotas", "quotas", false);
  if (!q) return undefined;
  c.keys(q, "quotas", keysOf("quotas"));
  checkScalars(c, q, "quotas", "quotas");
  const rules = parseRules(c, q, modelNames);
  const given = q["mode"] ?? defaultOf("quotas.mode");
  if (given !== "local" && given !== "cluster") return undefined; // reported by checkScalars; which checks apply is unknown
  const mode: QuotaMode = given;

  if (mode === "local") {
    if (q["service"] !== undefined && q["service"] !== null) {
      c.fail("quotas.service", "only for mode cluster (mode local keeps the counters in the gateway)", q["service"]);
    }
    return { mode, config: pluginQuotas(q, rules, undefined) };
  }
  for (const k of LOCAL_ONLY_KEYS) {
    if (q[k] !== undefined && q[k] !== null) c.fail(`quotas.${k}`, "only for mode local", q[k]);
  }
  const service = parseService(c, q, namespace, gatewayType);
  if (service === undefined) return { mode, config: pluginQuotas(q, rules, undefined) };
  return { mode, config: pluginQuotas(q, rules, pluginService(c.isObject(q["service"]) ? q["service"] : {}, service)), service };
}
