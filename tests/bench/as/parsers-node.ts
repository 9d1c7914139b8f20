// Benchmark entry (not the plugin): the plugin's request-side parsers compiled on their own, so Node
// (V8, the engine Envoy embeds) can time and profile them without Envoy: scanJson alone, and
// routeRequest (scan + model lookup + body edits) with a configuration parsed by parseConfig.
import { JsonScan, scanJson } from "../../../assembly/json/reader";
import { GatewayConfig, parseConfig } from "../../../assembly/plugin/config/gateway-config";
import { REQUEST_KEYS, routeRequest } from "../../../assembly/plugin/routing/route-request";

const scan = new JsonScan(REQUEST_KEYS);
let config: GatewayConfig | null = null;

export function alloc(size: usize): usize {
  return heap.alloc(size);
}

export function release(ptr: usize): void {
  heap.free(ptr);
}

// Parses and compiles a plugin configuration (what proxy_on_configure does); false if refused.
export function configure(ptr: usize, len: i32): bool {
  const res = parseConfig(String.UTF8.decodeUnsafe(ptr, <usize>len));
  if (res.config == null) return false;
  config = res.config!.global;
  return true;
}

// Scans the body `iterations` times; returns the scan's error code (0 = ok).
export function scanLoop(ptr: usize, len: i32, iterations: i32): i32 {
  for (let i = 0; i < iterations; i++) scanJson(ptr, len, scan);
  return <i32>scan.error;
}

// Routes the body `iterations` times; returns 0 when it was routed, else the local reply's status.
export function routeLoop(ptr: usize, len: i32, iterations: i32): i32 {
  const cfg = config;
  if (cfg == null) return -1;
  let status: i32 = 0;
  for (let i = 0; i < iterations; i++) {
    const r = routeRequest(cfg, ptr, len, scan, true);
    status = r.reply != null ? <i32>r.reply!.status : 0;
  }
  return status;
}

// Linear memory in bytes (the VM's memory.size()).
export function memoryBytes(): i32 {
  return memory.size() << 16;
}
