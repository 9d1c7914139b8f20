// The markdown report: what was measured, on what, with which CPU split; the targets; one table per
// section; and, for every missed target, what the measurements say limits it.
import type { FallbackResult, FallbackSeriesName } from "./fallback.ts";
import { QUOTA_VARIANTS, quotaAdded, type QuotaResult } from "./quota.ts";
import type { Variant } from "./gateways.ts";
import type { TtftTargetName } from "./streaming.ts";
import { PERF_GROUPS, type PerfGroup } from "./perf.ts";
import { median, type Spread } from "./stats.ts";
import { othersShare } from "./procs.ts";
import {
  FALLBACK_BUDGET_MS,
  FALLBACK_KINDS,
  THROUGHPUT_GOAL,
  fmt,
  rangeText,
  type FallbackSummary,
  type RawResults,
  type Summary,
} from "./summary.ts";

const VARIANT_TEXT: Record<Variant, string> = {
  plain: "plain Envoy (no Wasm filter)",
  "wasm-min": "+ minimal Wasm filter: writes a fixed routing header (probe-min)",
  "wasm-buffer": "+ hold headers, buffer body, copy into VM, route by header (probe-buffer)",
  plugin: "+ the plugin (build/plugin.wasm)",
  "plugin-no-fallback": "the plugin without the seed's fallback chain (no aggregate cluster, retry policy or attempt stage)",
};

const TTFT_TEXT: Record<TtftTargetName, string> = {
  direct: "straight to the stub",
  plain: "plain Envoy",
  "wasm-buffer": "Envoy + probe-buffer (holds the request, no parsing)",
  plugin: "Envoy + plugin",
  "plugin-no-edit": "Envoy + plugin, body already asks for usage (no rewrite)",
};

const GROUP_TEXT: Record<string, string> = {
  envoy: "Envoy binary (C++, V8 runtime)",
  kernel: "kernel (sockets, syscalls)",
  "wasm-jit": "V8-generated code (the Wasm module)",
  "libc-other": "libc, vdso, other",
};

function r(s: Spread | undefined, digits = 1, unit = ""): string {
  return s === undefined ? "n/a" : rangeText(s, digits, unit);
}

