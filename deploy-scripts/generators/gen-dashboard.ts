// Builds the Grafana dashboard over the plugin's metrics and writes it twice: as JSON to import
// (manifests/grafana/llm-gateway-dashboard.json) and wrapped in a ConfigMap for the Grafana sidecar
// (manifests/grafana/dashboard-configmap.yaml), so the two cannot drift. tests/e2e/dashboard.test.ts
// checks every metric and label the queries use against a real Envoy's /stats/prometheus.
//
//   npx tsx deploy-scripts/generators/gen-dashboard.ts           write the files
//   npx tsx deploy-scripts/generators/gen-dashboard.ts --check   exit 1 if a committed file differs (CI)
//
// Metric names: assembly/plugin/telemetry/metrics.ts (Higress's ai-statistics names under the stats tags
// ai_route, ai_cluster, ai_model, ai_consumer; the OpenTelemetry GenAI histograms under the gen_ai_* tags of
// deploy-scripts/render/envoy/stats.ts) and assembly/plugin/root.ts (the VM memory gauge).
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { syncGeneratedFiles } from "./generated-files.ts";
import { stringify } from "yaml";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DASHBOARD_DIR = join(ROOT, "manifests", "grafana");
export const DASHBOARD_FILE = join(DASHBOARD_DIR, "llm-gateway-dashboard.json");
export const CONFIGMAP_FILE = join(DASHBOARD_DIR, "dashboard-configmap.yaml");
export const DASHBOARD_UID = "llm-gateway";
export const CONFIGMAP_NAME = "llm-gateway-dashboard";
/** Key of the dashboard in the ConfigMap; the sidecar writes it as this file name. */
export const CONFIGMAP_KEY = "llm-gateway-dashboard.json";

/** Prometheus name prefix of every per-request metric (Envoy drops `wasmcustom.`, the stats tags take the labels out). */
export const AI_PREFIX = "route_upstream_model_consumer_metric_";
/** Prometheus name prefix of the OpenTelemetry GenAI histograms (gen_ai_client_…, gen_ai_server_…). */
export const GEN_AI_PREFIX = "gen_ai_";
export const VM_MEMORY = "llm_gateway_vm_memory_bytes";
/** The dashboard's variable holding the Prometheus data source (also what `${DS_PROMETHEUS}` resolves to). */
export const DS_VAR = "DS_PROMETHEUS";
const DS = { type: "prometheus", uid: "${" + DS_VAR + "}" };

// Every per-request selector carries the three filters, so the variables apply to every panel.
const FILTERS = 'ai_model=~"$ai_model", ai_route=~"$ai_route", ai_consumer=~"$ai_consumer"';
const WINDOW = "[$__rate_interval]";

// The OpenTelemetry GenAI histograms carry no route or consumer; the Model variable filters the model the client asked
// for (gen_ai_request_model, sanitised like ai_model, so the values are the same model names).
const GEN_AI_FILTERS = 'gen_ai_request_model=~"$ai_model"';

/** `route_upstream_model_consumer_metric_<name>{filters}` */
export function ai(name: string): string {
  return `${AI_PREFIX}${name}{${FILTERS}}`;
}

function rate(name: string): string {
  return `rate(${ai(name)}${WINDOW})`;
}

/** Per-second rate of a counter, summed (by the given labels, or over everything). */
function sumRate(name: string, by?: string): string {
  return by === undefined ? `sum(${rate(name)})` : `sum by (${by}) (${rate(name)})`;
}

/** Quantile of a histogram from its buckets, per value of `by` (or over everything when null). */
function quantile(q: number, histogram: string, by: string | null = "ai_model"): string {
  return `histogram_quantile(${q}, sum by (${by === null ? "" : `${by}, `}le) (${rate(`${histogram}_bucket`)}))`;
}

/** The share `num / den` of two counters; 0 (not "no data") while `num` has never been counted. */
function share(num: string, den: string): string {
  return `(${sumRate(num)} or vector(0)) / ${sumRate(den)}`;
}

