// The deploy CLI's output streams, captured: what a command printed to stdout and stderr.
import type { Io } from "../../deploy-scripts/io.ts";

export function capture(env: NodeJS.ProcessEnv = {}): { io: Io; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  return {
    io: { out: { write: (t: string) => (out += t) }, err: { write: (t: string) => (err += t) }, env },
    out: () => out,
    err: () => err,
  };
}
