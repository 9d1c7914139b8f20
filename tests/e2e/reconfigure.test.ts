// A running Envoy takes a new plugin configuration through its file-based listener (LDS); a bad one
// is refused at configure time, with a log line naming the field, and the previous one keeps serving.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSeed, post, type Seed } from "../harness/seed.ts";
import { rawRequest } from "../harness/http.ts";

let seed: Seed;
before(async () => {
  seed = await startSeed({ pluginConfig: { models: [{ name: "qwen2-1-5b" }] } });
});
after(async () => {
  await seed?.stop();
});

// A fresh connection per request: a kept-alive one would still belong to the previous listener.
const ask = (model: string, headers: Record<string, string> = {}): Promise<Response> =>
  post(
    `${seed.gateway.url}/v1/chat/completions`,
    { model, messages: [{ role: "user", content: "hi" }] },
    { connection: "close", ...headers },
  );

test("a new configuration is applied without restarting Envoy", async () => {
  assert.equal((await ask("gemma-2-2b")).status, 404);
  assert.equal(await seed.gateway.reconfigure({ models: [{ name: "qwen2-1-5b" }, { name: "gemma-2-2b" }] }), "accepted");
  const r = await eventually(() => ask("gemma-2-2b"));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("x-stub-model"), "gemma-2-2b");
});

// Envoy hands a new filter chain to its workers asynchronously, a few milliseconds after it accepted
// the update: a request may still meet the old configuration in between. Retries for up to 5 s.
async function eventually(send: () => Promise<Response>, status = 200): Promise<Response> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await send();
    if (r.status === status || Date.now() > deadline) return r;
    await r.body?.cancel();
    await new Promise((res) => setTimeout(res, 50));
  }
}

const BAD: { config: unknown; field: RegExp }[] = [
  { config: { models: "qwen2-1-5b" }, field: /models: must be an array, got "qwen2-1-5b"/ },
  { config: { models: [{ name: "qwen2-1-5b", fallback: ["nope"] }] }, field: /models\[0\]\.fallback\[0\]: unknown model "nope"/ },
  { config: { models: [{ name: "qwen2-1-5b" }], maxBodyBytes: -1 }, field: /maxBodyBytes: must be an integer/ },
  { config: { models: [{ name: "qwen2-1-5b" }], routingHeader: "X Model" }, field: /routingHeader: must be a lowercase header name/ },
  { config: { models: [{ name: "qwen2-1-5b" }], modles: [] }, field: /modles: unknown field/ },
  { config: { models: [{ name: "a" }], _rules_: [{ models: [{ name: "b" }] }] }, field: /_rules_\[0\]: needs a non-empty _match_route_/ },
];

for (const bad of BAD) {
  test(`a bad configuration is refused and the old one keeps serving: ${bad.field.source}`, async () => {
    assert.equal(await seed.gateway.reconfigure(bad.config), "rejected");
    assert.match(seed.gateway.log(), bad.field);
    const r = await ask("gemma-2-2b");
    assert.equal(r.status, 200, "previous configuration still routes gemma-2-2b");
    await r.body?.cancel();
  });
}

test("per-domain rules override the global configuration", async () => {
  assert.equal(
    await seed.gateway.reconfigure({
      models: [{ name: "qwen2-1-5b" }],
      _rules_: [{ _match_domain_: ["*.gemma.example"], models: [{ name: "gemma-2-2b" }] }],
    }),
    "accepted",
  );
  const global = await eventually(() => ask("gemma-2-2b"), 404);
  assert.equal(global.status, 404);
  await global.body?.cancel();
  // fetch drops a Host header, so this one goes through node:http.
  const viaRule = await rawRequest(`${seed.gateway.url}/v1/chat/completions`, {
    headers: { host: "api.gemma.example" },
    body: Buffer.from('{"model":"gemma-2-2b","messages":[]}'),
  });
  assert.equal(viaRule.status, 200);
  assert.equal(viaRule.headers["x-stub-model"], "gemma-2-2b");
});