/** The same share per model: 0 for a model whose `num` has never been counted. */
function shareByModel(num: string, den: string): string {
  const d = sumRate(den, "ai_model");
  return `(${sumRate(num, "ai_model")} or 0 * ${d}) / ${d}`;
}

/** A quantile of a gen_ai millisecond histogram, per request model, in seconds (OpenTelemetry's unit). */
function genAiSeconds(q: number, histogram: string): string {
  const buckets = `rate(${GEN_AI_PREFIX}${histogram}_bucket{${GEN_AI_FILTERS}}${WINDOW})`;
  return `histogram_quantile(${q}, sum by (gen_ai_request_model, le) (${buckets})) / 1000`;
}

function genAiP50P90(histogram: string): Target[] {
  return [
    { expr: genAiSeconds(0.5, histogram), legend: "{{gen_ai_request_model}} p50" },
    { expr: genAiSeconds(0.9, histogram), legend: "{{gen_ai_request_model}} p90" },
  ];
}

// responses_<origin>_<class>, one counter per pair (assembly/plugin/report.ts). Only the classes an
// LLM API answers with; each becomes a `class` label so the panels can stack and total them.
export const RESPONSE_CLASSES = ["upstream_2xx", "upstream_4xx", "upstream_5xx", "local_2xx", "local_4xx", "local_5xx"] as const;

// The rates of all response counters as one vector: rate() drops the metric name, so each is told
// apart by a `class` label ("upstream 5xx", …) and `or` keeps them all.
function responsesUnion(): string {
  const parts = RESPONSE_CLASSES.map((c) => `label_replace(${rate(`responses_${c}`)}, "class", "${c.replace("_", " ")}", "", "")`);
  return `(\n  ${parts.join("\n  or ")}\n)`;
}

// The upstream classes per model and class: counted once per attempt, against the model that answered it.
function upstreamByModel(): string {
  const parts = RESPONSE_CLASSES.filter((c) => c.startsWith("upstream_")).map(
    (c) => `label_replace(${rate(`responses_${c}`)}, "class", "${c.replace("upstream_", "")}", "", "")`,
  );
  return `sum by (ai_model, class) (\n  ${parts.join("\n  or ")}\n)`;
}

function responseShare(cls: (typeof RESPONSE_CLASSES)[number]): string {
  return `(${sumRate(`responses_${cls}`)} or vector(0)) / sum ${responsesUnion()}`;
}

// ---- panel model -------------------------------------------------------------------------------

export interface Target {
  expr: string;
  legend: string;
}

interface PanelSpec {
  kind: "timeseries" | "stat";
  title: string;
  description: string;
  unit: string;
  width: number; // of 24 grid columns
  height: number;
  targets: Target[];
  stacked?: boolean;
  /** stat: value from which the number turns red */
  redFrom?: number;
  decimals?: number;
}

interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

function ts(title: string, unit: string, description: string, targets: Target[], width = 8, extra: Partial<PanelSpec> = {}): PanelSpec {
  return { kind: "timeseries", title, unit, description, targets, width, height: 8, ...extra };
}

function stat(title: string, unit: string, description: string, expr: string, extra: Partial<PanelSpec> = {}): PanelSpec {
  return { kind: "stat", title, unit, description, targets: [{ expr, legend: title }], width: 4, height: 4, ...extra };
}

function p50p99(histogram: string): Target[] {
  return [
    { expr: quantile(0.5, histogram), legend: "{{ai_model}} p50" },
    { expr: quantile(0.99, histogram), legend: "{{ai_model}} p99" },
  ];
}

const TTFT_NOTE =
  "Time to first token: from the request reaching the gateway to the first SSE event carrying generated tokens of any kind, reasoning included (streamed requests only).";

