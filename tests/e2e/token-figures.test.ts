// Token and latency figures a billing team can trust (issue 13), through the real Envoy, read from
// /stats/prometheus as exact counts: cut streams are billed for what reached the client; answers without
// usage are estimated from the generated text; reasoning tokens and the time to the first answer token
// are their own figures; OpenTelemetry's GenAI histograms carry the spec's labels and buckets; a client
// cannot name its own consumer unless the configuration trusts the header.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { startSeed, post, type Seed } from "../harness/seed.ts";
import { aiMetric, scrapeUntil, type Sample } from "../harness/metrics.ts";
import { contentEvents, nextAiLog, sseData } from "../harness/ai-log.ts";
import { countPromptTokens, expectedText, tokenTexts } from "../backends/tokens.ts";

const SERVED = "gemma-2-2b";
const CHAT = "/v1/chat/completions";

// The plugin's estimate: ceil(UTF-8 bytes / 4), at least 1 (spec: "ceil(UTF-8 bytes / 4)").
function estimate(text: string): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(text, "utf8") / 4));
}

// Prompt estimate of a chat body: the message contents' bytes (not the JSON around them).
function promptEstimate(messages: readonly { content: string }[]): number {
  return estimate(messages.map((m) => m.content).join(""));
}

const MESSAGES = [{ role: "user", content: "how many tokens will this answer cost the team" }];
const PROMPT_ESTIMATE = promptEstimate(MESSAGES);
const PROMPT_TOKENS = countPromptTokens("chat", { messages: MESSAGES });

// Each test sends to its own model name (an alias served by gemma-2-2b), so its counts start at zero.
const ALIASES = [
  "cut-upstream",
  "cut-client",
  "json-nousage",
  "json-nousage-reasoning",
  "est-real",
  "est-none",
  "est-stream",
  "reason-stream",
  "reason-json",
  "reason-unreported",
  "genai",
  "genai-text",
  "buckets",
  "consumer-default",
  "consumer-rule",
];

const TRUSTED_HOST = "trusted.example.test";

function aliasConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    models: [{ name: "qwen2-1-5b" }, { name: SERVED }, ...ALIASES.map((n) => ({ name: `t-${n}`, route: SERVED, upstreamModel: SERVED }))],
    ...extra,
  };
}

let seed: Seed;
const url = (path = CHAT): string => `${seed.gateway.url}${path}`;
const admin = (): string => seed.gateway.adminUrl;

before(async () => {
  seed = await startSeed({
    pluginConfig: aliasConfig({ _rules_: [{ _match_domain_: [TRUSTED_HOST], trustConsumerHeader: true }] }),
  });
});
after(async () => {
  await seed?.stop();
});

// Reads a streamed answer until it ends or breaks; the events that arrived either way.
async function readStream(r: Response): Promise<{ data: string[]; broke: boolean }> {
  const reader = r.body?.getReader();
  const decoder = new TextDecoder();
  let body = "";
  let broke = false;
  if (reader !== undefined) {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        body += decoder.decode(value, { stream: true });
      }
    } catch {
      broke = true;
    }
  }
  return { data: sseData(body), broke };
}

// A streaming client that goes away once it has read `k` answer-content events; resolves with what it read.
function readThenDisconnect(body: unknown, headers: Record<string, string>, k: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = request(url(), { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
        const data = sseData(text.slice(0, text.lastIndexOf("\n\n") + 2));
        if (contentEvents(data) >= k) {
          req.destroy();
          resolve(data);
        }
      });
      res.on("end", () => reject(new Error("the stream ended before the client went away")));
    });
    req.on("error", () => undefined); // our own destroy()
    req.end(JSON.stringify(body));
  });
}

function genAi(s: Sample[], name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const x of s) {
    if (x.name !== name) continue;
    if (Object.entries(labels).some(([k, v]) => x.labels[k] !== v)) continue;
    sum += x.value;
  }
  return sum;
}

// The `le` bounds of a histogram's buckets (without +Inf), as numbers, for one label set.
function bucketBounds(s: Sample[], name: string, labels: Record<string, string>): number[] {
  return s
    .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v) && x.labels["le"] !== "+Inf")
    .map((x) => Number(x.labels["le"]))
    .sort((a, b) => a - b);
}

