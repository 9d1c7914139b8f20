// What the plugin knows of a model's replicas (prefixAffinity.loadAware), per routing header value (one
// Envoy cluster each; "model" below): each one's address and its last
// load figures, in proxy shared data so that every worker (each its own VM) picks from what any of them
// learned. One value per model, "address waiting kvPermille seenMs loadMs scrapedMs addedMs" lines;
// updates are compare-and-swap.
//
// Only an answer proves a replica is there (seenMs, against the report lifetime); load figures come from
// answers' reports and from scraping (loadMs), and a scrape never makes a replica look alive: a scrape
// sent to an address the cluster no longer has is served by another replica (override-host's fallback).
//
// Bounded by design: at most MAX_REPLICAS entries per model (the oldest report goes first) and entries
// older than the report lifetime are dropped on every write; the tables are those of configured routes
// (request-stage.ts pickReplica), so clients cannot add any.
import { Status } from "../../abi/enums";
import { getSharedData, setSharedData } from "../../abi/host";
import { isHeaderValue } from "../../util/ascii";
import { parseDigits } from "../../util/digits";
import { fnv1a64 } from "../../util/hash";
import { LoadFigures } from "./load-report";

const KEY_PREFIX = "llm-gateway/replicas/";
const CAS_RETRIES: i32 = 8;
export const MAX_REPLICAS: i32 = 64;
// Envoy's host addresses: "10.0.0.5:8080", "[2600:4040::1]:80"; anything longer or odd is not stored.
const MAX_ADDRESS_CHARS: i32 = 64;

export class Replica {
  address: string = "";
  waiting: i32 = 0;
  kvPermille: i32 = 0;
  seenMs: i64 = 0; // its last answer
  loadMs: i64 = 0; // when waiting and kvPermille were reported (0: never)
  scrapedMs: i64 = 0; // when a worker last claimed its metrics scrape
  addedMs: i64 = 0; // when it entered the table (the picker's discovery burst follows new replicas)
  hash: u64 = 0; // of the address, for rendezvous hashing (replica-picker.ts)
}

// The last decoded table per model, reused while shared data's cas says it has not changed.
class Cached {
  constructor(
    public cas: u32,
    public replicas: Array<Replica>,
  ) {}
}
const cache = new Map<string, Cached>();

export function replicasOf(model: string): Array<Replica> {
  const stored = getSharedData(KEY_PREFIX + model);
  if (stored == null) return new Array<Replica>();
  if (cache.has(model)) {
    const c = cache.get(model);
    if (c.cas == stored.cas) return c.replicas;
  }
  const replicas = decode(stored.value);
  cache.set(model, new Cached(stored.cas, replicas));
  return replicas;
}

// Records an answer from a replica, with its load report when it carried one.
export function noteAnswer(model: string, address: string, report: LoadFigures | null, nowMs: i64, ttlMs: i64): void {
  if (!validAddress(address) || !changes(model, address, report, nowMs)) return;
  rewrite(model, new AnswerEdit(address, report, nowMs, ttlMs));
}

// Whether an answer tells the table anything: a write makes every worker decode the table again, so
// an answer from a replica seen within SEEN_RESOLUTION_MS that brings no new figures writes nothing.
const SEEN_RESOLUTION_MS: i64 = 1000;
function changes(model: string, address: string, report: LoadFigures | null, nowMs: i64): bool {
  const r = find(replicasOf(model), address);
  if (r == null || nowMs - r.seenMs >= SEEN_RESOLUTION_MS) return true;
  return report != null && (report.waiting != r.waiting || report.kvPermille != r.kvPermille || nowMs - r.loadMs >= SEEN_RESOLUTION_MS);
}

// Records scraped figures for a replica the table still holds.
export function noteLoad(model: string, address: string, load: LoadFigures, nowMs: i64): void {
  rewrite(model, new LoadEdit(address, load, nowMs));
}

// Whether a replica's metrics scrape is due: none was claimed within intervalMs.
export function scrapeDue(r: Replica, nowMs: i64, intervalMs: i64): bool {
  return r.scrapedMs == 0 || nowMs - r.scrapedMs >= intervalMs;
}

// Takes the next scrape of a replica for this worker: true when it was due (scrapeDue) in the table as
// it is now, not only in this worker's copy.
export function claimScrape(model: string, address: string, nowMs: i64, intervalMs: i64): bool {
  return rewrite(model, new ClaimEdit(address, nowMs, intervalMs));
}

// Drops a replica that failed a request the plugin had sent it: it comes back with its next answer
// (Envoy's own balancer still reaches it for discovery).
export function forget(model: string, address: string): void {
  rewrite(model, new ForgetEdit(address));
}

// One change to a table: `apply` gets the lines as stored (none when the table is absent) and returns the
// lines to write, or null to write nothing.
abstract class TableEdit {
  constructor(public address: string) {}
  abstract apply(list: Array<Replica>): Array<Replica> | null;
}

