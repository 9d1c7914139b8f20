// The vLLM stub in a process of its own, for tests whose backends must hold more than a test process
// should (hundreds of concurrent 10 MB prompts): `startStubProcess` spawns this file, which serves one
// model until killed and prints its port when ready.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startStub } from "./vllm-stub.ts";

export interface StubProcess {
  model: string;
  port: number;
  url: string;
  stop(): Promise<void>;
}

// heapMb: the child's V8 old-space limit (each in-flight prompt is held as a string until answered).
export async function startStubProcess(model: string, heapMb = 8192): Promise<StubProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    [`--max-old-space-size=${heapMb}`, "--import", "tsx", fileURLToPath(import.meta.url), model],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^ready (\d+)$/m.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`stub process for ${model} exited (${code}) before it was ready`)));
  });
  return {
    model,
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const model = process.argv[2];
  if (model === undefined) throw new Error("usage: stub-process.ts MODEL");
  // Idle connections stay open longer than vLLM's 5 s here: under a burst that saturates the machine,
  // Envoy's 4 s idle timer fires late and a request can meet a connection the server is closing
  // (a reset with nothing to retry on for a dispatch request sent unprotected), which is not what
  // the tests that use this process measure.
  const stub = await startStub({ model, keepAliveTimeoutMs: 65000 });
  process.stdout.write(`ready ${stub.port}\n`);
  process.on("SIGTERM", () => {
    void stub.close().then(() => process.exit(0));
  });
}
