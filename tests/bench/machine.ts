// The machine and tool versions a report names, so figures from different runs can be compared.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { envoyBinary, ROOT } from "../harness/envoy.ts";
import { cpuCount } from "./procs.ts";
import { nginxBinary } from "./nginx.ts";

export interface Machine {
  nproc: number;
  cpuModel: string;
  memTotalBytes: number;
  kernel: string;
  node: string;
  envoy: string;
  wrk: string;
  nginx: string;
  matplotlib: string;
}

// stdout and stderr together (nginx -v and wrk -v print to stderr; wrk -v exits 1).
function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
}

export function machine(): Machine {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const nginx = nginxBinary();
  return {
    nproc: cpuCount(),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memTotalBytes: Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) * 1024,
    kernel: release(),
    node: process.version,
    envoy: /version: \S*?\/(\d+\.\d+\.\d+)\//.exec(run(envoyBinary(), ["--version"]))?.[1] ?? "unknown",
    wrk: /^wrk (\S+)/.exec(run("wrk", ["-v"]))?.[1] ?? "missing",
    nginx: nginx === null ? "missing" : (/nginx\/(\S+)/.exec(run(nginx, ["-v"]))?.[1] ?? "unknown"),
    matplotlib:
      /^\d+\.\d+\S*$/m.exec(run(join(ROOT, ".venv/bin/python"), ["-c", "import matplotlib; print(matplotlib.__version__)"]))?.[0] ??
      "missing",
  };
}

export interface WasmFile {
  path: string;
  bytes: number;
  sha256: string;
}

export function wasmFile(path: string): WasmFile {
  return { path, bytes: statSync(path).size, sha256: createHash("sha256").update(readFileSync(path)).digest("hex") };
}
