// Backends as their own processes (so each one's CPU can be measured and pinned): the project's vLLM
// stub for streaming, and a minimal Node server with a fixed body, measured against nginx to pick the
// cheaper fixed-response backend.
import { createServer } from "node:http";
import { once } from "node:events";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "../harness/envoy.ts";
import { fixedBodies, type FixedBackend } from "./nginx.ts";
import { spawnWithReadyLine, stopChild } from "./procs.ts";

async function fromReadyLine(name: string, args: string[]): Promise<FixedBackend> {
  const { child, info } = await spawnWithReadyLine(process.execPath, ["--import", "tsx", ...args], 20000, ROOT);
  const port = Number(info["port"]);
  if (!Number.isInteger(port) || port <= 0) {
    await stopChild(child);
    throw new Error(`${name}: no port in ${JSON.stringify(info)}`);
  }
  return { name, port, pid: child.pid ?? -1, stop: () => stopChild(child) };
}

// The vLLM stub (tests/backends/vllm-stub.ts) in its own process; ttftMs: its first-token delay.
export function startStubProcess(model: string, completionTokens: number, ttftMs = 0): Promise<FixedBackend> {
  return fromReadyLine("vllm-stub", [
    join(ROOT, "tests/backends/vllm-stub.ts"),
    "--model",
    model,
    "--port",
    "0",
    "--completion-tokens",
    String(completionTokens),
    "--ttft-ms",
    String(ttftMs),
  ]);
}

// The Node fixed-response server (this file run as a script).
export function startNodeFixed(model: string): Promise<FixedBackend> {
  return fromReadyLine("node-fixed", [join(ROOT, "tests/bench/backends.ts"), "--node-fixed", model]);
}

async function serveFixed(model: string): Promise<void> {
  const { json, sse } = fixedBodies(model);
  const jsonBuf = Buffer.from(json);
  const sseBuf = Buffer.from(sse);
  const server = createServer({ noDelay: true, keepAliveTimeout: 600_000 }, (req, res) => {
    req.resume(); // read and drop the body, as nginx does
    req.on("end", () => {
      const isSse = req.url === "/v1/completions";
      res.writeHead(200, {
        "content-type": isSse ? "text/event-stream" : "application/json",
        "content-length": isSse ? sseBuf.length : jsonBuf.length,
      });
      res.end(isSse ? sseBuf : jsonBuf);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  process.stdout.write(JSON.stringify({ port: typeof addr === "object" && addr !== null ? addr.port : 0 }) + "\n");
  const stop = (): void => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf("--node-fixed");
  const model = i >= 0 ? process.argv[i + 1] : undefined;
  if (model === undefined) {
    process.stderr.write("usage: backends.ts --node-fixed MODEL\n");
    process.exit(2);
  }
  serveFixed(model).catch((e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exit(2);
  });
}
