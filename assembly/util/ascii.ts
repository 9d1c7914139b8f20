// ASCII-only checks and case folding for names that become header values or metric labels. String's
// own toLowerCase would pull Unicode case tables (~8 KB) into the module.

// A model name or route value becomes a header value: at most this many bytes.
export const MAX_ROUTE_VALUE_BYTES: i32 = 256;

// Header names Envoy accepts: lowercase token characters.
export function isHeaderName(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    const ok = (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x30 && ch <= 0x39) || ch == 0x2d || ch == 0x5f || ch == 0x2e;
    if (!ok) return false;
  }
  return true;
}

// Printable ASCII without spaces, 1 to MAX_ROUTE_VALUE_BYTES characters.
export function isHeaderValue(s: string): bool {
  if (s.length == 0 || s.length > MAX_ROUTE_VALUE_BYTES) return false;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch < 0x21 || ch > 0x7e) return false;
  }
  return true;
}

export function hasControl(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Host names are ASCII (IDNs arrive as punycode).
export function asciiLower(s: string): string {
  let upper = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      break;
    }
  }
  if (!upper) return s;
  const out = new Array<string>(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    unchecked((out[i] = String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 32 : c)));
  }
  return out.join("");
}
