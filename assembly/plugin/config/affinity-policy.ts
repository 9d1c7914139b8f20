// The `prefixAffinity` object in its runtime form.
import { ModelPatterns } from "./model-patterns";
import { Settings } from "./settings";

export class AffinityPolicy {
  enabled: bool = false;
  header: string = "";
  prefixBytes: i32 = 0;
  models: ModelPatterns = new ModelPatterns([]);

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
  return p;
}