// Envoy's histograms keep their samples in a log-linear histogram (circllhist: two significant digits)
// and report _sum from its bins, not the exact total: each sample may be off by up to its bin's width
// (0.1 for 1-9, 1 for 10-99, 10 for 100-999, ...). _count and _bucket are exact.
function sumTolerance(values: readonly number[]): number {
  return values.reduce((t, v) => t + (v < 1 ? 0 : 10 ** (Math.floor(Math.log10(v)) - 1)), 0);
}

function assertHistogramSum(actual: number, values: readonly number[], what: string): void {
  const exact = values.reduce((a, v) => a + v, 0);
  const tolerance = sumTolerance(values);
  assert.ok(Math.abs(actual - exact) <= tolerance, `${what}: _sum ${actual}, samples sum to ${exact} (Envoy's bins allow ±${tolerance})`);
}

// The E12 preferred numbers from `from` to `to` (spec: our own millisecond histograms), `to` included.
function e12(from: number, to: number): number[] {
  const out: number[] = [];
  for (let decade = 1; decade <= to; decade *= 10) {
    for (const m of [1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2]) {
      const v = Math.round(m * decade * 10) / 10;
      if (v >= from && v <= to) out.push(v);
    }
  }
  if (out[out.length - 1] !== to) out.push(to);
  return out;
}

describe("cut streams are billed for what reached the client", () => {
  const K = 4;

  test("upstream reset after K content events: output_token += K, input_token += the prompt estimate, usage_estimated", async () => {
    const model = "t-cut-upstream";
    // The role chunk, then K content events, then the backend resets the connection.
    const r = await post(url(), { model, messages: MESSAGES, stream: true }, { "x-stub-cut-after": String(K + 1) });
    assert.equal(r.status, 200);
    const { data } = await readStream(r);
    assert.equal(contentEvents(data), K, "the client received K content events");
    assert.ok(!data.includes("[DONE]"));

    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "usage_estimated", model) >= 1);
    assert.equal(aiMetric(s, "output_token", model), K);
    assert.equal(aiMetric(s, "input_token", model), PROMPT_ESTIMATE);
    assert.equal(aiMetric(s, "total_token", model), K + PROMPT_ESTIMATE);
    assert.equal(aiMetric(s, "usage_estimated", model), 1);
    assert.equal(aiMetric(s, "stream_incomplete", model), 1);

    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model);
    assert.equal(log["output_token"], K);
    assert.equal(log["input_token"], PROMPT_ESTIMATE);
    assert.equal(log["usage_estimated"], true);
    assert.equal(log["stream_complete"], false);
  });

  test("a client that disconnects after reading K content events: output_token += K, usage_estimated", async () => {
    const model = "t-cut-client";
    // Tokens 300 ms apart and 40 of them: the client is gone long before the next one is generated.
    const headers = { "x-stub-token-interval-ms": "300", "x-stub-completion-tokens": "40" };
    const data = await readThenDisconnect({ model, messages: MESSAGES, stream: true }, headers, K);
    assert.equal(contentEvents(data), K);

    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "usage_estimated", model) >= 1);
    assert.equal(aiMetric(s, "output_token", model), K);
    assert.equal(aiMetric(s, "input_token", model), PROMPT_ESTIMATE);
    assert.equal(aiMetric(s, "usage_estimated", model), 1);

    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model);
    assert.equal(log["output_token"], K);
    assert.equal(log["input_token"], PROMPT_ESTIMATE);
    assert.equal(log["usage_estimated"], true);
  });
});

