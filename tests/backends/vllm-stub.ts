// vLLM-compatible stub backend for the local Envoy harness and `make demo` (no GPU here).
// Wire format: see vllm-wire.ts; request checks: see requests.ts.
//
// Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
// and the control plane: POST /stub/faults, DELETE /stub/faults, GET /stub/faults, GET /stub/stats.
//
// Faults, per request via headers, or for every request via POST /stub/faults with a JSON body
// of the same names (prefix optional): {"status": 503} or {"x-stub-status": 503}.
// Headers win over the control endpoint, which wins over the startup options.
// They apply to the two generation endpoints only, so health checks keep passing.
//   x-stub-status: N             answer status N (400-599) with a vLLM error body, no generation
//   x-stub-delay-ms: N           wait N ms before anything else (headers included)
//   x-stub-ttft-ms: N            first-token delay, overrides --ttft-ms
//   x-stub-token-interval-ms: N  delay between tokens, overrides --token-interval-ms
//   x-stub-completion-tokens: N  tokens to generate before EOS, overrides --completion-tokens
//   x-stub-drop: 1               destroy the socket without any response (after delay-ms)
//   x-stub-cut-after: N          streaming: send N data events, then destroy the socket (never [DONE]);
//                                non-streaming: send the headers and N bytes of the body, then destroy
//   x-stub-no-usage: 1           never send usage (no `usage` key, no usage chunk, no running usage)
//   x-stub-end-without-done: 1   streaming: end the response cleanly without `data: [DONE]`
//   x-stub-reasoning-tokens: N   chat: answer as vLLM main started with --reasoning-parser does: the
//                                first N generated tokens are reasoning (deltas {"reasoning": "..."},
//                                non-streamed `message.reasoning`), the rest the answer (`content`), and
//                                usage carries completion_tokens_details {"reasoning_tokens": N}
//                                (running count on continuous usage). 0: a reasoning parser, no reasoning.
//                                No effect on /v1/completions (vLLM runs no reasoning parser there).
//   x-stub-reasoning-usage: 0    with reasoning-tokens: no completion_tokens_details (null / absent), as
//                                vLLM releases before PR #45802 (e.g. 0.25.x) send; OpenAI's API and vLLM
//                                main report reasoning_tokens, so 1 (the default) is both
//   x-stub-reasoning-field: F    with reasoning-tokens: "reasoning" (vLLM since PR #27752/#33402, the
//                                default) or "reasoning_content" (older vLLM, DeepSeek's API, llama.cpp)
//                                Who sends what: see vllm-wire.ts.
//   x-stub-tag: S                replica mode: recorded with the request's simulated TTFT and cached
//                                tokens in GET /stub/stats (replica.requests), for benchmarks
//   x-stub-target: MODEL         the headers above apply only on the backend serving MODEL
//                                (fail the primary, let the fallback answer, in one request)
// An unknown x-stub-* header or a bad value answers 400 with type "StubConfigError".
//
// Every response carries `x-stub-model: <served model>`, and the first generated token is the
// model name, so tests can tell which backend answered from headers or body.
//
// Replica mode (option `replica`, CLI --replica NAME): the stub serves as one vLLM replica of a fleet,
// its timing and prefix cache from the model in replica.ts (continuous batching, chunked prefill, LRU
// prefix cache) instead of ttft-ms / token-interval-ms. Every response then carries
// `x-stub-replica: NAME`; usage reports `prompt_tokens_details.cached_tokens` when the prefix cache hit
// (vLLM with --enable-prompt-tokens-details); GET /metrics shows the replica's queue, KV-cache usage and
// prefix-cache counters under vLLM's names. Without it, GET /metrics reports the requests in flight.
//
// ORCA load report (orca-report.ts): a non-streamed answer to a request with
// `endpoint-load-metrics-format: TEXT|JSON` carries `endpoint-load-metrics` with the
// vllm:num_requests_waiting and vllm:kv_cache_usage_perc that GET /metrics shows as it is sent.

