// A failed VM comes back: with Envoy's failure policy FAIL_RELOAD (set by the harness and by every
// rendered Envoy configuration) a VM that traps is replaced, requests are served by the plugin again,
// and the failure shows in Envoy's wasm stats. Uses build/plugin.trap.wasm, a test-only build
// (assembly/testing/trap-main.ts) that traps on a request header; the shipped plugin never traps by design.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startSeed, post, type Seed } from "../harness/seed.ts";
import { ROOT } from "../harness/envoy.ts";

const TRAP_WASM = join(ROOT, "build/plugin.trap.wasm");

async function stat(seed: Seed, name: string): Promise<number> {
  const text = await (await fetch(`${seed.gateway.adminUrl}/stats?filter=${encodeURIComponent(`^${name}$`)}`)).text();
  const m = /: (\d+)/.exec(text);
  return m ? Number(m[1]) : -1;
}

describe("a VM that traps is reloaded", () => {
  let seed: Seed;
  before(async () => {
    seed = await startSeed({ gateway: { wasmPath: TRAP_WASM } });
  });
  after(async () => {
    await seed?.stop();
  });

  test("503 while the VM is down, then the plugin routes again; the reload is counted", async () => {
    const before = await stat(seed, "wasm.llm-gateway.vm_reload_success");
    assert.equal(before, 0);
    const trapped = await fetch(`${seed.gateway.url}/v1/models`, { headers: { "x-llm-gateway-test-trap": "1" } });
    // The request that hit the trap fails closed.
    assert.equal(trapped.status, 503);
    await trapped.body?.cancel();

    // Envoy reloads the VM after its backoff (1 s by default); meanwhile requests get 503. The attempt
    // stage (the upstream filter) shares the VM and is reloaded on its own next use, so poll with a chat
    // request, which passes both.
    const chat = { model: "gemma-2-2b", messages: [{ role: "user", content: "hi" }] };
    const start = Date.now();
    let status = 0;
    let during503 = 0;
    while (Date.now() - start < 15000) {
      const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat);
      status = r.status;
      await r.body?.cancel();
      if (status === 200) break;
      assert.equal(status, 503, "while the VM is down the filters answer 503");
      during503++;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(status, 200, `the plugin answers again (after ${Date.now() - start} ms, ${during503} requests refused meanwhile)`);
    assert.match(seed.gateway.log(), /Uncaught RuntimeError: unreachable/, "Envoy logged the trap");

    // The new VM routes by model like the old one, and serves the model list.
    const r = await post(`${seed.gateway.url}/v1/chat/completions`, chat);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { model: string }).model, "gemma-2-2b");
    const list = await fetch(`${seed.gateway.url}/v1/models`);
    assert.equal(list.status, 200);
    await list.body?.cancel();

    assert.equal(await stat(seed, "wasm.llm-gateway.vm_reload_success"), 1, "the reload is counted");
    const refused =
      (await stat(seed, "wasm.llm-gateway.vm_reload_backoff")) + (await stat(seed, "wasm.llm-gateway-attempt.vm_reload_backoff"));
    assert.ok(refused >= during503, `requests refused during the backoff are counted (${refused} >= ${during503})`);
    // The same figure on the Prometheus endpoint operators scrape.
    const prom = await (await fetch(`${seed.gateway.adminUrl}/stats/prometheus`)).text();
    assert.match(prom, /^envoy_wasm_llm_gateway_vm_reload_success(\{[^}]*\})? 1$/m);
  });
});