describe("non-streamed answers without usage are estimated from the generated text", () => {
  test("output_token = ceil(UTF-8 bytes of the generated text / 4); input_token from the message contents", async () => {
    const model = "t-json-nousage";
    const tokens = 23;
    const r = await post(url(), { model, messages: MESSAGES }, { "x-stub-no-usage": "1", "x-stub-completion-tokens": String(tokens) });
    const body = (await r.json()) as { usage?: unknown; choices: { message: { content: string } }[] };
    assert.equal(body.usage, undefined, "the backend reported no usage");
    const text = expectedText(SERVED, tokens);
    assert.equal(body.choices[0]?.message.content, text);

    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "usage_estimated", model) >= 1);
    assert.equal(aiMetric(s, "output_token", model), estimate(text));
    assert.equal(aiMetric(s, "input_token", model), PROMPT_ESTIMATE);
    assert.equal(aiMetric(s, "usage_estimated", model), 1);
    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model);
    assert.equal(log["output_token"], estimate(text));
    assert.equal(log["usage_estimated"], true);
  });

  test("the reasoning text counts as generated text too", async () => {
    const model = "t-json-nousage-reasoning";
    const tokens = 23;
    const r = await post(
      url(),
      { model, messages: MESSAGES },
      { "x-stub-no-usage": "1", "x-stub-completion-tokens": String(tokens), "x-stub-reasoning-tokens": "9" },
    );
    const body = (await r.json()) as { choices: { message: { content: string; reasoning: string } }[] };
    const texts = tokenTexts(SERVED, tokens);
    assert.equal(body.choices[0]?.message.reasoning, texts.slice(0, 9).join(""));
    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "usage_estimated", model) >= 1);
    assert.equal(aiMetric(s, "output_token", model), estimate(texts.join("")));
    assert.equal(aiMetric(s, "reasoning_token", model), 0, "no reasoning_tokens without usage");
  });

  test("the estimate's error against the stub's own token counts, stated", async () => {
    // Shapes: a system and a user message of 3 to 200 English words, answers of 8 and 512 tokens; the
    // same requests once with usage (the stub's counts: one token per word) and once without.
    const WORDS = "please summarize the quarterly revenue report for the board and list every risk you see".split(" ");
    const prompt = (n: number): string => Array.from({ length: n }, (_, i) => WORDS[i % WORDS.length]).join(" ");
    const shapes: { messages: { role: string; content: string }[]; tokens: number }[] = [];
    for (const words of [3, 12, 48, 200]) {
      for (const tokens of [8, 512]) {
        shapes.push({
          messages: [
            { role: "system", content: "you are a careful analyst" },
            { role: "user", content: prompt(words) },
          ],
          tokens,
        });
      }
    }
    const real = { prompt: 0, output: 0 };
    const oracle = { prompt: 0, output: 0 };
    for (const { messages, tokens } of shapes) {
      const headers = { "x-stub-completion-tokens": String(tokens) };
      const withUsage = (await (await post(url(), { model: "t-est-real", messages }, headers)).json()) as {
        usage: { prompt_tokens: number; completion_tokens: number };
      };
      real.prompt += withUsage.usage.prompt_tokens;
      real.output += withUsage.usage.completion_tokens;
      await (await post(url(), { model: "t-est-none", messages }, { ...headers, "x-stub-no-usage": "1" })).text();
      await (await post(url(), { model: "t-est-stream", messages, stream: true }, { ...headers, "x-stub-no-usage": "1" })).text();
      oracle.prompt += promptEstimate(messages);
      oracle.output += estimate(expectedText(SERVED, tokens));
    }
    const n = shapes.length;
    const s = await scrapeUntil(
      admin(),
      (x) => aiMetric(x, "usage_estimated", "t-est-none") >= n && aiMetric(x, "usage_estimated", "t-est-stream") >= n,
    );
    assert.equal(aiMetric(s, "input_token", "t-est-real"), real.prompt);
    assert.equal(aiMetric(s, "output_token", "t-est-real"), real.output);
    assert.equal(aiMetric(s, "input_token", "t-est-none"), oracle.prompt);
    assert.equal(aiMetric(s, "output_token", "t-est-none"), oracle.output);
    assert.equal(aiMetric(s, "input_token", "t-est-stream"), oracle.prompt);
    assert.equal(aiMetric(s, "output_token", "t-est-stream"), real.output, "streams: one token per content event, exact");
    const ratio = (a: number, b: number): string => (a / b).toFixed(2);
    console.log(
      `# estimate error, ${n} chat requests (system + user message of 3-200 English words, answers of 8 and 512 tokens), ` +
        `against the stub's counts (one token per word): JSON answers without usage: output estimate/real = ` +
        `${ratio(oracle.output, real.output)} (${oracle.output}/${real.output}), prompt estimate/real = ` +
        `${ratio(oracle.prompt, real.prompt)} (${oracle.prompt}/${real.prompt}); streams without usage: output ` +
        `${ratio(real.output, real.output)} (exact), prompt ${ratio(oracle.prompt, real.prompt)}`,
    );
  });
});