import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { pause, parseJsonOrRaw, readBody, sendJson, write } from "./http-io.ts";
import { faultsFromHeaders, faultsFromJson, mergeFaults, type Faults } from "./faults.ts";
import { parseGenerationRequest, plannedCompletion } from "./requests.ts";
import { outputTokenIds, promptTokenIds, tokenTexts, type Endpoint } from "./tokens.ts";
import { Replica, type Clock, type ReplicaParams, type ReplicaStats } from "./replica.ts";
import { REPLICA_PRESET } from "./fleet-params.ts";
import { metricsText } from "./vllm-metrics.ts";
import { ORCA_FORMAT_HEADER, ORCA_REPORT_HEADER, orcaLoadReport } from "./orca-report.ts";
import {
  chatCompletionBody,
  completionBody,
  errorBody,
  ID_PREFIX,
  modelList,
  planStream,
  reasoningTokensOf,
  usageOf,
  type Reasoning,
  type ResponseMeta,
} from "./vllm-wire.ts";

export interface StubOptions {
  /** Served model name, e.g. "qwen2-1-5b". */
  model: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  ttftMs?: number;
  tokenIntervalMs?: number;
  completionTokens?: number;
  /** How long an idle keep-alive connection stays open; default 5000, as vLLM's server (uvicorn) does. */
  keepAliveTimeoutMs?: number;
  /** Serve as one replica of a fleet, timed by the replica model (see the header comment). */
  replica?: {
    name: string;
    params: ReplicaParams;
    /** Tests: the engine's clock, to hold it between steps (default: the wall clock). */
    clock?: Clock;
  };
}

export interface StubHandle {
  port: number;
  url: string;
  /** Generation requests received (counted on arrival, faults included); pass a path for one endpoint. */
  hits: (path?: string) => number;
  /** Replica mode: the model's counters and gauges (what GET /metrics shows). */
  replicaStats(): ReplicaStats | null;
  close(): Promise<void>;
}

export const STUB_DEFAULTS = {
  host: "127.0.0.1",
  port: 0,
  ttftMs: 0,
  tokenIntervalMs: 0,
  completionTokens: 16,
  maxModelLen: 32768,
} as const;

const GENERATION_PATHS: ReadonlyMap<string, Endpoint> = new Map([
  ["/v1/chat/completions", "chat"],
  ["/v1/completions", "completions"],
]);

interface LastRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  raw: string;
}

/** A request the replica model served (GET /stub/stats, replica.requests). */
export interface ReplicaRequest {
  tag: string | null;
  promptTokens: number;
  cachedTokens: number;
  /** On the replica's simulated clock, ms: from arrival to the first token. */
  ttftMs: number;
}

interface StubState {
  model: string;
  base: Faults;
  control: Faults;
  hits: Map<string, number>;
  lastRequest: LastRequest | null;
  inFlight: number;
  aborted: number;
  replica: { name: string; engine: Replica; requests: ReplicaRequest[] } | null;
  startedSec: number;
}

function stubConfigError(res: ServerResponse, model: string, message: string): void {
  sendJson(res, model, 400, errorBody(`stub: ${message}`, "StubConfigError", 400, null));
}