// The one read-modify-write of a table, under compare-and-swap (retried when another worker wrote in
// between); true when the edit was written.
function rewrite(model: string, edit: TableEdit): bool {
  const key = KEY_PREFIX + model;
  for (let attempt = 0; attempt < CAS_RETRIES; attempt++) {
    const stored = getSharedData(key);
    const out = edit.apply(stored != null ? decode(stored.value) : new Array<Replica>());
    if (out == null) return false;
    // cas 0 writes unconditionally: only when nothing was stored yet.
    if (setSharedData(key, encode(out), stored != null ? stored.cas : 0) == Status.Ok) return true;
  }
  return false;
}

class AnswerEdit extends TableEdit {
  constructor(
    address: string,
    private report: LoadFigures | null,
    private nowMs: i64,
    private ttlMs: i64,
  ) {
    super(address);
  }

  // The replica seen now (added if new), entries past the lifetime dropped, the oldest over the bound.
  apply(list: Array<Replica>): Array<Replica> | null {
    const now = this.nowMs;
    const kept = new Array<Replica>();
    for (let i = 0; i < list.length; i++) {
      const e = unchecked(list[i]);
      if (e.address != this.address && now - e.seenMs <= this.ttlMs) kept.push(e);
    }
    while (kept.length >= MAX_REPLICAS) dropOldest(kept);
    let r = find(list, this.address);
    if (r == null) {
      r = new Replica();
      r.address = this.address;
      r.addedMs = now;
    }
    r.seenMs = now;
    const report = this.report;
    if (report != null) setFigures(r, report, now);
    kept.push(r);
    return kept;
  }
}

class LoadEdit extends TableEdit {
  constructor(
    address: string,
    private load: LoadFigures,
    private nowMs: i64,
  ) {
    super(address);
  }

  apply(list: Array<Replica>): Array<Replica> | null {
    const r = find(list, this.address);
    if (r == null) return null;
    setFigures(r, this.load, this.nowMs);
    return list;
  }
}

class ClaimEdit extends TableEdit {
  constructor(
    address: string,
    private nowMs: i64,
    private intervalMs: i64,
  ) {
    super(address);
  }

  apply(list: Array<Replica>): Array<Replica> | null {
    const r = find(list, this.address);
    if (r == null || !scrapeDue(r, this.nowMs, this.intervalMs)) return null;
    r.scrapedMs = this.nowMs;
    return list;
  }
}

class ForgetEdit extends TableEdit {
  apply(list: Array<Replica>): Array<Replica> | null {
    const kept = new Array<Replica>();
    for (let i = 0; i < list.length; i++) if (unchecked(list[i]).address != this.address) kept.push(unchecked(list[i]));
    return kept.length == list.length ? null : kept;
  }
}

function find(list: Array<Replica>, address: string): Replica | null {
  for (let i = 0; i < list.length; i++) if (unchecked(list[i]).address == address) return unchecked(list[i]);
  return null;
}

function setFigures(r: Replica, f: LoadFigures, nowMs: i64): void {
  r.waiting = f.waiting;
  r.kvPermille = f.kvPermille;
  r.loadMs = nowMs;
}

function dropOldest(list: Array<Replica>): void {
  let at = 0;
  for (let i = 1; i < list.length; i++) if (unchecked(list[i]).seenMs < unchecked(list[at]).seenMs) at = i;
  list.splice(at, 1);
}

function encode(list: Array<Replica>): string {
  let out = "";
  for (let i = 0; i < list.length; i++) {
    const r = unchecked(list[i]);
    out +=
      r.address +
      " " +
      r.waiting.toString() +
      " " +
      r.kvPermille.toString() +
      " " +
      r.seenMs.toString() +
      " " +
      r.loadMs.toString() +
      " " +
      r.scrapedMs.toString() +
      " " +
      r.addedMs.toString() +
      "\n";
  }
  return out;
}

// Lines that do not read back are skipped (another build's format, a torn value): never an abort.
export function decode(s: string): Array<Replica> {
  const out = new Array<Replica>();
  let i = 0;
  while (i < s.length && out.length < MAX_REPLICAS) {
    let end = s.indexOf("\n", i);
    if (end < 0) end = s.length;
    const f = s.substring(i, end).split(" ");
    i = end + 1;
    if (f.length != 7 || !validAddress(unchecked(f[0]))) continue;
    const waiting = parseDigits(unchecked(f[1]));
    const kv = parseDigits(unchecked(f[2]));
    const seen = parseDigits(unchecked(f[3]));
    const loaded = parseDigits(unchecked(f[4]));
    const scraped = parseDigits(unchecked(f[5]));
    const added = parseDigits(unchecked(f[6]));
    if (waiting < 0 || waiting > 1000000000 || kv < 0 || kv > 1000 || seen < 0 || loaded < 0 || scraped < 0 || added < 0) continue;
    const r = new Replica();
    r.address = unchecked(f[0]);
    r.waiting = <i32>waiting;
    r.kvPermille = <i32>kv;
    r.seenMs = seen;
    r.loadMs = loaded;
    r.scrapedMs = scraped;
    r.addedMs = added;
    r.hash = fnv1a64(r.address);
    out.push(r);
  }
  return out;
}

// A header value (printable ASCII, no spaces: the table's separators) without the picked-host header's
// comma, at most MAX_ADDRESS_CHARS.
function validAddress(a: string): bool {
  return a.length <= MAX_ADDRESS_CHARS && isHeaderValue(a) && a.indexOf(",") < 0;
}
