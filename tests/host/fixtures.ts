// Requests and responses the in-process tests send through the plugin: Envoy's view of a client's
// request (pseudo-headers, content-length) and vLLM-shaped answers (tests/backends/vllm-wire.ts).
import { chatCompletionBody, chatRoleChunk, sseEvent, tokenChunk, usageChunk, usageOf, type ResponseMeta } from "../backends/vllm-wire.ts";
import type { Pairs, StreamOptions } from "./proxy-wasm-host.ts";

export const QWEN = "qwen2-1-5b";
export const GEMMA = "gemma-2-2b";

// The seed's two models, qwen2-1-5b falling back to gemma-2-2b.
export function twoModels(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { models: [{ name: QWEN, fallback: [GEMMA] }, { name: GEMMA }], ...extra };
}

// Higress's names for the route and cluster Envoy picked for `model` (the harness uses the same).
export function routeProperties(model: string): StreamOptions["properties"] {
  return { route_name: `ai-route-${model}.internal`, cluster_name: clusterOf(model) };
}

export function clusterOf(model: string): string {
  return `outbound|8080||llm-${model}.dns`;
}

// A POST as Envoy hands it to the filter: pseudo-headers first, the body's content-length.
export function postHeaders(body: string | Buffer, path = "/v1/chat/completions", extra: Pairs = []): Pairs {
  return [
    [":method", "POST"],
    [":path", path],
    [":authority", "gateway.local:10000"],
    [":scheme", "http"],
    ["content-type", "application/json"],
    ["content-length", String(Buffer.byteLength(body))],
    ["x-request-id", "0c6f1a2e-0000-4000-8000-000000000001"],
    ...extra,
  ];
}

export function getHeaders(path: string): Pairs {
  return [
    [":method", "GET"],
    [":path", path],
    [":authority", "gateway.local:10000"],
    [":scheme", "http"],
  ];
}

export const MESSAGES = [{ role: "user", content: "count the tokens of this prompt please" }];

export function chat(model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: MESSAGES, ...extra });
}

export const JSON_HEADERS: Pairs = [
  [":status", "200"],
  ["content-type", "application/json"],
];
export const SSE_HEADERS: Pairs = [
  [":status", "200"],
  ["content-type", "text/event-stream; charset=utf-8"],
];

export function jsonAnswer(model: string, promptTokens: number, completionTokens: number): string {
  const meta: ResponseMeta = { id: "chatcmpl-host", created: 1700000000, model };
  return JSON.stringify(chatCompletionBody(meta, "alpha bravo charlie", "stop", usageOf(promptTokens, completionTokens)));
}

// A vLLM chat stream, one string per SSE event: the role chunk, one chunk per token, the usage-only
// chunk (when `usage`), then [DONE] (when `done`).
export function sseEvents(
  model: string,
  tokens: string[],
  opts: { usage?: { prompt: number } | null; done?: boolean } = {},
): { events: string[]; usageIndex: number } {
  const meta: ResponseMeta = { id: "chatcmpl-host", created: 1700000000, model };
  const events = [sseEvent(chatRoleChunk(meta, null))];
  tokens.forEach((t, i) => events.push(sseEvent(tokenChunk("chat", meta, t, i === tokens.length - 1 ? "length" : null, null))));
  let usageIndex = -1;
  if (opts.usage !== null) {
    usageIndex = events.length;
    events.push(sseEvent(usageChunk("chat", meta, usageOf(opts.usage?.prompt ?? 9, tokens.length))));
  }
  if (opts.done !== false) events.push(sseEvent("[DONE]"));
  return { events, usageIndex };
}

// An OpenAI-shaped error body, as the plugin writes it (key order: message, type, param, code).
export function openAiError(
  message: string,
  type: string,
  param: string | null,
  code: string,
  extra: Record<string, unknown> = {},
): unknown {
  return { error: { message, type, param, code, ...extra } };
}
