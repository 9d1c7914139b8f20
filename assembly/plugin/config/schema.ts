// THE configuration schema: every field the plugin reads, with its type, default, range and help, in
// one table. Everything else is generated from it by deploy-scripts/generators/gen-config-schema.ts
// (`make generate`; tests/e2e/config-docs.test.ts fails when a generated file is stale):
//   - schema-table.ts: the table the plugin's parser walks (key, kind, default, range), without the
//     prose, which would cost the module tens of kilobytes (AssemblyScript strings are UTF-16);
//   - README.md's configuration tables, deploy-scripts/oci/spec.yaml (Higress's console schema) and
//     the deploy CLI's list of plugin settings.
// Plain data: read by Node only (AssemblyScript compiles schema-table.ts, never this file).
//
// Keys are paths: "fallback.cooldown.failures" is `failures` inside `cooldown` inside `fallback`;
// "models[].name" is `name` in each entry of the `models` array.

/** How the plugin reads a field (assembly/plugin/config/settings.ts). */
export type Kind =
  | "text" // a non-empty string
  | "headerName" // a lowercase header name
  | "headerValue" // printable ASCII, at most 256 bytes (it becomes a header value)
  | "modelName" // a model name, or a prefix pattern ending in '*'
  | "flag" // true or false
  | "integer" // an integer within [min, max]
  | "choice" // one of `choices`
  | "textList" // an array of non-empty strings
  | "nonEmptyTextList" // the same, with at least one item
  | "statusList" // status codes (503, "503") and classes ("5xx")
  | "group" // an object whose fields are the keys below it
  | "groupList"; // an array of objects whose fields are the keys below "<key>[]"

export interface ConfigField {
  key: string;
  kind: Kind;
  /** The value the plugin uses when the field is absent (JSON); absent: none. */
  default?: unknown;
  /** The README's wording of a default the plugin computes ("`name`; for a pattern, …"). */
  defaultText?: string;
  required?: boolean;
  min?: number;
  max?: number;
  choices?: string[];
  /** Console (spec.yaml) title and one-line description, English and zh-CN. */
  title: string;
  titleZh: string;
  summary: string;
  summaryZh: string;
  /** The README's description (Markdown); defaults to `summary`. */
  help?: string;
  /** Extra JSON-schema members for spec.yaml (e.g. an example). */
  spec?: Record<string, unknown>;
}

// Bounds shared by several fields. The size ranges keep the VM's memory bounded by design: the budget
// (at most 384 MiB), one body a callback holds for a moment (at most 512 MiB) and the runtime (64 MiB)
// fit in the 1 GiB proxy-wasm-cpp-host gives a VM, whatever values are chosen.
const MAX_SIZE = 536870912;
const HOUR_MS = 3600000;
const DAY_MS = 86400000;

