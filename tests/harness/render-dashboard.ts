// Draws manifests/grafana/dashboard.png: the Grafana dashboard's panels over real data, evaluated by a
// real Prometheus. No Grafana can be installed here (it is not in Debian), so this runs the seed
// scenario (real Envoy + the plugin + the vLLM stubs) under a few minutes of mixed load, lets
// Prometheus (Debian's package) scrape Envoy's /stats/prometheus, evaluates every panel's own PromQL
// from manifests/grafana/llm-gateway-dashboard.json with the variables set to "All", and plots the
// results in the dashboard's layout with matplotlib (render-dashboard.py beside this file).
//
//   npx tsx tests/harness/render-dashboard.ts [--minutes 5] [--out manifests/grafana/dashboard.png] [--data results/dashboard-data.json]
//
// Installs what it lacks: Debian's prometheus (apt-get, needs root or sudo) and matplotlib in the
// project's .venv. Everything listens on 127.0.0.1 and is stopped at the end.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { startSeed, post, backend, type Seed } from "./seed.ts";
import { freePort, waitFor } from "./net.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const DASHBOARD = join(ROOT, "manifests/grafana/llm-gateway-dashboard.json");
const PLOTTER = join(ROOT, "tests/harness/render-dashboard.py");
const PYTHON = join(ROOT, ".venv/bin/python");
const MATPLOTLIB = "matplotlib==3.10.8";
const SCRAPE_S = 2;
const STEP_S = 5;
const RATE_WINDOW = "30s"; // what $__rate_interval stands for in the picture

// ---- set-up -------------------------------------------------------------------------------------

function have(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function installDeps(): void {
  if (!have("prometheus", ["--version"])) {
    const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
    const run = (args: string[]): void => {
      execFileSync(sudo[0] ?? args[0]!, sudo.length > 0 ? args : args.slice(1), {
        stdio: "inherit",
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
    };
    console.log("render: installing Debian's prometheus");
    run(["apt-get", "update", "-qq"]);
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]);
  }
  if (!have(PYTHON, ["-c", "import matplotlib"])) {
    console.log(`render: installing ${MATPLOTLIB} into .venv`);
    execFileSync(join(ROOT, ".venv/bin/pip"), ["install", "--quiet", "--disable-pip-version-check", MATPLOTLIB], { stdio: "inherit" });
  }
}

interface Prometheus {
  url: string;
  stop(): Promise<void>;
}

async function startPrometheus(adminUrl: string, workDir: string): Promise<Prometheus> {
  const port = await freePort();
  const config = join(workDir, "prometheus.yml");
  writeFileSync(
    config,
    stringify({
      global: { scrape_interval: `${SCRAPE_S}s`, evaluation_interval: `${SCRAPE_S}s` },
      scrape_configs: [
        { job_name: "llm-gateway", metrics_path: "/stats/prometheus", static_configs: [{ targets: [new URL(adminUrl).host] }] },
      ],
    }),
  );
  const child: ChildProcess = spawn(
    "prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(workDir, "tsdb")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "inherit"], detached: true },
  );
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      /* gone */
    }
    for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 50));
    if (!exited) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  };
  process.once("exit", () => {
    if (!exited && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  });
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error("prometheus exited during start-up");
        const r = await fetch(`${url}/-/ready`).catch(() => null);
        return r !== null && r.ok;
      },
      30000,
      "Prometheus ready",
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, stop };
}

// ---- load -------------------------------------------------------------------------------------------

const MODELS = ["qwen2-1-5b", "gemma-2-2b"] as const;
const CONSUMERS = ["team-a", "team-b", "none"];
const WORDS = "the gateway routes each request by model and counts the tokens of every answer".split(" ");

function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(Math.random() * xs.length)]!;
}

function prompt(): string {
  const n = 5 + Math.floor(Math.random() * 60);
  return Array.from({ length: n }, () => pick(WORDS)).join(" ");
}

interface Phase {
  outage: boolean;
  slowGemma: boolean;
  workers: number;
}

