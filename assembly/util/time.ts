// The host clock is in nanoseconds; the configuration and the logs speak milliseconds.
export const NS_PER_MS: u64 = 1_000_000;

// A clock reading in whole milliseconds (the cooldown circuits keep milliseconds).
export function msOf(ns: u64): i64 {
  return <i64>(ns / NS_PER_MS);
}

// Whole milliseconds from `fromNs` to `toNs`; -1 when either is unknown (0) or they are out of order.
export function msBetween(fromNs: u64, toNs: u64): i64 {
  if (fromNs == 0 || toNs < fromNs) return -1;
  return <i64>((toNs - fromNs) / NS_PER_MS);
}