export function rows(): RowSpec[] {
  return [
    {
      title: "Overview",
      panels: [
        stat("Requests/s", "reqps", "Requests routed to a model (llm_duration_count).", sumRate("llm_duration_count")),
        stat("Output tokens/s", "short", "Generated tokens per second, all models.", sumRate("output_token")),
        stat("TTFT p99", "ms", TTFT_NOTE, quantile(0.99, "first_token_ms", null), { redFrom: 2000 }),
        stat(
          "Upstream 5xx",
          "percentunit",
          "Share of all responses that were a 5xx from a model server; upstream responses count once per attempt, so a fallback's failed primary is counted.",
          responseShare("upstream_5xx"),
          { redFrom: 0.01, decimals: 2 },
        ),
        stat(
          "Estimated usage",
          "percentunit",
          "Share of requests whose token counts the gateway estimated (the server reported no usage).",
          share("usage_estimated", "llm_duration_count"),
          { redFrom: 0.05, decimals: 1 },
        ),
        stat(
          "Wasm VM memory",
          "bytes",
          "Largest linear memory of the plugin's Wasm VMs (not filtered by the variables).",
          `max(${VM_MEMORY})`,
        ),
      ],
    },
    {
      title: "Traffic and tokens",
      panels: [
        ts(
          "Requests/s per model",
          "reqps",
          "Requests routed to each model, whatever their outcome (Higress's llm_duration_count).",
          [{ expr: sumRate("llm_duration_count", "ai_model"), legend: "{{ai_model}}" }],
          6,
        ),
        ts(
          "Input tokens/s per model",
          "short",
          "Prompt tokens per second as the model servers reported them (estimated when they did not).",
          [{ expr: sumRate("input_token", "ai_model"), legend: "{{ai_model}}" }],
          6,
        ),
        ts(
          "Output tokens/s per model",
          "short",
          "Generated tokens per second as the model servers reported them (estimated when they did not), reasoning tokens included.",
          [{ expr: sumRate("output_token", "ai_model"), legend: "{{ai_model}}" }],
          6,
        ),
        ts(
          "Reasoning tokens/s per model",
          "short",
          "The part of the output tokens spent on reasoning (usage.completion_tokens_details.reasoning_tokens), when the model server reports it; vLLM releases before reasoning_tokens was added report none.",
          [{ expr: sumRate("reasoning_token", "ai_model"), legend: "{{ai_model}}" }],
          6,
        ),
      ],
    },
    {
      title: "Latency",
      panels: [
        ts("Time to first token", "ms", `${TTFT_NOTE} p50 and p99 from the first_token_ms histogram.`, p50p99("first_token_ms")),
        ts(
          "First token vs first answer token",
          "ms",
          "p50 of the time to the first generated token of any kind (first_token_ms) and to the first answer token (first_answer_token_ms: content or tool calls, reasoning excluded). The gap is the time a reasoning model thinks before it answers.",
          [
            { expr: quantile(0.5, "first_token_ms"), legend: "{{ai_model}} first token p50" },
            { expr: quantile(0.5, "first_answer_token_ms"), legend: "{{ai_model}} first answer token p50" },
          ],
        ),
        ts(
          "Inter-token latency",
          "ms",
          "Per streamed request: (duration - TTFT) / (output tokens - 1). p50 and p99.",
          p50p99("inter_token_ms"),
        ),
        ts(
          "Request duration",
          "ms",
          "From the request reaching the gateway to the last byte of the response. p50 and p99.",
          p50p99("duration_ms"),
          6,
        ),
        ts(
          "Output tokens/s per request",
          "short",
          "Each request's output tokens over its duration; the median request.",
          [{ expr: quantile(0.5, "output_tokens_per_second"), legend: "{{ai_model}} p50" }],
          6,
        ),
        ts(
          "Tokens per request",
          "short",
          "Median prompt and completion size per request.",
          [
            { expr: quantile(0.5, "input_tokens"), legend: "{{ai_model}} input p50" },
            { expr: quantile(0.5, "output_tokens"), legend: "{{ai_model}} output p50" },
          ],
          6,
        ),
        ts(
          "Mean TTFT and duration (Higress counters)",
          "ms",
          "The same means Higress's own AI dashboard shows, from its summed-milliseconds counters.",
          [
            {
              expr: `${sumRate("llm_first_token_duration", "ai_model")} / ${sumRate("llm_stream_duration_count", "ai_model")}`,
              legend: "{{ai_model}} TTFT",
            },
            {
              expr: `${sumRate("llm_service_duration", "ai_model")} / ${sumRate("llm_duration_count", "ai_model")}`,
              legend: "{{ai_model}} duration",
            },
          ],
          6,
        ),
      ],
    },
    {
      title: "Errors and stream health",
      panels: [
        ts(
          "Error share",
          "percentunit",
          "Share of all responses: 5xx from the model servers (once per attempt), and 4xx/5xx Envoy or the plugin answered itself (bad requests, unknown models, unreachable servers, every attempt failed).",
          [
            { expr: responseShare("upstream_5xx"), legend: "upstream 5xx" },
            { expr: responseShare("local_4xx"), legend: "local 4xx" },
            { expr: responseShare("local_5xx"), legend: "local 5xx" },
          ],
        ),
        ts(
          "Responses/s by origin and class",
          "reqps",
          "upstream: a model server answered (once per attempt, so a request that fell back counts its failed primary too); local: Envoy or the plugin did.",
          [{ expr: `sum by (class) ${responsesUnion()}`, legend: "{{class}}" }],
          8,
          { stacked: true },
        ),
        ts(
          "Stream and usage quality",
          "percentunit",
          "Incomplete: streams that ended without [DONE]. Unparsed: streams with an SSE event over maxSseEventBytes. Both as a share of streamed requests. Estimated: requests whose usage the gateway estimated, as a share of all.",
          [
            { expr: share("stream_incomplete", "llm_stream_duration_count"), legend: "incomplete streams" },
            { expr: share("stream_unparsed", "llm_stream_duration_count"), legend: "unparsed streams" },
            { expr: share("usage_estimated", "llm_duration_count"), legend: "estimated usage" },
          ],
        ),
        ts(
          "Upstream responses/s by model (every attempt)",
          "reqps",
          "Statuses the model servers answered, once per attempt and under the model that answered it: a primary's 5xx shows under the primary even when a backup then answered the client.",
          [{ expr: upstreamByModel(), legend: "{{ai_model}} {{class}}" }],
          12,
          { stacked: true },
        ),
        ts(
          "Estimated usage share per model",
          "percentunit",
          "Share of each model's requests whose token counts the gateway estimated: the server reported no usage, or the stream was cut before its usage arrived (then: the last usage it carried, else one token per delivered event). Estimated counts are not billing-grade.",
          [{ expr: shareByModel("usage_estimated", "llm_duration_count"), legend: "{{ai_model}}" }],
          12,
        ),
      ],
    },
    {
      title: "Gateway",
      panels: [
        ts(
          "Wasm VM memory",
          "bytes",
          "Linear memory of the plugin's Wasm VM, per scraped gateway (each worker's VM writes the gauge in turn). It should stay flat under load.",
          [{ expr: VM_MEMORY, legend: "{{instance}}" }],
          12,
        ),
      ],
    },
    // FALLBACK ROW: extend here as the fallback metrics grow (assembly/plugin/metrics.ts `fallback`,
    // labels ai_fallback_to / ai_fallback_reason from the stats tags in tests/harness/envoy-config.ts).
    {
      title: "Fallback",
      panels: [
        ts(
          "Fallbacks/s",
          "reqps",
          "Requests moved from a failing model (ai_model) to a backup, by backup and reason.",
          [
            {
              expr: `sum by (ai_model, ai_fallback_to, ai_fallback_reason) (${rate("fallback_to_reason")})`,
              legend: "{{ai_model}} → {{ai_fallback_to}} ({{ai_fallback_reason}})",
            },
          ],
          12,
        ),
        ts(
          "All attempts failed/s",
          "reqps",
          "Requests whose primary and every backup failed (the client got the all_attempts_failed error), under the model the client asked for.",
          [{ expr: sumRate("all_attempts_failed", "ai_model"), legend: "{{ai_model}}" }],
          12,
        ),
      ],
    },
    {
      title: "OpenTelemetry GenAI",
      panels: [
        ts(
          "GenAI request duration",
          "s",
          "gen_ai.server.request.duration: p50 and p90 per requested model, of requests a model server answered with 2xx. Recorded in milliseconds (gen_ai_server_request_duration_milliseconds: Envoy's histograms hold integers), shown in seconds. Filtered by Model only: the OpenTelemetry attributes have no route or consumer.",
          genAiP50P90("server_request_duration_milliseconds"),
          6,
        ),
        ts(
          "GenAI time to first token",
          "s",
          "gen_ai.server.time_to_first_token: p50 and p90 per requested model, streamed 2xx answers. Recorded in milliseconds, shown in seconds. Filtered by Model only.",
          genAiP50P90("server_time_to_first_token_milliseconds"),
          6,
        ),
        ts(
          "GenAI time per output token",
          "s",
          "gen_ai.server.time_per_output_token: p50 and p90 per requested model, streamed 2xx answers with more than one output token. OpenTelemetry's buckets are coarse here (10, 25, 50 ms): the Inter-token latency panel's E12 buckets are closer. Recorded in milliseconds, shown in seconds. Filtered by Model only.",
          genAiP50P90("server_time_per_output_token_milliseconds"),
          6,
        ),
        ts(
          "GenAI token usage by type",
          "short",
          "gen_ai.client.token.usage: tokens/s per requested model and token type (input, output), from the histogram's sum: Envoy computes a histogram's sum from its bins, so it is close but not exact; the exact counts are the input/output token counters above. Filtered by Model only.",
          [
            {
              expr: `sum by (gen_ai_request_model, gen_ai_token_type) (rate(${GEN_AI_PREFIX}client_token_usage_sum{${GEN_AI_FILTERS}}${WINDOW}))`,
              legend: "{{gen_ai_request_model}} {{gen_ai_token_type}}",
            },
          ],
          6,
        ),
      ],
    },
  ];
}

