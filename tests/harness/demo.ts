// `make demo`: the seed scenario on this machine. Two vLLM-compatible backends, each its own process
// (as each model is its own pod, so one can be stopped alone), and Envoy with the plugin on
// 127.0.0.1:18000, admin on 127.0.0.1:15000. Ctrl-C stops everything.
//
// Real OpenAI-compatible servers can take the stubs' place: LLM_GATEWAY_BACKENDS=
// "qwen2-1-5b=127.0.0.1:8000,gemma-2-2b=127.0.0.1:8001" skips the stubs and routes to those.
//
// LLM_GATEWAY_REPLICAS=N (N >= 2): qwen2-1-5b runs on N simulated vLLM replicas (the stub's replica mode:
// prefix cache, batching, vLLM's /metrics) with prefix affinity: the plugin's prefix key and Envoy's ring
// hash with bounded load, as the deploy CLI renders a model with `affinity` (docs/replica-routing.md).
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { startGateway, ROOT } from "./envoy.ts";
import { seedFleetPluginConfig, seedPluginConfig, SEED_MODELS } from "./seed.ts";
import type { BackendTarget } from "./envoy-config.ts";
import { REPLICA_PRESET } from "../backends/fleet-params.ts";
import { startFleetProcess, type FleetProcess } from "../backends/fleet-process.ts";
import { startFleetGateway } from "../bench/lb/fleet-envoy.ts";

const LISTEN_PORT = Number(process.env.LLM_GATEWAY_PORT ?? 18000);
const ADMIN_PORT = Number(process.env.LLM_GATEWAY_ADMIN_PORT ?? 15000);
const STUB_PORTS: Record<string, number> = { "qwen2-1-5b": 18101, "gemma-2-2b": 18102 };

const children: ChildProcess[] = [];

function startStubProcess(model: string, port: number): Promise<BackendTarget> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "tests/backends/vllm-stub.ts"),
      "--model",
      model,
      "--port",
      String(port),
      "--ttft-ms",
      "200",
      "--token-interval-ms",
      "40",
      "--completion-tokens",
      "24",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`backend ${model} exited with ${code}`)));
    createInterface({ input: child.stdout! }).once("line", (line) => {
      const info = JSON.parse(line) as { port: number };
      resolve({ model, host: "127.0.0.1", port: info.port });
    });
  });
}

function externalBackends(spec: string): BackendTarget[] {
  return spec.split(",").map((entry) => {
    const [model, addr] = entry.split("=");
    const [host, port] = (addr ?? "").split(":");
    if (!model || !host || !port) throw new Error(`LLM_GATEWAY_BACKENDS entry ${JSON.stringify(entry)} is not model=host:port`);
    return { model, host, port: Number(port) };
  });
}

// qwen2-1-5b on `replicas` simulated replicas in real time, gemma-2-2b on one plain stub.
async function fleetDemo(replicas: number): Promise<void> {
  const fleet: FleetProcess = await startFleetProcess({ model: "qwen2-1-5b", replicas, params: REPLICA_PRESET, namePrefix: "qwen-" });
  const gemma = await startStubProcess("gemma-2-2b", STUB_PORTS["gemma-2-2b"] ?? 0);
  const gateway = await startFleetGateway({
    models: [
      { model: "qwen2-1-5b", replicas: fleet.replicas.map((r) => ({ host: "127.0.0.1", port: r.port })) },
      { model: "gemma-2-2b", replicas: [{ host: gemma.host, port: gemma.port }] },
    ],
    policy: "RING_HASH",
    loadFactor: 1.25,
    pluginConfig: seedFleetPluginConfig(),
    listenPort: LISTEN_PORT,
    adminPort: ADMIN_PORT,
  });
  const stop = async (): Promise<void> => {
    await gateway.stop();
    await fleet.stop();
    for (const c of children) c.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  console.log(
    [
      `llm-gateway demo is running: qwen2-1-5b on ${replicas} simulated replicas with prefix affinity`,
      "",
      `  gateway (Envoy + plugin)  ${gateway.url}`,
      `  Envoy admin / metrics     ${gateway.adminUrl}/stats/prometheus`,
      ...fleet.replicas.map((r) => `  ${r.name.padEnd(24)}  ${r.url}  (vLLM metrics: ${r.url}/metrics)`),
      `  gemma-2-2b                http://${gemma.host}:${gemma.port}`,
      "",
      "Twice: the same prompt prefix lands on one replica (x-stub-replica), which then reports cached tokens:",
      `  curl -si ${gateway.url}/v1/chat/completions -H 'content-type: application/json' \\`,
      `    -d '{"model":"qwen2-1-5b","messages":[{"role":"system","content":"You are the terse assistant of the llm-gateway demo: answer in one short sentence, never apologise, never repeat the question."},{"role":"user","content":"Hello"}]}' \\`,
      "    | grep -oiE 'x-stub-replica: [a-z0-9-]+|\"cached_tokens\":[0-9]+'",
      "",
      "Ctrl-C stops everything.",
    ].join("\n"),
  );
}

async function main(): Promise<void> {
  const replicas = Number(process.env.LLM_GATEWAY_REPLICAS ?? 1);
  if (!Number.isInteger(replicas) || replicas < 1)
    throw new Error(`LLM_GATEWAY_REPLICAS must be a positive integer, got ${process.env.LLM_GATEWAY_REPLICAS}`);
  if (replicas > 1) return fleetDemo(replicas);
  const external = process.env.LLM_GATEWAY_BACKENDS;
  const backends = external
    ? externalBackends(external)
    : await Promise.all(SEED_MODELS.map((m) => startStubProcess(m, STUB_PORTS[m] ?? 0)));
  const pluginConfig = external ? { models: backends.map((b) => ({ name: b.model })) } : seedPluginConfig();
  const gateway = await startGateway({ backends, pluginConfig, listenPort: LISTEN_PORT, adminPort: ADMIN_PORT, logLevel: "info" });

  const stop = async (): Promise<void> => {
    await gateway.stop();
    for (const c of children) c.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());

  const lines = [
    "llm-gateway demo is running",
    "",
    `  gateway (Envoy + plugin)  ${gateway.url}`,
    `  Envoy admin / metrics     ${gateway.adminUrl}/stats/prometheus`,
    ...backends.map((b) => `  ${b.model.padEnd(24)}  http://${b.host}:${b.port}  (cluster outbound|8080||llm-${b.model}.dns)`),
    `  Envoy config and logs     ${gateway.workDir}`,
    "",
    "Try:",
    `  curl -s ${gateway.url}/v1/models`,
    `  curl -s ${gateway.url}/v1/chat/completions -H 'content-type: application/json' \\`,
    `    -d '{"model":"qwen2-1-5b","messages":[{"role":"user","content":"Hello"}]}'`,
    `  curl -sN ${gateway.url}/v1/chat/completions -H 'content-type: application/json' \\`,
    `    -d '{"model":"gemma-2-2b","stream":true,"messages":[{"role":"user","content":"Hello"}]}'`,
    "",
    "Ctrl-C stops everything.",
  ];
  console.log(lines.join("\n"));
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
  for (const c of children) c.kill("SIGTERM");
  process.exit(1);
});
