// The plugin's root context: owns the compiled configuration of one Envoy filter config, the VM-wide
// gauges, and the per-request deadlines. Which HTTP context serves a request (the request or the
// attempt stage) is given by the entry file, so this module does not depend on the stages.
import { RootContext, HttpContext } from "../abi/context";
import { Deadlines } from "../abi/deadlines";
import { BufferType, MapType, MetricType } from "../abi/enums";
import * as host from "../abi/host";
import { GatewayConfig, PluginConfig, STAGE_ATTEMPT, parseConfig } from "./config/gateway-config";
import { CLUSTER_NAME, ROUTE_NAME } from "./envoy-names";
import { ReplicaPicker } from "./routing/replica-picker";
import { ReplicaScraper, Scrape } from "./routing/replica-scraper";
import { msOf } from "../util/time";
import { vmBudget } from "../util/budget";

export const CONFIG_APPLIED = "llm_gateway.configurations_applied";
export const CONFIG_REFUSED = "llm_gateway.configurations_refused";

export const VM_MEMORY_BYTES = "llm_gateway.vm_memory_bytes";
// The memory budget (util/budget.ts): bytes charged now, and the most ever charged.
export const BUDGET_USED_BYTES = "llm_gateway.memory_budget_used_bytes";
export const BUDGET_PEAK_BYTES = "llm_gateway.memory_budget_peak_bytes";
// Requests the budget could not take: answered 503 server_overloaded (shed), or sent on without the
// dispatched fallback's protection (unprotected, reason memory_budget).
export const REQUESTS_SHED = "llm_gateway.requests_shed.reason.memory_budget";
export const FALLBACK_UNPROTECTED = "llm_gateway.fallback_unprotected.reason.memory_budget";

// Quotas (docs/quotas.md): the rate-limit service could not answer (admitted or refused as
// quotas.service.onUnavailable says), a charge could not be sent, a local rule had no slot left.
export const QUOTA_UNAVAILABLE_ALLOWED = "llm_gateway.quota.service_unavailable.outcome.allowed";
export const QUOTA_UNAVAILABLE_REFUSED = "llm_gateway.quota.service_unavailable.outcome.refused";
export const QUOTA_CHARGE_FAILED = "llm_gateway.quota.charge_failed";
export const QUOTA_TABLE_FULL = "llm_gateway.quota.table_full";
export const enum QuotaEvent {
  UnavailableAllowed = 0,
  UnavailableRefused = 1,
  ChargeFailed = 2,
  TableFull = 3,
}

// Load-aware replica picking (docs/replica-routing.md#load-aware-picking): requests left to Envoy's
// balancer (discovery, or no replica known), picks that passed over the key's first replica because it
// was saturated or at the in-flight bound, named replicas that failed (another answered), scrapes that
// brought no figures.
export const REPLICA_LEFT_TO_ENVOY = "llm_gateway.replica_pick.left_to_envoy";
export const REPLICA_SATURATED_SKIPPED = "llm_gateway.replica_pick.skipped.reason.saturated";
export const REPLICA_BOUND_SKIPPED = "llm_gateway.replica_pick.skipped.reason.load_bound";
export const REPLICA_FAILED = "llm_gateway.replica_pick.failed";
export const REPLICA_SCRAPE_FAILED = "llm_gateway.replica_scrape.failed";
export const enum ReplicaEvent {
  LeftToEnvoy = 0,
  SaturatedSkipped = 1,
  BoundSkipped = 2,
  Failed = 3,
  ScrapeFailed = 4,
}

// Each event enum's counters, in the enum's order (defineCounters fills the ids).
const QUOTA_COUNTERS: StaticArray<string> = [QUOTA_UNAVAILABLE_ALLOWED, QUOTA_UNAVAILABLE_REFUSED, QUOTA_CHARGE_FAILED, QUOTA_TABLE_FULL];
const REPLICA_COUNTERS: StaticArray<string> = [
  REPLICA_LEFT_TO_ENVOY,
  REPLICA_SATURATED_SKIPPED,
  REPLICA_BOUND_SKIPPED,
  REPLICA_FAILED,
  REPLICA_SCRAPE_FAILED,
];

function defineCounters(ids: StaticArray<u32>, names: StaticArray<string>): void {
  for (let i = 0; i < names.length; i++) unchecked((ids[i] = host.defineMetric(MetricType.Counter, unchecked(names[i]))));
}

// Charges followed at once (each ends within quotas.service.timeoutMs); past it one is not followed.
const MAX_TRACKED_CHARGES: i32 = 1024;

// How often deadlines (fallback.firstByteTimeoutMs) are checked.
const DEADLINE_TICK_MS: u32 = 50;

export type StageFactory = (id: u32, root: GatewayRoot) => HttpContext;

