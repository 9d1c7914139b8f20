// The whole plugin in V8 without Envoy (tests/host/proxy-wasm-host.ts): time per request for the request shapes the
// Envoy sections use, the cost per SSE chunk, linear memory over many requests, and a V8 CPU profile
// (node --cpu-prof, in a child process, on a build that keeps function names) of where the plugin's
// own time goes. This is the profile Envoy cannot give: it names the AssemblyScript functions.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "../harness/envoy.ts";
import { seedPluginConfig } from "../harness/seed.ts";
import { chatRoleChunk, sseEvent, tokenChunk, usageChunk, usageOf, type ResponseMeta } from "../backends/vllm-wire.ts";
import { tokenTexts } from "../backends/tokens.ts";
import { chatBody } from "./bodies.ts";
import type { BenchContext } from "./context.ts";
import { BENCH_BUILD, compileAs } from "./gateways.ts";
import { FakeEnvoy, int64Property, type Pairs, type PluginRoot } from "../host/proxy-wasm-host.ts";
import { fixedBodies } from "./nginx.ts";

const MODEL = "qwen2-1-5b";

export interface Exchange {
  requestHeaders: Pairs;
  requestBody: Buffer;
  requestChunkBytes?: number; // Envoy hands the body over in reads of about this size
  responseHeaders: Pairs;
  responseChunks: Buffer[]; // one proxy_on_response_body call each
  properties: Record<string, Buffer>; // "response\0code" → bytes
}

export interface ExchangeOutcome {
  localReplyStatus: number | null;
  routedTo: string | null; // the routing header the plugin set
}

// The plugin in one VM of an in-process Envoy (tests/host/proxy-wasm-host.ts), configured once.
export class BenchPlugin {
  readonly envoy = new FakeEnvoy();
  private constructor(readonly root: PluginRoot) {}

  static async start(wasm: Uint8Array, config: string): Promise<BenchPlugin> {
    const envoy = new FakeEnvoy();
    const vm = await envoy.startVm({ wasm });
    return new BenchPlugin(vm.configure(config));
  }

  get configured(): boolean {
    return this.root.configured;
  }
  get logs(): string[] {
    return this.root.vm.logs.map((l) => l.message);
  }
  memoryBytes(): number {
    return this.root.vm.memoryBytes();
  }

  // One request through the plugin, in Envoy's order. With `phases`, adds each callback's time (ns).
  exchange(e: Exchange, phases?: PhaseTimes): ExchangeOutcome {
    const clock = phases === undefined ? null : new PhaseClock(phases);
    clock?.start();
    const s = this.root.stream({ properties: e.properties });
    s.sendRequestHeaders(e.requestHeaders);
    clock?.lap("requestHeaders");
    const chunk = e.requestChunkBytes ?? e.requestBody.length;
    for (let at = 0; at < e.requestBody.length && !s.answered; at += chunk) {
      const end = Math.min(at + chunk, e.requestBody.length);
      s.sendRequestData(e.requestBody.subarray(at, end), end >= e.requestBody.length);
    }
    clock?.lap("requestBody");
    const routed = s.requestHeader("x-higress-llm-model") ?? null;
    if (!s.answered) {
      s.sendResponseHeaders(e.responseHeaders);
      clock?.lap("responseHeaders");
      e.responseChunks.forEach((c, i) => s.sendResponseData(c, i === e.responseChunks.length - 1));
      clock?.lap("responseBody");
    }
    s.log();
    clock?.lap("log");
    s.finish();
    clock?.lap("doneDelete");
    return { localReplyStatus: s.localReply?.status ?? null, routedTo: routed };
  }
}

// Time per phase of an exchange, summed over exchanges (ns): context create + request headers,
// request body, response headers, response body (all chunks), log + done + delete.
export type Phase = "requestHeaders" | "requestBody" | "responseHeaders" | "responseBody" | "log" | "doneDelete";
export type PhaseTimes = Record<Phase, number>;

export function phaseTimes(): PhaseTimes {
  return { requestHeaders: 0, requestBody: 0, responseHeaders: 0, responseBody: 0, log: 0, doneDelete: 0 };
}

class PhaseClock {
  private t = 0n;

  constructor(private into: PhaseTimes) {}

  start(): void {
    this.t = process.hrtime.bigint();
  }

  lap(phase: Phase): void {
    const now = process.hrtime.bigint();
    this.into[phase] += Number(now - this.t);
    this.t = now;
  }
}

function properties(): Record<string, Buffer> {
  return {
    route_name: Buffer.from(`ai-route-${MODEL}.internal`),
    cluster_name: Buffer.from(`outbound|8080||llm-${MODEL}.dns`),
    "response\0code": int64Property(200),
    "response\0code_details": Buffer.from("via_upstream"),
    plugin_root_id: Buffer.from("llm-gateway"),
  };
}

