// Waiting for llmaz: a Playground is ready at Available=True and hopeless at Progressing=False with reason
// AbortProcessing (its message says why). Polls rather than watches: a handful of objects, and no re-watch loop.
import { CliError, EXIT } from "../errors.ts";
import type { Io } from "../io.ts";
import { readOrNull, type Cluster } from "./kube.ts";
import { KINDS } from "../names.ts";
import { ProgressDisplay, formatDuration, type ModelState } from "./progress.ts";
import type { DeploySpec } from "../spec.ts";

export interface WaitOptions {
  timeoutMs: number;
  intervalMs: number;
  /** Injected for tests; default Date.now. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

export interface PlaygroundLike {
  status?: { conditions?: Condition[] };
}

const MODEL_MISSING = /waiting for model creation/i;

export type WaitResult = { ok: true; states: ModelState[] } | { ok: false; states: ModelState[]; message: string };

export function conditionsOf(pg: PlaygroundLike | null): Condition[] {
  const c = pg?.status?.conditions;
  return Array.isArray(c) ? c : [];
}

/** Pure: what a Playground's conditions say about its model. */
export function playgroundState(model: string, pg: PlaygroundLike | null): ModelState {
  if (pg === null) return { model, phase: "failed", detail: "Playground not found (deleted while waiting?)" };
  const conditions = conditionsOf(pg);
  const find = (type: string): Condition | undefined => conditions.find((c) => c.type === type);
  const available = find("Available");
  const progressing = find("Progressing");
  // An abort outranks a stale Available=True: the spec just applied will not be rolled out. Except "Waiting for
  // model creation": llmaz reports it with AbortProcessing too, yet rechecks, and apply creates the model first.
  if (progressing?.status === "False" && progressing.reason === "AbortProcessing") {
    const message = progressing.message ?? "";
    if (!MODEL_MISSING.test(message)) return { model, phase: "failed", detail: message || "AbortProcessing" };
  }
  if (available?.status === "True") return { model, phase: "ready", detail: `Available (${available.reason ?? "ready"})` };
  const latest = progressing ?? available ?? conditions[conditions.length - 1];
  if (latest === undefined) return { model, phase: "waiting", detail: "waiting for llmaz to pick it up" };
  const why = [latest.reason, latest.message].filter((x) => x !== undefined && x !== "").join(": ");
  return { model, phase: "waiting", detail: `${latest.type ?? "?"}=${latest.status ?? "?"}${why ? ` (${why})` : ""}` };
}

export async function waitForModels(cluster: Cluster, spec: DeploySpec, io: Io, opts: WaitOptions): Promise<WaitResult> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const display = new ProgressDisplay(
    io.out,
    spec.models.map((m) => m.name),
  );
  const start = now();
  io.out.write(`waiting for ${spec.models.length} model(s) to become Available (timeout ${formatDuration(opts.timeoutMs)}):\n`);
  for (;;) {
    const states: ModelState[] = [];
    for (const m of spec.models) {
      const ref = {
        apiVersion: KINDS.Playground.apiVersion,
        kind: KINDS.Playground.kind,
        metadata: { name: m.name, namespace: spec.namespace },
      };
      states.push(playgroundState(m.name, await readOrNull<PlaygroundLike & typeof ref>(cluster, ref)));
    }
    const elapsed = now() - start;
    display.update(states, elapsed);
    const failed = states.filter((s) => s.phase === "failed");
    if (failed.length > 0) {
      const lines = failed.map((s) => `${s.model} failed: ${s.detail} (Playground ${spec.namespace}/${s.model})`);
      return { ok: false, states, message: lines.join("\n") };
    }
    if (states.every((s) => s.phase === "ready")) return { ok: true, states };
    if (elapsed >= opts.timeoutMs) {
      const pending = states.filter((s) => s.phase !== "ready").map((s) => `${s.model} (${s.detail})`);
      return { ok: false, states, message: `timed out after ${formatDuration(elapsed)} waiting for ${pending.join(", ")}` };
    }
    await sleep(Math.min(opts.intervalMs, Math.max(0, opts.timeoutMs - elapsed)));
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `90s`, `15m`, `1h30m`, or a plain number of seconds. */
export function parseDuration(text: string, flag: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const token = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
  let total = 0;
  let m: RegExpExecArray | null;
  while (token.lastIndex < t.length && (m = token.exec(t)) !== null) total += Number(m[1]) * (UNIT_MS[m[2] ?? "s"] ?? 1000);
  if (t === "" || token.lastIndex !== t.length) {
    throw new CliError(`${flag}: must be a duration such as 500ms, 90s, 15m or 1h, got "${text}"`, EXIT.usage);
  }
  return total;
}
