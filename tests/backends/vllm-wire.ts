// vLLM's OpenAI-compatible wire format as pure functions (field names, order and nulls).
// Checked against vLLM main (vllm-project/vllm), read only for the facts:
//   vllm/entrypoints/openai/chat_completion/protocol.py   response, choice, chunk models
//   vllm/entrypoints/openai/chat_completion/serving.py    which chunk fields are set
//   vllm/entrypoints/openai/completion/{protocol,serving}.py
//   vllm/entrypoints/serve/engine/protocol.py             UsageInfo, ErrorResponse, ModelCard
//   vllm/frontend/entrypoints/openai/*/api_router.py      model_dump() for non-streaming
// Non-streaming bodies are model_dump(): every field, None as null. Stream chunks are
// model_dump_json(exclude_unset=True): only fields the server set, so the set differs per chunk.
// The trailing usage chunk also drops nulls (exclude_none), so it has no *_details fields.
// Unlike OpenAI, token chunks carry no `usage` key (not even null) when include_usage is on;
// only continuous_usage_stats puts usage on them.
//
// Reasoning (chat only; see Reasoning below), read from vLLM main
// (vllm/frontend/entrypoints/openai/chat_completion/{serving,protocol}.py,
// vllm/frontend/entrypoints/generate/base/protocol.py DeltaMessage):
// - a server started with --reasoning-parser puts reasoning text in `reasoning` (ChatMessage and
//   DeltaMessage), the answer in `content`; a reasoning delta is {"reasoning": "..."} (exclude_unset).
//   vLLM called the field `reasoning_content` until PR #27752 (Nov 2025: `reasoning` added, both kept)
//   and PR #33402 (Jan 2026: `reasoning_content` removed); DeepSeek's API, llama.cpp and SGLang still
//   use `reasoning_content`.
// - with a reasoning parser, every usage vLLM main sends carries
//   completion_tokens_details = {"reasoning_tokens": N} (non-streamed, the trailing usage chunk, and
//   continuous usage with the running count; 0 on the role chunk); without one it stays null/absent.
//   vLLM added this in PR #45802 (2026); releases before it (e.g. 0.25.x, issue #50895) send null
//   there even with a reasoning parser. OpenAI's API sends the same key (with more counters in it).
// - the completions endpoint runs no reasoning parser.

import type { Endpoint } from "./tokens.ts";

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  /**
   * Only from a server started with --enable-prompt-tokens-details, and only when some prompt tokens
   * came from the prefix cache (vLLM's serving code sets it when num_cached_tokens is non-zero).
   */
  prompt_tokens_details?: { cached_tokens: number };
  /** Only from a server with a reasoning parser that reports reasoning tokens. */
  completion_tokens_details?: { reasoning_tokens: number };
}

export type ReasoningField = "reasoning" | "reasoning_content";

/**
 * A chat answer from a server with a reasoning parser: the first `tokens` generated tokens are
 * reasoning, sent in `field`; `usage` false leaves reasoning_tokens out of usage (older vLLM).
 */
export interface Reasoning {
  tokens: number;
  field: ReasoningField;
  usage: boolean;
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: number };
}

type Json = Record<string, unknown>;

export const ID_PREFIX: Readonly<Record<Endpoint, string>> = { chat: "chatcmpl-", completions: "cmpl-" };

export function usageOf(promptTokens: number, completionTokens: number, reasoningTokens?: number, cachedTokens?: number): Usage {
  const usage: Usage = {
    prompt_tokens: promptTokens,
    total_tokens: promptTokens + completionTokens,
    completion_tokens: completionTokens,
  };
  if (cachedTokens !== undefined && cachedTokens > 0) usage.prompt_tokens_details = { cached_tokens: cachedTokens };
  if (reasoningTokens !== undefined) usage.completion_tokens_details = { reasoning_tokens: reasoningTokens };
  return usage;
}