async function handleGeneration(
  state: StubState,
  endpoint: Endpoint,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  const raw = await readBody(req);
  state.hits.set(path, (state.hits.get(path) ?? 0) + 1);
  // Kept raw and parsed only when /stub/stats asks: a burst of long prompts should not parse each twice.
  state.lastRequest = { method: req.method ?? "", path, headers: { ...req.headers }, raw };

  const fromHeaders = faultsFromHeaders(req.headers, state.model);
  if (!fromHeaders.ok) return stubConfigError(res, state.model, fromHeaders.error);
  const faults = mergeFaults(state.base, state.control, fromHeaders.faults);
  // Starlette's headers.get takes the first of repeated headers; Node would join them with ", ".
  const orcaFormat = req.headersDistinct[ORCA_FORMAT_HEADER]?.[0];

  // Timers stop when the client goes away: 'close' before the response ended means a disconnect.
  const abort = new AbortController();
  let cutByUs = false;
  const cut = (): void => {
    cutByUs = true;
    res.destroy();
  };
  res.on("close", () => {
    if (res.writableFinished) return;
    if (!cutByUs) state.aborted += 1;
    abort.abort();
  });
  const { signal } = abort;

  if (!(await pause(faults.delayMs ?? 0, signal))) return;
  if (faults.drop === true) return cut();
  if (faults.status !== undefined) {
    const phrase = STATUS_CODES[faults.status] ?? "Error";
    // Shape of vLLM's HTTPException handler: type is the status phrase.
    return sendJson(res, state.model, faults.status, errorBody(`stub: injected ${faults.status}`, phrase, faults.status, null));
  }

  const parsed = parseGenerationRequest(
    endpoint,
    state.model,
    req.headers["content-type"],
    typeof req.headers["x-request-id"] === "string" ? req.headers["x-request-id"] : undefined,
    raw,
  );
  if (!parsed.ok) return sendJson(res, state.model, parsed.status, parsed.body);
  const request = parsed.request;

  const { tokens: count, finishReason } = plannedCompletion(faults.completionTokens ?? STUB_DEFAULTS.completionTokens, request.maxTokens);
  const tokens = tokenTexts(state.model, count);
  const meta: ResponseMeta = {
    id: ID_PREFIX[endpoint] + request.idBase,
    created: Math.floor(Date.now() / 1000),
    model: state.model,
  };
  // Replica mode: the engine decides when each token exists; the plan carries no waits.
  const engine = state.replica?.engine ?? null;
  const seq = engine?.submit(
    promptTokenIds(endpoint, request.body),
    outputTokenIds(state.model, count, endpoint === "chat" ? "assistant" : ""),
  );
  if (seq !== undefined && engine !== null) {
    signal.addEventListener("abort", () => engine.cancel(seq));
    const records = state.replica?.requests;
    void seq.waitFor(1).then(() => {
      if (seq.ttftMs !== null) {
        records?.push({ tag: faults.tag ?? null, promptTokens: seq.promptTokens, cachedTokens: seq.cachedTokens, ttftMs: seq.ttftMs });
      }
    });
  }
  const ttftMs = engine !== null ? 0 : (faults.ttftMs ?? 0);
  const tokenIntervalMs = engine !== null ? 0 : (faults.tokenIntervalMs ?? 0);
  const withUsage = faults.noUsage !== true;
  const reasoning: Reasoning | null =
    endpoint === "chat" && faults.reasoningTokens !== undefined
      ? { tokens: faults.reasoningTokens, field: faults.reasoningField ?? "reasoning", usage: faults.reasoningUsage !== false }
      : null;

  if (!request.stream) {
    // vLLM answers only once generation is done.
    if (!(await pause(ttftMs + (count - 1) * tokenIntervalMs, signal))) return;
    if (seq !== undefined) await seq.waitFor(count);
    if (signal.aborted) return;
    // vLLM reads its gauges as it builds the answer, after generation.
    const report = orcaLoadReport(orcaFormat, gauges(state));
    if (report !== null) res.setHeader(ORCA_REPORT_HEADER, report);
    const usage = withUsage ? usageOf(request.promptTokens, count, reasoningTokensOf(reasoning, count), seq?.cachedTokens) : null;
    let body: Record<string, unknown>;
    if (endpoint === "completions") body = completionBody(meta, tokens.join(""), finishReason, usage);
    else if (reasoning === null) body = chatCompletionBody(meta, tokens.join(""), finishReason, usage);
    else {
      // vLLM's parsers return None for an empty part.
      const split = Math.min(reasoning.tokens, count);
      const thought = tokens.slice(0, split).join("");
      const answer = tokens.slice(split).join("");
      body = chatCompletionBody(meta, answer === "" ? null : answer, finishReason, usage, {
        field: reasoning.field,
        text: thought === "" ? null : thought,
      });
    }
    if (faults.cutAfter === undefined) return sendJson(res, state.model, 200, body);
    const payload = Buffer.from(JSON.stringify(body));
    res.writeHead(200, { "content-type": "application/json", "content-length": payload.length, "x-stub-model": state.model });
    res.write(payload.subarray(0, faults.cutAfter), cut);
    return;
  }

  // Starlette adds the charset to text/* media types; headers go out before the first token.
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "x-stub-model": state.model });
  res.flushHeaders();
  // Replica mode: the prefix-cache hit is known once the engine admits the request, before its first token.
  if (seq !== undefined) {
    await seq.waitFor(1);
    if (signal.aborted) return;
  }
  const events = planStream({
    endpoint,
    meta,
    tokens,
    finishReason,
    promptTokens: request.promptTokens,
    includeUsage: request.includeUsage && withUsage,
    continuousUsage: request.continuousUsage && withUsage,
    sendDone: faults.endWithoutDone !== true && faults.cutAfter === undefined,
    ttftMs,
    tokenIntervalMs,
    reasoning,
    ...(seq !== undefined ? { cachedTokens: seq.cachedTokens } : {}),
  });
  // Replica mode: event i waits for the tokens it carries (chat: the role chunk goes with the first token).
  const tokensFor = (i: number): number => Math.min(count, endpoint === "chat" ? Math.max(1, i) : i + 1);
  // A cut waits for the written events to reach the socket, or destroy() would discard them.
  let sent = 0;
  let flushed: Promise<unknown> = Promise.resolve();
  for (const event of events) {
    if (faults.cutAfter !== undefined && sent >= faults.cutAfter) break;
    if (!(await pause(event.waitMs, signal))) return;
    if (seq !== undefined) {
      await seq.waitFor(tokensFor(sent));
      if (signal.aborted) return;
    }
    const written = await write(res, event.data, signal);
    if (!written.ok) return;
    flushed = written.flushed;
    sent += 1;
  }
  if (faults.cutAfter === undefined) return void res.end();
  await flushed;
  cut();
}

