// JSON text for what the plugin writes itself (error bodies, the model list, log fields).

const HEX = "0123456789abcdef";

// `s` as a quoted JSON string literal. Besides quotes, backslashes and control characters, unpaired
// UTF-16 surrogates are escaped (\udXXX): they have no UTF-8 form, so String.UTF8.encode would write bytes
// (WTF-8) that strict JSON parsers, ours included, refuse. A name decoded from "\ud800" in a request
// thus goes back out exactly as the client wrote it.
export function jsonString(s: string): string {
  const n = s.length;
  let needs = false;
  for (let i = 0; i < n; i++) {
    if (needsEscape(s.charCodeAt(i))) { needs = true; break; }
  }
  if (!needs) return "\"" + s + "\"";
  const parts = new Array<string>();
  let from = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (!needsEscape(c)) continue;
    // A high surrogate followed by a low one is one character: it stays as it is.
    if (c < 0xdc00 && c >= 0xd800 && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) == 0xdc00) { i++; continue; }
    parts.push(s.substring(from, i));
    if (c == 0x22) parts.push("\\\"");
    else if (c == 0x5c) parts.push("\\\\");
    else if (c == 0x0a) parts.push("\\n");
    else if (c == 0x0d) parts.push("\\r");
    else if (c == 0x09) parts.push("\\t");
    else parts.push("\\u" + HEX.charAt((c >> 12) & 15) + HEX.charAt((c >> 8) & 15) + HEX.charAt((c >> 4) & 15) + HEX.charAt(c & 15));
    from = i + 1;
  }
  parts.push(s.substring(from));
  return "\"" + parts.join("") + "\"";
}

// Control characters, '"', '\\' and any surrogate (paired ones are let through by the caller).
@inline function needsEscape(c: i32): bool {
  return c < 0x20 || c == 0x22 || c == 0x5c || (c & 0xf800) == 0xd800;
}

export function jsonStringArray(items: Array<string>): string {
  const parts = new Array<string>(items.length);
  for (let i = 0; i < items.length; i++) unchecked((parts[i] = jsonString(unchecked(items[i]))));
  return "[" + parts.join(",") + "]";
}
