// Where Envoy's CPU goes, per request: perf(1) samples Envoy (cpu-clock, no hardware counters needed)
// during a saturation run, and the samples are split by where the code lives. Envoy's release binary
// is stripped and V8 writes no perf map inside Envoy, so symbols are out of reach, but the split is
// not: Envoy's own binary (C++ and the V8 runtime linked into it), the kernel (sockets, syscalls),
// code V8 generated at run time (the Wasm module compiled by V8, and its call wrappers), and libc.
import { spawn, execFileSync } from "node:child_process";
import { join } from "node:path";

export type PerfGroup = "envoy" | "kernel" | "wasm-jit" | "libc-other";
export const PERF_GROUPS: readonly PerfGroup[] = ["envoy", "kernel", "wasm-jit", "libc-other"];

export interface PerfProfile {
  samples: number;
  shares: Record<PerfGroup, number>; // fractions of Envoy's samples
}

export function perfAvailable(): boolean {
  try {
    execFileSync("perf", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function groupOf(dso: string): PerfGroup {
  if (dso === "envoy") return "envoy";
  if (dso.startsWith("[kernel")) return "kernel";
  if (dso.startsWith("[JIT]") || dso.startsWith("//anon") || dso === "[unknown]") return "wasm-jit";
  return "libc-other";
}

// Samples `pid` while `load` runs.
export async function profileDuring(pid: number, workDir: string, tag: string, load: () => Promise<void>): Promise<PerfProfile> {
  const file = join(workDir, `perf-${tag}.data`);
  const perf = spawn("perf", ["record", "-q", "-e", "cpu-clock", "-F", "1999", "-o", file, "-p", String(pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  perf.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => perf.once("exit", (c) => r(c)));
  await new Promise((r) => setTimeout(r, 200)); // perf attaches
  try {
    await load();
  } finally {
    perf.kill("SIGINT");
    const t = setTimeout(() => perf.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(t);
  }
  const report = execFileSync(
    "perf",
    ["report", "-i", file, "--stdio", "--no-children", "-g", "none", "--percent-limit", "0", "-F", "overhead,sample,dso"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 16 * 1024 * 1024 },
  );
  const shares: Record<PerfGroup, number> = { envoy: 0, kernel: 0, "wasm-jit": 0, "libc-other": 0 };
  let samples = 0;
  for (const line of report.split("\n")) {
    const m = /^\s+([\d.]+)%\s+(\d+)\s+(.+?)\s*$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined || m[3] === undefined) continue;
    shares[groupOf(m[3])] += Number(m[1]) / 100;
    samples += Number(m[2]);
  }
  if (samples === 0) throw new Error(`perf recorded nothing: ${stderr.slice(0, 500)}`);
  return { samples, shares };
}
