// Live progress, one line per model: rewritten in place on a terminal, printed on change otherwise (CI logs).
import type { Writer } from "../io.ts";

export type Phase = "waiting" | "ready" | "failed";

export interface ModelState {
  model: string;
  phase: Phase;
  detail: string;
}

const CLEAR_LINE = "\x1b[2K";
const cursorUp = (n: number): string => `\x1b[${n}A`;

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

export class ProgressDisplay {
  private readonly stream: Writer;
  private readonly width: number;
  private drawn = 0;
  private readonly last = new Map<string, string>();

  constructor(stream: Writer, models: string[]) {
    this.stream = stream;
    this.width = Math.max(...models.map((m) => m.length), 5);
  }

  private text(s: ModelState): string {
    return `${s.model.padEnd(this.width)}  ${s.phase.padEnd(7)}  ${s.detail}`;
  }

  update(states: ModelState[], elapsedMs: number): void {
    if (this.stream.isTTY === true) {
      let out = this.drawn > 0 ? cursorUp(this.drawn) : "";
      for (const s of states) out += `${CLEAR_LINE}${this.text(s)}${s.phase === "waiting" ? ` (${formatDuration(elapsedMs)})` : ""}\n`;
      this.drawn = states.length;
      this.stream.write(out);
      return;
    }
    for (const s of states) {
      const t = this.text(s);
      if (this.last.get(s.model) === t) continue;
      this.last.set(s.model, t);
      this.stream.write(`[${formatDuration(elapsedMs).padStart(6)}] ${t}\n`);
    }
  }
}
