// The `prefixAffinity` object in its runtime form.
import { ModelPatterns } from "./model-patterns";
import { Settings } from "./settings";

// prefixAffinity.loadAware: the plugin picks the replica (routing/replica-picker.ts).
export class LoadAwarePolicy {
  enabled: bool = false;
  header: string = "";
  loadFactor: i32 = 125; // percent of the mean in-flight load a replica may take
  maxWaiting: i32 = 4;
  maxKvPermille: i32 = 950;
  reportTtlMs: i64 = 60000;
  discoverEvery: i32 = 16; // 0: never leave a request to Envoy's balancer
  scrapeIntervalMs: i64 = 1000; // 0: no scraping
  metricsPath: string = "/metrics";
}

export class AffinityPolicy {
  enabled: bool = false;
  header: string = "";
  prefixBytes: i32 = 0;
  models: ModelPatterns = new ModelPatterns([]);
  loadAware: LoadAwarePolicy = new LoadAwarePolicy();

  appliesTo(model: string): bool {
    return this.enabled && this.models.matches(model);
  }
}

export function compileAffinity(s: Settings): AffinityPolicy {
  const p = new AffinityPolicy();
  p.enabled = s.flag("prefixAffinity.enabled");
  p.header = s.text("prefixAffinity.header");
  p.prefixBytes = <i32>s.int("prefixAffinity.prefixBytes");
  p.models = new ModelPatterns(s.textList("prefixAffinity.models"));
  const l = p.loadAware;
  l.enabled = p.enabled && s.flag("prefixAffinity.loadAware.enabled");
  l.header = s.text("prefixAffinity.loadAware.header");
  l.loadFactor = <i32>s.int("prefixAffinity.loadAware.loadFactor");
  l.maxWaiting = <i32>s.int("prefixAffinity.loadAware.maxWaiting");
  l.maxKvPermille = <i32>s.int("prefixAffinity.loadAware.maxKvCacheUsage") * 10;
  l.reportTtlMs = s.int("prefixAffinity.loadAware.reportTtlMs");
  l.discoverEvery = <i32>s.int("prefixAffinity.loadAware.discoverEvery");
  l.scrapeIntervalMs = s.int("prefixAffinity.loadAware.scrapeIntervalMs");
  l.metricsPath = s.text("prefixAffinity.loadAware.metricsPath");
  return p;
}