async function handleFaults(state: StubState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === "DELETE") {
    state.control = {};
    return sendJson(res, state.model, 200, { faults: state.control });
  }
  if (req.method === "GET") return sendJson(res, state.model, 200, { faults: state.control });
  const parsed = faultsFromJson(parseJsonOrRaw(await readBody(req)));
  if (!parsed.ok) return stubConfigError(res, state.model, parsed.error);
  state.control = parsed.faults;
  return sendJson(res, state.model, 200, { faults: state.control });
}

function statsBody(state: StubState): unknown {
  let hits = 0;
  for (const n of state.hits.values()) hits += n;
  const last = state.lastRequest;
  return {
    hits,
    hitsByPath: Object.fromEntries(state.hits),
    inFlight: state.inFlight,
    aborted: state.aborted,
    replica:
      state.replica === null ? null : { name: state.replica.name, ...state.replica.engine.snapshot(), requests: state.replica.requests },
    lastRequest: last === null ? null : { method: last.method, path: last.path, headers: last.headers, body: parseJsonOrRaw(last.raw) },
  };
}

// What GET /metrics and the ORCA report show: the replica's gauges, or the plain stub's in-flight count.
function gauges(state: StubState): ReplicaStats {
  return (
    state.replica?.engine.snapshot() ?? {
      running: state.inFlight,
      waiting: 0,
      kvCacheUsage: 0,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      cachedBlocks: 0,
      requestsStarted: 0,
      requestsFinished: 0,
      preemptions: 0,
      steps: 0,
      busyMs: 0,
    }
  );
}

async function route(state: StubState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? "/", "http://stub").pathname;
  const method = req.method ?? "GET";
  if (state.replica !== null) res.setHeader("x-stub-replica", state.replica.name);
  const endpoint = GENERATION_PATHS.get(path);
  if (endpoint !== undefined && method === "POST") {
    state.inFlight += 1;
    try {
      return await handleGeneration(state, endpoint, req, res, path);
    } finally {
      state.inFlight -= 1;
    }
  }
  if (path === "/health" && method === "GET") {
    res.writeHead(200, { "content-length": 0, "x-stub-model": state.model });
    return void res.end();
  }
  if (path === "/v1/models" && method === "GET") {
    const created = Math.floor(Date.now() / 1000);
    const permissionId = `modelperm-${randomBytes(16).toString("hex")}`;
    return sendJson(res, state.model, 200, modelList(state.model, state.model, STUB_DEFAULTS.maxModelLen, created, permissionId));
  }
  if (path === "/stub/faults" && ["POST", "DELETE", "GET"].includes(method)) return handleFaults(state, req, res);
  if (path === "/stub/stats" && method === "GET") return sendJson(res, state.model, 200, statsBody(state));
  if (path === "/metrics" && method === "GET") {
    const text = metricsText(state.model, gauges(state), state.startedSec);
    // prometheus_client's text format 0.0.4.
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": Buffer.byteLength(text) });
    return void res.end(text);
  }
  // FastAPI's defaults for unknown paths and methods.
  const known = endpoint !== undefined || ["/health", "/v1/models", "/stub/faults", "/stub/stats", "/metrics"].includes(path);
  return sendJson(res, state.model, known ? 405 : 404, { detail: known ? "Method Not Allowed" : "Not Found" });
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`vllm-stub: ${name} must be an integer >= ${min}, got ${value}`);
}

