// The plugin's root context: owns the compiled configuration of one Envoy filter config.
import { RootContext, HttpContext } from "../abi/context";
import { BufferType, MapType, MetricType } from "../abi/enums";
import * as host from "../abi/host";
import { GatewayConfig, PluginConfig, parseConfig } from "./config";
import { GatewayHttp } from "./gateway";

export const CONFIG_APPLIED = "llm_gateway.configurations_applied";
export const CONFIG_REFUSED = "llm_gateway.configurations_refused";

export const VM_MEMORY_BYTES = "llm_gateway.vm_memory_bytes";
const MEMORY_TICK_MS: u32 = 1000;

const ROUTE_NAME: Array<string> = ["route_name"];
const CLUSTER_NAME: Array<string> = ["cluster_name"];

export class GatewayRoot extends RootContext {
  config: PluginConfig = new PluginConfig();
  private memoryGauge: u32 = host.NO_METRIC;

  // The VM's linear memory, so operators can see it stay flat (Higress users have met Wasm memory
  // exhaustion under streaming load). A gauge: each worker's VM writes its own value in turn.
  onTick(): void {
    this.recordMemory();
  }

  private recordMemory(): void {
    host.recordMetric(this.memoryGauge, <u64>memory.size() << 16);
  }

  onConfigure(size: usize): bool {
    const text = host.getBufferString(BufferType.PluginConfiguration, <u32>size);
    if (text == null) {
      host.logError("llm-gateway: configuration refused: the plugin configuration could not be read");
      return false;
    }
    const res = parseConfig(text);
    if (res.config == null) {
      // Returning false makes Envoy refuse this filter config and keep serving the previous one.
      host.logError("llm-gateway: configuration refused: " + res.error);
      host.incrementMetric(host.defineMetric(MetricType.Counter, CONFIG_REFUSED), 1);
      return false;
    }
    // Counted per VM (the main thread's and each worker's), so operators and tests can see when
    // every worker has the new configuration.
    host.incrementMetric(host.defineMetric(MetricType.Counter, CONFIG_APPLIED), 1);
    this.memoryGauge = host.defineMetric(MetricType.Gauge, VM_MEMORY_BYTES);
    this.recordMemory();
    host.setTickPeriodMs(MEMORY_TICK_MS);
    this.config = res.config!;
    host.logInfo("llm-gateway: configured " + this.config.global.models.length.toString() + " model routes, " +
      this.config.rules.length.toString() + " rules");
    return true;
  }

  createHttpContext(id: u32): HttpContext | null {
    return new GatewayHttp(id, this);
  }

  // The configuration for the current request: the first `_rules_` entry matching its route, host or
  // service, else the global one. Properties are read only when rules exist.
  selectConfig(): GatewayConfig {
    if (this.config.rules.length == 0) return this.config.global;
    const route = host.getProperty(ROUTE_NAME);
    const cluster = host.getProperty(CLUSTER_NAME);
    let authority = host.getHeader(MapType.HttpRequestHeaders, ":authority");
    let hostName = authority != null ? authority : "";
    const colon = hostName.lastIndexOf(":");
    if (colon > 0 && hostName.indexOf("]") < colon) hostName = hostName.substring(0, colon);
    return this.config.select(route != null ? route : "", hostName, cluster != null ? cluster : "");
  }
}
