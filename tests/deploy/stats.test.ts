// deploy-scripts/render/envoy/stats.ts without an Envoy: the stats tags applied the way Envoy applies them (every
// regex against the full stat name, each first group cut out, each second group a label value), and the bucket
// rules as Envoy picks them (the first whose suffix matches). The real Envoy's output for these names is checked by
// tests/e2e/dashboard.test.ts and tests/deploy/higress-bootstrap.test.ts (the merged configuration).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  GEN_AI_REQUEST_DURATION_MS_BUCKETS,
  GEN_AI_TIME_PER_OUTPUT_TOKEN_MS_BUCKETS,
  GEN_AI_TIME_TO_FIRST_TOKEN_MS_BUCKETS,
  GEN_AI_TOKEN_USAGE_BUCKETS,
  PLUGIN_HISTOGRAM_BUCKETS,
  e12Buckets,
  statsConfig,
} from "../../deploy-scripts/render/envoy/stats.ts";

type Tag = { tag_name: string; regex: string };

/** The Prometheus name and labels Envoy makes of a Wasm stat name under these tags. */
function prometheus(stat: string, tags: Tag[]): { name: string; labels: Record<string, string> } {
  const full = `wasmcustom.${stat}`;
  const cut = new Array<boolean>(full.length).fill(false);
  const labels: Record<string, string> = {};
  for (const t of tags) {
    const m = new RegExp(t.regex, "d").exec(full);
    if (m === null || m[1] === undefined) continue;
    const [from, to] = m.indices![1]!;
    for (let i = from; i < to; i++) cut[i] = true;
    labels[t.tag_name] = m[2] ?? "";
  }
  const left = [...full].filter((_, i) => !cut[i]).join("");
  return { name: left.replace(/^wasmcustom\./, "").replace(/[^a-zA-Z0-9_]/g, "_"), labels };
}

const tags = statsConfig()["stats_tags"] as Tag[];
const P = "gen_ai.operation.chat.request_model.qwen2-1-5b.response_model.Qwen_Qwen2-1_5B-Instruct.";
const MODELS = { gen_ai_operation_name: "chat", gen_ai_request_model: "qwen2-1-5b", gen_ai_response_model: "Qwen_Qwen2-1_5B-Instruct" };

describe("the gen_ai stats tags", () => {
  it("turn the four histograms' names into OpenTelemetry's names and attributes", () => {
    assert.deepEqual(prometheus(`${P}token_type.input.client.token.usage`, tags), {
      name: "gen_ai_client_token_usage",
      labels: { ...MODELS, gen_ai_token_type: "input" },
    });
    for (const h of ["request.duration", "time_to_first_token", "time_per_output_token"])
      assert.deepEqual(prometheus(`${P}server.${h}.milliseconds`, tags), {
        name: `gen_ai_server_${h.replace(".", "_")}_milliseconds`,
        labels: MODELS,
      });
  });

  it("hold when a model is named like a name segment", () => {
    const stat =
      "gen_ai.operation.text_completion.request_model.response_model.response_model.token_type.token_type.output.client.token.usage";
    assert.deepEqual(prometheus(stat, tags), {
      name: "gen_ai_client_token_usage",
      labels: {
        gen_ai_operation_name: "text_completion",
        gen_ai_request_model: "response_model",
        gen_ai_response_model: "token_type",
        gen_ai_token_type: "output",
      },
    });
  });

  it("leave the per-request metrics to Higress's tags", () => {
    assert.deepEqual(prometheus("route.r.upstream.c.model.m.consumer.none.metric.first_answer_token_ms", tags), {
      name: "route_upstream_model_consumer_metric_first_answer_token_ms",
      labels: { ai_route: "r", ai_cluster: "c", ai_model: "m", ai_consumer: "none" },
    });
  });
});

describe("the histogram buckets", () => {
  function bucketsOf(stat: string): number[] | undefined {
    return PLUGIN_HISTOGRAM_BUCKETS.find((r) => `wasmcustom.${stat}`.endsWith(r.match.suffix))?.buckets;
  }

  it("E12: the preferred numbers, at most 25% apart, integer products where they are integers", () => {
    const ms = e12Buckets(10, 600000);
    assert.deepEqual(ms.slice(0, 13), [10, 12, 15, 18, 22, 27, 33, 39, 47, 56, 68, 82, 100]);
    assert.deepEqual(ms.slice(-3), [470000, 560000, 600000]);
    assert.deepEqual(e12Buckets(1, 1000).slice(0, 4), [1, 1.2, 1.5, 1.8]);
    assert.equal(e12Buckets(1, 1000).at(-1), 1000);
    for (const b of [ms, e12Buckets(1, 1000)])
      for (let i = 1; i < b.length; i++) assert.ok(b[i]! / b[i - 1]! <= 1.25 && b[i]! > b[i - 1]!, `${b[i - 1]} -> ${b[i]}`);
  });

  it("each histogram gets its own rule", () => {
    const route = "route.r.upstream.c.model.m.consumer.none.metric.";
    for (const h of ["first_token_ms", "first_answer_token_ms", "duration_ms"])
      assert.deepEqual(bucketsOf(route + h), e12Buckets(10, 600000));
    assert.deepEqual(bucketsOf(`${route}inter_token_ms`), e12Buckets(1, 1000));
    assert.deepEqual(bucketsOf(`${P}token_type.output.client.token.usage`), GEN_AI_TOKEN_USAGE_BUCKETS);
    assert.deepEqual(bucketsOf(`${P}server.request.duration.milliseconds`), GEN_AI_REQUEST_DURATION_MS_BUCKETS);
    assert.deepEqual(bucketsOf(`${P}server.time_to_first_token.milliseconds`), GEN_AI_TIME_TO_FIRST_TOKEN_MS_BUCKETS);
    assert.deepEqual(bucketsOf(`${P}server.time_per_output_token.milliseconds`), GEN_AI_TIME_PER_OUTPUT_TOKEN_MS_BUCKETS);
  });
});