// Fractions of the load's duration.
const OUTAGE = { from: 0.35, to: 0.5, text: "qwen backend down: its requests fall back to gemma" };
const SLOW_GEMMA = { from: 0.6, to: 0.75, text: "gemma slow (TTFT ~0.9 s)" };
const within = (f: number, w: { from: number; to: number }): boolean => f >= w.from && f < w.to;

// The story the picture tells: ramp-up, a qwen outage (its requests fall back to gemma), gemma
// slowing down, recovery. Sprinkled throughout: cut streams, answers without usage, unknown
// models, dropped connections, qwen requests whose backup fails too, and gemma answering as a
// reasoning model (its first tokens are reasoning).
function phaseAt(f: number): Phase {
  return {
    workers: f < 0.15 ? 3 : f < 0.3 ? 6 : 9,
    outage: within(f, OUTAGE),
    slowGemma: within(f, SLOW_GEMMA),
  };
}

async function oneRequest(seed: Seed, phase: Phase): Promise<void> {
  const model = Math.random() < 0.6 ? MODELS[0] : MODELS[1];
  const stream = Math.random() < 0.75;
  const qwen = model === "qwen2-1-5b";
  const headers: Record<string, string> = {
    "x-stub-ttft-ms": String(Math.round((qwen ? 90 : 220) * (0.6 + Math.random()))),
    "x-stub-token-interval-ms": String(qwen ? 12 : 25),
    "x-stub-completion-tokens": String(16 + Math.floor(Math.random() * 96)),
  };
  if (!qwen) headers["x-stub-reasoning-tokens"] = String(4 + Math.floor(Math.random() * 12));
  const consumer = pick(CONSUMERS);
  if (consumer !== "none") headers["x-mse-consumer"] = consumer;
  if (phase.slowGemma && !qwen) headers["x-stub-ttft-ms"] = String(Math.round(900 * (0.7 + Math.random() * 0.6)));
  const r = Math.random();
  let body: Record<string, unknown> = { model, stream, messages: [{ role: "user", content: prompt() }] };
  if (r < 0.03)
    body = { ...body, model: "llama-3-8b" }; // unknown model: local 404
  else if (r < 0.045)
    headers["x-stub-drop"] = "1"; // connection dropped: local 503
  else if (r < 0.07 && !qwen)
    headers["x-stub-status"] = "503"; // a gemma 5xx
  else if (r < 0.065 && qwen)
    headers["x-stub-status"] = "503"; // qwen and its backup gemma fail: all attempts failed
  else if (r < 0.09 && stream)
    headers["x-stub-cut-after"] = "4"; // stream cut midway
  else if (r < 0.14) headers["x-stub-no-usage"] = "1"; // no usage: estimated
  const res = await post(`${seed.gateway.url}/v1/chat/completions`, body, headers).catch(() => null);
  await res?.text().catch(() => "");
}

