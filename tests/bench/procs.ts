// Process facts the benchmark reads from /proc (Linux): CPU time per process, RSS, the busy time of
// each core, and CPU pinning with taskset, so every figure says which core did what.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";

// CPU time a process has run, in nanoseconds, summed over its live threads (schedstat is ns-exact;
// /proc/<pid>/stat counts 10 ms ticks). 0 when the process is gone.
export function cpuNs(pid: number): number {
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const tid of readdirSync(dir)) {
    try {
      const first = readFileSync(`${dir}/${tid}/schedstat`, "utf8").split(" ")[0];
      total += Number(first ?? 0);
    } catch {
      /* thread exited between readdir and read */
    }
  }
  return total;
}

// Resident set size in bytes (VmRSS), 0 when the process is gone.
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] !== undefined ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export interface CoreTimes {
  busy: number;
  total: number;
} // jiffies

// Busy and total jiffies of each core, from /proc/stat.
export function coreTimes(): CoreTimes[] {
  const out: CoreTimes[] = [];
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (m === null || m[2] === undefined) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal (guest is included in user)
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[Number(m[1])] = { busy: total - idle, total };
  }
  return out;
}

// Busy share (0..1) of each core between two coreTimes() samples.
export function coreBusy(before: CoreTimes[], after: CoreTimes[]): number[] {
  return after.map((a, i) => {
    const b = before[i];
    if (b === undefined || a.total === b.total) return 0;
    return (a.busy - b.busy) / (a.total - b.total);
  });
}

export function cpuCount(): number {
  return coreTimes().length;
}

export function tasksetAvailable(): boolean {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// Pins every thread of a running process to the given cores ("0", "1", "0-1").
export function pin(pid: number, cores: string): void {
  execFileSync("taskset", ["-a", "-p", "-c", cores, String(pid)], { stdio: "ignore" });
}

// CPU-time meter over a set of named processes: start() then stop() gives each one's share of a core.
export class CpuMeter {
  private before = new Map<string, number>();
  private coresBefore: CoreTimes[] = [];
  private t0 = 0n;

  constructor(private pids: Map<string, number>) {}

  start(): void {
    for (const [name, pid] of this.pids) this.before.set(name, name === "bench" ? selfCpuNs() : cpuNs(pid));
    this.coresBefore = coreTimes();
    this.t0 = process.hrtime.bigint();
  }

  // Per process: CPU ns used and share of one core; per core: busy share; the wall time.
  stop(): CpuSample {
    const wallNs = Number(process.hrtime.bigint() - this.t0);
    const processes: Record<string, { cpuNs: number; coreShare: number }> = {};
    for (const [name, pid] of this.pids) {
      const used = (name === "bench" ? selfCpuNs() : cpuNs(pid)) - (this.before.get(name) ?? 0);
      processes[name] = { cpuNs: used, coreShare: wallNs > 0 ? used / wallNs : 0 };
    }
    return { wallNs, processes, coreBusy: coreBusy(this.coresBefore, coreTimes()) };
  }
}

export interface CpuSample {
  wallNs: number;
  processes: Record<string, { cpuNs: number; coreShare: number }>;
  coreBusy: number[];
}

// CPU the machine spent on anything but the measured processes (other sessions, the kernel's own
// threads), in cores: a run where this is large was disturbed.
export function othersShare(s: CpuSample): number {
  const busy = s.coreBusy.reduce((a, b) => a + b, 0);
  const ours = Object.values(s.processes).reduce((a, p) => a + p.coreShare, 0);
  return Math.max(0, busy - ours);
}

function selfCpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

// Children still running when this process exits (an error, Ctrl-C) are killed, so nothing is left
// listening.
// `group`: the child leads its own process group (spawned detached), which is killed whole.
const tracked = new Map<ChildProcess, boolean>();
let exitHook = false;

export function killOnExit(child: ChildProcess, group = false): void {
  tracked.set(child, group);
  child.once("exit", () => tracked.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const [c, g] of tracked) {
      try {
        if (g && c.pid !== undefined) process.kill(-c.pid, "SIGKILL");
        else c.kill("SIGKILL");
      } catch {
        /* gone */
      }
    }
  });
}

// Spawns a helper whose first stdout line is a JSON object (the vLLM stub and the fixed backend both
// print {"port": N, ...}); resolves with that object and the child.
export function spawnWithReadyLine(
  cmd: string,
  args: string[],
  timeoutMs: number,
  cwd?: string,
): Promise<{ child: ChildProcess; info: Record<string, unknown> }> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...(cwd !== undefined ? { cwd } : {}) });
  killOnExit(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} not ready after ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${String(code)}: ${stderr}`));
    });
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      try {
        resolve({ child, info: JSON.parse(out.slice(0, nl)) as Record<string, unknown> });
      } catch (e) {
        child.kill("SIGKILL");
        reject(e as Error);
      }
    });
  });
}

// Stops a child: SIGTERM, then SIGKILL after graceMs.
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}
