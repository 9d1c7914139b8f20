// The cooldown circuits in proxy shared data, so every Envoy worker (each its own VM) sees the same
// state. Updates are compare-and-swap, retried a few times when another worker wrote in between.
import { Status } from "../../abi/enums";
import { getSharedData, setSharedData } from "../../abi/host";
import { FallbackPolicy } from "../config/gateway-config";
import { Circuit, Gate, admitRequest, recordOutcome } from "./policy";

const KEY_PREFIX = "llm-gateway/circuit/";
const CAS_RETRIES: i32 = 8;

// Decides where a new request for `route` goes; takes the probe slot atomically when it is free.
export function admit(p: FallbackPolicy, route: string, nowMs: i64): Gate {
  if (p.cooldownFailures <= 0) return Gate.Primary;
  const key = KEY_PREFIX + route;
  for (let i = 0; i < CAS_RETRIES; i++) {
    const stored = getSharedData(key);
    if (stored == null) return Gate.Primary;
    const c = Circuit.decode(stored.value);
    const gate = admitRequest(p, c, nowMs);
    if (gate != Gate.Probe) return gate;
    if (setSharedData(key, c.encode(), stored.cas) == Status.Ok) return Gate.Probe;
  }
  return Gate.Backup; // lost every race for the probe slot: someone else is probing
}

// Records the primary's outcome for `route`; true when this failure opened the circuit.
export function record(p: FallbackPolicy, route: string, failed: bool, nowMs: i64, wasProbe: bool): bool {
  if (p.cooldownFailures <= 0) return false;
  const key = KEY_PREFIX + route;
  for (let i = 0; i < CAS_RETRIES; i++) {
    const stored = getSharedData(key);
    // Nothing stored and nothing to record: the common healthy case costs one lookup.
    if (stored == null && !failed) return false;
    const c = stored != null ? Circuit.decode(stored.value) : new Circuit();
    const before = c.encode();
    const opened = recordOutcome(p, c, failed, nowMs, wasProbe);
    const after = c.encode();
    if (after == before) return opened;
    // cas 0 writes unconditionally; only used when nothing was stored yet.
    const st = setSharedData(key, after, stored != null ? stored.cas : 0);
    if (st == Status.Ok) return opened;
  }
  return false;
}