async function runLoad(seed: Seed, ms: number): Promise<void> {
  const start = Date.now();
  const qwenFaults = `${backend(seed, "qwen2-1-5b").url}/stub/faults`;
  let outage = false;
  const worker = async (i: number): Promise<void> => {
    while (Date.now() - start < ms) {
      const phase = phaseAt((Date.now() - start) / ms);
      if (i >= phase.workers) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      await oneRequest(seed, phase);
    }
  };
  const conductor = async (): Promise<void> => {
    while (Date.now() - start < ms) {
      const f = (Date.now() - start) / ms;
      const want = phaseAt(f).outage;
      if (want !== outage) {
        outage = want;
        await fetch(
          qwenFaults,
          want
            ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ status: 503 }) }
            : { method: "DELETE" },
        );
        console.log(`render: ${Math.round(f * 100)}%: qwen outage ${want ? "begins" : "ends"}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (outage) await fetch(qwenFaults, { method: "DELETE" });
  };
  await Promise.all([conductor(), ...Array.from({ length: 9 }, (_, i) => worker(i))]);
}

// ---- the dashboard's queries --------------------------------------------------------------------

interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}
interface Defaults {
  unit?: string;
  decimals?: number;
  thresholds?: { steps: { color: string; value: number | null }[] };
  custom?: { stacking?: { mode: string } };
}
interface DashPanel {
  id: number;
  type: string;
  title: string;
  gridPos: GridPos;
  fieldConfig?: { defaults?: Defaults };
  targets?: { expr: string; legendFormat: string }[];
}

function substitute(expr: string): string {
  return expr.replaceAll("$__rate_interval", RATE_WINDOW).replace(/\$(ai_model|ai_route|ai_consumer)\b/g, ".*");
}

function legend(format: string, labels: Record<string, string>): string {
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, l: string) => labels[l] ?? "");
}

async function queryRange(
  prom: string,
  expr: string,
  start: number,
  end: number,
): Promise<{ metric: Record<string, string>; values: [number, string][] }[]> {
  const q = new URLSearchParams({ query: expr, start: String(start), end: String(end), step: String(STEP_S) });
  const r = await fetch(`${prom}/api/v1/query_range?${q}`);
  const body = (await r.json()) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; values: [number, string][] }[] };
  };
  if (body.status !== "success" || body.data === undefined) throw new Error(`Prometheus refused ${expr}: ${body.error ?? r.status}`);
  return body.data.result;
}

async function evaluate(prom: string, start: number, end: number, loadSeconds: number): Promise<unknown> {
  const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { title: string; panels: DashPanel[] };
  const panels = [];
  for (const p of dash.panels) {
    const series = [];
    for (const t of p.targets ?? []) {
      for (const s of await queryRange(prom, substitute(t.expr), start, end)) {
        series.push({ name: legend(t.legendFormat, s.metric), points: s.values.map(([ts, v]) => [ts - start, Number(v)]) });
      }
    }
    const d = p.fieldConfig?.defaults ?? {};
    panels.push({
      type: p.type,
      title: p.title,
      gridPos: p.gridPos,
      unit: d.unit ?? "short",
      decimals: d.decimals ?? null,
      stacked: d.custom?.stacking?.mode === "normal",
      thresholds: d.thresholds?.steps ?? [],
      series,
    });
  }
  // The load's phases, drawn like Grafana annotations (seconds from the start).
  const seconds = end - start;
  const annotations = [OUTAGE, SLOW_GEMMA].map((a) => ({ ...a, from: a.from * loadSeconds, to: a.to * loadSeconds }));
  return { title: dash.title, rateWindow: RATE_WINDOW, step: STEP_S, seconds, annotations, panels };
}

// ---- main ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: "5" },
      out: { type: "string", default: join(ROOT, "manifests/grafana/dashboard.png") },
      data: { type: "string" },
    },
  });
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error("--minutes must be a positive number");
  installDeps();
  const workDir = mkdtempSync(join(tmpdir(), "llm-gw-render-"));
  const seed = await startSeed({ gateway: { concurrency: 2 } });
  let prom: Prometheus | undefined;
  try {
    prom = await startPrometheus(seed.gateway.adminUrl, workDir);
    console.log(`render: Envoy ${seed.gateway.url}, Prometheus ${prom.url}; ${minutes} min of load`);
    await new Promise((r) => setTimeout(r, 3 * SCRAPE_S * 1000));
    const start = Math.floor(Date.now() / 1000);
    await runLoad(seed, minutes * 60_000);
    await new Promise((r) => setTimeout(r, 3 * SCRAPE_S * 1000)); // the last flush and scrape
    const end = Math.floor(Date.now() / 1000);
    const data = await evaluate(prom.url, start, end, minutes * 60);
    const dataPath = values.data ?? join(workDir, "dashboard-data.json");
    mkdirSync(dirname(dataPath), { recursive: true });
    writeFileSync(dataPath, JSON.stringify(data));
    execFileSync(PYTHON, [PLOTTER, dataPath, values.out], { stdio: "inherit" });
    console.log(`render: wrote ${values.out}`);
  } finally {
    await prom?.stop();
    await seed.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
