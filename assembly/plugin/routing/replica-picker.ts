// Load-aware replica picking (prefixAffinity.loadAware): the plugin chooses the replica and names it, then
// the next choices for retries, in a request header that the model's cluster reads with Envoy's
// override-host policy (docs/replica-routing.md#load-aware-picking). Upstream Envoy offers a Wasm filter no
// other way to choose a host per request.
//
// - Affinity: replicas ranked for the prefix key by rendezvous hashing (highest hash of key and address
//   first), so a key keeps its replica while the set of replicas stays, and only the keys of a replica that
//   leaves move.
// - Bounded load: a replica takes the request while its requests in flight from this VM, counting this one,
//   stay within loadFactor% of the mean (Envoy's rule for consistent hashing with bounded load); past that
//   the next in rank.
// - Saturation: a replica whose latest vLLM figures (an answer's report or a scrape) show a queue
//   (waiting > maxWaiting) or a nearly full KV cache is skipped while those figures are fresh
//   (SATURATION_HOLD_MS, or two scrape intervals): without scraping, a skipped replica would never report
//   again, so once its figures are old one request probes it. When every replica is saturated, none is
//   avoided: the ranking and the bound decide, so that a fleet-wide queue does not also lose the caches.
// - Unkeyed requests go to the least loaded unsaturated replica.
// - Discovery: the plugin knows a replica only once it has answered, so some requests are left to Envoy's
//   balancer, which knows them all: every discoverEvery-th, and every other one while replicas are still
//   being found (DISCOVERY_BURST_MS after the last new one), so that a cold start does not put everything on
//   the first replica to answer.
import { LoadAwarePolicy } from "../config/affinity-policy";
import { fnv1a64 } from "../../util/hash";
import { Replica } from "./replica-table";

// How long a report of saturation keeps a replica out of the ranking.
const SATURATION_HOLD_MS: i64 = 1000;
// After a replica entered the table (any worker's): every other request is left to Envoy's balancer for this long.
const DISCOVERY_BURST_MS: i64 = 5000;
// Replicas named in the header: the choice and two more, as many as the route's retries (num_retries 2).
const NAMED: i32 = 3;

export class ReplicaPicker {
  // Requests this VM sent to each replica and has not finished (entries at zero are removed).
  private inflight: Map<string, i32> = new Map<string, i32>();
  private requests: u32 = 0;
  // Scratch arrays reused by every pick (a VM runs one callback at a time).
  private order: Array<i32> = new Array<i32>();
  private scores: Array<u64> = new Array<u64>();
  private loads: Array<i32> = new Array<i32>();
  private saturatedAt: Array<bool> = new Array<bool>();
  chosen: string = "";
  // Why the last pick passed over the key's first replica (both false: it took it, or named none).
  skippedSaturated: bool = false;
  skippedBound: bool = false;

