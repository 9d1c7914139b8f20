// Decimal digits to a number without std's generic radix parser (which costs module size): status
// codes, header values, the cooldown state. -1 for anything that is not 1..18 plain digits.
export function parseDigits(s: string): i64 {
  const n = s.length;
  if (n == 0 || n > 18) return -1;
  let v: i64 = 0;
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

// A non-negative decimal as Python prints a float (3, 3.0, 0.25, 1e-05, 2.5E+3) in v[start..end), spaces
// around it allowed; NaN for anything else.
export function parseDecimal(v: string, start: i32, end: i32): f64 {
  while (start < end && v.charCodeAt(start) == 0x20) start++;
  while (end > start && v.charCodeAt(end - 1) == 0x20) end--;
  let i = start;
  let mantissa: f64 = 0;
  let scale: i32 = 0;
  let digits = 0;
  while (i < end && isDigit(v.charCodeAt(i))) {
    if (digits < 18) mantissa = mantissa * 10 + <f64>(v.charCodeAt(i) - 0x30);
    else scale++;
    digits++;
    i++;
  }
  if (i < end && v.charCodeAt(i) == 0x2e) {
    i++;
    while (i < end && isDigit(v.charCodeAt(i))) {
      if (digits < 18) {
        mantissa = mantissa * 10 + <f64>(v.charCodeAt(i) - 0x30);
        scale--;
      }
      digits++;
      i++;
    }
  }
  if (digits == 0) return NaN;
  if (i < end && (v.charCodeAt(i) | 0x20) == 0x65) {
    i++;
    let sign = 1;
    if (i < end && (v.charCodeAt(i) == 0x2b || v.charCodeAt(i) == 0x2d)) {
      if (v.charCodeAt(i) == 0x2d) sign = -1;
      i++;
    }
    let exp = 0;
    let expDigits = 0;
    while (i < end && isDigit(v.charCodeAt(i))) {
      if (exp < 10000) exp = exp * 10 + (v.charCodeAt(i) - 0x30);
      expDigits++;
      i++;
    }
    if (expDigits == 0) return NaN;
    scale += sign * exp;
  }
  if (i != end) return NaN;
  if (mantissa == 0) return 0;
  if (scale > 308) return Infinity;
  if (scale < -340) return 0;
  return mantissa * Math.pow(10, <f64>scale);
}

function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}
