// JSON text for what the plugin writes itself (error bodies, the model list, log fields).

const HEX = "0123456789abcdef";

// `s` as a quoted JSON string literal.
export function jsonString(s: string): string {
  let needs = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c == 0x22 || c == 0x5c) { needs = true; break; }
  }
  if (!needs) return "\"" + s + "\"";
  const parts = new Array<string>();
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    parts.push(s.substring(from, i));
    if (c == 0x22) parts.push("\\\"");
    else if (c == 0x5c) parts.push("\\\\");
    else if (c == 0x0a) parts.push("\\n");
    else if (c == 0x0d) parts.push("\\r");
    else if (c == 0x09) parts.push("\\t");
    else parts.push("\\u00" + HEX.charAt(c >> 4) + HEX.charAt(c & 15));
    from = i + 1;
  }
  parts.push(s.substring(from));
  return "\"" + parts.join("") + "\"";
}

export function jsonStringArray(items: Array<string>): string {
  const parts = new Array<string>(items.length);
  for (let i = 0; i < items.length; i++) unchecked((parts[i] = jsonString(unchecked(items[i]))));
  return "[" + parts.join(",") + "]";
}
