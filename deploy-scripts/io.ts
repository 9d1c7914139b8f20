// Where the CLI writes. Commands take an Io instead of touching process.stdout, so tests can capture output and
// the secret can be redacted from everything in one place.
export interface Writer {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface Io {
  out: Writer;
  err: Writer;
  env: NodeJS.ProcessEnv;
}

export function redacting(w: Writer, redact: (text: string) => string): Writer {
  const wrapped: Writer = { write: (text: string) => w.write(redact(text)) };
  if (w.isTTY !== undefined) wrapped.isTTY = w.isTTY;
  return wrapped;
}

export function line(w: Writer, text: string): void {
  w.write(`${text}\n`);
}
