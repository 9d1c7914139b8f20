// Request bodies of an exact size: an OpenAI chat request whose user prompt is prose with newlines,
// quotes and multi-byte UTF-8 (what the JSON reader validates), padded to the byte.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export const BENCH_MODEL = "qwen2-1-5b";

// One paragraph; JSON escaping turns the newline and quotes into two bytes each, "—", "é", "ï" and
// "日本" are multi-byte UTF-8.
const PARAGRAPH =
  'Summarise the quarterly report for the "Nordic" region — revenue, café chains, naïve forecasts ' +
  "and the 日本 launch; list three risks and one recommendation per risk.\n";

export interface ChatBodyOptions {
  stream?: boolean;
  maxTokens?: number;
  model?: string;
}

export function chatBody(totalBytes: number, opts: ChatBodyOptions = {}): string {
  const make = (content: string): string =>
    JSON.stringify({
      model: opts.model ?? BENCH_MODEL,
      messages: [
        { role: "system", content: "You are a concise analyst." },
        { role: "user", content },
      ],
      ...(opts.maxTokens !== undefined ? { max_tokens: opts.maxTokens } : {}),
      ...(opts.stream === true ? { stream: true } : {}),
    });
  const base = Buffer.byteLength(make(""));
  const unit = Buffer.byteLength(JSON.stringify(PARAGRAPH)) - 2;
  const need = totalBytes - base;
  if (need <= 0) return make("");
  const text = PARAGRAPH.repeat(Math.floor(need / unit)) + "x".repeat(need % unit);
  const body = make(text);
  if (Buffer.byteLength(body) !== totalBytes) throw new Error(`chatBody: built ${Buffer.byteLength(body)} bytes, wanted ${totalBytes}`);
  return body;
}

export function writeBody(dir: string, name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  return file;
}