describe("reasoning tokens and the first answer token", () => {
  const N = 4;
  const TTFT_MS = 100;
  const INTERVAL_MS = 120;

  test("a streamed reasoning answer: reasoning_token += N; first_answer_token_ms after first_token_ms by the reasoning", async () => {
    const model = "t-reason-stream";
    const r = await post(
      url(),
      { model, messages: MESSAGES, stream: true },
      {
        "x-stub-reasoning-tokens": String(N),
        "x-stub-completion-tokens": "10",
        "x-stub-ttft-ms": String(TTFT_MS),
        "x-stub-token-interval-ms": String(INTERVAL_MS),
      },
    );
    const { data } = await readStream(r);
    assert.equal(data.at(-1), "[DONE]");
    assert.equal(contentEvents(data), 10 - N, "answer content after the reasoning");

    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "first_answer_token_ms_count", model) >= 1);
    assert.equal(aiMetric(s, "reasoning_token", model), N);
    assert.equal(aiMetric(s, "output_token", model), 10, "reasoning tokens are output tokens too");
    assert.equal(aiMetric(s, "first_token_ms_count", model), 1);
    assert.equal(aiMetric(s, "first_answer_token_ms_count", model), 1);
    const first = aiMetric(s, "first_token_ms_sum", model);
    const answer = aiMetric(s, "first_answer_token_ms_sum", model);
    // The stub sends the first answer token N intervals after the first (reasoning) token.
    assert.ok(first >= TTFT_MS, `first_token_ms ${first}`);
    assert.ok(answer >= first + (N - 1) * INTERVAL_MS, `first_answer_token_ms ${answer}, first_token_ms ${first}`);

    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model);
    assert.equal(log["reasoning_token"], N);
    assert.equal(typeof log["first_answer_token_ms"], "number");
    assert.ok((log["first_answer_token_ms"] as number) >= (log["llm_first_token_duration"] as number) + (N - 1) * INTERVAL_MS);
  });

  test("a non-streamed reasoning answer: reasoning_token counted; no first-answer time (streams only)", async () => {
    const model = "t-reason-json";
    const r = await post(url(), { model, messages: MESSAGES }, { "x-stub-reasoning-tokens": String(N) });
    const body = (await r.json()) as { usage: { completion_tokens_details: { reasoning_tokens: number } } };
    assert.equal(body.usage.completion_tokens_details.reasoning_tokens, N);
    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "duration_ms_count", model) >= 1);
    assert.equal(aiMetric(s, "reasoning_token", model), N);
    assert.equal(aiMetric(s, "first_answer_token_ms_count", model), 0);
    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model);
    assert.equal(log["reasoning_token"], N);
    assert.equal(log["first_answer_token_ms"], null);
  });

  test("a server that does not report reasoning tokens: reasoning_token null in ai_log, the first answer still timed", async () => {
    const model = "t-reason-unreported";
    const r = await post(
      url(),
      { model, messages: MESSAGES, stream: true },
      { "x-stub-reasoning-tokens": String(N), "x-stub-reasoning-usage": "0", "x-stub-token-interval-ms": "50" },
    );
    await r.text();
    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "first_answer_token_ms_count", model) >= 1);
    assert.equal(aiMetric(s, "reasoning_token", model), 0);
    assert.equal(aiMetric(s, "usage_estimated", model), 0);
    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model);
    assert.equal(log["reasoning_token"], null);
    assert.ok((log["first_answer_token_ms"] as number) >= (log["llm_first_token_duration"] as number));
  });
});