export const CONFIG_FIELDS: ConfigField[] = [
  {
    key: "routingHeader",
    kind: "headerName",
    default: "x-higress-llm-model",
    title: "Routing header",
    titleZh: "路由请求头",
    summary: "Request header set to the chosen route; Higress AI routes match on it. A lowercase header name.",
    summaryZh: "写入所选路由值的请求头，Higress AI 路由按此头匹配。须为小写请求头名。",
    help: "Header written with the route; Higress AI routes match on it.",
  },
  {
    key: "pathSuffixes",
    kind: "nonEmptyTextList",
    default: ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"],
    title: "Path suffixes",
    titleZh: "生效路径后缀",
    summary: "The plugin reads and routes the body only of POST requests whose path ends with one of these.",
    summaryZh: "仅对路径以其中之一结尾的 POST 请求读取请求体并路由。",
    help: "`POST` paths (by suffix) whose body is read and routed.",
  },
  {
    key: "maxBodyBytes",
    kind: "integer",
    default: 10485760,
    min: 1,
    max: MAX_SIZE,
    title: "Maximum body size (bytes)",
    titleZh: "请求体上限（字节）",
    summary: "Larger request bodies are answered with 413. Keep Envoy's own buffer limit above it.",
    summaryZh: "超过此大小的请求体返回 413。Envoy 自身的缓冲上限应大于此值。",
    help: "Larger request bodies get 413. Keep Envoy's own buffer limit above it.",
  },
  {
    key: "serveModelList",
    kind: "flag",
    default: true,
    title: "Serve model list",
    titleZh: "应答模型列表",
    summary: "Answer GET /v1/models from the configured models.",
    summaryZh: "根据配置的模型应答 GET /v1/models。",
    help: "Answer `GET …/v1/models` from `models`.",
  },
  {
    key: "defaultModel",
    kind: "text",
    title: "Default model",
    titleZh: "默认模型",
    summary: "Model used (and added to the body) when the request body names none; must be one of the models. Optional.",
    summaryZh: "请求体未指定 model 时使用（并写入请求体）的模型，须为已配置的模型之一，可选。",
    help: "Used when the body has no `model` (it is then added to the body).",
  },
  {
    key: "ownedBy",
    kind: "text",
    default: "llm-gateway",
    title: "Owner in the model list",
    titleZh: "模型列表中的所有者",
    summary: "The owned_by field of each entry in the GET /v1/models answer.",
    summaryZh: "GET /v1/models 应答中每个模型的 owned_by 字段。",
    help: "`owned_by` in the model list.",
  },
  {
    key: "injectStreamUsage",
    kind: "flag",
    default: true,
    title: "Ask for stream usage",
    titleZh: "请求流式用量",
    summary:
      "For streamed chat/completions requests that don't ask for usage, ask the upstream for it (stream_options.include_usage) and remove the usage-only chunk from what the client receives.",
    summaryZh:
      "对未请求用量的流式 chat/completions 请求，向上游请求用量（stream_options.include_usage），并从返回给客户端的内容中去掉仅含用量的数据块。",
    help: "For streamed chat/completions requests that don't ask for usage, ask the upstream for it (`stream_options.include_usage`) and remove the usage-only chunk from what the client receives.",
  },
  {
    key: "consumerHeader",
    kind: "headerName",
    default: "x-mse-consumer",
    title: "Consumer header",
    titleZh: "消费者请求头",
    summary: "Request header naming the consumer (set by Higress's auth plugins), used as a metric label. A lowercase header name.",
    summaryZh: "标明消费者的请求头（由 Higress 认证插件设置），用作指标标签。须为小写请求头名。",
    help: "Request header naming the consumer (set by Higress's auth plugins) for metric labels.",
  },
  {
    key: "trustConsumerHeader",
    kind: "flag",
    default: false,
    title: "Trust the consumer header",
    titleZh: "信任消费者请求头",
    summary: "Use consumerHeader as the consumer label only when true: an auth plugin in front sets it. Otherwise clients could forge it.",
    summaryZh: "仅为 true 时才将 consumerHeader 用作消费者标签（由前置认证插件设置）；否则客户端可伪造该头。",
    help: "Use `consumerHeader`'s value as the consumer (metric label `ai_consumer`, `ai_log` `consumer`) only when `true`: set it where an auth plugin (Higress's key-auth, jwt-auth, …) fills the header, per route or domain through `_rules_`. Otherwise any client could send the header and mint label series (bounded, but forged); the consumer is then `none`.",
  },
  {
    key: "maxSseEventBytes",
    kind: "integer",
    default: 1048576,
    min: 1,
    max: MAX_SIZE,
    title: "Maximum SSE event size (bytes)",
    titleZh: "SSE 事件上限（字节）",
    summary:
      "Largest SSE event the usage reader carries over between body chunks; past it, that stream is no longer parsed (and is counted).",
    summaryZh: "用量解析器跨数据块暂存的最大 SSE 事件；超过时不再解析该流（并计数）。",
  },
  {
    key: "maxResponseBytes",
    kind: "integer",
    default: 10485760,
    min: 1,
    max: MAX_SIZE,
    title: "Maximum response size (bytes)",
    titleZh: "响应体上限（字节）",
    summary: "Largest non-streamed response body read for usage.",
    summaryZh: "为统计用量而读取的非流式响应体的最大大小。",
  },
  {
    key: "memoryBudgetBytes",
    kind: "integer",
    default: 268435456,
    min: 1048576,
    max: 402653184,
    title: "VM memory budget (bytes)",
    titleZh: "虚拟机内存预算（字节）",
    summary:
      "Memory budget for per-request state, SSE buffers and bodies held for fallback; requests over it are shed (503) or sent on unprotected, never a VM failure.",
    summaryZh: "每个请求的状态、SSE 缓冲及回退所持请求体的内存预算；超出时请求被拒绝（503）或无回退保护地继续，绝不导致虚拟机失败。",
    help:
      "The VM's memory budget for everything that grows with input or with requests in flight: per-request state (4 KiB each), SSE event buffers, JSON answers read in pieces, and bodies held by the `dispatch` fallback. " +
      "A request the budget cannot take is shed with a retryable 503 `server_overloaded`; a stream whose buffer it refuses is no longer parsed; a `dispatch` fallback it refuses goes on unprotected; each is counted ([Memory](docs/memory.md)). " +
      "1 MiB to 384 MiB: with one body a callback holds for a moment (at most 512 MiB, the limit of the size fields) and 64 MiB for the runtime it always fits in the 1 GiB a VM has. One budget per VM: the last configuration applied sets it.",
  },
  {
    key: "stage",
    kind: "choice",
    default: "request",
    choices: ["request", "attempt"],
    title: "Filter stage",
    titleZh: "过滤器阶段",
    summary: "request (HTTP filter) or attempt (Envoy upstream filter that renames the model on retries to a backup).",
    summaryZh: "request（HTTP 过滤器）或 attempt（Envoy 上游过滤器，在重试到备用模型时改写模型名）。",
    help: "`request`: the HTTP filter (routing, usage, fallback decisions). `attempt`: the same plugin as Envoy's upstream HTTP filter, once per upstream attempt, putting the backup's name in the body when Envoy retries on a backup's cluster (`fallback.mechanism` `envoy`).",
  },
  {
    key: "models",
    kind: "groupList",
    required: true,
    title: "Models",
    titleZh: "模型",
    summary: "Models the gateway serves. Exact names win over patterns, the longest matching pattern wins.",
    summaryZh: "网关提供的模型。精确名称优先于模式，模式中最长匹配者优先。",
    help: "The models the gateway serves (below).",
  },
  {
    key: "models[].name",
    kind: "modelName",
    required: true,
    title: "Name",
    titleZh: "名称",
    summary: "Model name clients send, or a prefix pattern ending in '*'.",
    summaryZh: "客户端发送的模型名，或以 '*' 结尾的前缀模式。",
    help: "The model name clients send, or a prefix pattern ending in `*` (e.g. `qwen*`; the longest matching prefix wins, exact names win over patterns).",
    spec: { example: ["qwen2-1-5b", "qwen-*"] },
  },
  {
    key: "models[].route",
    kind: "headerValue",
    defaultText: "`name`; for a pattern, the requested model",
    title: "Route",
    titleZh: "路由值",
    summary: "Value written to the routing header (printable ASCII). Default is the name, or for a pattern the requested model.",
    summaryZh: "写入路由请求头的值（可打印 ASCII）；默认为名称，模式匹配时为请求的模型名。",
    help: "Value written to the routing header.",
  },
  {
    key: "models[].upstreamModel",
    kind: "text",
    title: "Upstream model",
    titleZh: "上游模型",
    summary: "Rewrite the body's model to this before forwarding. Optional.",
    summaryZh: "转发前将请求体中的 model 改写为此值，可选。",
    help: "Rewrite the body's `model` to this name before it goes upstream.",
  },
  {
    key: "models[].fallback",
    kind: "textList",
    title: "Fallback models",
    titleZh: "回退模型",
    summary: "Backup models, tried in this order when the model fails; each must be one of the models.",
    summaryZh: "模型失败时依次尝试的备用模型，须为已配置的模型。",
    help: "Backup models, in order (each must be a configured model).",
  },
  {
    key: "models[].cluster",
    kind: "text",
    defaultText: "from `fallback.clusterTemplate`",
    title: "Envoy cluster",
    titleZh: "Envoy 集群",
    summary: "Envoy cluster the plugin calls when this model serves as a backup. Default from fallback.clusterTemplate.",
    summaryZh: "此模型作为备用模型时插件调用的 Envoy 集群；默认由 fallback.clusterTemplate 生成。",
    help: "`dispatch` fallback: Envoy cluster the plugin calls when this model serves as a backup (e.g. `outbound|8080||llm-qwen.dns`).",
  },
  {
    key: "fallback",
    kind: "group",
    title: "Fallback",
    titleZh: "回退",
    summary: "When a failed request goes to the model's backups, and the cooldown of a failing model.",
    summaryZh: "请求失败时何时转到备用模型，以及失败模型的冷却。",
    help: "When and how a failed request goes to the model's backups (`models[].fallback`), and the cooldown of a failing model: [below](#the-fallback-object).",
  },
  {
    key: "fallback.enabled",
    kind: "flag",
    default: true,
    title: "Enabled",
    titleZh: "启用",
    summary: "false turns fallback and cooldown off; every answer goes to the client as it is.",
    summaryZh: "为 false 时关闭回退与冷却，所有应答原样返回客户端。",
    help: "`false`: no fallback and no cooldown; every answer goes to the client as it is.",
  },
  {
    key: "fallback.mechanism",
    kind: "choice",
    default: "envoy",
    choices: ["envoy", "dispatch"],
    title: "Mechanism",
    titleZh: "回退机制",
    summary:
      "envoy (Envoy's router retries on the backup's cluster; streams) or dispatch (the plugin holds the body and calls the backup; answers arrive whole).",
    summaryZh: "envoy（由 Envoy 路由在备用模型的集群上重试，流式返回）或 dispatch（插件持有请求体并调用备用模型，应答整体返回）。",
    help:
      "`envoy`: Envoy's router retries the request on the backup's cluster (an aggregate cluster per model, a retry policy, and this plugin with `stage` `attempt` as an upstream filter: rendered by the harness and `deploy-scripts` from this configuration); backups stream. " +
      "`dispatch`: the plugin holds the body (within `memoryBudgetBytes`) and calls the backup with `dispatch_http_call`; needs no Envoy configuration, backups arrive whole. " +
      "In Higress the fallback is Higress's own replay (`x-higress-fallback-from`), which streams; the plugin puts the backup's name in the body.",
  },
  {
    key: "fallback.onStatus",
    kind: "statusList",
    default: ["5xx", 429],
    title: "Failure statuses",
    titleZh: "视为失败的状态码",
    summary: 'Upstream answers that count as a failure, as status codes (503 or "503") or classes ("5xx").',
    summaryZh: '视为失败的上游应答：状态码（503 或 "503"）或状态类（"5xx"）。',
    help: 'Upstream answers that count as a failure: codes as numbers or strings (`503`, `"503"`, 100 to 599) or classes (`"1xx"` to `"5xx"`). `[]`: no status counts (only `onUpstreamUnreachable` does).',
  },
  {
    key: "fallback.onUpstreamUnreachable",
    kind: "flag",
    default: true,
    title: "Fall back when unreachable",
    titleZh: "上游不可达时回退",
    summary:
      "Also count Envoy's own 5xx answers for the primary (connection failure, reset, timeout; response.code_details other than via_upstream) as failures.",
    summaryZh: "将 Envoy 自身为主模型返回的 5xx（连接失败、重置、超时；response.code_details 不为 via_upstream）也视为失败。",
    help: "Also count Envoy's own 5xx answers for the primary as failures, whatever `onStatus` says: those whose `response.code_details` is not `via_upstream` (connection failure, reset, timeout). A backup call that gets no answer always counts as failed.",
  },
  {
    key: "fallback.maxAttempts",
    kind: "integer",
    default: 3,
    min: 1,
    max: 10,
    title: "Maximum attempts",
    titleZh: "最大尝试次数",
    summary: "Attempts per request, the primary and its backups together.",
    summaryZh: "每个请求的尝试次数，主模型与备用模型合计。",
    help: "Attempts per request, the primary and its backups together (1 = never call a backup). Backups past it are not tried.",
  },
  {
    key: "fallback.attemptTimeoutMs",
    kind: "integer",
    default: 60000,
    min: 1,
    max: HOUR_MS,
    title: "Backup call timeout (ms)",
    titleZh: "备用调用超时（毫秒）",
    summary: "Time limit of each backup call, until its whole answer is in.",
    summaryZh: "每次备用调用直至收到完整应答的时间上限。",
    help: "`dispatch`: time limit of each backup call, until its whole answer is in; the primary keeps the route's timeout. `envoy`: each attempt's per-try timeout when `firstByteTimeoutMs` is 0 (Envoy's per-try timeout ends when response headers arrive, so it never cuts a stream). Also how long a cooldown probe keeps the probe slot.",
  },
  {
    key: "fallback.slowFailureMs",
    kind: "integer",
    default: 0,
    defaultText: "`0` (off)",
    min: 0,
    max: HOUR_MS,
    title: "Slow failure (ms)",
    titleZh: "慢失败阈值（毫秒）",
    summary: "A failure that arrives at least this long after the request started is returned as is; 0 turns this off.",
    summaryZh: "请求开始后至少经过此时长才出现的失败原样返回；0 表示关闭。",
    help: "`dispatch` only: a failure that arrives at least this long after the request started is returned as is, without calling a backup (0 = off).",
  },
  {
    key: "fallback.firstByteTimeoutMs",
    kind: "integer",
    default: 0,
    defaultText: "`0` (off)",
    min: 0,
    max: HOUR_MS,
    title: "First-byte timeout (ms)",
    titleZh: "首字节超时（毫秒）",
    summary: "When the primary has sent no response headers this long after the request arrived, the backup is called; 0 turns this off.",
    summaryZh: "请求到达后主模型在此时长内未返回响应头时调用备用模型；0 表示关闭。",
    help: "When an attempt has sent no response headers this long, the next backup is tried and the late answer discarded (0 = off). `envoy`: every attempt's per-try timeout; `dispatch`: the primary's, checked on a 50 ms tick.",
  },
  {
    key: "fallback.cooldown",
    kind: "group",
    title: "Cooldown",
    titleZh: "冷却",
    summary: "After repeated failures a model's requests go straight to its first backup for a while.",
    summaryZh: "模型多次失败后，一段时间内其请求直接转到第一个备用模型。",
  },
  {
    key: "fallback.cooldown.failures",
    kind: "integer",
    default: 3,
    min: 0,
    max: 1000,
    title: "Failures",
    titleZh: "失败次数",
    summary: "Failures within windowMs that start a cooldown; 0 turns cooldown off.",
    summaryZh: "windowMs 内达到此失败次数即开始冷却；0 表示关闭冷却。",
    help: "This many failures of a model as primary within `cooldown.windowMs` start its cooldown: its requests go straight to its first backup (0 = no cooldown). A success resets the count.",
  },
  {
    key: "fallback.cooldown.windowMs",
    kind: "integer",
    default: 10000,
    min: 1,
    max: DAY_MS,
    title: "Window (ms)",
    titleZh: "统计窗口（毫秒）",
    summary: "Window, from the first failure, in which failures are counted.",
    summaryZh: "自第一次失败起统计失败次数的时间窗口。",
    help: "Window, from the first failure, in which `cooldown.failures` are counted.",
  },
  {
    key: "fallback.cooldown.durationMs",
    kind: "integer",
    default: 30000,
    min: 1,
    max: DAY_MS,
    title: "Duration (ms)",
    titleZh: "冷却时长（毫秒）",
    summary: "Length of a cooldown; then one request tries the model again.",
    summaryZh: "冷却持续时长；结束后由一个请求重新尝试该模型。",
    help: "Length of a cooldown. After it, one request tries the model again: a success ends the cooldown, a failure starts another. Every Envoy worker sees the same cooldown.",
  },
  {
    key: "fallback.clusterTemplate",
    kind: "text",
    default: "outbound|8080||llm-{route}.dns",
    title: "Cluster template",
    titleZh: "集群模板",
    summary: "Envoy cluster of a backup model without cluster; {route} is replaced by the backup's route value.",
    summaryZh: "未设置 cluster 的备用模型所用的 Envoy 集群；{route} 替换为备用模型的路由值。",
    help: "`dispatch`: Envoy cluster of a backup without `cluster`, `{route}` replaced by the backup's route value. The default is Higress's name for the McpBridge DNS registry `llm-<route>` on port 8080.",
  },
  {
    key: "prefixAffinity",
    kind: "group",
    title: "Prefix affinity",
    titleZh: "前缀亲和",
    summary:
      "Send requests that share a prompt prefix to the same replica (Envoy's consistent hashing with bounded load on a header the plugin sets).",
    summaryZh: "将提示词前缀相同的请求发往同一副本（Envoy 基于插件所设请求头的有界负载一致性哈希）。",
    help: "Prompt-prefix key for replica-aware routing: the plugin hashes the start of the prompt into a header, and the model's Envoy cluster hashes that header onto its replicas (ring hash with bounded load): [Replica routing](docs/replica-routing.md).",
  },
  {
    key: "prefixAffinity.enabled",
    kind: "flag",
    default: false,
    title: "Enabled",
    titleZh: "启用",
    summary: "Set the prefix key header on routed requests.",
    summaryZh: "在路由的请求上设置前缀键请求头。",
  },
  {
    key: "prefixAffinity.header",
    kind: "headerName",
    default: "x-llm-gateway-prefix-key",
    title: "Key header",
    titleZh: "键请求头",
    summary: "Request header the key is written to (a client's own value is removed); the route's hash policy reads it.",
    summaryZh: "写入前缀键的请求头（客户端自带的值会被移除），路由的哈希策略读取它。",
  },
  {
    key: "prefixAffinity.prefixBytes",
    kind: "integer",
    default: 2048,
    min: 16,
    max: 1048576,
    title: "Prefix length (bytes)",
    titleZh: "前缀长度（字节）",
    summary: "Bytes of prompt text, up to and including the first user message, that make the key.",
    summaryZh: "构成键的提示词文本字节数（至多到第一条用户消息为止）。",
    help: "Bytes of prompt text that make the key: the messages up to and including the first `user` message (so every turn of a conversation has its first turn's key), cut to this length (a system prompt longer than it gives all its conversations one key).",
  },
  {
    key: "prefixAffinity.models",
    kind: "textList",
    default: [],
    title: "Models",
    titleZh: "模型",
    summary: "Requested model names or prefix* patterns it applies to; empty: all.",
    summaryZh: "适用的请求模型名或 prefix* 模式；为空表示全部。",
  },
  {
    key: "prefixAffinity.loadAware",
    kind: "group",
    title: "Load-aware picking",
    titleZh: "负载感知选择",
    summary: "The plugin picks the replica itself from vLLM's per-response load reports and names it for Envoy's override-host policy.",
    summaryZh: "插件根据 vLLM 每个响应附带的负载报告自行选择副本，并通过 Envoy 的 override-host 策略指定它。",
    help: "Load-aware replica picking: the plugin learns each replica's address and vLLM's load report (`endpoint-load-metrics`: waiting requests, KV-cache usage) from its answers, ranks the replicas for the prefix key (rendezvous hashing), skips saturated ones and ones over the in-flight bound, and names its choices in `header` for the cluster's override-host policy: [Replica routing](docs/replica-routing.md#load-aware-picking).",
  },
  {
    key: "prefixAffinity.loadAware.enabled",
    kind: "flag",
    default: false,
    title: "Enabled",
    titleZh: "启用",
    summary: "Pick replicas in the plugin (needs prefixAffinity.enabled, and the override-host policy on the model's cluster).",
    summaryZh: "由插件选择副本（需启用 prefixAffinity.enabled，且模型的集群使用 override-host 策略）。",
  },
  {
    key: "prefixAffinity.loadAware.header",
    kind: "headerName",
    default: "x-gateway-destination-endpoint",
    title: "Endpoint header",
    titleZh: "端点请求头",
    summary: "Request header naming the chosen replicas (IP:port, best first); the override-host policy reads it.",
    summaryZh: "指定所选副本的请求头（IP:端口，按优先顺序），由 override-host 策略读取。",
  },
  {
    key: "prefixAffinity.loadAware.loadFactor",
    kind: "integer",
    default: 125,
    min: 100,
    max: 10000,
    title: "Load factor (%)",
    titleZh: "负载系数（%）",
    summary: "A replica takes a keyed request while its requests in flight stay within this percentage of the mean.",
    summaryZh: "副本在其进行中请求数不超过平均值的该百分比时接收带键请求。",
  },
  {
    key: "prefixAffinity.loadAware.maxWaiting",
    kind: "integer",
    default: 4,
    min: 0,
    max: 1000000,
    title: "Max waiting requests",
    titleZh: "最大等待请求数",
    summary: "A replica whose last figures count more waiting requests (vLLM's queue) is avoided.",
    summaryZh: "最近一次数据中等待请求（vLLM 队列）多于此值的副本将被避开。",
    help: "A replica whose last figures count more waiting requests (vLLM's queue) is avoided, unless every replica does. A few waiting requests are the normal state of a full batch under load, and avoiding them costs prefix caches: in `make bench-lb` with slow prefill, 0 gave TTFT p90 175 ms against 157 ms with 4 ([Replica routing](docs/replica-routing.md#load-aware-picking)).",
  },
  {
    key: "prefixAffinity.loadAware.maxKvCacheUsage",
    kind: "integer",
    default: 95,
    min: 1,
    max: 100,
    title: "Max KV-cache usage (%)",
    titleZh: "最大 KV 缓存使用率（%）",
    summary: "A replica whose last figures show more KV-cache usage is avoided.",
    summaryZh: "最近一次报告中 KV 缓存使用率高于此值的副本将被避开。",
  },
  {
    key: "prefixAffinity.loadAware.reportTtlMs",
    kind: "integer",
    default: 60000,
    min: 100,
    max: HOUR_MS,
    title: "Replica lifetime (ms)",
    titleZh: "副本有效期（毫秒）",
    summary:
      "A replica that has not answered for this long is forgotten until it answers again (one that fails, or left the cluster, is forgotten at once).",
    summaryZh: "超过此时长未应答的副本将被遗忘，直到它再次应答（失败或已离开集群的副本会被立即遗忘）。",
  },
  {
    key: "prefixAffinity.loadAware.scrapeIntervalMs",
    kind: "integer",
    default: 1000,
    min: 0,
    max: HOUR_MS,
    title: "Metrics scrape interval (ms)",
    titleZh: "指标抓取间隔（毫秒）",
    summary: "How often one worker reads each known replica's vLLM metrics (queue, KV-cache usage); 0: answers' reports only.",
    summaryZh: "由一个工作线程读取每个已知副本 vLLM 指标（队列、KV 缓存使用率）的间隔；0 表示仅使用响应附带的报告。",
    help: "How often each known replica's `metricsPath` is read (by one worker: the claim is in shared data), through the model's cluster with the replica named in `header`; `vllm:num_requests_waiting` and `vllm:kv_cache_usage_perc` (older vLLM: `vllm:gpu_cache_usage_perc`) update its load. vLLM attaches its per-answer report to non-streamed answers only, so for streaming traffic this is the load signal. 0: reports only.",
  },
  {
    key: "prefixAffinity.loadAware.metricsPath",
    kind: "text",
    default: "/metrics",
    title: "Metrics path",
    titleZh: "指标路径",
    summary: "Path of vLLM's Prometheus metrics on each replica.",
    summaryZh: "各副本上 vLLM Prometheus 指标的路径。",
  },
  {
    key: "prefixAffinity.loadAware.discoverEvery",
    kind: "integer",
    default: 16,
    min: 0,
    max: 1000000,
    title: "Discovery interval (requests)",
    titleZh: "发现间隔（请求数）",
    summary:
      "Every Nth request is left to Envoy's balancer, so replicas the plugin has not met yet get found (every other one for 5 s after a new replica); 0: never.",
    summaryZh: "每第 N 个请求交给 Envoy 的负载均衡，以便发现插件尚未见过的副本（发现新副本后 5 秒内每隔一个）；0 表示从不。",
  },
  {
    key: "quotas",
    kind: "group",
    title: "Token quotas",
    titleZh: "令牌配额",
    summary: "Limits on tokens and requests per consumer and model, per window, on one gateway or across many.",
    summaryZh: "按消费者与模型、按时间窗口限制令牌数与请求数，可单网关或跨多个网关。",
    help: "Token and request limits per consumer and model: [Quotas](docs/quotas.md).",
  },
  {
    key: "quotas.mode",
    kind: "choice",
    default: "local",
    choices: ["local", "cluster"],
    title: "Mode",
    titleZh: "模式",
    summary: "local (counters shared by the workers of one Envoy) or cluster (envoyproxy/ratelimit over gRPC, shared by every gateway).",
    summaryZh: "local（同一 Envoy 各工作线程共享计数）或 cluster（通过 gRPC 使用 envoyproxy/ratelimit，所有网关共享）。",
    help: "`local`: counters in proxy-wasm shared data, shared by every worker of one Envoy, no dependency. `cluster`: Envoy's rate-limit service (`envoyproxy/ratelimit` with Redis) over gRPC, so every gateway replica sees one budget.",
  },
  {
    key: "quotas.localSlots",
    kind: "integer",
    default: 4096,
    min: 16,
    max: 1048576,
    title: "Local identities per rule",
    titleZh: "每条规则的本地身份数",
    summary: "local mode: identities each rule tracks per window; a new one past it is admitted unlimited and counted.",
    summaryZh: "local 模式：每条规则每个窗口跟踪的身份数；超出时新身份不受限放行并计数。",
    help: "`local`: identities each rule can track at once (a fixed table in shared data, so a flood of API keys cannot grow it); an identity that finds no room is admitted and counted (`llm_gateway.quota.table_full`).",
  },
  {
    key: "quotas.service",
    kind: "group",
    title: "Rate-limit service",
    titleZh: "限流服务",
    summary: "cluster mode: where envoyproxy/ratelimit is and what to do when it cannot answer.",
    summaryZh: "cluster 模式：envoyproxy/ratelimit 的位置及其无法应答时的处理。",
  },
  {
    key: "quotas.service.cluster",
    kind: "text",
    title: "Envoy cluster",
    titleZh: "Envoy 集群",
    summary:
      "HTTP/2 Envoy cluster of the service's gRPC port, e.g. outbound|8081||ratelimit.default.svc.cluster.local. Required in cluster mode.",
    summaryZh: "限流服务 gRPC 端口的 HTTP/2 Envoy 集群，例如 outbound|8081||ratelimit.default.svc.cluster.local；cluster 模式必填。",
  },
  {
    key: "quotas.service.domain",
    kind: "text",
    default: "llm-gateway",
    title: "Domain",
    titleZh: "域",
    summary: "Rate-limit domain; the service's configuration must declare it (the limits come from these rules).",
    summaryZh: "限流域；服务配置须声明此域（限额来自本配置的规则）。",
  },
  {
    key: "quotas.service.timeoutMs",
    kind: "integer",
    default: 200,
    min: 1,
    max: 60000,
    title: "Timeout (ms)",
    titleZh: "超时（毫秒）",
    summary: "Time limit of each call to the service.",
    summaryZh: "每次调用限流服务的时间上限。",
  },
  {
    key: "quotas.service.onUnavailable",
    kind: "choice",
    default: "allow",
    choices: ["allow", "deny"],
    title: "When unavailable",
    titleZh: "服务不可用时",
    summary: "allow (admit and count) or deny (503) when the service fails, times out or refuses.",
    summaryZh: "服务失败、超时或拒绝时：allow（放行并计数）或 deny（返回 503）。",
  },
  {
    key: "quotas.rules",
    kind: "groupList",
    default: [],
    title: "Rules",
    titleZh: "规则",
    summary: "Who is limited, on which models, by how much per window.",
    summaryZh: "限制谁、哪些模型、每个窗口多少。",
    help: "Every rule that matches a request applies to it: [below](#quota-rules).",
  },
  {
    key: "quotas.rules[].name",
    kind: "text",
    required: true,
    title: "Name",
    titleZh: "名称",
    summary: "Unique rule name (letters, digits, '.', '_', '-'); names its counters and appears in refusals.",
    summaryZh: "唯一的规则名（字母、数字、'.'、'_'、'-'），用于计数器并出现在拒绝信息中。",
  },
  {
    key: "quotas.rules[].consumerHeader",
    kind: "headerName",
    title: "Consumer header",
    titleZh: "消费者请求头",
    summary: "Identity = this header's value (set by an auth plugin). Optional.",
    summaryZh: "身份为此请求头的值（由认证插件设置），可选。",
    help: "Identity = this header's value, e.g. `x-mse-consumer` set by Higress's key-auth. A request without it counts as `anonymous`.",
  },
  {
    key: "quotas.rules[].apiKeyHeader",
    kind: "headerName",
    title: "API key header",
    titleZh: "API 密钥请求头",
    summary: "Identity = a hash of this header's value (Bearer stripped); the key itself is never stored or logged. Optional.",
    summaryZh: "身份为此请求头值的哈希（去掉 Bearer），密钥本身不会被存储或记录，可选。",
    help: "Used when `consumerHeader` is not set: identity = `k-` + FNV-1a 64 of this header's value (`Bearer ` stripped), so the key never reaches counters, metrics, logs or the service. Neither set: one budget for everybody.",
  },
  {
    key: "quotas.rules[].models",
    kind: "textList",
    default: [],
    title: "Models",
    titleZh: "模型",
    summary: "Requested model names or prefix* patterns; empty: all.",
    summaryZh: "请求的模型名或 prefix* 模式；为空表示全部。",
  },
  {
    key: "quotas.rules[].perModel",
    kind: "flag",
    default: false,
    title: "Per model",
    titleZh: "按模型",
    summary: "A budget per model instead of one shared by the rule's models.",
    summaryZh: "每个模型单独计算配额，而非规则内模型共享。",
  },
  {
    key: "quotas.rules[].window",
    kind: "choice",
    default: "minute",
    choices: ["second", "minute", "hour", "day"],
    title: "Window",
    titleZh: "窗口",
    summary: "Fixed window the limits apply to, aligned to the clock as envoyproxy/ratelimit does.",
    summaryZh: "限额所适用的固定窗口，与 envoyproxy/ratelimit 一样按时钟对齐。",
  },
  {
    key: "quotas.rules[].requests",
    kind: "integer",
    default: 0,
    min: 0,
    max: 4294967295,
    title: "Requests",
    titleZh: "请求数",
    summary: "Requests per window; 0: no limit.",
    summaryZh: "每个窗口的请求数；0 表示不限。",
  },
  {
    key: "quotas.rules[].inputTokens",
    kind: "integer",
    default: 0,
    min: 0,
    max: 4294967295,
    title: "Input tokens",
    titleZh: "输入令牌数",
    summary: "Prompt tokens per window; 0: no limit.",
    summaryZh: "每个窗口的输入令牌数；0 表示不限。",
  },
  {
    key: "quotas.rules[].outputTokens",
    kind: "integer",
    default: 0,
    min: 0,
    max: 4294967295,
    title: "Output tokens",
    titleZh: "输出令牌数",
    summary: "Completion tokens per window; 0: no limit.",
    summaryZh: "每个窗口的输出令牌数；0 表示不限。",
  },
  {
    key: "quotas.rules[].totalTokens",
    kind: "integer",
    default: 0,
    min: 0,
    max: 4294967295,
    title: "Total tokens",
    titleZh: "总令牌数",
    summary: "Prompt and completion tokens per window; 0: no limit.",
    summaryZh: "每个窗口的总令牌数；0 表示不限。",
  },
];

