// Concurrent consumers for the quota tests: each client sends requests one after another, every request
// on a new connection (so Envoy's workers share them out), until the gateway refuses it with 429.
// Bounded: a client stops after `maxRequests` however the gateway answers.
import { rawRequest } from "../harness/http.ts";

export interface Outcome {
  client: number;
  gateway: number; // index into the urls
  status: number;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface SpendOptions {
  urls: string[]; // chat completions URLs; client i uses urls[i % urls.length]
  clients: number;
  body: unknown;
  headers?: Record<string, string>;
  maxRequests?: number; // per client, default 100
}

export async function spendUntilRefused(o: SpendOptions): Promise<Outcome[]> {
  const out: Outcome[] = [];
  const max = o.maxRequests ?? 100;
  const body = Buffer.from(JSON.stringify(o.body));
  await Promise.all(
    Array.from({ length: o.clients }, async (_, client) => {
      const gateway = client % o.urls.length;
      for (let i = 0; i < max; i++) {
        const r = await rawRequest(o.urls[gateway] ?? "", { headers: o.headers ?? {}, body });
        let usage: Outcome["usage"] = null;
        if (r.status === 200) usage = (JSON.parse(r.body) as { usage: Outcome["usage"] }).usage;
        out.push({ client, gateway, status: r.status, usage, headers: r.headers, body: r.body });
        if (r.status !== 200) return;
      }
    }),
  );
  return out;
}

export function admittedTokens(outcomes: Outcome[]): { input: number; output: number; total: number } {
  const sum = { input: 0, output: 0, total: 0 };
  for (const o of outcomes) {
    if (o.usage === null) continue;
    sum.input += o.usage.prompt_tokens;
    sum.output += o.usage.completion_tokens;
    sum.total += o.usage.total_tokens;
  }
  return sum;
}

// Envoy's per-worker listener counter: how many connections each worker accepted.
export async function connectionsPerWorker(adminUrl: string, listenPort: number, workers: number): Promise<number[]> {
  const text = await (await fetch(`${adminUrl}/stats?filter=worker_\\d+\\.downstream_cx_total$`)).text();
  return Array.from({ length: workers }, (_, w) => {
    const m = new RegExp(`^listener\\.127\\.0\\.0\\.1_${listenPort}\\.worker_${w}\\.downstream_cx_total: (\\d+)$`, "m").exec(text);
    return m ? Number(m[1]) : 0;
  });
}