describe("OpenTelemetry GenAI histograms", () => {
  const TOKEN_USAGE = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
  const REQUEST_DURATION = [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920];
  const TTFT = [1, 5, 10, 20, 40, 60, 80, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
  const TPOT = [10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2500];

  test("token usage, request duration, TTFT and time per output token: labels, exact counts and sums, the spec's buckets", async () => {
    const model = "t-genai";
    const sent: { prompt: number; output: number }[] = [];
    for (const [body, headers] of [
      [{ model, messages: MESSAGES }, { "x-stub-completion-tokens": "3" }],
      [{ model, messages: [{ role: "user", content: "a longer question with more words in it" }] }, { "x-stub-completion-tokens": "300" }],
      [
        { model, messages: MESSAGES, stream: true, stream_options: { include_usage: true } },
        { "x-stub-completion-tokens": "6", "x-stub-token-interval-ms": "20" },
      ],
    ] as const) {
      const r = await post(url(), body, headers);
      const usage = body.stream
        ? (JSON.parse(sseData(await r.text()).at(-2) ?? "{}") as { usage: { prompt_tokens: number; completion_tokens: number } }).usage
        : ((await r.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
      sent.push({ prompt: usage.prompt_tokens, output: usage.completion_tokens });
    }
    // A failed request is not a GenAI operation.
    await (await post(url(), { model, messages: MESSAGES }, { "x-stub-status": "503" })).text();

    const labels = { gen_ai_operation_name: "chat", gen_ai_request_model: model, gen_ai_response_model: SERVED };
    const input = { ...labels, gen_ai_token_type: "input" };
    const output = { ...labels, gen_ai_token_type: "output" };
    const s = await scrapeUntil(admin(), (x) => genAi(x, "gen_ai_server_request_duration_milliseconds_count", labels) >= 3);

    assert.equal(genAi(s, "gen_ai_client_token_usage_count", input), 3);
    assertHistogramSum(
      genAi(s, "gen_ai_client_token_usage_sum", input),
      sent.map((x) => x.prompt),
      "input tokens",
    );
    assert.equal(genAi(s, "gen_ai_client_token_usage_count", output), 3);
    assert.deepEqual(
      sent.map((x) => x.output),
      [3, 300, 6],
    );
    assertHistogramSum(genAi(s, "gen_ai_client_token_usage_sum", output), [3, 300, 6], "output tokens");
    // Cumulative buckets: 3 ≤ 4 < 6 ≤ 16 < 300 ≤ 1024.
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...output, le: "4" }), 1);
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...output, le: "16" }), 2);
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...output, le: "256" }), 2);
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...output, le: "1024" }), 3);
    assert.equal(genAi(s, "gen_ai_server_request_duration_milliseconds_count", labels), 3);
    assert.equal(genAi(s, "gen_ai_server_time_to_first_token_milliseconds_count", labels), 1, "streams only");
    assert.equal(genAi(s, "gen_ai_server_time_per_output_token_milliseconds_count", labels), 1, "streams of more than one token");
    assert.ok(genAi(s, "gen_ai_server_time_per_output_token_milliseconds_sum", labels) >= 15, "tokens 20 ms apart");

    assert.deepEqual(bucketBounds(s, "gen_ai_client_token_usage_bucket", input), TOKEN_USAGE);
    assert.deepEqual(bucketBounds(s, "gen_ai_client_token_usage_bucket", output), TOKEN_USAGE);
    assert.deepEqual(bucketBounds(s, "gen_ai_server_request_duration_milliseconds_bucket", labels), REQUEST_DURATION);
    assert.deepEqual(bucketBounds(s, "gen_ai_server_time_to_first_token_milliseconds_bucket", labels), TTFT);
    assert.deepEqual(bucketBounds(s, "gen_ai_server_time_per_output_token_milliseconds_bucket", labels), TPOT);
    // Exactly these label names: the four tags took every value out of the stat name.
    const one = s.find((x) => x.name === "gen_ai_client_token_usage_count" && x.labels["gen_ai_request_model"] === model);
    assert.deepEqual(Object.keys(one?.labels ?? {}).sort(), [
      "gen_ai_operation_name",
      "gen_ai_request_model",
      "gen_ai_response_model",
      "gen_ai_token_type",
    ]);
  });

  test("/v1/completions is the text_completion operation", async () => {
    const model = "t-genai-text";
    await (await post(url("/v1/completions"), { model, prompt: "count these words" })).text();
    const labels = { gen_ai_operation_name: "text_completion", gen_ai_request_model: model, gen_ai_response_model: SERVED };
    const s = await scrapeUntil(admin(), (x) => genAi(x, "gen_ai_server_request_duration_milliseconds_count", labels) >= 1);
    assertHistogramSum(genAi(s, "gen_ai_client_token_usage_sum", { ...labels, gen_ai_token_type: "input" }), [3], "input tokens");
    assertHistogramSum(genAi(s, "gen_ai_client_token_usage_sum", { ...labels, gen_ai_token_type: "output" }), [16], "output tokens");
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...labels, gen_ai_token_type: "input", le: "1" }), 0);
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...labels, gen_ai_token_type: "input", le: "4" }), 1);
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...labels, gen_ai_token_type: "output", le: "16" }), 1);
    assert.equal(genAi(s, "gen_ai_client_token_usage_bucket", { ...labels, gen_ai_token_type: "output", le: "4" }), 0);
  });

  test("our own millisecond histograms use the E12 series: 10 ms to 600000 ms, inter-token 1 ms to 1000 ms", async () => {
    const model = "t-buckets";
    await (
      await post(
        url(),
        { model, messages: MESSAGES, stream: true, stream_options: { include_usage: true } },
        { "x-stub-token-interval-ms": "5" },
      )
    ).text();
    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "first_answer_token_ms_count", model) >= 1);
    const by = { ai_model: model };
    const latency = e12(10, 600000);
    assert.equal(latency[0], 10);
    assert.equal(latency.length, 4 * 12 + 10 + 1, "10 to 82000, 100000 to 560000, and 600000");
    for (const h of ["first_token_ms", "first_answer_token_ms", "duration_ms"]) {
      assert.deepEqual(bucketBounds(s, `route_upstream_model_consumer_metric_${h}_bucket`, by), latency, h);
    }
    assert.deepEqual(bucketBounds(s, "route_upstream_model_consumer_metric_inter_token_ms_bucket", by), e12(1, 1000));
  });
});

