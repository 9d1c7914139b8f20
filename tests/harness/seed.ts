// The seed scenario: two vLLM-compatible backends (qwen2-1-5b, gemma-2-2b) behind one Envoy running
// the plugin. Tests and the demo share it, so the demo is what the tests exercise.
import { startStub, type StubHandle, type StubOptions } from "../backends/vllm-stub.ts";
import { startGateway, type Gateway, type GatewayOptions } from "./envoy.ts";

export const SEED_MODELS = ["qwen2-1-5b", "gemma-2-2b"] as const;

// The plugin configuration of the seed scenario (the README shows the same).
export function seedPluginConfig(): Record<string, unknown> {
  return {
    models: [{ name: "qwen2-1-5b", fallback: ["gemma-2-2b"] }, { name: "gemma-2-2b" }],
  };
}

// `make demo` with LLM_GATEWAY_REPLICAS=N: qwen2-1-5b on N simulated vLLM replicas with prefix affinity
// (docs/replica-routing.md). No fallback there: the fleet's Envoy has no aggregate clusters.
export function seedFleetPluginConfig(): Record<string, unknown> {
  return {
    models: [{ name: "qwen2-1-5b" }, { name: "gemma-2-2b" }],
    prefixAffinity: { enabled: true, models: ["qwen2-1-5b"] },
  };
}

export interface Seed {
  gateway: Gateway;
  backends: Map<string, StubHandle>;
  stop(): Promise<void>;
}

export interface SeedOptions {
  pluginConfig?: unknown;
  stub?: Partial<Omit<StubOptions, "model">>;
  gateway?: Partial<GatewayOptions>;
  extraBackends?: string[];
}

export async function startSeed(opts: SeedOptions = {}): Promise<Seed> {
  const backends = new Map<string, StubHandle>();
  try {
    for (const model of [...SEED_MODELS, ...(opts.extraBackends ?? [])]) {
      backends.set(model, await startStub({ model, ...opts.stub }));
    }
    const gateway = await startGateway({
      backends: [...backends.entries()].map(([model, b]) => ({ model, host: "127.0.0.1", port: b.port })),
      pluginConfig: opts.pluginConfig ?? seedPluginConfig(),
      ...opts.gateway,
    });
    return {
      gateway,
      backends,
      async stop() {
        await gateway.stop();
        for (const b of backends.values()) await b.close();
      },
    };
  } catch (e) {
    for (const b of backends.values()) await b.close();
    throw e;
  }
}

export function backend(seed: Seed, model: string): StubHandle {
  const b = seed.backends.get(model);
  if (b === undefined) throw new Error(`no backend for ${model}`);
  return b;
}

// POSTs a JSON (or raw string) body to the gateway.
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
}
