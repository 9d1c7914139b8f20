// The streaming client: time to the first SSE bytes (TTFT as a client sees it) with hrtime, and
// closed-loop stream load that counts the token events received per second.
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage } from "node:http";

export interface StreamTarget {
  name: string;
  url: string; // http://127.0.0.1:port
}

export interface StreamRequest {
  path: string;
  body: string;
  headers?: Record<string, string>;
}

export interface StreamOutcome {
  status: number;
  ttftNs: number; // request written → first body bytes (the first SSE event)
  firstTokenNs: number | null; // request written → first content chunk (a token event); null: none came
  totalNs: number; // request written → end of the response
  events: number; // SSE events ("data: " lines)
  tokens: number; // token events (chat deltas or completion texts)
  headers: IncomingHttpHeaders;
}

const TOKEN_MARKERS = ['"delta":{"content"', '"text":'];

// Counts occurrences of the markers across chunk boundaries.
class Counter {
  events = 0;
  tokens = 0;
  private tail = "";

  feed(chunk: string): void {
    const s = this.tail + chunk;
    this.events += occurrences(s, "data: ") - occurrences(this.tail, "data: ");
    for (const m of TOKEN_MARKERS) this.tokens += occurrences(s, m) - occurrences(this.tail, m);
    this.tail = s.slice(-24);
  }
}

function occurrences(s: string, needle: string): number {
  let n = 0;
  for (let i = s.indexOf(needle); i >= 0; i = s.indexOf(needle, i + needle.length)) n++;
  return n;
}

export function streamOnce(target: StreamTarget, req: StreamRequest, agent: Agent, timeoutMs = 30000): Promise<StreamOutcome> {
  const u = new URL(target.url);
  const body = Buffer.from(req.body);
  return new Promise((resolve, reject) => {
    const counter = new Counter();
    let t0 = 0n;
    let first = 0n;
    let firstToken = 0n;
    const r = request(
      {
        host: u.hostname,
        port: u.port,
        path: req.path,
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": body.length, ...req.headers },
      },
      (res: IncomingMessage) => {
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          const now = process.hrtime.bigint();
          if (first === 0n) first = now;
          counter.feed(d);
          if (firstToken === 0n && counter.tokens > 0) firstToken = now;
        });
        res.on("end", () => {
          const end = process.hrtime.bigint();
          resolve({
            status: res.statusCode ?? 0,
            ttftNs: Number((first === 0n ? end : first) - t0),
            firstTokenNs: firstToken === 0n ? null : Number(firstToken - t0),
            totalNs: Number(end - t0),
            events: counter.events,
            tokens: counter.tokens,
            headers: res.headers,
          });
        });
        res.on("error", reject);
      },
    );
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`stream to ${target.name} timed out`)));
    r.on("error", reject);
    t0 = process.hrtime.bigint();
    r.end(body);
  });
}

export function keepAliveAgent(sockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
}

export interface LoadResult {
  concurrency: number;
  durationS: number;
  streams: number;
  events: number;
  tokens: number;
  tokensPerS: number;
  failures: number;
}

// `concurrency` clients, each sending one stream after another until the deadline (closed loop).
export async function streamLoad(target: StreamTarget, req: StreamRequest, concurrency: number, durationS: number): Promise<LoadResult> {
  const agent = keepAliveAgent(concurrency);
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(durationS * 1e9));
  let streams = 0;
  let events = 0;
  let tokens = 0;
  let failures = 0;
  const worker = async (): Promise<void> => {
    while (process.hrtime.bigint() < deadline) {
      try {
        const o = await streamOnce(target, req, agent);
        if (o.status !== 200) failures++;
        streams++;
        events += o.events;
        tokens += o.tokens;
      } catch {
        failures++;
        if (failures > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  return { concurrency, durationS: wallS, streams, events, tokens, tokensPerS: tokens / wallS, failures };
}