// ---- Grafana JSON --------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function panelJson(p: PanelSpec, id: number, x: number, y: number): Json {
  const targets = p.targets.map((t, i) => ({
    datasource: DS,
    expr: t.expr,
    legendFormat: t.legend,
    range: true,
    refId: String.fromCharCode(65 + i),
  }));
  const base = {
    id,
    type: p.kind,
    title: p.title,
    description: p.description,
    datasource: DS,
    gridPos: { h: p.height, w: p.width, x, y },
    targets,
  };
  if (p.kind === "stat") {
    return {
      ...base,
      fieldConfig: {
        defaults: {
          unit: p.unit,
          ...(p.decimals !== undefined ? { decimals: p.decimals } : {}),
          color: { mode: "thresholds" },
          thresholds: {
            mode: "absolute",
            steps: [{ color: "green", value: null }, ...(p.redFrom !== undefined ? [{ color: "red", value: p.redFrom }] : [])],
          },
        },
        overrides: [],
      },
      options: {
        reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
        colorMode: "value",
        graphMode: "area",
        justifyMode: "auto",
        orientation: "auto",
        textMode: "value",
      },
    };
  }
  return {
    ...base,
    fieldConfig: {
      defaults: {
        unit: p.unit,
        min: 0,
        color: { mode: "palette-classic" },
        custom: {
          drawStyle: "line",
          lineInterpolation: "linear",
          lineWidth: 1,
          fillOpacity: p.stacked ? 60 : 10,
          showPoints: "never",
          spanNulls: false,
          stacking: { mode: p.stacked ? "normal" : "none", group: "A" },
        },
      },
      overrides: [],
    },
    options: {
      legend: { displayMode: "list", placement: "bottom", showLegend: true, calcs: [] },
      tooltip: { mode: "multi", sort: "desc" },
    },
  };
}