function requestHeaders(body: string): [string, string][] {
  return [
    [":method", "POST"],
    [":path", "/v1/chat/completions"],
    [":authority", "127.0.0.1:10000"],
    [":scheme", "http"],
    ["content-type", "application/json"],
    ["content-length", String(Buffer.byteLength(body))],
    ["user-agent", "wrk"],
    ["x-request-id", "5f0c6a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f"],
  ];
}

// A non-streamed chat request of `bytes` answered by the fixed vLLM-shaped JSON (with usage).
export function jsonExchange(bytes: number): Exchange {
  const body = chatBody(bytes, { maxTokens: 16 });
  const answer = Buffer.from(fixedBodies(MODEL).json);
  return {
    requestHeaders: requestHeaders(body),
    requestBody: Buffer.from(body),
    requestChunkBytes: 16384,
    responseHeaders: [
      [":status", "200"],
      ["content-type", "application/json"],
      ["content-length", String(answer.length)],
    ],
    responseChunks: [answer],
    properties: properties(),
  };
}

// A streamed chat request answered token by token, one body callback per SSE event (as vLLM writes them).
export function sseExchange(tokens: number): Exchange {
  const body = chatBody(1024, { stream: true, maxTokens: tokens });
  const meta: ResponseMeta = { id: "chatcmpl-bench", created: 1700000000, model: MODEL };
  const texts = tokenTexts(MODEL, tokens);
  const events = [sseEvent(chatRoleChunk(meta, null))];
  texts.forEach((t, i) => events.push(sseEvent(tokenChunk("chat", meta, t, i === texts.length - 1 ? "stop" : null, null))));
  events.push(sseEvent(usageChunk("chat", meta, usageOf(200, tokens))), sseEvent("[DONE]"));
  return {
    requestHeaders: requestHeaders(body),
    requestBody: Buffer.from(body),
    responseHeaders: [
      [":status", "200"],
      ["content-type", "text/event-stream; charset=utf-8"],
    ],
    responseChunks: events.map((e) => Buffer.from(e)),
    properties: properties(),
  };
}

// µs per request spent in each callback phase (after a warm-up).
function phasesOf(host: BenchPlugin, e: Exchange): PhaseTimes {
  for (let i = 0; i < 200; i++) host.exchange(e);
  const t = phaseTimes();
  const n = 2000;
  for (let i = 0; i < n; i++) host.exchange(e, t);
  for (const k of Object.keys(t) as (keyof PhaseTimes)[]) t[k] = t[k] / n / 1000;
  return t;
}

// µs per exchange: warm-up, then the best of three timed rounds of about `targetMs`.
function timeExchange(host: BenchPlugin, e: Exchange, targetMs: number): { us: number; n: number } {
  for (let i = 0; i < 50; i++) host.exchange(e);
  const t0 = process.hrtime.bigint();
  host.exchange(e);
  const approxNs = Math.max(1000, Number(process.hrtime.bigint() - t0));
  const n = Math.max(3, Math.ceil((targetMs * 1e6) / approxNs));
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) host.exchange(e);
    best = Math.min(best, Number(process.hrtime.bigint() - t) / n);
  }
  return { us: best / 1000, n };
}

export interface PluginNodeResult {
  checks: { routedTo: string | null; localReply: number | null };
  jsonUs: { bytes: number; us: number }[];
  phasesUs: { json1k: PhaseTimes; sse16: PhaseTimes }; // µs per request, per callback phase
  sse: { tokens: number; us: number }[];
  perChunkUs: number;
  memory: { requests: number; bytesBefore: number; bytesAfter: number };
  profiles: { json1k: ProfileSummary; sse16: ProfileSummary } | null;
  profileError?: string;
}

export interface ProfileSummary {
  scenario: string;
  samples: number;
  wasmShare: number; // samples with plugin code on the stack, of all non-idle samples
  hostShare: number; // of those: in the mock host's JavaScript (host calls)
  gcShare: number; // V8's own GC and runtime ("(garbage collector)", "(program)"), of all
  top: { fn: string; share: number }[]; // by self time, share of the plugin's samples
  inclusive: { fn: string; share: number }[]; // by time including callees, share of the plugin's samples
}

