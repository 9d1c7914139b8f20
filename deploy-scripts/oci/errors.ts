// User-facing push errors: one line each, a stable kind for tests and exit codes, no secrets.

export type PushErrorKind =
  /** Could not open a connection or the connection broke (DNS, refused, reset, timeout, TLS). */
  | "unreachable"
  /** The registry answered 4xx (other than a credentials problem). */
  | "refused"
  /** The registry answered 5xx. */
  | "server-error"
  /** Not a registry answer: wrong status for the step, non-JSON where JSON is due, bad headers. */
  | "garbage"
  /** The registry wants credentials and none were found. */
  | "auth-required"
  /** Credentials were sent and the registry (or its token service) rejected them. */
  | "auth-rejected";

export class PushError extends Error {
  readonly kind: PushErrorKind;

  constructor(kind: PushErrorKind, message: string) {
    super(message);
    this.name = "PushError";
    this.kind = kind;
  }
}

const SNIPPET_MAX = 80;

/** A short printable excerpt of a response body, for "what did it send" in error lines. */
export function snippet(body: string): string {
  const flat = body.replace(/\s+/g, " ").trim();
  // Printable ASCII only, so a binary or HTML answer can't mangle the terminal.
  const clean = flat.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > SNIPPET_MAX ? clean.slice(0, SNIPPET_MAX) + "..." : clean;
}

/**
 * Summarises the distribution error body {"errors":[{code,message,detail}]}; undefined when the body
 * is not that shape.
 */
export function summariseRegistryErrors(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || !("errors" in parsed)) {
    return undefined;
  }
  const errors = (parsed as { errors: unknown }).errors;
  if (!Array.isArray(errors) || errors.length === 0) {
    return undefined;
  }
  const parts: string[] = [];
  for (const e of errors.slice(0, 3)) {
    if (typeof e !== "object" || e === null) continue;
    const rec = e as Record<string, unknown>;
    const code = typeof rec["code"] === "string" ? rec["code"] : "";
    const message = typeof rec["message"] === "string" ? rec["message"] : "";
    const text = [code, message].filter((s) => s !== "").join(": ");
    if (text !== "") parts.push(snippet(text));
  }
  if (errors.length > 3) parts.push(`(+${errors.length - 3} more)`);
  return parts.length > 0 ? parts.join("; ") : undefined;
}
