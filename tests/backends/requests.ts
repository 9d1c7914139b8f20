// Turns a raw generation request into what the stub needs, or into the error vLLM would answer.
// Checked against vLLM main (vllm-project/vllm):
//   vllm/frontend/entrypoints/serve/utils/api_utils.py (validate_json_request, should_include_usage)
//   vllm/frontend/entrypoints/serve/exception_handling/handlers/validation.py (400, type "Bad Request")
//   vllm/frontend/entrypoints/serve/engine/serving.py (_check_model: 404 NotFoundError, param "model")
//   vllm/entrypoints/openai/completion/protocol.py (max_tokens defaults to 16; stream_options needs stream)
// Validation messages keep vLLM's shape ("N validation error:\n  {...}") but omit pydantic's `input`.

import { randomBytes } from "node:crypto";
import { countPromptTokens, type Endpoint } from "./tokens.ts";
import { errorBody, type ErrorBody } from "./vllm-wire.ts";

/** vLLM's CompletionRequest.max_tokens default; chat has none (it fills the context). */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

export interface GenerationRequest {
  endpoint: Endpoint;
  stream: boolean;
  includeUsage: boolean;
  continuousUsage: boolean;
  /** The request's token limit, undefined when it set none. */
  maxTokens: number | undefined;
  promptTokens: number;
  /** Base of the response id: vLLM uses X-Request-Id, then the body's request_id, then a random uuid. */
  idBase: string;
  /** The parsed body (the replica model reads the prompt's tokens from it). */
  body: Record<string, unknown>;
}

export type ParseResult = { ok: true; request: GenerationRequest } | { ok: false; status: number; body: ErrorBody };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function validationError(detail: string, param: string | null): ParseResult {
  return {
    ok: false,
    status: 400,
    body: errorBody(`1 validation error:\n  ${detail}`, "Bad Request", 400, param),
  };
}

function pydanticError(type: string, loc: string, msg: string, param: string): ParseResult {
  return validationError(`{'type': '${type}', 'loc': (${loc}), 'msg': '${msg}'}`, param);
}

/** Stub limits (one prompt, one choice) answer 400 with a type no vLLM emits, so they stand out. */
function unsupported(message: string): ParseResult {
  return { ok: false, status: 400, body: errorBody(`stub: ${message}`, "StubUnsupportedError", 400, null) };
}

// Where the JSON broke, as pydantic's json_invalid loc does; "end of input" has no position in V8.
function jsonPosition(error: unknown, raw: string): number {
  const match = /position (\d+)/.exec(error instanceof Error ? error.message : "");
  return match?.[1] !== undefined ? Number(match[1]) : raw.length;
}

// pydantic accepts an int or an integral float; anything else is a validation error.
function readOptionalInt(body: Record<string, unknown>, field: string): number | undefined | ParseResult {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" && Number.isInteger(value)) return value;
  return pydanticError("int_type", `'body', '${field}'`, "Input should be a valid integer", `body.${field}`);
}

function isFailure(value: unknown): value is ParseResult {
  return isRecord(value) && value["ok"] === false;
}

export function parseGenerationRequest(
  endpoint: Endpoint,
  servedModel: string,
  contentType: string | undefined,
  requestIdHeader: string | undefined,
  rawBody: string,
): ParseResult {
  const mediaType = (contentType ?? "").split(";")[0]?.trim().toLowerCase();
  if (mediaType !== "application/json") {
    return validationError("Unsupported Media Type: Only 'application/json' is allowed", null);
  }
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch (error) {
    const pos = jsonPosition(error, rawBody);
    return pydanticError("json_invalid", `'body', ${pos}`, "JSON decode error", `body.${pos}`);
  }
  if (!isRecord(body)) {
    return pydanticError("model_attributes_type", "'body',", "Input should be a valid dictionary or object to extract fields from", "body");
  }

  if (endpoint === "chat") {
    if (!("messages" in body)) return pydanticError("missing", "'body', 'messages'", "Field required", "body.messages");
    if (!Array.isArray(body["messages"])) {
      return pydanticError("list_type", "'body', 'messages'", "Input should be a valid list", "body.messages");
    }
  } else {
    const prompt = body["prompt"];
    if (prompt === undefined || prompt === null || prompt === "") {
      return pydanticError(
        "value_error",
        "'body',",
        "Value error, Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
        "prompt",
      );
    }
    if (Array.isArray(prompt) && prompt.length > 1 && !prompt.every((p) => typeof p === "number")) {
      return unsupported("only one prompt per request");
    }
  }

  const stream = body["stream"] === true;
  const streamOptions = body["stream_options"];
  if (streamOptions !== undefined && streamOptions !== null && !stream) {
    return pydanticError(
      "value_error",
      "'body',",
      "Value error, Stream options can only be defined when `stream=True`. (parameter=stream_options)",
      "stream_options",
    );
  }

  const n = readOptionalInt(body, "n");
  if (isFailure(n)) return n;
  if (n !== undefined && n !== 1) return unsupported("only n=1 is supported");

  // Chat prefers max_completion_tokens over the deprecated max_tokens.
  const maxCompletion = endpoint === "chat" ? readOptionalInt(body, "max_completion_tokens") : undefined;
  if (isFailure(maxCompletion)) return maxCompletion;
  const maxTokensField = readOptionalInt(body, "max_tokens");
  if (isFailure(maxTokensField)) return maxTokensField;
  const maxTokens = maxCompletion ?? maxTokensField ?? (endpoint === "completions" ? COMPLETIONS_DEFAULT_MAX_TOKENS : undefined);
  if (maxTokens !== undefined && maxTokens < 1) {
    return {
      ok: false,
      status: 400,
      body: errorBody(`max_tokens must be at least 1, got ${maxTokens}.`, "BadRequestError", 400, "max_tokens"),
    };
  }

  // Model is checked after body validation, as vLLM's handler runs after pydantic.
  const model = body["model"];
  if (typeof model === "string" && model !== "" && model !== servedModel) {
    return {
      ok: false,
      status: 404,
      body: errorBody(`The model \`${model}\` does not exist.`, "NotFoundError", 404, "model"),
    };
  }

  // StreamOptions.include_usage defaults to true: `stream_options: {}` asks for usage.
  let includeUsage = false;
  let continuousUsage = false;
  if (isRecord(streamOptions)) {
    const include = "include_usage" in streamOptions ? streamOptions["include_usage"] : true;
    includeUsage = include === true;
    continuousUsage = includeUsage && streamOptions["continuous_usage_stats"] === true;
  }

  const bodyRequestId = body["request_id"];
  const idBase = requestIdHeader ?? (typeof bodyRequestId === "string" ? bodyRequestId : randomBytes(16).toString("hex"));

  return {
    ok: true,
    request: {
      endpoint,
      stream,
      includeUsage,
      continuousUsage,
      maxTokens,
      promptTokens: countPromptTokens(endpoint, body),
      idBase,
      body,
    },
  };
}

/** How many tokens the stub generates and why it stops: hitting max_tokens is "length", else EOS "stop". */
export function plannedCompletion(
  configuredTokens: number,
  maxTokens: number | undefined,
): {
  tokens: number;
  finishReason: "length" | "stop";
} {
  if (maxTokens !== undefined && maxTokens <= configuredTokens) return { tokens: maxTokens, finishReason: "length" };
  return { tokens: configuredTokens, finishReason: "stop" };
}
