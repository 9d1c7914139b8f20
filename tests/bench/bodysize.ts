// Section 3: the plugin's time per request as the body grows from 1 KB to 4 MB. One connection
// (closed loop), so each figure is one request's cost; the plugin's share is the difference to plain
// Envoy in latency and in Envoy's CPU per request, and wasm-buffer shows how much of it is Envoy
// buffering the body and copying it into the VM rather than the plugin's own scan.
import type { Gateway } from "../harness/envoy.ts";
import { chatBody, writeBody } from "./bodies.ts";
import { loadSummary, rotate, type BenchContext, type LoadSummary } from "./context.ts";
import { availableVariants, startVariant, stopAll, type Variant } from "./gateways.ts";
import type { FixedBackend } from "./nginx.ts";
import { CHAT_PATH } from "./nonstreaming.ts";
import { CpuMeter } from "./procs.ts";
import { runWrk } from "./wrk.ts";

export const SIZE_VARIANTS: readonly Variant[] = ["plain", "wasm-buffer", "plugin"];

export interface SizePoint {
  bytes: number;
  runs: Partial<Record<Variant, { latency: LoadSummary; envoyCpuUsPerRequest: number }>>;
}

export interface BodySizeRepeat {
  points: SizePoint[];
}

export async function bodySizeRepeat(ctx: BenchContext, repeat: number, backend: FixedBackend): Promise<BodySizeRepeat> {
  const { opts } = ctx;
  const variants = availableVariants(ctx.probes).filter((v) => SIZE_VARIANTS.includes(v));
  const gateways = new Map<Variant, Gateway>();
  const out: BodySizeRepeat = { points: [] };
  try {
    for (const v of variants) gateways.set(v, await startVariant(v, ctx.probes, backend.port, ctx.envoyCores));
    for (const [i, bytes] of opts.sizes.entries()) {
      const bodyFile = writeBody(ctx.workDir, `chat-${bytes}.json`, chatBody(bytes, { maxTokens: 16 }));
      const point: SizePoint = { bytes, runs: {} };
      ctx.log(`  body ${bytes} B: ${variants.join(", ")}`);
      for (const v of rotate(variants, repeat + i)) {
        const g = gateways.get(v);
        if (g === undefined) continue;
        // A short warm-up at this size (V8 tier-up, Envoy's buffers).
        await runWrk({
          url: g.url,
          requests: [{ path: CHAT_PATH, bodyFile }],
          connections: 1,
          durationS: 0.2,
          workDir: ctx.workDir,
          timeoutS: 30,
        });
        const meter = new CpuMeter(new Map([["envoy", g.pid]]));
        meter.start();
        const r = await runWrk({
          url: g.url,
          requests: [{ path: CHAT_PATH, bodyFile }],
          connections: 1,
          durationS: opts.sizeSeconds,
          workDir: ctx.workDir,
          timeoutS: 30,
        });
        const cpu = meter.stop();
        point.runs[v] = {
          latency: loadSummary(r, 1),
          envoyCpuUsPerRequest: r.requests > 0 ? (cpu.processes["envoy"]?.cpuNs ?? 0) / r.requests / 1000 : NaN,
        };
      }
      out.points.push(point);
    }
  } finally {
    await stopAll(gateways.values());
  }
  return out;
}