  // The header value naming the replicas for this request, best first; null leaves the request to
  // Envoy's balancer (no fresh replica known, or a discovery turn).
  pick(p: LoadAwarePolicy, replicas: Array<Replica>, key: string, nowMs: i64): string | null {
    this.chosen = "";
    this.skippedSaturated = false;
    this.skippedBound = false;
    this.requests++;
    if (p.discoverEvery > 0 && this.requests % <u32>p.discoverEvery == 0) return null;
    // One pass over the table: each fresh replica's load and saturation (by table index), and the
    // fresh ones in rank order.
    const order = this.order;
    const scores = this.scores;
    const loads = this.loads;
    const saturated = this.saturatedAt;
    order.length = 0;
    scores.length = 0;
    loads.length = replicas.length;
    saturated.length = replicas.length;
    let total: i64 = 0;
    let newestMs: i64 = 0;
    let allSaturated = true;
    const keyHash = key.length > 0 ? fnv1a64(key) : 0;
    for (let i = 0; i < replicas.length; i++) {
      const r = unchecked(replicas[i]);
      if (nowMs - r.seenMs > p.reportTtlMs) continue;
      const load = this.load(r.address);
      const sat = this.saturated(p, r, nowMs);
      unchecked((loads[i] = load));
      unchecked((saturated[i] = sat));
      if (!sat) allSaturated = false;
      total += load;
      if (r.addedMs > newestMs) newestMs = r.addedMs;
      // Unkeyed: rank by load alone (ties keep the table's order).
      const score = key.length > 0 ? mix(keyHash ^ r.hash) : <u64>(0x7fffffff - load);
      // Insertion by descending score: replicas are few (MAX_REPLICAS at most).
      let at = order.length;
      order.push(i);
      scores.push(score);
      while (at > 0 && unchecked(scores[at - 1]) < score) {
        unchecked((scores[at] = scores[at - 1]));
        unchecked((order[at] = order[at - 1]));
        at--;
      }
      unchecked((scores[at] = score));
      unchecked((order[at] = i));
    }
    const n = order.length;
    if (n == 0) return null;
    if (p.discoverEvery > 0 && nowMs - newestMs < DISCOVERY_BURST_MS && (this.requests & 1) == 0) return null;
    // ceil((total + 1) × factor / n): the most requests a replica may carry with this one.
    const bound = ((total + 1) * <i64>p.loadFactor + <i64>n * 100 - 1) / (<i64>n * 100);
    // The first in rank within the bound and not saturated. When every replica is saturated, none is
    // avoided for it: avoiding one gains nothing, and the prefix's replica at least holds its cache.
    let best = -1;
    for (let k = 0; k < n && best < 0; k++) {
      const i = unchecked(order[k]);
      const avoid = unchecked(saturated[i]) && !allSaturated;
      const full = <i64>unchecked(loads[i]) + 1 > bound;
      if (!avoid && !full) best = k;
      else if (k == 0) {
        this.skippedSaturated = avoid;
        this.skippedBound = !avoid && full;
      }
    }
    if (best < 0) {
      // Every replica is saturated or at the bound: the least loaded, unsaturated ones first.
      let bestCost: i64 = i64.MAX_VALUE;
      for (let k = 0; k < n; k++) {
        const i = unchecked(order[k]);
        const waiting = <i64>unchecked(replicas[i]).waiting;
        const cost = (unchecked(saturated[i]) ? ((<i64>1) << 40) + waiting * 1024 : 0) + <i64>unchecked(loads[i]);
        if (cost < bestCost) {
          bestCost = cost;
          best = k;
        }
      }
    }
    const first = unchecked(replicas[unchecked(order[best])]).address;
    this.chosen = first;
    let out = first;
    let named = 1;
    for (let k = 0; k < n && named < NAMED; k++) {
      if (k == best) continue;
      out += "," + unchecked(replicas[unchecked(order[k])]).address;
      named++;
    }
    return out;
  }

  started(address: string): void {
    if (address.length == 0) return;
    this.inflight.set(address, this.load(address) + 1);
  }

  finished(address: string): void {
    if (address.length == 0 || !this.inflight.has(address)) return;
    const left = this.inflight.get(address) - 1;
    if (left <= 0) this.inflight.delete(address);
    else this.inflight.set(address, left);
  }

  load(address: string): i32 {
    return this.inflight.has(address) ? this.inflight.get(address) : 0;
  }

  private saturated(p: LoadAwarePolicy, r: Replica, nowMs: i64): bool {
    if (r.loadMs == 0 || nowMs - r.loadMs > max<i64>(SATURATION_HOLD_MS, 2 * p.scrapeIntervalMs)) return false;
    return r.waiting > p.maxWaiting || r.kvPermille > p.maxKvPermille;
  }
}

// splitmix64's finalizer: FNV's low bits of similar inputs are close; this spreads them.
function mix(x: u64): u64 {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9;
  x ^= x >> 27;
  x *= 0x94d049bb133111eb;
  x ^= x >> 31;
  return x;
}
