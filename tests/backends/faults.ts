// Fault settings for the vLLM stub, read from `x-stub-*` request headers or from the
// JSON body of `POST /stub/faults` (same names, with or without the `x-stub-` prefix).
// Unknown names and bad values are rejected so a typo cannot silently test nothing.

export interface Faults {
  status?: number;
  delayMs?: number;
  ttftMs?: number;
  tokenIntervalMs?: number;
  completionTokens?: number;
  drop?: boolean;
  cutAfter?: number;
  noUsage?: boolean;
  endWithoutDone?: boolean;
  /** Serve like vLLM with a reasoning parser: the first N generated tokens are reasoning. */
  reasoningTokens?: number;
  /** false: usage without completion_tokens_details, as vLLM before it reported reasoning tokens. */
  reasoningUsage?: boolean;
  /** The field reasoning text goes in: vLLM's "reasoning", or the older/DeepSeek "reasoning_content". */
  reasoningField?: ReasoningField;
  /** Not a fault: a label the replica model records with the request's simulated TTFT (GET /stub/stats). */
  tag?: string;
}

export const REASONING_FIELDS = ["reasoning", "reasoning_content"] as const;
export type ReasoningField = (typeof REASONING_FIELDS)[number];

export const FAULT_HEADER_PREFIX = "x-stub-";

type FaultKey = keyof Faults;
type FaultKind = "status" | "count" | "positive" | "flag" | "reasoningField" | "tag";

const FAULT_NAMES: ReadonlyMap<string, { key: FaultKey; kind: FaultKind }> = new Map([
  ["status", { key: "status", kind: "status" }],
  ["delay-ms", { key: "delayMs", kind: "count" }],
  ["ttft-ms", { key: "ttftMs", kind: "count" }],
  ["token-interval-ms", { key: "tokenIntervalMs", kind: "count" }],
  ["completion-tokens", { key: "completionTokens", kind: "positive" }],
  ["drop", { key: "drop", kind: "flag" }],
  ["cut-after", { key: "cutAfter", kind: "count" }],
  ["no-usage", { key: "noUsage", kind: "flag" }],
  ["end-without-done", { key: "endWithoutDone", kind: "flag" }],
  ["reasoning-tokens", { key: "reasoningTokens", kind: "count" }],
  ["reasoning-usage", { key: "reasoningUsage", kind: "flag" }],
  ["reasoning-field", { key: "reasoningField", kind: "reasoningField" }],
  ["tag", { key: "tag", kind: "tag" }],
]);

export type FaultsResult = { ok: true; faults: Faults } | { ok: false; error: string };

function parseCount(raw: unknown): number | undefined {
  if (typeof raw === "number" && Number.isSafeInteger(raw) && raw >= 0) return raw;
  if (typeof raw === "string" && /^\d{1,9}$/.test(raw.trim())) return Number(raw.trim());
  return undefined;
}

function parseFlag(raw: unknown): boolean | undefined {
  if (raw === true || raw === 1 || raw === "1" || raw === "true") return true;
  if (raw === false || raw === 0 || raw === "0" || raw === "false") return false;
  return undefined;
}

function parseReasoningField(raw: unknown): ReasoningField | undefined {
  return REASONING_FIELDS.find((f) => f === (typeof raw === "string" ? raw.trim() : raw));
}

function parseValue(kind: FaultKind, raw: unknown): number | boolean | string | undefined {
  if (kind === "flag") return parseFlag(raw);
  if (kind === "reasoningField") return parseReasoningField(raw);
  if (kind === "tag") return typeof raw === "string" && raw.length > 0 && raw.length <= 200 ? raw : undefined;
  const n = parseCount(raw);
  if (n === undefined) return undefined;
  if (kind === "status" && (n < 400 || n > 599)) return undefined;
  if (kind === "positive" && n < 1) return undefined;
  return n;
}

function parseEntries(entries: Iterable<[string, unknown]>): FaultsResult {
  const faults: Faults = {};
  for (const [rawName, raw] of entries) {
    const name = rawName.toLowerCase().startsWith(FAULT_HEADER_PREFIX)
      ? rawName.slice(FAULT_HEADER_PREFIX.length).toLowerCase()
      : rawName.toLowerCase();
    const spec = FAULT_NAMES.get(name);
    if (spec === undefined) return { ok: false, error: `unknown fault "${rawName}"` };
    const value = parseValue(spec.kind, raw);
    if (value === undefined) {
      return { ok: false, error: `bad value for fault "${rawName}": ${JSON.stringify(raw)}` };
    }
    (faults as Record<FaultKey, number | boolean | string>)[spec.key] = value;
  }
  return { ok: true, faults };
}

/** Names a served model: the request's other x-stub-* faults then hit only that backend. */
export const FAULT_TARGET_HEADER = "x-stub-target";

/**
 * Faults from request headers; only `x-stub-*` headers are looked at. With `x-stub-target`,
 * a backend serving another model ignores them, so one client request can fail the primary
 * and let the fallback answer.
 */
export function faultsFromHeaders(headers: Record<string, string | string[] | undefined>, servedModel: string): FaultsResult {
  const entries: [string, unknown][] = [];
  let target: string | undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.toLowerCase().startsWith(FAULT_HEADER_PREFIX) || value === undefined) continue;
    const first = Array.isArray(value) ? value[0] : value;
    if (name.toLowerCase() === FAULT_TARGET_HEADER) target = first;
    else entries.push([name, first]);
  }
  const parsed = parseEntries(entries);
  if (parsed.ok && target !== undefined && target !== servedModel) return { ok: true, faults: {} };
  return parsed;
}

/** Faults from the JSON body of `POST /stub/faults`. */
export function faultsFromJson(body: unknown): FaultsResult {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, error: "fault body must be a JSON object" };
  }
  return parseEntries(Object.entries(body));
}

/** Later layers win, field by field (startup options < control endpoint < request headers). */
export function mergeFaults(...layers: Faults[]): Faults {
  return Object.assign({}, ...layers) as Faults;
}
