// Reads the plugin's `ai_log` (the JSON the access log prints from the `wasm.ai_log` filter state) and
// the SSE events a client received, for tests that check the same facts in the log and the metrics.
import { existsSync, readFileSync } from "node:fs";
import type { Gateway } from "./envoy.ts";

export type AiLog = Record<string, unknown>;

// Every access-log line's ai_log, parsed; lines without one are skipped.
export function aiLogs(gateway: Gateway): AiLog[] {
  if (!existsSync(gateway.accessLogPath)) return [];
  const out: AiLog[] = [];
  for (const line of readFileSync(gateway.accessLogPath, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    const raw = (JSON.parse(line) as { ai_log?: string | null }).ai_log;
    if (typeof raw === "string" && raw !== "") out.push(JSON.parse(raw) as AiLog);
  }
  return out;
}

// The newest ai_log matching `which`, once more than `seen` such entries exist (Envoy writes the log file
// every 200 ms in the harness); fails after 5 s.
export async function nextAiLog(gateway: Gateway, which: (l: AiLog) => boolean, seen = 0): Promise<AiLog> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = aiLogs(gateway).filter(which);
    if (found.length > seen) return found[found.length - 1] as AiLog;
    if (Date.now() > deadline) throw new Error(`no ai_log entry beyond the first ${seen} matching ones`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// `data:` payloads of an SSE body, in order.
export function sseData(body: string): string[] {
  return body
    .split("\n\n")
    .map((e) => e.trim())
    .filter((e) => e.startsWith("data:"))
    .map((e) => e.slice(5).trim());
}

// How many of those events carry answer content (a non-empty delta.content or completions text).
export function contentEvents(data: readonly string[]): number {
  let n = 0;
  for (const d of data) {
    if (d === "[DONE]") continue;
    let chunk: { choices?: { delta?: { content?: unknown }; text?: unknown }[] };
    try {
      chunk = JSON.parse(d) as typeof chunk;
    } catch {
      continue;
    }
    const c = chunk.choices?.[0];
    const text = c?.delta?.content ?? c?.text;
    if (typeof text === "string" && text !== "") n++;
  }
  return n;
}