// fetch() sets Host from the URL whatever the headers say; node:http sends the one given.
function postWithHost(host: string, body: unknown, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url(), { method: "POST", headers: { host, "content-type": "application/json", ...headers } }, (res) => {
      res.resume();
      res.on("end", () => resolve());
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("consumer label trust", () => {
  const consumersOf = (s: Sample[], model: string): string[] =>
    [
      ...new Set(
        s.filter((x) => x.labels["ai_model"] === model && x.name.endsWith("_input_token")).map((x) => x.labels["ai_consumer"] ?? ""),
      ),
    ].sort();

  test("by default a client's x-mse-consumer is not the consumer: the label stays none", async () => {
    const model = "t-consumer-default";
    await (await post(url(), { model, messages: MESSAGES }, { "x-mse-consumer": "team-forged" })).text();
    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "input_token", model) >= 1);
    assert.deepEqual(consumersOf(s, model), ["none"]);
    assert.ok(!s.some((x) => x.labels["ai_consumer"] === "team-forged"));
    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model);
    assert.notEqual(log["consumer"], "team-forged");
  });

  test("a _rules_ entry with trustConsumerHeader for the domain makes the header the consumer there", async () => {
    const model = "t-consumer-rule";
    await postWithHost(TRUSTED_HOST, { model, messages: MESSAGES }, { "x-mse-consumer": "team-a" });
    await (await post(url(), { model, messages: MESSAGES }, { "x-mse-consumer": "team-b" })).text();
    const s = await scrapeUntil(admin(), (x) => aiMetric(x, "input_token", model) >= 2 * PROMPT_TOKENS);
    assert.deepEqual(consumersOf(s, model), ["none", "team-a"]);
    const log = await nextAiLog(seed.gateway, (l) => l["model"] === model && l["consumer"] === "team-a");
    assert.equal(log["consumer"], "team-a");
  });

  describe("trustConsumerHeader true", () => {
    let trusted: Seed;
    before(async () => {
      trusted = await startSeed({ pluginConfig: { ...aliasConfig(), trustConsumerHeader: true } });
    });
    after(async () => {
      await trusted?.stop();
    });

    test("the header's value is the consumer label and ai_log consumer", async () => {
      const model = "t-consumer-default";
      const r = await post(`${trusted.gateway.url}${CHAT}`, { model, messages: MESSAGES }, { "x-mse-consumer": "team-a" });
      await r.text();
      const s = await scrapeUntil(trusted.gateway.adminUrl, (x) => aiMetric(x, "input_token", model) >= 1);
      assert.deepEqual(consumersOf(s, model), ["team-a"]);
      const log = await nextAiLog(trusted.gateway, (l) => l["model"] === model);
      assert.equal(log["consumer"], "team-a");
    });
  });
});