/** Higress's per-rule overrides: not a field of the table, documented beside it. */
export const RULES_HELP =
  "Higress's per-route overrides: objects with `_match_route_`, `_match_domain_` (`*.example.com` allowed) or `_match_service_`, plus any fields above; the first match wins. " +
  "The rule is chosen when the request arrives, before the plugin sets the routing header, so `_match_route_` sees the route Envoy picked without it (not an AI route): use `_match_domain_` to vary routing. " +
  "A rule's `fallback` overrides the global one field by field; its `models` replace the global list.";

/** The console's example configuration (spec.yaml). */
export const CONFIG_EXAMPLE = {
  routingHeader: "x-higress-llm-model",
  defaultModel: "qwen2-1-5b",
  models: [
    { name: "qwen2-1-5b", fallback: ["qwen2-0-5b"] },
    { name: "qwen2-0-5b" },
    { name: "llama-*", route: "llama", upstreamModel: "llama-3-8b-instruct" },
  ],
  fallback: { onStatus: ["5xx", 429], maxAttempts: 2 },
};

/** The fields one level below `parent` ("" = the top level; "models[]" = a model entry). */
export function childFields(parent: string, fields: ConfigField[] = CONFIG_FIELDS): ConfigField[] {
  const prefix = parent.length > 0 ? parent + "." : "";
  return fields.filter((f) => f.key.startsWith(prefix) && f.key.length > prefix.length && !f.key.slice(prefix.length).includes("."));
}

/** Their keys, relative to `parent`. */
export function childKeys(parent: string): string[] {
  const prefix = parent.length > 0 ? parent + "." : "";
  return childFields(parent).map((f) => f.key.slice(prefix.length));
}
