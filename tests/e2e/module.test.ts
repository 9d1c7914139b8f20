// The built module speaks proxy-wasm ABI 0.2.1 and imports only what Envoy provides.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { WASM_PATH } from "../harness/envoy.ts";

const module = new WebAssembly.Module(readFileSync(WASM_PATH));
const exports = WebAssembly.Module.exports(module).map((e) => e.name);
const imports = WebAssembly.Module.imports(module);

// Host functions of proxy-wasm ABI 0.2.1 (spec "Functions exposed by the host") and the WASI calls
// Envoy implements for Wasm modules.
const ENVOY_ENV = new Set([
  "proxy_log",
  "proxy_get_log_level",
  "proxy_get_current_time_nanoseconds",
  "proxy_set_tick_period_milliseconds",
  "proxy_get_buffer_bytes",
  "proxy_set_buffer_bytes",
  "proxy_get_buffer_status",
  "proxy_get_header_map_pairs",
  "proxy_set_header_map_pairs",
  "proxy_get_header_map_value",
  "proxy_add_header_map_value",
  "proxy_replace_header_map_value",
  "proxy_remove_header_map_value",
  "proxy_get_property",
  "proxy_set_property",
  "proxy_send_local_response",
  "proxy_continue_stream",
  "proxy_close_stream",
  "proxy_http_call",
  "proxy_grpc_call",
  "proxy_grpc_stream",
  "proxy_grpc_send",
  "proxy_grpc_cancel",
  "proxy_grpc_close",
  "proxy_get_shared_data",
  "proxy_set_shared_data",
  "proxy_define_metric",
  "proxy_increment_metric",
  "proxy_record_metric",
  "proxy_get_metric",
  "proxy_set_effective_context",
  "proxy_done",
  "proxy_register_shared_queue",
  "proxy_enqueue_shared_queue",
  "proxy_dequeue_shared_queue",
  "proxy_resolve_shared_queue",
]);
const ENVOY_WASI = new Set([
  "fd_write",
  "proc_exit",
  "clock_time_get",
  "random_get",
  "environ_get",
  "environ_sizes_get",
  "args_get",
  "args_sizes_get",
]);

test("exports the ABI 0.2.1 marker, malloc and the callbacks Envoy calls", () => {
  for (const name of [
    "proxy_abi_version_0_2_1",
    "malloc",
    "memory",
    "_start",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_tick",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_http_call_response",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_close",
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_delete",
  ])
    assert.ok(exports.includes(name), `missing export ${name}`);
  // A newer ABI marker would stop Envoy from re-picking the route after header changes.
  assert.deepEqual(
    exports.filter((e) => e.startsWith("proxy_abi_version")),
    ["proxy_abi_version_0_2_1"],
  );
});

test("imports only functions Envoy provides", () => {
  for (const i of imports) {
    const ok = (i.module === "env" && ENVOY_ENV.has(i.name)) || (i.module === "wasi_snapshot_preview1" && ENVOY_WASI.has(i.name));
    assert.ok(ok, `import ${i.module}.${i.name} is not provided by Envoy`);
  }
  assert.ok(!imports.some((i) => i.name === "abort" || i.name === "seed"), "AssemblyScript's env.abort/env.seed leaked in");
});
