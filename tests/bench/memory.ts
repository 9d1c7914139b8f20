// Section 4: memory of a fresh Envoy with the plugin while it serves a mix of requests: routed chat
// (both models), streamed completions (SSE from nginx), an unknown model (404 from the plugin) and a
// malformed body (400). Read after start, after warm-up and at each checkpoint:
// Envoy's RSS, its allocator's view (server.memory_allocated / memory_heap_size), and the plugin's VM
// linear-memory gauge if the plugin defines one (a stat named *vm_memory_bytes).
import { chatBody, writeBody } from "./bodies.ts";
import type { BenchContext } from "./context.ts";
import { startVariant, statValue, wasmMemoryGauge } from "./gateways.ts";
import type { FixedBackend } from "./nginx.ts";
import { rssBytes } from "./procs.ts";
import { runWrk, errorCount, type WrkRequest } from "./wrk.ts";

export interface MemoryCheckpoint {
  label: string;
  requests: number; // Envoy's downstream_rq_total at the reading
  rssBytes: number;
  memoryAllocated: number | null;
  memoryHeapSize: number | null;
  wasmVmBytes: number | null;
}

export interface MemoryResult {
  mix: string[];
  checkpoints: MemoryCheckpoint[];
  loadErrors: number; // transport errors (non-2xx answers are part of the mix)
}

export async function memorySection(ctx: BenchContext, backend: FixedBackend): Promise<MemoryResult> {
  const { opts } = ctx;
  const dir = ctx.workDir;
  const mix: { label: string; req: WrkRequest }[] = [
    {
      label: "chat qwen2-1-5b (JSON)",
      req: { path: "/v1/chat/completions", bodyFile: writeBody(dir, "m-chat-qwen.json", chatBody(1024, { maxTokens: 16 })) },
    },
    {
      label: "chat gemma-2-2b (JSON)",
      req: {
        path: "/v1/chat/completions",
        bodyFile: writeBody(dir, "m-chat-gemma.json", chatBody(2048, { maxTokens: 16, model: "gemma-2-2b" })),
      },
    },
    {
      label: "completions stream (SSE)",
      req: {
        path: "/v1/completions",
        bodyFile: writeBody(
          dir,
          "m-stream.json",
          JSON.stringify({ model: "qwen2-1-5b", prompt: "Once upon a time", stream: true, max_tokens: 16 }),
        ),
      },
    },
    {
      label: "chat qwen2-1-5b, 16 KB prompt",
      req: { path: "/v1/chat/completions", bodyFile: writeBody(dir, "m-chat-16k.json", chatBody(16384, { maxTokens: 16 })) },
    },
    {
      label: "unknown model (404)",
      req: { path: "/v1/chat/completions", bodyFile: writeBody(dir, "m-unknown.json", chatBody(512, { model: "no-such-model" })) },
    },
    {
      label: "malformed JSON (400)",
      req: { path: "/v1/chat/completions", bodyFile: writeBody(dir, "m-bad.json", '{"model":"qwen2-1-5b","messages":[') },
    },
  ];
  const g = await startVariant("plugin", ctx.probes, backend.port, ctx.envoyCores);
  const out: MemoryResult = { mix: mix.map((m) => m.label), checkpoints: [], loadErrors: 0 };
  try {
    const read = async (label: string): Promise<void> => {
      out.checkpoints.push({
        label,
        requests: (await statValue(g, "http.llm_gateway.downstream_rq_total")) ?? 0,
        rssBytes: rssBytes(g.pid),
        memoryAllocated: await statValue(g, "server.memory_allocated"),
        memoryHeapSize: await statValue(g, "server.memory_heap_size"),
        wasmVmBytes: await wasmMemoryGauge(g),
      });
    };
    const drive = async (target: number): Promise<void> => {
      for (let guard = 0; guard < 5; guard++) {
        const done = (await statValue(g, "http.llm_gateway.downstream_rq_total")) ?? 0;
        const left = target - done;
        if (left <= 0) return;
        const r = await runWrk({
          url: g.url,
          requests: mix.map((m) => m.req),
          connections: 16,
          stopAfter: left,
          durationS: Math.ceil(left / 500) + 10,
          workDir: dir,
        });
        out.loadErrors += errorCount(r) - r.errors.status;
      }
    };
    await read("after start");
    await drive(opts.warmupRequests);
    await read(`after warm-up (${opts.warmupRequests})`);
    for (const n of opts.memoryCheckpoints) {
      ctx.log(`  memory: driving to ${n} requests`);
      await drive(n);
      await read(`after ${n}`);
    }
  } finally {
    await g.stop();
  }
  return out;
}
