// Every upstream attempt's status is counted against the model and cluster that produced it (issue 13),
// under both fallback mechanisms, through the real Envoy: a primary's 503 and its backup's 200 are one
// 5xx for the primary and one 2xx for the backup; when every attempt fails, each attempt's 5xx, one local
// 5xx and one all_attempts_failed under the requested model, the fallback counter naming the last backup,
// and an ai_log entry listing the failed attempts.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSeed, post, type Seed } from "../harness/seed.ts";
import { clusterName } from "../harness/envoy-config.ts";
import { aiMetric, scrape, scrapeUntil, type Sample } from "../harness/metrics.ts";
import { nextAiLog } from "../harness/ai-log.ts";

const PRIMARY = "qwen2-1-5b";
const BACKUP = "gemma-2-2b";
const MESSAGES = [{ role: "user", content: "which backend answers" }];

// The change of one AI metric between two scrapes.
function delta(before: Sample[], after: Sample[], metric: string, model: string, extra: Record<string, string> = {}): number {
  return aiMetric(after, metric, model, extra) - aiMetric(before, metric, model, extra);
}

for (const mechanism of ["envoy", "dispatch"] as const) {
  describe(`per-attempt statuses (fallback.mechanism ${mechanism})`, () => {
    let seed: Seed;
    before(async () => {
      seed = await startSeed({
        pluginConfig: {
          models: [{ name: PRIMARY, fallback: [BACKUP] }, { name: BACKUP }],
          fallback: { mechanism, cooldown: { failures: 0 } },
        },
      });
    });
    after(async () => {
      await seed?.stop();
    });

    test("primary 503, backup 200: responses_upstream_5xx for the primary, responses_upstream_2xx for the backup", async () => {
      const before = await scrape(seed.gateway.adminUrl);
      const r = await post(
        `${seed.gateway.url}/v1/chat/completions`,
        { model: PRIMARY, messages: MESSAGES },
        {
          "x-stub-status": "503",
          "x-stub-target": PRIMARY,
        },
      );
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { model: string }).model, BACKUP);

      const after = await scrapeUntil(seed.gateway.adminUrl, (s) => delta(before, s, "responses_upstream_2xx", BACKUP) >= 1);
      assert.equal(delta(before, after, "responses_upstream_5xx", PRIMARY), 1);
      assert.equal(delta(before, after, "responses_upstream_2xx", BACKUP), 1);
      // Each against its own model's cluster.
      assert.equal(delta(before, after, "responses_upstream_5xx", PRIMARY, { ai_cluster: clusterName(PRIMARY) }), 1);
      assert.equal(delta(before, after, "responses_upstream_2xx", BACKUP, { ai_cluster: clusterName(BACKUP) }), 1);
      // Nothing else: no 2xx for the primary, no 5xx for the backup, no local answer.
      assert.equal(delta(before, after, "responses_upstream_2xx", PRIMARY), 0);
      assert.equal(delta(before, after, "responses_upstream_5xx", BACKUP), 0);
      assert.equal(delta(before, after, "responses_local_5xx", PRIMARY), 0);
      assert.equal(delta(before, after, "all_attempts_failed", PRIMARY), 0);
      assert.equal(delta(before, after, "fallback_to_reason", PRIMARY, { ai_fallback_to: BACKUP }), 1);
    });

    test("every attempt fails: a 5xx per attempt per model, one local 5xx and all_attempts_failed for the requested model", async () => {
      const before = await scrape(seed.gateway.adminUrl);
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, { model: PRIMARY, messages: MESSAGES }, { "x-stub-status": "503" });
      assert.equal(r.status, 503);
      const body = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "all_attempts_failed");

      const after = await scrapeUntil(seed.gateway.adminUrl, (s) => delta(before, s, "all_attempts_failed", PRIMARY) >= 1);
      assert.equal(delta(before, after, "responses_upstream_5xx", PRIMARY), 1);
      assert.equal(delta(before, after, "responses_upstream_5xx", BACKUP), 1);
      assert.equal(delta(before, after, "responses_upstream_5xx", PRIMARY, { ai_cluster: clusterName(PRIMARY) }), 1);
      assert.equal(delta(before, after, "responses_upstream_5xx", BACKUP, { ai_cluster: clusterName(BACKUP) }), 1);
      assert.equal(delta(before, after, "responses_local_5xx", PRIMARY), 1, "the local error under the requested model");
      assert.equal(delta(before, after, "responses_local_5xx", BACKUP), 0, "not under the last backup");
      assert.equal(delta(before, after, "all_attempts_failed", PRIMARY), 1);
      assert.equal(delta(before, after, "all_attempts_failed", BACKUP), 0);
      assert.equal(delta(before, after, "fallback_to_reason", PRIMARY, { ai_fallback_to: BACKUP }), 1, "to = the last backup tried");
      assert.equal(delta(before, after, "fallback_to_reason", PRIMARY, { ai_fallback_to: "none" }), 0);

      const log = await nextAiLog(seed.gateway, (l) => Array.isArray(l["attempts_failed"]));
      assert.deepEqual(log["attempts_failed"], [`${PRIMARY} (status 503)`, `${BACKUP} (status 503)`]);
      assert.equal(log["requested_model"], PRIMARY);
      assert.equal(log["status"], 503);
    });

    test("every attempt unreachable: the fallback counter names the last backup tried, all_attempts_failed the requested model", async () => {
      const before = await scrape(seed.gateway.adminUrl);
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, { model: PRIMARY, messages: MESSAGES }, { "x-stub-drop": "1" });
      assert.equal(r.status, 503);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, "all_attempts_failed");
      const after = await scrapeUntil(seed.gateway.adminUrl, (s) => delta(before, s, "all_attempts_failed", PRIMARY) >= 1);
      assert.equal(delta(before, after, "fallback_to_reason", PRIMARY, { ai_fallback_to: BACKUP }), 1, "to = the last backup tried");
      assert.equal(delta(before, after, "fallback_to_reason", PRIMARY, { ai_fallback_to: PRIMARY }), 0, "not the primary itself");
      assert.equal(delta(before, after, "responses_local_5xx", PRIMARY), 1);
    });
  });
}
