// The throughput backend: nginx (Debian) answering every request with a fixed, vLLM-shaped body, so
// the backend costs as little CPU as possible and Envoy stays the bottleneck.
//   /v1/completions       a short SSE stream (text/event-stream, with a usage chunk and [DONE])
//   anything else         a chat.completion JSON with usage
// One process (master_process off), one worker loop, no access log; the request body is read and
// discarded (that is what nginx does for `return`).
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chatCompletionBody, tokenChunk, usageChunk, sseEvent, usageOf, type ResponseMeta } from "../backends/vllm-wire.ts";
import { tokenTexts } from "../backends/tokens.ts";
import { freePort, waitFor } from "../harness/net.ts";
import { killOnExit } from "./procs.ts";

export interface FixedBackend {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export function nginxBinary(): string | null {
  for (const p of ["/usr/sbin/nginx", "/usr/bin/nginx"]) {
    try {
      execFileSync(p, ["-v"], { stdio: "ignore" });
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

// The fixed bodies, in vLLM's wire format (the same renderers the stub uses).
export function fixedBodies(model: string): { json: string; sse: string } {
  const meta: ResponseMeta = { id: "chatcmpl-bench", created: 1700000000, model };
  const tokens = tokenTexts(model, 16);
  const json = JSON.stringify(chatCompletionBody(meta, tokens.join(""), "stop", usageOf(24, 16)));
  const cmeta: ResponseMeta = { id: "cmpl-bench", created: 1700000000, model };
  let sse = "";
  tokens.forEach((t, i) => {
    sse += sseEvent(tokenChunk("completions", cmeta, t, i === tokens.length - 1 ? "stop" : null, null));
  });
  sse += sseEvent(usageChunk("completions", cmeta, usageOf(24, 16)));
  sse += sseEvent("[DONE]");
  return { json, sse };
}

// nginx quoted strings: single quotes around, so JSON's double quotes stay; escape \ and '.
function nginxQuote(s: string): string {
  if (s.includes("$")) throw new Error("nginx fixed body must not contain '$'");
  return "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
}

export async function startNginx(model: string): Promise<FixedBackend> {
  const bin = nginxBinary();
  if (bin === null) throw new Error("nginx not found: run `bash tests/bench/install-deps.sh`");
  const dir = mkdtempSync(join(tmpdir(), "llm-gw-nginx-"));
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, d));
  const port = await freePort();
  const { json, sse } = fixedBodies(model);
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 0;
  client_body_buffer_size 64k;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server_tokens off;
  server {
    listen 127.0.0.1:${port} reuseport;
    location = /v1/completions {
      default_type text/event-stream;
      return 200 ${nginxQuote(sse)};
    }
    location / {
      default_type application/json;
      return 200 ${nginxQuote(json)};
    }
  }
}
`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  const child: ChildProcess = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  killOnExit(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  const stop = async (): Promise<void> => {
    if (!exited) {
      const gone = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await gone;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`nginx exited: ${stderr}`);
        const r = await fetch(`http://127.0.0.1:${port}/health`).catch(() => null);
        return r !== null && r.ok;
      },
      10000,
      "nginx",
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { name: "nginx", port, pid: child.pid ?? -1, stop };
}
