// Times the plugin's VM start in V8 outside Envoy, in a fresh process each time (V8 shares compiled
// modules with identical bytes inside one process): compile, instantiate, _start (WASI), root
// context create + proxy_on_vm_start, proxy_on_configure with the given configuration, then a second
// root context configured the same way (what each worker and each reconfiguration costs).
// Usage: node [V8 flags] --import tsx tests/bench/vm-start.ts PLUGIN.wasm CONFIG_JSON
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { FakeEnvoy } from "../host/proxy-wasm-host.ts";

export interface VmStartTimes {
  compileMs: number;
  instantiateMs: number;
  startMs: number;
  vmStartMs: number;
  configureMs: number;
  secondConfigureMs: number;
  configured: boolean;
  memoryBytes: number;
}

export async function timeVmStart(wasm: Uint8Array, config: string): Promise<VmStartTimes> {
  const vm = await new FakeEnvoy().startVm({ wasm });
  const root = vm.configure(config);
  const second = vm.configure(config);
  return {
    ...vm.timings,
    vmStartMs: root.timings.vmStartMs,
    configureMs: root.timings.configureMs,
    secondConfigureMs: second.timings.vmStartMs + second.timings.configureMs,
    configured: root.configured,
    memoryBytes: vm.memoryBytes(),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [wasm, config] = process.argv.slice(2);
  if (wasm === undefined || config === undefined) {
    process.stderr.write("usage: vm-start.ts PLUGIN.wasm CONFIG_JSON\n");
    process.exit(2);
  }
  timeVmStart(readFileSync(wasm), config).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + "\n");
    },
    (e: unknown) => {
      process.stderr.write(`${String(e)}\n`);
      process.exit(1);
    },
  );
}
