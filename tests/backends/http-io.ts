// Small HTTP helpers for the vLLM stub: body reading, JSON replies, abortable waits and writes.

import { once } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

export async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts).toString("utf8");
}

export function parseJsonOrRaw(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

export function sendJson(res: ServerResponse, model: string, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    "x-stub-model": model,
  });
  res.end(payload);
}

/** Waits unless the client is gone; false means stop working on this request. */
export async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (ms > 0) {
    try {
      await sleep(ms, undefined, { signal });
    } catch {
      return false;
    }
  }
  return !signal.aborted;
}

/** Writes one event, waiting out backpressure; `flushed` settles once it reached the socket. */
export async function write(res: ServerResponse, data: string, signal: AbortSignal): Promise<{ ok: boolean; flushed: Promise<unknown> }> {
  let accepted = true;
  const flushed = new Promise((resolve) => {
    accepted = res.write(data, resolve);
  });
  if (!accepted) {
    try {
      await once(res, "drain", { signal });
    } catch {
      return { ok: false, flushed };
    }
  }
  return { ok: !signal.aborted, flushed };
}