export class GatewayRoot extends RootContext {
  config: PluginConfig = new PluginConfig();
  deadlines: Deadlines = new Deadlines(DEADLINE_TICK_MS);
  picker: ReplicaPicker = new ReplicaPicker(); // prefixAffinity.loadAware: this VM's requests in flight per replica
  private scraper: ReplicaScraper = new ReplicaScraper();
  private memoryGauge: u32 = host.NO_METRIC;
  private budgetUsedGauge: u32 = host.NO_METRIC;
  private budgetPeakGauge: u32 = host.NO_METRIC;
  private shedCounter: u32 = host.NO_METRIC;
  private unprotectedCounter: u32 = host.NO_METRIC;
  private quotaCounters: StaticArray<u32> = new StaticArray<u32>(QUOTA_COUNTERS.length);
  private replicaCounters: StaticArray<u32> = new StaticArray<u32>(REPLICA_COUNTERS.length);
  private charges: Array<u32> = new Array<u32>();
  private requests: u32 = 0;
  private attemptStage: bool = false;

  constructor(
    id: u32,
    private requestStage: StageFactory,
    private attemptStageFactory: StageFactory,
  ) {
    super(id);
  }

  onTick(): void {
    this.deadlines.expire();
    this.scraper.tick(this.config.global, msOf(host.nowNanos()));
  }

  onRootHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, _numTrailers: u32): void {
    if (this.scraper.onResponse(token, numHeaders, bodySize, msOf(host.nowNanos())) == Scrape.Failed)
      this.countReplica(ReplicaEvent.ScrapeFailed);
  }

  countShed(): void {
    host.incrementMetric(this.shedCounter, 1);
  }
  countUnprotected(): void {
    host.incrementMetric(this.unprotectedCounter, 1);
  }
  countQuota(e: QuotaEvent): void {
    host.incrementMetric(this.quotaCounters[e], 1);
  }
  countReplica(e: ReplicaEvent): void {
    host.incrementMetric(this.replicaCounters[e], 1);
  }

  // Quota charges in flight (sent as the root: HttpContext.dispatchRootGrpcCall), so that a failed one
  // is counted and an admission answer that arrives after its request ended is not.
  noteCharge(token: u32): void {
    if (this.charges.length < MAX_TRACKED_CHARGES) this.charges.push(token);
  }

  onGrpcReceive(token: u32, _size: u32): void {
    this.endCharge(token);
  }

  onGrpcClose(token: u32, status: u32): void {
    if (this.endCharge(token) && status != 0) this.countQuota(QuotaEvent.ChargeFailed);
  }

  private endCharge(token: u32): bool {
    const i = this.charges.indexOf(token);
    if (i < 0) return false;
    unchecked((this.charges[i] = unchecked(this.charges[this.charges.length - 1])));
    this.charges.pop();
    return true;
  }

  // The VM's linear memory, so operators can see it stay flat (Higress users have met Wasm memory
  // exhaustion under streaming load). Recorded by the VMs that serve requests (the workers', not the
  // main thread's), every 16th request; with several workers the gauge shows the last writer's.
  noteRequestDone(): void {
    if ((this.requests++ & 15) == 0) {
      host.recordMetric(this.memoryGauge, (<u64>memory.size()) << 16);
      host.recordMetric(this.budgetUsedGauge, <u64>vmBudget.used);
      host.recordMetric(this.budgetPeakGauge, <u64>vmBudget.peak);
    }
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
    this.budgetUsedGauge = host.defineMetric(MetricType.Gauge, BUDGET_USED_BYTES);
    this.budgetPeakGauge = host.defineMetric(MetricType.Gauge, BUDGET_PEAK_BYTES);
    this.shedCounter = host.defineMetric(MetricType.Counter, REQUESTS_SHED);
    this.unprotectedCounter = host.defineMetric(MetricType.Counter, FALLBACK_UNPROTECTED);
    if (res.config!.global.quotas.enabled || res.config!.rules.length > 0) defineCounters(this.quotaCounters, QUOTA_COUNTERS);
    if (res.config!.global.affinity.loadAware.enabled) defineCounters(this.replicaCounters, REPLICA_COUNTERS);
    this.config = res.config!;
    this.attemptStage = this.config.global.stage == STAGE_ATTEMPT;
    const loadAware = this.config.global.affinity.loadAware;
    // The scraper runs on the deadlines' tick (the same period, so either may set it).
    if (loadAware.enabled && loadAware.scrapeIntervalMs > 0) host.setTickPeriodMs(DEADLINE_TICK_MS);
    // One budget per VM (the request and attempt stages may share it): the last configuration sets it.
    vmBudget.limit = <i64>this.config.global.memoryBudgetBytes;
    host.logInfo(
      "llm-gateway: configured " +
        this.config.global.models.length.toString() +
        " model routes, " +
        this.config.rules.length.toString() +
        " rules, stage " +
        this.config.global.stage,
    );
    return true;
  }

  createHttpContext(id: u32): HttpContext | null {
    return this.attemptStage ? this.attemptStageFactory(id, this) : this.requestStage(id, this);
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