/** Reasoning tokens among the first `generated` tokens, as usage reports them; undefined when it doesn't. */
export function reasoningTokensOf(reasoning: Reasoning | null, generated: number): number | undefined {
  return reasoning !== null && reasoning.usage ? Math.min(reasoning.tokens, generated) : undefined;
}

export function errorBody(message: string, type: string, code: number, param: string | null): ErrorBody {
  return { error: { message, type, param, code } };
}

// Non-streaming UsageInfo carries its optional details as nulls.
function fullUsage(usage: Usage): Json {
  return {
    prompt_tokens: usage.prompt_tokens,
    total_tokens: usage.total_tokens,
    completion_tokens: usage.completion_tokens,
    prompt_tokens_details: usage.prompt_tokens_details ?? null,
    completion_tokens_details: usage.completion_tokens_details ?? null,
  };
}

/**
 * POST /v1/chat/completions, stream=false. `usage` null means the no-usage fault: the key is left out.
 * With `reasoning`, its text goes in that field (null when there is none) and `text` is the answer
 * (null when every token was reasoning, as vLLM's parsers return no content then).
 */
export function chatCompletionBody(
  meta: ResponseMeta,
  text: string | null,
  finishReason: string,
  usage: Usage | null,
  reasoning: { field: ReasoningField; text: string | null } | null = null,
): Json {
  const body: Json = {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        // tool_calls is dropped by ChatMessage's serializer when empty.
        message: {
          role: "assistant",
          content: text,
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          [reasoning?.field ?? "reasoning"]: reasoning?.text ?? null,
        },
        logprobs: null,
        finish_reason: finishReason,
        stop_reason: null,
        token_ids: null,
        routed_experts: null,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    ...(usage === null ? {} : { usage: fullUsage(usage) }),
    prompt_logprobs: null,
    prompt_token_ids: null,
    prompt_text: null,
    kv_transfer_params: null,
    ec_transfer_params: null,
    metrics: null,
  };
  return body;
}

/** POST /v1/completions, stream=false. */
export function completionBody(meta: ResponseMeta, text: string, finishReason: string, usage: Usage | null): Json {
  const body: Json = {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        text,
        logprobs: null,
        finish_reason: finishReason,
        stop_reason: null,
        token_ids: null,
        prompt_logprobs: null,
        prompt_token_ids: null,
        routed_experts: null,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    ...(usage === null ? {} : { usage: fullUsage(usage) }),
    kv_transfer_params: null,
    ec_transfer_params: null,
    metrics: null,
  };
  return body;
}

// Chat sets completion_tokens_details (to None) on continuous-usage chunks; completions does not.
function runningUsage(endpoint: Endpoint, usage: Usage): Json {
  return endpoint === "chat" ? { ...usage, completion_tokens_details: usage.completion_tokens_details ?? null } : { ...usage };
}

function chunkHead(endpoint: Endpoint, meta: ResponseMeta): Json {
  return {
    id: meta.id,
    object: endpoint === "chat" ? "chat.completion.chunk" : "text_completion",
    created: meta.created,
    model: meta.model,
  };
}

/** First chat chunk: the role, sent with the first engine output. */
export function chatRoleChunk(meta: ResponseMeta, usage: Usage | null): Json {
  const chunk: Json = {
    ...chunkHead("chat", meta),
    choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
  };
  if (usage !== null) chunk["usage"] = runningUsage("chat", usage);
  chunk["prompt_token_ids"] = null;
  chunk["prompt_text"] = null;
  return chunk;
}

/**
 * One token. The last one carries finish_reason (and stop_reason), as vLLM's final output does.
 * A chat reasoning token puts its text in `field` (a reasoning field) instead of `content`.
 */
