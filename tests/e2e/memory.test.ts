// 10,000 streamed requests through Envoy leave the Wasm VM's linear memory flat after warm-up. The
// plugin reports it as the gauge llm_gateway.vm_memory_bytes; the numbers are printed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSeed, post, type Seed } from "../harness/seed.ts";

const TOTAL = Number(process.env.MEMORY_TEST_REQUESTS ?? 10000);
const WARM_UP = 1000;
const CONCURRENCY = 16;
let seed: Seed;

before(async () => {
  seed = await startSeed({ stub: { completionTokens: 16 } });
});
after(async () => {
  await seed?.stop();
});

const memory = (): Promise<number> => seed.gateway.counter("wasmcustom.llm_gateway.vm_memory_bytes");

test(`${TOTAL} streamed requests leave the VM's linear memory flat after ${WARM_UP}`, async () => {
  let next = 0;
  let failures = 0;
  const samples: { at: number; bytes: number }[] = [];
  const run = async (until: number): Promise<void> => {
    const worker = async (): Promise<void> => {
      while (next < until) {
        const i = next++;
        // Alternate the shapes that exercise different paths: usage injected and dropped, asked for,
        // a larger prompt, the other model.
        const body = {
          model: i % 3 === 0 ? "gemma-2-2b" : "qwen2-1-5b",
          stream: true,
          ...(i % 2 === 0 ? { stream_options: { include_usage: true } } : {}),
          messages: [{ role: "user", content: "x".repeat(100 + (i % 7) * 500) }],
        };
        const r = await post(`${seed.gateway.url}/v1/chat/completions`, body);
        const text = await r.text();
        if (r.status !== 200 || !text.includes("[DONE]")) failures++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  };
  await run(WARM_UP);
  samples.push({ at: WARM_UP, bytes: await memory() });
  for (let step = WARM_UP + (TOTAL - WARM_UP) / 3; step <= TOTAL + 1; step += (TOTAL - WARM_UP) / 3) {
    await run(Math.round(step));
    samples.push({ at: Math.round(step), bytes: await memory() });
  }
  console.log(`VM linear memory (bytes) after N requests: ${samples.map((s) => `${s.at}: ${s.bytes}`).join(", ")}`);
  assert.equal(failures, 0);
  const first = samples[0]?.bytes ?? 0;
  assert.ok(first > 0, "the plugin reports its memory");
  for (const s of samples) assert.equal(s.bytes, first, `memory grew after warm-up: ${JSON.stringify(samples)}`);
});
