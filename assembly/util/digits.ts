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