function mib(n: number | null): string {
  return n === null ? "n/a" : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function bytesText(n: number): string {
  if (n >= 1024 * 1024) return `${n / 1024 / 1024} MB`;
  if (n >= 1024) return `${n / 1024} KB`;
  return `${n} B`;
}

function pct(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? "n/a" : `${(x * 100).toFixed(0)} %`;
}

export function renderReport(raw: RawResults, s: Summary, chartFile: string | null): string {
  const m = raw.machine;
  const o = raw.options;
  const L: string[] = [];
  const date = raw.startedAt.replace("T", " ").replace(/\.\d+Z$/, " UTC");
  L.push(`# llm-gateway benchmark — ${date}`, "");
  L.push(
    `Machine: ${m.nproc} cores, ${m.cpuModel}, ${(m.memTotalBytes / 1024 ** 3).toFixed(0)} GiB memory, Linux ${m.kernel}. ` +
      `Envoy ${m.envoy} (--concurrency 1), Node ${m.node}, wrk ${m.wrk}, nginx ${m.nginx}, matplotlib ${m.matplotlib}.`,
    "",
  );
  L.push(
    `Plugin: \`build/plugin.wasm\`, ${raw.plugin.bytes.toLocaleString("en-US")} bytes, sha256 ${raw.plugin.sha256.slice(0, 16)}…. ` +
      `Run: ${o.repeats} repeat(s) of sections 1–3, ${fmt(raw.durationS, 0)} s in all${o.smoke ? " (SMOKE run: tiny durations, figures meaningless)" : ""}.`,
    "",
  );
  if (chartFile !== null) L.push(`![latency percentiles and ratios](${chartFile})`, "");

  L.push("## CPU split", "", raw.cpuPlan, "");
  if (s.cpuSplit !== null) {
    const p = s.cpuSplit.processes;
    L.push(
      `Measured during the plugin's saturation run (share of one core): Envoy ${pct(p["envoy"])}, wrk ${pct(p["load-generator"])}, ` +
        `${raw.calibration.chosen} ${pct(p["backend"])}, this Node process ${pct(p["bench"])}; cores busy: ${s.cpuSplit.coreBusy.map((b, i) => `core ${i} ${pct(b)}`).join(", ")}.`,
      "",
    );
  }
  const others = raw.nonStreaming.flatMap((n) => Object.values(n.runs).map((v) => othersShare(v.cpu)));
  if (others.length > 0) {
    L.push(
      `CPU used by anything else on the machine (other processes, kernel threads) during the throughput runs: median ${pct(median(others))}, at most ${pct(Math.max(...others))} of a core. ` +
        "Runs disturbed by other work on the machine show up as a wide spread across repeats.",
      "",
    );
  }
  const c64 = raw.streaming[0]?.load[raw.streaming[0].load.length - 1];
  if (c64?.runs.plugin !== undefined) {
    const p = c64.runs.plugin.cpu.processes;
    L.push(
      `During ${c64.concurrency} concurrent streams through the plugin: Envoy ${pct(p["envoy"]?.coreShare)}, vLLM stub ${pct(p["backend"]?.coreShare)}, ` +
        `streaming client (this process) ${pct(p["bench"]?.coreShare)}; cores busy: ${c64.runs.plugin.cpu.coreBusy.map((b, i) => `core ${i} ${pct(b)}`).join(", ")}.`,
      "",
    );
  }

  L.push(
    "## Targets",
    "",
    `Median over ${o.repeats} repeat(s), range in parentheses; differences and ratios are paired within each repeat.`,
    "",
  );
  L.push("| Target | Goal | Measured | Met |", "|---|---|---|---|");
  for (const t of s.targets) L.push(`| ${t.id} | ${t.goal} | ${t.measured} | ${t.met === null ? "n/a" : t.met ? "yes" : "**no**"} |`);
  L.push("");

  // 1
  const ns = s.nonStreaming;
  L.push("## 1. Non-streaming requests", "");
  L.push(
    `POST /v1/chat/completions, ${o.bodyBytes}-byte body, fixed ${raw.calibration.chosen} answer (vLLM-shaped JSON with usage). ` +
      `Throughput: wrk, ${o.connections} connections, ${o.seconds} s per configuration. Latency: one connection (closed loop), ${o.latencySeconds} s per configuration. ` +
      "Both in two turns per configuration, the configurations taking turns (latency percentiles: the mean of the turns'). " +
      "Envoy CPU per request: Envoy's threads' CPU time (schedstat) during the throughput run ÷ requests.",
    "",
  );
  L.push("| Configuration | Throughput (req/s) | × plain | p50 (µs) | p99 (µs) | Envoy CPU/request (µs) |", "|---|---|---|---|---|---|");
  for (const v of Object.keys(ns.rps) as Variant[]) {
    L.push(
      `| ${VARIANT_TEXT[v]} | ${r(ns.rps[v], 0)} | ${r(ns.ratioToPlain[v], 3)} | ${r(ns.p50Us[v], 0)} | ${r(ns.p99Us[v], 0)} | ${r(ns.envoyCpuUsPerRequest[v], 1)} |`,
    );
  }
  L.push("", `Added by the plugin (vs plain Envoy, one connection): p50 ${r(ns.addedP50Us)} µs, p99 ${r(ns.addedP99Us)} µs.`, "");
  if (ns.ladder !== null) {
    L.push("Where the plugin's Envoy CPU per request goes (differences of the rows above):", "");
    L.push("| Step | µs per request |", "|---|---|");
    L.push(
      `| any Wasm filter (probe-min − plain): VM calls for context create, headers, body, response, log, done, delete; one header write and route re-pick | ${r(ns.ladder.wasmFilterUs, 1)} |`,
    );
    L.push(
      `| hold the headers, let Envoy buffer the body, copy it into the VM, route from the body phase (probe-buffer − probe-min) | ${r(ns.ladder.bufferRerouteUs, 1)} |`,
    );
    L.push(
      `| the plugin's own work: JSON scan, model lookup, response handling, metrics (plugin − probe-buffer) | ${r(ns.ladder.pluginOwnUs, 1)} |`,
    );
    L.push(`| **total (plugin − plain)** | ${r(ns.ladder.totalUs, 1)} |`, "");
  }
  if (ns.fallbackChainUs !== null) {
    L.push(
      `Of that total, the seed's fallback chain (plugin − plugin without it: Envoy's aggregate cluster and retry policy, and the plugin's attempt stage, an upstream Wasm filter that runs on every attempt) costs ${r(ns.fallbackChainUs, 1)} µs per request.`,
      "",
    );
  }
  if (ns.perfUsPerRequest !== null) {
    const cols = Object.keys(ns.perfUsPerRequest) as Variant[];
    L.push("perf(1) on Envoy (cpu-clock samples split by where the code lives, × Envoy CPU per request; first repeat):", "");
    L.push(`| µs per request | ${cols.join(" | ")} |`, `|---|${cols.map(() => "---").join("|")}|`);
    for (const g of PERF_GROUPS)
      L.push(`| ${GROUP_TEXT[g] ?? g} | ${cols.map((v) => fmt(ns.perfUsPerRequest?.[v]?.[g] ?? NaN, 1)).join(" | ")} |`);
    L.push("");
  }
  const perfErr = raw.nonStreaming.find((x) => x.perfError !== undefined)?.perfError;
  if (perfErr !== undefined) L.push(`perf profile unavailable: ${perfErr}`, "");
  L.push(...pluginInV8(raw));
  L.push("Backend calibration (wrk straight to each backend, no Envoy; the cheaper one serves sections 1, 3, 4):", "");
  L.push("| Backend | req/s | backend CPU/request (µs) | backend share of a core |", "|---|---|---|---|");
  for (const c of raw.calibration.runs)
    L.push(
      `| ${c.name}${c.name === raw.calibration.chosen ? " (used)" : ""} | ${fmt(c.load.rps, 0)} | ${fmt(c.backendCpuUsPerRequest, 1)} | ${pct(c.backendCoreShare)} |`,
    );
  L.push("");

  // 2
  const st = s.streaming;
  L.push("## 2. Streaming", "");
  L.push(
    `vLLM stub (tests/backends/vllm-stub.ts, its own process; one write per SSE event, as vLLM). TTFT: ${o.ttftRequests} sequential streams per target ` +
      "(1 KB prompt, 16 tokens, stub TTFT 0 so all of it is transport), the targets interleaved; time from writing the request to the first SSE bytes (hrtime).",
    "",
  );
  L.push("| Target | TTFT p50 (µs) | TTFT p99 (µs) |", "|---|---|---|");
  for (const t of Object.keys(st.ttftP50Us) as TtftTargetName[])
    L.push(`| ${TTFT_TEXT[t]} | ${r(st.ttftP50Us[t], 0)} | ${r(st.ttftP99Us[t], 0)} |`);
  L.push(
    "",
    `Added TTFT (p50): plugin vs plain Envoy ${r(st.addedTtftVsPlainUs)} µs; the whole gateway (Envoy + plugin) vs straight to the stub ${r(st.addedTtftVsDirectUs)} µs. ` +
      `Of the plugin's share: holding the request until the body is read (probe-buffer − plain) ${r(st.ttftHoldUs)} µs; ` +
      `rewriting the body to ask for usage (plugin − plugin on a body that already asks) ${r(st.ttftEditUs)} µs.`,
    "",
  );
  L.push(
    `Per SSE chunk (${o.pacedStreams} streams × ${o.pacedTokens} tokens, ${o.pacedIntervalMs} ms apart, so each event is its own read): ` +
      `Envoy CPU per event: plain ${r(st.chunkCpuUs.plain, 2)} µs, with the plugin ${r(st.chunkCpuUs.plugin, 2)} µs; **the plugin's cost per chunk: ${r(st.chunkCpuUs.added, 2)} µs**` +
      (raw.pluginNode !== null ? ` (in V8 without Envoy, mock host: ${fmt(raw.pluginNode.perChunkUs, 2)} µs per chunk).` : "."),
    "",
  );
  L.push(
    `Sustained tokens/s (closed loop, ${o.streamTokens} tokens per stream, as fast as the stub writes, ${o.streamSeconds} s per point):`,
    "",
  );
  L.push(
    "| Concurrent streams | straight to the stub | plain Envoy | Envoy + plugin | plugin ÷ plain | Envoy CPU/event with plugin (µs) |",
    "|---|---|---|---|---|---|",
  );
  for (const t of st.tokensPerS)
    L.push(
      `| ${t.concurrency} | ${r(t.direct, 0)} | ${r(t.plain, 0)} | ${r(t.plugin, 0)} | ${r(t.ratio, 3)} | ${r(t.pluginEnvoyCpuUsPerEvent, 2)} |`,
    );
  L.push("");

  // 3
  const bs = s.bodySize;
  L.push("## 3. Scaling with body size", "");
  L.push(
    `One connection, ${o.sizeSeconds} s per size and configuration. "Added" = plugin − plain Envoy; "buffering" = probe-buffer − plain (Envoy holds and copies the body, no parsing); ` +
      `"plugin's own" = plugin − probe-buffer. "Whole plugin in V8": every callback of one request through the plugin in Node with the mock host (no Envoy). ` +
      "Node columns: the plugin's parsers compiled alone (tests/bench/as/parsers-node.ts) and timed in V8.",
    "",
  );
  L.push(
    "| Body | plain p50 (µs) | added p50 (µs) | added Envoy CPU (µs) | buffering CPU (µs) | plugin's own CPU (µs) | whole plugin in V8 (µs) | Node scanJson (µs) | Node routeRequest (µs) | scanJson ns/byte |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const p of bs.points) {
    L.push(
      `| ${bytesText(p.bytes)} | ${r(p.plainP50Us, 0)} | ${r(p.addedP50Us, 0)} | ${r(p.addedCpuUs, 1)} | ${r(p.bufferCpuUs, 1)} | ${r(p.pluginOwnCpuUs, 1)} | ` +
        `${p.v8PluginUs === null ? "n/a" : fmt(p.v8PluginUs, 1)} | ` +
        `${p.nodeScanUs === null ? "n/a" : fmt(p.nodeScanUs, 2)} | ${p.nodeRouteUs === null ? "n/a" : fmt(p.nodeRouteUs, 2)} | ${p.nodeScanUs === null ? "n/a" : fmt((p.nodeScanUs * 1000) / p.bytes, 3)} |`,
    );
  }
  L.push(
    "",
    `Least-squares line through the added Envoy CPU: ${fmt(bs.fitAddedCpu.intercept, 1)} µs + ${fmt(bs.fitAddedCpu.slope * 1000, 3)} ns/byte, R² ${fmt(bs.fitAddedCpu.r2, 4)}; ` +
      `through the plugin's own CPU: ${fmt(bs.fitOwnCpu.intercept, 1)} µs + ${fmt(bs.fitOwnCpu.slope * 1000, 3)} ns/byte, R² ${fmt(bs.fitOwnCpu.r2, 4)}. ` +
      `Per-byte cost between consecutive sizes: ${bs.marginalNsPerByte.map((x) => `${bytesText(x.from)}→${bytesText(x.to)} ${fmt(x.ns, 3)}`).join(", ")} ns/byte.`,
    "",
  );
  if (raw.profile?.error !== undefined) L.push(`Node parser profile unavailable: ${raw.profile.error}`, "");

  // 4
  L.push("## 4. Memory", "");
  if (raw.memory !== null) {
    L.push(
      `A fresh Envoy with the plugin, wrk (16 connections) sending in turn: ${raw.memory.mix.join("; ")}. Transport errors: ${raw.memory.loadErrors}.`,
      "",
    );
    L.push(
      "| Reading | requests | Envoy RSS | server.memory_allocated | server.memory_heap_size | Wasm VM linear memory |",
      "|---|---|---|---|---|---|",
    );
    for (const c of raw.memory.checkpoints) {
      L.push(
        `| ${c.label} | ${c.requests.toLocaleString("en-US")} | ${mib(c.rssBytes)} | ${mib(c.memoryAllocated)} | ${mib(c.memoryHeapSize)} | ${c.wasmVmBytes === null ? "no gauge" : mib(c.wasmVmBytes)} |`,
      );
    }
    L.push("");
    if (raw.memory.checkpoints.every((c) => c.wasmVmBytes === null)) {
      L.push(
        "The plugin defines no linear-memory gauge yet (a stat named `*vm_memory_bytes`); the harness reads one as soon as it exists. " +
          "Meanwhile the Node run of the parsers shows the VM's linear memory while routing requests: " +
          (raw.profile?.memory
            ? `${mib(raw.profile.memory.bytesBefore)} before and ${mib(raw.profile.memory.bytesAfter)} after ${raw.profile.memory.routed.toLocaleString("en-US")} routed 1 KB requests.`
            : "n/a."),
        "",
      );
    }
  } else {
    L.push("not run", "");
  }
  if (raw.pluginNode !== null) {
    const mm = raw.pluginNode.memory;
    L.push(
      `The plugin in V8 with the mock host: linear memory ${mib(mm.bytesBefore)} before and ${mib(mm.bytesAfter)} after ${mm.requests.toLocaleString("en-US")} more requests (1 KB JSON and 16-token streams).`,
      "",
    );
  }

  // 5
  L.push("## 5. Start-up and size", "");
  const su = s.startup;
  if (su !== null) {
    L.push(`plugin.wasm: ${su.wasmBytes.toLocaleString("en-US")} bytes (target ≤ 65,536).`, "");
    L.push(
      "| Envoy | spawn → listener answering (ms, 50 ms polling) | log: init manager → listener added on the main thread (ms) |",
      "|---|---|---|",
    );
    for (const v of Object.keys(su.readyMs) as Variant[])
      L.push(`| ${VARIANT_TEXT[v]} | ${r(su.readyMs[v], 0)} | ${r(su.mainListenerMs[v], 0)} |`);
    L.push(
      "",
      `The main thread creates the Wasm VM (V8 isolate, module compile, _start) and configures the plugin between those two log lines. ` +
        `Worker: "starting workers" → the worker's "configured" line: ${r(su.workerVmMs, 0)} ms.`,
      "",
    );
    if (su.v8 !== null) {
      L.push(
        `The same steps in V8 (Node, a fresh process each, ${raw.startup?.v8.length ?? 0} runs): compile ${r(su.v8.compileMs, 2)} ms, instantiate ${r(su.v8.instantiateMs, 2)} ms, ` +
          `_start ${r(su.v8.startMs, 2)} ms, vm_start + configure ${r(su.v8.configureMs, 2)} ms (total ${r(su.v8.totalMs, 2)} ms); ` +
          `configuring a second root context (each worker, each reconfiguration) ${r(su.v8.secondConfigureMs, 3)} ms. ` +
          `Compiling every function with the optimising compiler up front (--no-liftoff --no-wasm-lazy-compilation) takes ${r(su.v8EagerCompileMs, 1)} ms.`,
        "",
      );
    }
    if (raw.startup?.v8Error !== undefined) L.push(`V8 timing unavailable: ${raw.startup.v8Error}`, "");
  }

  L.push(...fallbackSection(raw.fallback, s.fallback));
  L.push(...quotaReport(raw.quota ?? null));

  L.push("## What limits the missed targets", "");
  const limits = explainLimits(raw, s);
  L.push(...(limits.length > 0 ? limits : ["Every target was met."]), "");

  L.push("## Every repeat", "");
  L.push(
    "| Repeat | plain req/s | plugin req/s | × plain | added p50 (µs) | added TTFT p50 (µs) | per-chunk cost (µs) |",
    "|---|---|---|---|---|---|---|",
  );
  for (let i = 0; i < o.repeats; i++) {
    const n = raw.nonStreaming[i];
    const t = raw.streaming[i];
    const pr = n?.runs.plain;
    const pl = n?.runs.plugin;
    L.push(
      `| ${i + 1} | ${fmt(pr?.saturation.rps ?? NaN, 0)} | ${fmt(pl?.saturation.rps ?? NaN, 0)} | ${fmt((pl?.saturation.rps ?? NaN) / (pr?.saturation.rps ?? NaN), 3)} | ` +
        `${fmt((pl?.latency.latencyUs.p50 ?? NaN) - (pr?.latency.latencyUs.p50 ?? NaN), 0)} | ${fmt((t?.ttft.plugin?.us.p50 ?? NaN) - (t?.ttft.plain?.us.p50 ?? NaN), 0)} | ` +
        `${fmt((t?.chunk.plugin?.envoyCpuUsPerEvent ?? NaN) - (t?.chunk.plain?.envoyCpuUsPerEvent ?? NaN), 2)} |`,
    );
  }
  L.push("");
  if (raw.errors.length > 0 || raw.probeErrors.length > 0) {
    L.push("## Errors", "", ...[...raw.probeErrors, ...raw.errors].map((e) => `- ${e.split("\n")[0]}`), "");
  }
  L.push(
    "## Reproduce",
    "",
    "`make bench` (BENCH_REPEATS, BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_SIZES, BENCH_STREAMS, BENCH_MEMORY, BENCH_TTFT_REQUESTS, BENCH_FALLBACK_REQUESTS, BENCH_FALLBACK_TTFT_MS, BENCH_STARTUPS, BENCH_PIN=0, BENCH_PERF=0, BENCH_OUT); raw figures in results.json beside this file.",
    "",
  );
  return L.join("\n");
}

const FALLBACK_TEXT: Record<FallbackSeriesName, string> = {
  backup: "straight to the backup (its own TTFT)",
  "primary-503": "primary answering 503 → backup",
  "primary-down": "primary refusing connections → backup",
};

// Section 7: the three Envoys side by side, and what the check adds over none.
function quotaReport(q: QuotaResult | null): string[] {
  const L: string[] = ["## 7. Quota check", ""];
  if (q === null) return [...L, "Not measured (the section failed; see the errors).", ""];
  L.push(
    "Section 1's 1 KB chat requests against the fixed backend through three Envoys with the plugin (seed configuration, one worker) that differ only in `quotas`: " +
      "none; `local` (one rule, requests and total tokens per day, never reached: a shared-data read and compare-and-swap at admission, another at the charge); " +
      "`cluster` (the same rule through envoyproxy/ratelimit and Redis on the load core: the request waits for the admission call, the charge call follows the answer). " +
      "Latency: one connection, closed loop. Throughput: wrk at the section's connections.",
    "",
    "| Quotas | req/s | p50 (µs) | p99 (µs) | added p50 (µs) | added p99 (µs) | Envoy CPU/req (µs) | added CPU/req (µs) | ratelimit + Redis CPU/req (µs) | errors |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const v of QUOTA_VARIANTS) {
    const x = q.runs[v];
    if (x === undefined) continue;
    const added = v === "none" ? null : quotaAdded(q, v);
    L.push(
      `| ${v} | ${fmt(x.saturation.rps, 0)} | ${fmt(x.latency.latencyUs.p50, 1)} | ${fmt(x.latency.latencyUs.p99, 1)} | ` +
        `${added === null ? "" : fmt(added.p50Us, 1)} | ${added === null ? "" : fmt(added.p99Us, 1)} | ${fmt(x.envoyCpuUsPerRequest, 1)} | ` +
        `${added === null ? "" : fmt(added.envoyCpuUs, 1)} | ${x.serviceCpuUsPerRequest === null ? "" : fmt(x.serviceCpuUsPerRequest, 1)} | ` +
        `${x.saturation.errors + x.latency.errors} |`,
    );
  }
  const counted = QUOTA_VARIANTS.filter((v) => v !== "none")
    .map(
      (v) =>
        `${v}: ${Object.entries(q.counters[v] ?? {})
          .map(([k, n]) => `${k} ${n}`)
          .join(", ")}`,
    )
    .join("; ");
  L.push("", `The plugin's quota counters (all should be 0: every request was checked and charged): ${counted}.`, "");
  return L;
}

// Envoy's and the plugin's counters for one phase of section 6 (phase 2: the difference).
function phaseCounters(f: FallbackResult, phase: 1 | 2): (name: string) => number {
  const { afterPhase1: a, afterPhase2: b } = f.envoyCounters;
  return (name) => (phase === 1 ? (a[name] ?? 0) : (b[name] ?? 0) - (a[name] ?? 0));
}

// Section 6: the three series, the checks that every fallback was one, and where the added time goes.
function fallbackSection(f: FallbackResult | null, s: FallbackSummary | null): string[] {
  const L: string[] = ["## 6. TTFT through a fallback", ""];
  if (f === null || s === null) return [...L, "not run", ""];
  const { primary: p, backup: b } = f;
  L.push(
    `Streamed chat requests (1 KB prompt, \`stream: true\`, ${f.completionTokens} tokens), one at a time, timed at the client from writing the request to the first content chunk ` +
      `(the first \`delta.content\` event). One Envoy with the plugin (the seed configuration with \`fallback.cooldown.failures: 0\`: with the default cooldown, after 3 failures ` +
      `the primary is skipped for 30 s and its requests go straight to the backup, which would measure the backup's route rather than a failed attempt and a retry), ` +
      `two vLLM stubs in their own processes; the backup ${b} sends its first token ${f.backupTtftMs} ms after the request (stub --ttft-ms) in every series. ` +
      `${f.requestsPerSeries} streams per series after ${f.warmupRounds} warm-up rounds per phase. Phase 1: ${p} up, answering 503 (\`x-stub-status: 503\` with \`x-stub-target: ${p}\`); ` +
      `phase 2: ${p}'s stub stopped (connection refused). The backup's series runs every other round of both phases, the other series every round. CPU split as for the rest of the run (above).`,
    "",
  );
  L.push(
    `| Series | streams | errors | served by ${b} | naming ${p} in x-llm-gateway-fallback-from | TTFT p50 (ms) | p95 (ms) | p99 (ms) | mean (ms) | added p50 (ms) | added p95 (ms) |`,
    "|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const name of Object.keys(FALLBACK_TEXT) as FallbackSeriesName[]) {
    const x = f.series[name];
    const q = x.firstContentMs;
    const added = name === "backup" ? null : s.addedMs[name];
    L.push(
      `| ${FALLBACK_TEXT[name]} | ${x.sent} | ${x.errors} | ${x.n} | ${x.fallbackFrom} | ${fmt(q.p50, 2)} | ${fmt(q.p95, 2)} | ${fmt(q.p99, 2)} | ${fmt(q.mean, 2)} | ` +
        `${added === null ? "—" : fmt(added.p50, 2)} | ${added === null ? "—" : fmt(added.p95, 2)} |`,
    );
  }
  const up = f.backupByPhase.primaryUp;
  const down = f.backupByPhase.primaryDown;
  L.push(
    "",
    `Target: the client's TTFT through a fallback ≤ the backup's own + ${FALLBACK_BUDGET_MS} ms, at p50 and p95 ("added" = the fallback series' percentile − the backup's). ` +
      `The backup's own TTFT by phase: p50 ${fmt(up.p50, 2)} ms with ${p} up, ${fmt(down.p50, 2)} ms with it down; p95 ${fmt(up.p95, 2)} / ${fmt(down.p95, 2)} ms.`,
    "",
  );
  const c1 = phaseCounters(f, 1);
  const c2 = phaseCounters(f, 2);
  L.push(
    `Every fallback was one: ${p}'s stub received ${f.primaryAttempts.received} generation requests for ${f.primaryAttempts.expected} primary-503 streams (warm-up included)` +
      `${s.primaryTriedFirst ? "" : " — **not every stream tried the primary first**"}; ` +
      `Envoy retried ${c1(`${p}.fallback.upstream_rq_retry`)} times in phase 1 (${c1(`${p}.fallback.retry.upstream_rq_5xx`)} after a 5xx) and ${c2(`${p}.fallback.upstream_rq_retry`)} in phase 2 ` +
      `(${c2(`${p}.upstream_cx_connect_fail`)} refused connections), ${c1(`${p}.fallback.upstream_rq_retry_success`) + c2(`${p}.fallback.upstream_rq_retry_success`)} retries succeeded; ` +
      `the plugin counted ${c1(`fallback.to.${b}.reason.status_503`)} fallbacks for status_503 and ${c2(`fallback.to.${b}.reason.upstream_unreachable`)} for upstream_unreachable.`,
    "",
  );
  const direct = f.primary503DirectMs;
  L.push(
    `Where the added time goes. Envoy opened ${c1(`${p}.upstream_cx_total`)} connections to ${p} in phase 1 for as many attempts: it closes an HTTP/1.1 upstream connection ` +
      "whose 5xx it retries (it resets the stream rather than drain the body; envoyproxy/envoy#5023), so every attempt at a failing primary connects anew, while the backup's " +
      `connections are reused (${c2(`${b}.upstream_cx_total`) + c1(`${b}.upstream_cx_total`)} opened to ${b} in the whole section). ` +
      `The same 503 straight from ${p}'s stub (no Envoy; request written → answer read) takes p50 ${fmt(direct.keepAlive.p50, 2)} ms (p95 ${fmt(direct.keepAlive.p95, 2)}) on a kept-alive connection ` +
      `and ${fmt(direct.newConnection.p50, 2)} ms (p95 ${fmt(direct.newConnection.p95, 2)}) on a new one. In the refused series there is no answer to wait for (loopback refuses ` +
      `the connect at once), so its added ${fmt(s.addedMs["primary-down"].p50, 2)} ms (p50) is Envoy's retry: the back-off (base 1 ms, so the first retry waits random % 1 = 0 ms), ` +
      `the second attempt through the plugin's attempt stage (the body's model rewritten) and the request replayed from Envoy's buffer. The 503 series' added p50 exceeds it by ` +
      `${fmt(s.addedMs["primary-503"].p50 - s.addedMs["primary-down"].p50, 2)} ms, to compare with the 503 on a new connection at the stub.`,
    "",
  );
  const cpu = (x: FallbackResult["cpu"]["primaryUp"]): string =>
    `${Object.entries(x.processes)
      .map(([k, v]) => `${k} ${pct(v.coreShare)}`)
      .join(", ")}; ` + `anything else ${pct(othersShare(x))} (cores busy: ${x.coreBusy.map((v, i) => `core ${i} ${pct(v)}`).join(", ")})`;
  L.push(
    `CPU during phase 1: ${cpu(f.cpu.primaryUp)}. Phase 2: ${cpu(f.cpu.primaryDown)}. ` +
      "Share of one core; other work on the machine shows up in the p95s.",
    "",
  );
  return L;
}

const PHASE_TEXT: Record<string, string> = {
  requestHeaders: "context create + request headers",
  requestBody: "request body (route: scan, lookup, edits; prompt estimate; fallback copy)",
  responseHeaders: "response headers",
  responseBody: "response body (usage from JSON / SSE)",
  log: "log (metrics, ai_log)",
  doneDelete: "done + delete",
};

// Section 1's view from inside V8: the plugin's own time per callback and its CPU profile.
function pluginInV8(raw: RawResults): string[] {
  const pn = raw.pluginNode;
  if (pn === null) return [];
  const L: string[] = [];
  const total = (t: Record<string, number>): number => Object.values(t).reduce((a, b) => a + b, 0);
  L.push(
    "The plugin in V8 without Envoy (tests/host/proxy-wasm-host.ts answers the host calls as Envoy does; Node runs the same V8; " +
      `check: routed to \`${pn.checks.routedTo ?? "nothing"}\`${pn.checks.localReply !== null ? `, local reply ${pn.checks.localReply}` : ""}). µs per request by callback:`,
    "",
  );
  L.push("| Callback | 1 KB chat → JSON answer | 1 KB chat → 16-token SSE stream |", "|---|---|---|");
  for (const k of Object.keys(PHASE_TEXT)) {
    L.push(
      `| ${PHASE_TEXT[k] ?? k} | ${fmt(pn.phasesUs.json1k[k as keyof typeof pn.phasesUs.json1k], 1)} | ${fmt(pn.phasesUs.sse16[k as keyof typeof pn.phasesUs.sse16], 1)} |`,
    );
  }
  L.push(`| **total** | ${fmt(total(pn.phasesUs.json1k), 1)} | ${fmt(total(pn.phasesUs.sse16), 1)} |`, "");
  if (pn.profiles !== null) {
    for (const p of [pn.profiles.json1k, pn.profiles.sse16]) {
      L.push(
        `V8's sampling profiler on the plugin (a build that keeps function names, same optimisation), ${p.scenario}: ${p.samples.toLocaleString("en-US")} samples, ` +
          `${pct(p.wasmShare)} with plugin code on the stack, ${pct(p.hostShare)} of those in the mock host's JavaScript (Envoy's host calls are C++). Share of the plugin's time:`,
        "",
      );
      L.push("| Function, with callees | share | | Function, self | share |", "|---|---|---|---|---|");
      const inc = p.inclusive.filter((f) => !/^(assembly\/abi\/exports\/|wasm-to-js|js-to-wasm)/.test(f.fn)).slice(0, 12);
      const self = p.top.slice(0, 12);
      for (let i = 0; i < Math.max(inc.length, self.length); i++) {
        const x = inc[i];
        const y = self[i];
        L.push(`| ${x ? `\`${x.fn}\`` : ""} | ${x ? pct(x.share) : ""} | | ${y ? `\`${y.fn}\`` : ""} | ${y ? pct(y.share) : ""} |`);
      }
      L.push("");
    }
  } else if (pn.profileError !== undefined) {
    L.push(`CPU profile unavailable: ${pn.profileError}`, "");
  }
  return L;
}

// For each missed target, the measurements that explain it.
export function explainLimits(raw: RawResults, s: Summary): string[] {
  const out: string[] = [];
  const missed = new Set(s.targets.filter((t) => t.met === false).map((t) => t.id));
  const ns = s.nonStreaming;
  const plainCpu = ns.envoyCpuUsPerRequest.plain?.median ?? NaN;
  const pluginCpu = ns.envoyCpuUsPerRequest.plugin?.median ?? NaN;
  const pn = raw.pluginNode;
  const node1k = raw.profile?.points[0];
  const v8Total = pn === null ? NaN : Object.values(pn.phasesUs.json1k).reduce((a, b) => a + b, 0);

  if (missed.has("throughput") || missed.has("latency")) {
    const busy = s.cpuSplit?.coreBusy[0];
    const budget = plainCpu * (1 / THROUGHPUT_GOAL - 1);
    const parts: string[] = [];
    parts.push(
      `- **Throughput and added latency.** Envoy's core is the bottleneck (${pct(busy)} busy; wrk and the backend use ${pct(s.cpuSplit?.coreBusy[1] ?? NaN)} of the other). ` +
        `Plain Envoy spends ${fmt(plainCpu, 1)} µs of CPU per request, Envoy with the plugin ${fmt(pluginCpu, 1)} µs: the throughput ratio follows (${fmt(plainCpu / pluginCpu, 2)} predicted, ` +
        `${r(ns.ratioToPlain.plugin, 3)} measured), and at one connection the same CPU shows up as latency. ` +
        `${THROUGHPUT_GOAL} × plain would leave the filter ${fmt(budget, 1)} µs per request.`,
    );
    if (ns.ladder !== null) {
      const min = ns.ladder.wasmFilterUs.median;
      parts.push(
        `The probes split the ${fmt(ns.ladder.totalUs.median, 1)} µs: a minimal Wasm filter (a context per request, every callback, one header write) costs ${fmt(min, 1)} µs; ` +
          `holding the headers and copying the buffered body into the VM ${fmt(ns.ladder.bufferRerouteUs.median, 1)} µs more; the plugin's own work ${fmt(ns.ladder.pluginOwnUs.median, 1)} µs.` +
          (min > budget
            ? ` The minimal filter alone is over the budget: on this Envoy and machine no Wasm filter reaches ${THROUGHPUT_GOAL}; what the plugin controls is its own ${fmt(ns.ladder.pluginOwnUs.median, 1)} µs.`
            : ""),
      );
    }
    const perf = ns.perfUsPerRequest;
    if (perf?.plugin !== undefined && perf.plain !== undefined) {
      const d = (g: PerfGroup): string => fmt((perf.plugin?.[g] ?? NaN) - (perf.plain?.[g] ?? NaN), 1);
      parts.push(
        `perf puts the plugin's extra CPU in V8-generated code (the module itself) ${d("wasm-jit")} µs, Envoy's binary (host functions, proxy-wasm's C-API glue, V8's runtime) ${d("envoy")} µs, ` +
          `the kernel ${d("kernel")} µs and libc ${d("libc-other")} µs per request.`,
      );
    }
    if (pn !== null) {
      const ph = pn.phasesUs.json1k;
      const worst = (Object.keys(ph) as (keyof typeof ph)[]).sort((a, b) => ph[b] - ph[a]).slice(0, 3);
      let t = `Without Envoy (V8, mock host) the plugin takes ${fmt(v8Total, 1)} µs per 1 KB request, most in ${worst.map((k) => `${PHASE_TEXT[k] ?? k} ${fmt(ph[k], 1)} µs`).join(", ")}`;
      if (node1k !== undefined)
        t += `; scanning the body is ${fmt(node1k.scanUs, 2)} µs of it and the whole routing decision ${fmt(node1k.routeUs, 2)} µs`;
      const prof = pn.profiles?.json1k;
      const inc = prof?.inclusive.filter((f) => !/^(assembly\/abi\/|wasm-to-js|js-to-wasm|~lib\/|~stack_check)/.test(f.fn)).slice(0, 6);
      if (inc !== undefined && inc.length > 0)
        t += `. Heaviest in V8's profile of that request (with callees): ${inc.map((f) => `\`${f.fn}\` ${pct(f.share)}`).join(", ")}`;
      if (prof !== undefined) t += ` (the mock host's own JavaScript is ${pct(prof.hostShare)} of it)`;
      const rt = prof?.inclusive.filter((f) => /^~lib\/rt\/(itcms|tcms|stub)\/__new$|^~lib\/rt\/\w+\/(step|__collect)$/.test(f.fn));
      if (rt !== undefined && rt.length > 0) t += `; allocation and collection: ${rt.map((f) => `\`${f.fn}\` ${pct(f.share)}`).join(", ")}`;
      parts.push(t + ".");
    }
    out.push(parts.join(" "));
  }
  if (missed.has("ttft")) {
    const st = s.streaming;
    const added = st.addedTtftVsPlainUs.median;
    const hold = st.ttftHoldUs.median;
    const edit = st.ttftEditUs.median;
    out.push(
      `- **TTFT.** Through the plugin the first SSE bytes arrive ${r(st.addedTtftVsPlainUs)} µs later than through plain Envoy ` +
        `(p50 ${fmt(st.ttftP50Us.plain?.median ?? NaN, 0)} → ${fmt(st.ttftP50Us.plugin?.median ?? NaN, 0)} µs). ` +
        `Holding the request until its body is read (probe-buffer) accounts for ${fmt(hold, 0)} µs; rewriting the body to add \`stream_options.include_usage\` ` +
        `for ${fmt(edit, 0)} µs (drain-and-rebuild of the buffered body through set_buffer_bytes, and a new content-length); the remaining ${fmt(added - hold - edit, 0)} µs are the plugin's ` +
        `routing, response-header and first-chunk work. Section 1 gives its CPU: ${fmt(pluginCpu - plainCpu, 1)} µs per request of Envoy's time.`,
    );
  }
  if (missed.has("sse-chunk")) {
    const c = s.streaming.chunkCpuUs;
    out.push(
      `- **Per SSE chunk.** Envoy spends ${r(c.plain, 2)} µs of CPU per chunk without the plugin and ${r(c.plugin, 2)} µs with it. ` +
        "The plugin reads every event as JSON: one validating pass over the event, then its choice and delta again to find content " +
        "(for time-to-first-token and the completion estimate) and `usage`; each chunk also costs a host call to read it and the crossings into and out of the VM.",
    );
  }
  if (missed.has("linear")) {
    const v8 = pn?.jsonUs ?? [];
    const steps = v8
      .slice(1)
      .map((j, i) => {
        const prev = v8[i];
        return prev === undefined
          ? ""
          : `${bytesText(prev.bytes)}→${bytesText(j.bytes)} ${fmt(((j.us - prev.us) * 1000) / (j.bytes - prev.bytes), 2)}`;
      })
      .filter((x) => x.length > 0);
    out.push(
      `- **Linearity.** Added Envoy CPU per byte between consecutive sizes: ${s.bodySize.marginalNsPerByte.map((x) => `${bytesText(x.from)}→${bytesText(x.to)} ${fmt(x.ns, 2)}`).join(", ")} ns/B. ` +
        `The whole plugin in V8 shows the same steps (${steps.join(", ")} ns/B), while scanJson alone stays at ${(raw.profile?.points ?? []).map((p) => fmt(p.scanNsPerByte, 2)).join("/")} ns/B. ` +
        "Where the per-byte cost jumps or drops between two sizes, the plugin does different work by size (for example a second pass over bodies up to a size limit, such as a prompt-token estimate): " +
        "the time is linear piece by piece, not one line.",
    );
  }
  if (missed.has("memory") && s.memory !== null) {
    out.push(
      `- **Memory.** RSS grew ${mib(s.memory.rssGrowth)} between the first and the last checkpoint; allocated ${mib(s.memory.allocatedGrowth)}.`,
    );
  }
  if (missed.has("fallback-ttft") && s.fallback !== null && raw.fallback !== null) {
    const f = s.fallback;
    const a = f.addedMs;
    const parts = FALLBACK_KINDS.map(
      (k) =>
        `${k === "primary-503" ? "after a 503" : "after a refused connection"} ${fmt(a[k].p50, 2)} ms at p50 and ${fmt(a[k].p95, 2)} ms at p95`,
    );
    let t = `- **TTFT through a fallback.** Over the backup's own TTFT (p50 ${fmt(f.ttftMs.backup.p50, 2)} ms, p95 ${fmt(f.ttftMs.backup.p95, 2)} ms) the client waits ${parts.join("; ")} (budget ${FALLBACK_BUDGET_MS} ms).`;
    if (f.errors + f.notFromBackup > 0 || !f.allFellBack)
      t += ` Not every fallback stream was served by the backup: ${f.errors} error(s), ${f.notFromBackup} answered by another model; see section 6.`;
    const d = raw.fallback.primary503DirectMs.newConnection;
    t +=
      ` The primary's 503 alone, on a new connection as Envoy opens one per attempt, takes ${fmt(d.p50, 2)} ms at p50 and ${fmt(d.p95, 2)} ms at p95 at the stub; ` +
      `the refused case isolates Envoy's retry and the second attempt. Anything else on the machine used up to ${fmt(f.othersCpuCores, 2)} cores meanwhile.`;
    out.push(t);
  }
  if (missed.has("size")) {
    out.push(
      `- **Size.** plugin.wasm is ${raw.plugin.bytes.toLocaleString("en-US")} bytes, ${(raw.plugin.bytes - 65536).toLocaleString("en-US")} over 64 KB.`,
    );
  }
  return out;
}
