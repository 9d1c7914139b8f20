// The field checker behind spec.ts: each check records `<path>: <what is wrong>, got <value>` and returns the
// value or a default, so validation carries on and reports every problem at once.

export type Obj = Record<string, unknown>;

/** Formats an offending value for a message: JSON, shortened. */
export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export class Checker {
  readonly errors: string[] = [];

  fail(path: string, message: string, value: unknown): void {
    this.errors.push(`${path}: ${message}, got ${show(value)}`);
  }

  isObject(v: unknown): v is Obj {
    return typeof v === "object" && v !== null && !Array.isArray(v);
  }

  object(parent: Obj, key: string, path: string, required: boolean): Obj | undefined {
    const v = parent[key];
    if (v === undefined || v === null) {
      if (required) this.fail(path, "is required (a mapping)", v);
      return required ? undefined : {};
    }
    if (!this.isObject(v)) {
      this.fail(path, "must be a mapping", v);
      return undefined;
    }
    return v;
  }

  /** Unknown keys are refused: a typo must not silently drop a setting. */
  keys(o: Obj, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        const where = path === "" ? k : `${path}.${k}`;
        this.errors.push(`${where}: unknown field (allowed: ${allowed.join(", ")})`);
      }
    }
  }

  string(
    o: Obj,
    key: string,
    path: string,
    opts: { required?: boolean; pattern?: RegExp; what?: string; max?: number },
  ): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) {
      if (opts.required) this.fail(path, `is required (${opts.what ?? "a string"})`, v);
      return undefined;
    }
    if (typeof v !== "string" || v === "") {
      this.fail(path, `must be ${opts.what ?? "a non-empty string"}`, v);
      return undefined;
    }
    if (opts.max !== undefined && v.length > opts.max) {
      this.fail(path, `must be at most ${opts.max} characters`, v);
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      this.fail(path, `must be ${opts.what ?? `a string matching ${opts.pattern.source}`}`, v);
      return undefined;
    }
    return v;
  }

  integer(o: Obj, key: string, path: string, min: number, fallback: number): number {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
      this.fail(path, min === 1 ? "must be a positive integer" : `must be an integer >= ${min}`, v);
      return fallback;
    }
    return v;
  }

  boolean(o: Obj, key: string, path: string, fallback: boolean): boolean {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") {
      this.fail(path, "must be true or false", v);
      return fallback;
    }
    return v;
  }

  oneOf<T extends string>(o: Obj, key: string, path: string, allowed: readonly T[]): T | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
      this.fail(path, `must be one of ${allowed.join(", ")}`, v);
      return undefined;
    }
    return v as T;
  }

  stringList(o: Obj, key: string, path: string, item?: { pattern: RegExp; what: string }): string[] | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) {
      this.fail(path, "must be a list of strings", v);
      return undefined;
    }
    const out: string[] = [];
    v.forEach((x: unknown, i: number) => {
      if (typeof x !== "string" || x === "") this.fail(`${path}[${i}]`, "must be a non-empty string", x);
      else if (item && !item.pattern.test(x)) this.fail(`${path}[${i}]`, `must be ${item.what}`, x);
      else out.push(x);
    });
    return out;
  }
}