export async function startStub(opts: StubOptions): Promise<StubHandle> {
  if (opts.model === "") throw new Error("vllm-stub: model must not be empty");
  const host = opts.host ?? STUB_DEFAULTS.host;
  const base: Faults = {
    ttftMs: opts.ttftMs ?? STUB_DEFAULTS.ttftMs,
    tokenIntervalMs: opts.tokenIntervalMs ?? STUB_DEFAULTS.tokenIntervalMs,
    completionTokens: opts.completionTokens ?? STUB_DEFAULTS.completionTokens,
  };
  checkCount("ttftMs", base.ttftMs ?? 0, 0);
  checkCount("tokenIntervalMs", base.tokenIntervalMs ?? 0, 0);
  checkCount("completionTokens", base.completionTokens ?? 0, 1);

  const state: StubState = {
    model: opts.model,
    base,
    control: {},
    hits: new Map(),
    lastRequest: null,
    inFlight: 0,
    aborted: 0,
    replica:
      opts.replica === undefined
        ? null
        : { name: opts.replica.name, engine: new Replica(opts.replica.params, opts.replica.clock), requests: [] },
    startedSec: Date.now() / 1000,
  };
  const server = createServer({ noDelay: true }, (req, res) => {
    route(state, req, res).catch((error: unknown) => {
      if (!res.headersSent) stubConfigError(res, state.model, `internal: ${String(error)}`);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5000;
  server.listen(opts.port ?? STUB_DEFAULTS.port, host);
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("vllm-stub: no TCP address");
  const urlHost = host.includes(":") ? `[${host}]` : host;

  let closing: Promise<void> | null = null;
  return {
    port: address.port,
    url: `http://${urlHost}:${address.port}`,
    hits: (path?: string) => {
      if (path !== undefined) return state.hits.get(path) ?? 0;
      let total = 0;
      for (const n of state.hits.values()) total += n;
      return total;
    },
    replicaStats: () => state.replica?.engine.snapshot() ?? null,
    close() {
      // Idle keep-alive sockets and open streams would keep the port busy; destroy them.
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function intArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`vllm-stub: --${name} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "ttft-ms": { type: "string" },
      "token-interval-ms": { type: "string" },
      "completion-tokens": { type: "string" },
      replica: { type: "string" },
      speed: { type: "string" },
      "kv-blocks": { type: "string" },
      "prefill-us-per-token": { type: "string" },
    },
    strict: true,
  });
  if (values.model === undefined) {
    throw new Error(
      "usage: vllm-stub --model NAME [--host H] [--port N] [--ttft-ms N] [--token-interval-ms N] [--completion-tokens N]\n" +
        "                 [--replica NAME [--speed X] [--kv-blocks N] [--prefill-us-per-token N]]",
    );
  }
  const numberArg = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`vllm-stub: --${name} must be a positive number, got "${value}"`);
    return n;
  };
  const replica =
    values.replica === undefined
      ? undefined
      : {
          name: values.replica,
          params: {
            ...REPLICA_PRESET,
            speed: numberArg("speed", values.speed) ?? REPLICA_PRESET.speed,
            numBlocks: intArg("kv-blocks", values["kv-blocks"]) ?? REPLICA_PRESET.numBlocks,
            prefillUsPerToken: numberArg("prefill-us-per-token", values["prefill-us-per-token"]) ?? REPLICA_PRESET.prefillUsPerToken,
          },
        };
  const handle = await startStub({
    model: values.model,
    host: values.host,
    port: intArg("port", values.port),
    ttftMs: intArg("ttft-ms", values["ttft-ms"]),
    tokenIntervalMs: intArg("token-interval-ms", values["token-interval-ms"]),
    completionTokens: intArg("completion-tokens", values["completion-tokens"]),
    ...(replica !== undefined ? { replica } : {}),
  });
  process.stdout.write(JSON.stringify({ model: values.model, port: handle.port, url: handle.url }) + "\n");
  const shutdown = (): void => {
    handle.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  });
}