function variable(name: string, label: string, query: string): Json {
  return {
    name,
    label,
    type: "query",
    datasource: DS,
    query: { query, refId: "StandardVariableQuery" },
    definition: query,
    multi: true,
    includeAll: true,
    allValue: ".*",
    current: { selected: true, text: ["All"], value: ["$__all"] },
    options: [],
    refresh: 2,
    regex: "",
    sort: 1,
    hide: 0,
  };
}

/** The label_values() queries of the template variables, chained model → route → consumer. */
export const VARIABLE_QUERIES = {
  ai_model: `label_values(${AI_PREFIX}llm_duration_count, ai_model)`,
  ai_route: `label_values(${AI_PREFIX}llm_duration_count{ai_model=~"$ai_model"}, ai_route)`,
  ai_consumer: `label_values(${AI_PREFIX}llm_duration_count{ai_model=~"$ai_model", ai_route=~"$ai_route"}, ai_consumer)`,
};

export function dashboard(): Json {
  const panels: Json[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows()) {
    panels.push({ id: id++, type: "row", title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const p of row.panels) {
      if (x + p.width > 24) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      panels.push(panelJson(p, id++, x, y));
      x += p.width;
      lineHeight = Math.max(lineHeight, p.height);
    }
    y += lineHeight;
  }
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: "grafana", uid: "-- Grafana --" },
          enable: true,
          hide: true,
          iconColor: "rgba(0, 211, 255, 1)",
          name: "Annotations & Alerts",
          type: "dashboard",
        },
      ],
    },
    description:
      "llm-gateway (Higress/Envoy Wasm plugin): traffic, tokens, latency percentiles, errors and stream health per model. Generated by deploy-scripts/generators/gen-dashboard.ts.",
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    links: [],
    panels,
    refresh: "30s",
    schemaVersion: 39,
    tags: ["llm-gateway", "higress", "llm"],
    templating: {
      list: [
        {
          name: DS_VAR,
          label: "Data source",
          type: "datasource",
          query: "prometheus",
          current: {},
          options: [],
          refresh: 1,
          regex: "",
          hide: 0,
        },
        variable("ai_model", "Model", VARIABLE_QUERIES.ai_model),
        variable("ai_route", "Route", VARIABLE_QUERIES.ai_route),
        variable("ai_consumer", "Consumer", VARIABLE_QUERIES.ai_consumer),
      ],
    },
    time: { from: "now-1h", to: "now" },
    timepicker: {},
    timezone: "browser",
    title: "LLM gateway",
    uid: DASHBOARD_UID,
    version: 1,
  };
}

