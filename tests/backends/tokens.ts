// Deterministic "model output" and prompt-token counting for the vLLM stub.
// Tests import these to compute the exact text and usage a backend must return.

const WORDS: readonly string[] = [
  "alpha",
  "bravo",
  "charlie",
  "delta",
  "echo",
  "foxtrot",
  "golf",
  "hotel",
  "india",
  "juliet",
  "kilo",
  "lima",
  "mike",
  "november",
  "oscar",
  "papa",
  "quebec",
  "romeo",
  "sierra",
  "tango",
  "uniform",
  "victor",
  "whiskey",
  "xray",
  "yankee",
  "zulu",
  "amber",
  "basalt",
  "cobalt",
  "dune",
  "ember",
  "fjord",
];

// FNV-1a: a stable per-model offset so two backends never produce the same text.
function modelSeed(model: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < model.length; i++) {
    hash ^= model.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** Token i of the output. Token 0 is the model name, so the body alone tells which backend answered. */
export function tokenText(model: string, index: number): string {
  if (index === 0) return model;
  const word = WORDS[(modelSeed(model) + index) % WORDS.length] ?? "token";
  return " " + word;
}

export function tokenTexts(model: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(tokenText(model, i));
  return out;
}

/** The full generated text for `count` tokens (what a non-streaming response carries). */
export function expectedText(model: string, count: number): string {
  return tokenTexts(model, count).join("");
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}

function countWords(text: string): number {
  return words(text).length;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// Chat content is either a string or a list of parts; only text parts carry words.
function countContentWords(content: unknown): number {
  if (typeof content === "string") return countWords(content);
  if (!Array.isArray(content)) return 0;
  let words = 0;
  for (const part of content) {
    if (isRecord(part) && part["type"] === "text" && typeof part["text"] === "string") {
      words += countWords(part["text"]);
    }
  }
  return words;
}

// A completions prompt may be text, a list of texts, token ids, or lists of token ids.
function countPromptWords(prompt: unknown): number {
  if (typeof prompt === "string") return countWords(prompt);
  if (!Array.isArray(prompt)) return 0;
  let tokens = 0;
  for (const item of prompt) {
    if (typeof item === "number") tokens += 1;
    else if (typeof item === "string") tokens += countWords(item);
    else if (Array.isArray(item)) tokens += item.length;
  }
  return tokens;
}

export type Endpoint = "chat" | "completions";

/**
 * prompt_tokens the stub reports: whitespace-separated words over all message contents (chat)
 * or the prompt (completions), at least 1 — a real tokenizer never yields an empty prompt.
 */
export function countPromptTokens(endpoint: Endpoint, body: unknown): number {
  if (!isRecord(body)) return 1;
  let words = 0;
  if (endpoint === "chat") {
    const messages = body["messages"];
    if (Array.isArray(messages)) {
      for (const message of messages) {
        if (isRecord(message)) words += countContentWords(message["content"]);
      }
    }
  } else {
    words = countPromptWords(body["prompt"]);
  }
  return Math.max(1, words);
}

function contentWords(content: unknown): string[] {
  if (typeof content === "string") return words(content);
  if (!Array.isArray(content)) return [];
  const out: string[] = [];
  for (const part of content) {
    if (isRecord(part) && part["type"] === "text" && typeof part["text"] === "string") out.push(...words(part["text"]));
  }
  return out;
}

/**
 * The prompt as token identities, for the replica model's prefix cache: the same tokens
 * countPromptTokens counts (its length always equals that count). A chat token carries its message's
 * role, as a chat template's role markers make "hello" from a user differ from "hello" from the
 * assistant; a generated token is ("assistant", word), so a later turn that re-sends the answer
 * continues the cached chain, as in vLLM.
 */
export function promptTokenIds(endpoint: Endpoint, body: unknown): string[] {
  const ids: string[] = [];
  if (isRecord(body) && endpoint === "chat" && Array.isArray(body["messages"])) {
    for (const message of body["messages"]) {
      if (!isRecord(message)) continue;
      const role = typeof message["role"] === "string" ? message["role"] : "";
      for (const w of contentWords(message["content"])) ids.push(tokenId(role, w));
    }
  } else if (isRecord(body) && endpoint === "completions") {
    const prompt = body["prompt"];
    if (typeof prompt === "string") for (const w of words(prompt)) ids.push(tokenId("", w));
    else if (Array.isArray(prompt)) {
      for (const item of prompt) {
        if (typeof item === "number") ids.push(tokenId("#", String(item)));
        else if (typeof item === "string") for (const w of words(item)) ids.push(tokenId("", w));
        else if (Array.isArray(item)) for (const t of item) ids.push(tokenId("#", String(t)));
      }
    }
  }
  // countPromptTokens never reports fewer than 1.
  if (ids.length === 0) ids.push(tokenId("", ""));
  return ids;
}

export function tokenId(role: string, word: string): string {
  return `${role}\u0000${word}`;
}

/** The generated tokens' identities: what a later turn re-sends as the assistant's message. */
export function outputTokenIds(model: string, count: number, role = "assistant"): string[] {
  return words(expectedText(model, count)).map((w) => tokenId(role, w));
}