export async function runPluginNode(ctx: BenchContext): Promise<PluginNodeResult> {
  const host = await BenchPlugin.start(readFileSync(ctx.probes.plugin), JSON.stringify(seedPluginConfig()));
  if (!host.configured) throw new Error(`the plugin refused the seed configuration: ${host.logs.join(" | ")}`);
  const targetMs = ctx.opts.smoke ? 5 : 150;
  const check = host.exchange(jsonExchange(1024));
  const jsonUs = ctx.opts.sizes.map((bytes) => ({ bytes, us: timeExchange(host, jsonExchange(bytes), targetMs).us }));
  const few = 16;
  const many = ctx.opts.smoke ? 64 : 512;
  const sse = [few, many].map((tokens) => ({ tokens, us: timeExchange(host, sseExchange(tokens), targetMs).us }));
  const perChunkUs = ((sse[1]?.us ?? NaN) - (sse[0]?.us ?? NaN)) / (many - few);
  const phasesUs = { json1k: phasesOf(host, jsonExchange(1024)), sse16: phasesOf(host, sseExchange(16)) };
  const before = host.memoryBytes();
  const requests = ctx.opts.smoke ? 5_000 : 100_000;
  const e = jsonExchange(1024);
  const s = sseExchange(16);
  for (let i = 0; i < requests; i++) host.exchange(i % 4 === 3 ? s : e);
  const out: PluginNodeResult = {
    checks: { routedTo: check.routedTo, localReply: check.localReplyStatus },
    jsonUs,
    phasesUs,
    sse,
    perChunkUs,
    memory: { requests, bytesBefore: before, bytesAfter: host.memoryBytes() },
    profiles: null,
  };
  if (!ctx.opts.cpuProfile) {
    out.profileError = "skipped (BENCH_CPU_PROFILE=0, or a smoke run)";
    return out;
  }
  try {
    const seconds = ctx.opts.smoke ? 0.3 : 3;
    out.profiles = { json1k: cpuProfile("json1k", seconds), sse16: cpuProfile("sse16", seconds) };
  } catch (err) {
    out.profileError = String((err as Error).message ?? err).slice(0, 1000);
  }
  return out;
}

// The plugin rebuilt with its function names kept (--debug adds the name section; same optimisation
// level), then profiled by V8's sampling profiler in a child process.
type ProfileScenario = "json1k" | "sse16";
const SCENARIO_TEXT: Record<ProfileScenario, string> = {
  json1k: "1 KB chat → JSON answer with usage",
  sse16: "1 KB chat → 16-token SSE stream with usage",
};

function cpuProfile(scenario: ProfileScenario, seconds: number): ProfileSummary {
  const named = join(BENCH_BUILD, "plugin.names.wasm");
  compileAs("assembly/main.ts", named, ["--target", "release", "--debug"]);
  const dir = mkdtempSync(join(tmpdir(), "llm-gw-cpuprof-"));
  try {
    const r = spawnSync(
      process.execPath,
      [
        "--cpu-prof",
        "--cpu-prof-dir",
        dir,
        "--cpu-prof-interval",
        "100",
        "--import",
        "tsx",
        join(ROOT, "tests/bench/plugin-node.ts"),
        "--profile-child",
        named,
        scenario,
        String(seconds),
      ],
      { cwd: ROOT, encoding: "utf8", timeout: 120000 },
    );
    if (r.status !== 0) throw new Error(`profile child failed: ${r.stderr}`);
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (file === undefined) throw new Error("no .cpuprofile written");
    return summarizeProfile(JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile, SCENARIO_TEXT[scenario]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
}

export function summarizeProfile(p: CpuProfile, scenario: string): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let inPlugin = 0,
    hostJs = 0,
    gc = 0,
    total = 0;
  for (const id of p.samples) {
    const leaf = byId.get(id)?.callFrame;
    if (leaf === undefined || leaf.functionName === "(idle)") continue;
    total++;
    if (leaf.functionName === "(garbage collector)" || leaf.functionName === "(program)") gc++;
    // The Wasm functions on this sample's stack, each once; a JS leaf under them is a host call.
    const onStack = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (f !== undefined && f.url.startsWith("wasm://")) onStack.add(f.functionName);
    }
    if (onStack.size === 0) continue;
    inPlugin++;
    for (const fn of onStack) inclusive.set(fn, (inclusive.get(fn) ?? 0) + 1);
    const selfName = leaf.url.startsWith("wasm://") ? leaf.functionName : "(host calls: the JS proxy-wasm host)";
    if (!leaf.url.startsWith("wasm://")) hostJs++;
    self.set(selfName, (self.get(selfName) ?? 0) + 1);
  }
  const rank = (m: Map<string, number>, k: number): { fn: string; share: number }[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([fn, c]) => ({ fn, share: inPlugin > 0 ? c / inPlugin : 0 }));
  return {
    scenario,
    samples: total,
    wasmShare: total > 0 ? inPlugin / total : 0,
    hostShare: inPlugin > 0 ? hostJs / inPlugin : 0,
    gcShare: total > 0 ? gc / total : 0,
    top: rank(self, 15),
    inclusive: rank(inclusive, 25),
  };
}

async function profileChild(wasm: string, scenario: string, seconds: number): Promise<void> {
  const host = await BenchPlugin.start(readFileSync(wasm), JSON.stringify(seedPluginConfig()));
  const e = scenario === "sse16" ? sseExchange(16) : jsonExchange(1024);
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < deadline) host.exchange(e);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf("--profile-child");
  const wasm = process.argv[i + 1];
  const scenario = process.argv[i + 2];
  if (i < 0 || wasm === undefined || scenario === undefined) {
    process.stderr.write("usage: plugin-node.ts --profile-child PLUGIN.wasm json1k|sse16 SECONDS\n");
    process.exit(2);
  }
  profileChild(wasm, scenario, Number(process.argv[i + 3] ?? 3)).catch((e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exit(1);
  });
}