export function dashboardText(): string {
  return `${JSON.stringify(dashboard(), null, 2)}\n`;
}

export function configMapText(): string {
  const cm = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: CONFIGMAP_NAME, labels: { grafana_dashboard: "1", "app.kubernetes.io/name": "llm-gateway" } },
    data: { [CONFIGMAP_KEY]: dashboardText() },
  };
  return [
    "# Generated by deploy-scripts/generators/gen-dashboard.ts (same content as llm-gateway-dashboard.json); do not edit.",
    "# The Grafana sidecar (kiwigrid k8s-sidecar, as in the grafana and kube-prometheus-stack Helm charts) loads",
    '# ConfigMaps labelled grafana_dashboard: "1". Apply it in a namespace the sidecar watches:',
    "#   kubectl apply -n <grafana namespace> -f manifests/grafana/dashboard-configmap.yaml",
    stringify(cm, { lineWidth: 0 }),
  ].join("\n");
}

export function dashboardFiles(): { path: string; content: string }[] {
  return [
    { path: DASHBOARD_FILE, content: dashboardText() },
    { path: CONFIGMAP_FILE, content: configMapText() },
  ];
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const stale = syncGeneratedFiles(dashboardFiles(), check, ROOT, "npx tsx deploy-scripts/generators/gen-dashboard.ts");

  if (check) return stale > 0 ? 1 : 0;
  if (stale === 0) console.log("manifests/grafana is up to date");
  return 0;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  process.exitCode = main(process.argv.slice(2));
}
