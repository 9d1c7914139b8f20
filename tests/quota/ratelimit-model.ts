// envoyproxy/ratelimit's answers, modelled in memory for the in-process host tests (no process, a clock the
// test moves). Only what the plugin uses: descriptors carrying their own `limit`, fixed windows aligned to
// the epoch, per-descriptor hits_addend. tests/e2e/quota-service.test.ts checks it against the real
// service (same calls, same answers).
import { Code, UNIT_SECONDS, type DescriptorStatus, type RateLimitRequest, type RateLimitResponse } from "./ratelimit-wire.ts";

export class RatelimitModel {
  // Redis's keys and values, as the real service names them.
  readonly counters = new Map<string, number>();
  readonly requests: RateLimitRequest[] = [];

  constructor(
    readonly domains: string[] = ["llm-gateway"],
    readonly nowMs: () => number = Date.now,
  ) {}

  shouldRateLimit(req: RateLimitRequest): RateLimitResponse {
    this.requests.push(req);
    const nowS = Math.floor(this.nowMs() / 1000);
    const statuses: DescriptorStatus[] = req.descriptors.map((d) => {
      // An unknown domain has no limits, override or not (config_impl.go GetLimit).
      if (!this.domains.includes(req.domain) || d.limit === undefined) {
        return { code: Code.Ok, currentLimit: null, limitRemaining: 0, durationUntilResetMs: null };
      }
      const unitS = UNIT_SECONDS[d.limit.unit] ?? 1;
      const key = `${req.domain}_${d.entries.map(([k, v]) => `${k}_${v}_`).join("")}${Math.floor(nowS / unitS) * unitS}`;
      // utilities.go GetHitsAddends: a present per-descriptor value (0 too) wins, else the request's, at least 1.
      const hits = d.hitsAddend ?? Math.max(1, req.hitsAddend);
      const after = (this.counters.get(key) ?? 0) + hits;
      this.counters.set(key, after);
      const limit = d.limit.requestsPerUnit;
      const over = after > limit;
      return {
        code: over ? Code.OverLimit : Code.Ok,
        currentLimit: { requestsPerUnit: limit, unit: d.limit.unit, name: "" },
        limitRemaining: over ? 0 : limit - after,
        // utils.CalculateReset: whole seconds to the window's end.
        durationUntilResetMs: (unitS - (nowS % unitS)) * 1000,
      };
    });
    return { overallCode: statuses.some((s) => s.code === Code.OverLimit) ? Code.OverLimit : Code.Ok, statuses };
  }
}
