// A fleet of replica-mode stubs (replica.ts) in a process of its own, so the benchmark's client and the
// simulated GPUs do not share one event loop. `startFleetProcess` spawns this file; it prints the
// replicas' ports as one JSON line when ready and serves until SIGTERM.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { ReplicaParams } from "./replica.ts";
import { startStub, type StubHandle } from "./vllm-stub.ts";

export interface FleetSpec {
  model: string;
  replicas: number;
  params: ReplicaParams;
  /** Replica names are `${namePrefix}${i}`. */
  namePrefix?: string;
}

export interface FleetProcess {
  model: string;
  replicas: { name: string; port: number; url: string }[];
  pid: number;
  stop(): Promise<void>;
}

export async function startFleetProcess(spec: FleetSpec, cpus?: string): Promise<FleetProcess> {
  const args = ["--import", "tsx", fileURLToPath(import.meta.url), JSON.stringify(spec)];
  const child: ChildProcess =
    cpus !== undefined
      ? spawn("taskset", ["-c", cpus, process.execPath, ...args], { stdio: ["ignore", "pipe", "inherit"] })
      : spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const ready = await new Promise<{ name: string; port: number }[]>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`fleet process exited (${code}) before it was ready`)));
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(JSON.parse(line) as { name: string; port: number }[]));
  });
  const kill = (): void => {
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  return {
    model: spec.model,
    replicas: ready.map((r) => ({ ...r, url: `http://127.0.0.1:${r.port}` })),
    pid: child.pid ?? -1,
    async stop() {
      process.removeListener("exit", kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as FleetSpec;
  const stubs: StubHandle[] = [];
  for (let i = 0; i < spec.replicas; i++) {
    // Keep-alive past Envoy's 4 s idle timeout, as stub-process.ts explains.
    stubs.push(
      await startStub({
        model: spec.model,
        keepAliveTimeoutMs: 65000,
        replica: { name: `${spec.namePrefix ?? "replica-"}${i}`, params: spec.params },
      }),
    );
  }
  process.stdout.write(JSON.stringify(stubs.map((s, i) => ({ name: `${spec.namePrefix ?? "replica-"}${i}`, port: s.port }))) + "\n");
  process.on("SIGTERM", () => {
    void Promise.all(stubs.map((s) => s.close())).then(() => process.exit(0));
  });
}
