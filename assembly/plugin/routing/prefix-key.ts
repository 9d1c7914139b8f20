// The prompt-prefix key of prefix affinity (config prefixAffinity): a hash of the start of the prompt's
// text, which the model's Envoy cluster hashes onto its replicas, so requests that share a prefix meet
// the replica whose vLLM prefix cache already holds it (docs/replica-routing.md).
//
// What is hashed is decoded text, not JSON bytes, so two clients that escape or space the same prompt
// differently get the same key. Chat messages count up to and including the first `user` message: a
// conversation's later turns re-send exactly those, so every turn keeps the first turn's key.
import { JsonField, JsonScan, JsonType, unescapeChar } from "../../json/reader";
import { ArrayCursor, hex4, scanMember } from "../../json/cursor";
import { FNV_OFFSET, fnvByte, hex16 } from "../../util/hash";

// FNV-1a 64 over at most `left` bytes.
class PrefixHash {
  h: u64 = FNV_OFFSET;
  left: i32 = 0;
  fed: i32 = 0;

  reset(maxBytes: i32): void {
    this.h = FNV_OFFSET;
    this.left = maxBytes;
    this.fed = 0;
  }

  @inline get full(): bool {
    return this.left <= 0;
  }

  byte(b: u32): void {
    if (this.left <= 0) return;
    this.h = fnvByte(this.h, b);
    this.left--;
    this.fed++;
  }

  // A code point as UTF-8.
  codePoint(u: u32): void {
    if (u < 0x80) this.byte(u);
    else if (u < 0x800) {
      this.byte(0xc0 | (u >> 6));
      this.byte(0x80 | (u & 0x3f));
    } else if (u < 0x10000) {
      this.byte(0xe0 | (u >> 12));
      this.byte(0x80 | ((u >> 6) & 0x3f));
      this.byte(0x80 | (u & 0x3f));
    } else {
      this.byte(0xf0 | (u >> 18));
      this.byte(0x80 | ((u >> 12) & 0x3f));
      this.byte(0x80 | ((u >> 6) & 0x3f));
      this.byte(0x80 | (u & 0x3f));
    }
  }

  // The decoded text of a validated JSON string span p[f.start..f.end); nothing for other types.
  text(p: usize, f: JsonField): void {
    if (!f.found || f.type != JsonType.String) return;
    let i = f.start + 1;
    const stop = f.end - 1;
    while (i < stop && this.left > 0) {
      const c = <u32>load<u8>(p + <usize>i);
      if (c != 0x5c) {
        this.byte(c);
        i++;
        continue;
      }
      const e = <u32>load<u8>(p + <usize>i + 1);
      if (e != 0x75) {
        this.byte(unescapeChar(e));
        i += 2;
        continue;
      }
      let u = hex4(p + <usize>i + 2);
      i += 6;
      if (u >= 0xd800 && u < 0xdc00 && i + 6 <= stop && load<u8>(p + <usize>i + 1) == 0x75) {
        const lo = hex4(p + <usize>i + 2);
        if ((lo & 0xfc00) == 0xdc00) {
          u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
          i += 6;
        }
      }
      this.codePoint(u);
    }
  }

  hex(): string {
    return hex16(this.h);
  }
}

const hash = new PrefixHash();
const messageScan = new JsonScan(["role", "content"]);
const partScan = new JsonScan(["text"]);
const messages = new ArrayCursor();
const parts = new ArrayCursor();
const element = new JsonField();

// Feeds role "\n" content "\n" per message, up to and including the first user message; false once
// that message was fed (or the budget is spent).
function feedMessages(p: usize, list: JsonField): bool {
  messages.reset(p, list);
  while (messages.next() && !hash.full) {
    if (!scanMember(p, messages.field(element), messageScan)) continue;
    const m = p + <usize>messages.start;
    const role = messageScan.field(0);
    const content = messageScan.field(1);
    hash.text(m, role);
    hash.byte(0x0a);
    if (content.type == JsonType.String) hash.text(m, content);
    else {
      parts.reset(m, content);
      while (parts.next() && !hash.full) {
        if (scanMember(m, parts.field(element), partScan)) hash.text(m + <usize>parts.start, partScan.field(0));
      }
    }
    hash.byte(0x0a);
    if (isUser(m, role)) return false;
  }
  return !hash.full;
}

function isUser(p: usize, f: JsonField): bool {
  return f.found && f.type == JsonType.String && f.end - f.start == 6 && load<u32>(p + <usize>f.start + 1) == 0x72657375; // "user"
}

// A prompt given as text or as a list (its first string).
function feedPrompt(p: usize, f: JsonField): void {
  if (f.type == JsonType.String) {
    hash.text(p, f);
    return;
  }
  messages.reset(p, f);
  while (messages.next()) {
    if (messages.type == JsonType.String) {
      hash.text(p, messages.field(element));
      return;
    }
  }
}

// The key of a request body whose root fields `messages`, `prompt`, `input` and `instructions` an
// earlier scan found; "" when the request has no prompt text (embeddings of token ids, say).
export function prefixKey(p: usize, msgs: JsonField, prompt: JsonField, input: JsonField, instructions: JsonField, maxBytes: i32): string {
  hash.reset(maxBytes);
  if (msgs.found && msgs.type == JsonType.Array) feedMessages(p, msgs);
  else if (prompt.found) feedPrompt(p, prompt);
  else if (input.found) {
    // Responses API: the instructions are the system prompt, the input a prompt or a message list.
    hash.text(p, instructions);
    if (input.type == JsonType.Array && startsWithObject(p, input)) feedMessages(p, input);
    else feedPrompt(p, input);
  }
  return hash.fed > 0 ? hash.hex() : "";
}

function startsWithObject(p: usize, f: JsonField): bool {
  messages.reset(p, f);
  return messages.next() && messages.type == JsonType.Object;
}
