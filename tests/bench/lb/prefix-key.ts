// The prefix key as the plugin computes it (contract of issue 14, prefixAffinity): FNV-1a 64 of the
// request's prefix text, 16 lowercase hex digits. The bench sends it itself only with BENCH_LB_CLIENT_KEY=1
// (a plugin build without prefixAffinity); otherwise the plugin sets the header and this is unused.

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK = (1n << 64n) - 1n;

export function fnv1a64Hex(bytes: Uint8Array): string {
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK;
  return h.toString(16).padStart(16, "0");
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter((p): p is { type: string; text: string } => typeof p === "object" && p !== null && (p as { type?: unknown }).type === "text")
    .map((p) => p.text)
    .join("");
}

/** Chat: role "\n" content "\n" for each message up to and including the first user message, cut to prefixBytes. */
export function chatPrefixKey(messages: readonly { role: string; content: unknown }[], prefixBytes = 2048): string {
  let text = "";
  for (const m of messages) {
    text += `${m.role}\n${contentText(m.content)}\n`;
    if (m.role === "user") break;
  }
  return fnv1a64Hex(Buffer.from(text, "utf8").subarray(0, prefixBytes));
}
