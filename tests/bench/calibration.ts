// Which fixed-response backend keeps itself out of the way: nginx and a minimal Node server, each
// loaded directly by wrk (no Envoy), compared by the CPU they spend per request. The cheaper one
// serves sections 1, 3 and 4.
import { startNodeFixed } from "./backends.ts";
import { chatBody, writeBody } from "./bodies.ts";
import { loadSummary, type BenchContext, type LoadSummary } from "./context.ts";
import { startNginx, type FixedBackend } from "./nginx.ts";
import { CHAT_PATH } from "./nonstreaming.ts";
import { CpuMeter } from "./procs.ts";
import { runWrk } from "./wrk.ts";

export interface BackendCalibration {
  name: string;
  load: LoadSummary;
  backendCpuUsPerRequest: number;
  backendCoreShare: number;
}

export async function calibrateBackends(ctx: BenchContext): Promise<{ runs: BackendCalibration[]; chosen: string }> {
  const bodyFile = writeBody(ctx.workDir, "calibration.json", chatBody(ctx.opts.bodyBytes, { maxTokens: 16 }));
  const runs: BackendCalibration[] = [];
  for (const start of [startNginx, startNodeFixed]) {
    let b: FixedBackend | null = null;
    try {
      b = await start("qwen2-1-5b");
      await runWrk({
        url: `http://127.0.0.1:${b.port}`,
        requests: [{ path: CHAT_PATH, bodyFile }],
        connections: 4,
        durationS: 0.2,
        workDir: ctx.workDir,
      });
      const meter = new CpuMeter(new Map([["backend", b.pid]]));
      meter.start();
      const r = await runWrk({
        url: `http://127.0.0.1:${b.port}`,
        requests: [{ path: CHAT_PATH, bodyFile }],
        connections: ctx.opts.connections,
        durationS: ctx.opts.calibrationSeconds,
        workDir: ctx.workDir,
      });
      const cpu = meter.stop();
      const used = cpu.processes["backend"];
      runs.push({
        name: b.name,
        load: loadSummary(r, ctx.opts.connections),
        backendCpuUsPerRequest: (used?.cpuNs ?? 0) / Math.max(1, r.requests) / 1000,
        backendCoreShare: used?.coreShare ?? 0,
      });
    } catch (e) {
      ctx.log(`  calibration: ${String((e as Error).message ?? e)}`);
    } finally {
      if (b !== null) await b.stop();
    }
  }
  const best = [...runs].sort((a, b) => a.backendCpuUsPerRequest - b.backendCpuUsPerRequest)[0];
  return { runs, chosen: best?.name ?? "nginx" };
}

export async function startChosen(name: string): Promise<FixedBackend> {
  return name === "node-fixed" ? startNodeFixed("qwen2-1-5b") : startNginx("qwen2-1-5b");
}