export function tokenChunk(
  endpoint: Endpoint,
  meta: ResponseMeta,
  text: string,
  finishReason: string | null,
  usage: Usage | null,
  field: "content" | ReasoningField = "content",
): Json {
  let choice: Json;
  if (endpoint === "chat") {
    choice = { index: 0, delta: { [field]: text }, logprobs: null, finish_reason: finishReason };
    if (finishReason !== null) choice["stop_reason"] = null;
    choice["token_ids"] = null;
  } else {
    choice = {
      index: 0,
      text,
      logprobs: null,
      finish_reason: finishReason,
      stop_reason: null,
      prompt_token_ids: null,
      token_ids: null,
    };
  }
  const chunk: Json = { ...chunkHead(endpoint, meta), choices: [choice] };
  if (usage !== null) chunk["usage"] = runningUsage(endpoint, usage);
  return chunk;
}

/** The usage-only chunk sent after the last token when include_usage is on. */
export function usageChunk(endpoint: Endpoint, meta: ResponseMeta, usage: Usage): Json {
  return { ...chunkHead(endpoint, meta), choices: [], usage: { ...usage } };
}

export function sseEvent(data: Json | "[DONE]"): string {
  return `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}

export interface StreamPlan {
  endpoint: Endpoint;
  meta: ResponseMeta;
  tokens: readonly string[];
  finishReason: string;
  promptTokens: number;
  includeUsage: boolean;
  continuousUsage: boolean;
  sendDone: boolean;
  ttftMs: number;
  tokenIntervalMs: number;
  /** Chat only; null or absent: no reasoning parser. */
  reasoning?: Reasoning | null;
  /** Prompt tokens from the prefix cache, reported in the final usage chunk only (as vLLM does). */
  cachedTokens?: number;
}

export interface PlannedEvent {
  /** Wait before writing this event. */
  waitMs: number;
  data: string;
}

/**
 * The SSE events of one streamed response, in order, with the wait before each.
 * The chat role chunk goes out with the first token (both come from vLLM's first engine
 * output), so the TTFT wait sits before the role chunk.
 */
export function planStream(plan: StreamPlan): PlannedEvent[] {
  const { endpoint, meta, tokens } = plan;
  const reasoning = endpoint === "chat" ? (plan.reasoning ?? null) : null;
  const events: PlannedEvent[] = [];
  const usageAt = (completion: number): Usage => usageOf(plan.promptTokens, completion, reasoningTokensOf(reasoning, completion));
  const running = (completion: number): Usage | null => (plan.continuousUsage ? usageAt(completion) : null);
  if (endpoint === "chat") {
    events.push({ waitMs: plan.ttftMs, data: sseEvent(chatRoleChunk(meta, running(0))) });
  }
  tokens.forEach((text, i) => {
    const last = i === tokens.length - 1;
    const waitMs = i === 0 ? (endpoint === "chat" ? 0 : plan.ttftMs) : plan.tokenIntervalMs;
    const field = reasoning !== null && i < reasoning.tokens ? reasoning.field : "content";
    const chunk = tokenChunk(endpoint, meta, text, last ? plan.finishReason : null, running(i + 1), field);
    events.push({ waitMs, data: sseEvent(chunk) });
  });
  if (plan.includeUsage) {
    const final = usageOf(plan.promptTokens, tokens.length, reasoningTokensOf(reasoning, tokens.length), plan.cachedTokens);
    events.push({ waitMs: 0, data: sseEvent(usageChunk(endpoint, meta, final)) });
  }
  if (plan.sendDone) events.push({ waitMs: 0, data: sseEvent("[DONE]") });
  return events;
}

/** GET /v1/models for one served model. */
export function modelList(model: string, root: string, maxModelLen: number, created: number, permissionId: string): Json {
  return {
    object: "list",
    data: [
      {
        id: model,
        object: "model",
        created,
        owned_by: "vllm",
        root,
        parent: null,
        max_model_len: maxModelLen,
        permission: [
          {
            id: permissionId,
            object: "model_permission",
            created,
            allow_create_engine: false,
            allow_sampling: true,
            allow_logprobs: true,
            allow_search_indices: false,
            allow_view: true,
            allow_fine_tuning: false,
            organization: "*",
            group: null,
            is_blocking: false,
          },
        ],
      },
    ],
  };
}
