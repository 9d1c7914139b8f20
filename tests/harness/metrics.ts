// Reads the gateway's Prometheus metrics (Envoy admin /stats/prometheus) the way a dashboard would:
// by metric name and the Higress labels ai_route, ai_cluster, ai_model, ai_consumer.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] ?? ""] = l[2] ?? "";
    out.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return out;
}

export const AI_PREFIX = "route_upstream_model_consumer_metric_";

// The value of one AI metric for one model (summed over routes/clusters/consumers); 0 when absent.
export function aiMetric(samples: Sample[], metric: string, model: string, extra: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== AI_PREFIX + metric || s.labels["ai_model"] !== model) continue;
    if (Object.entries(extra).some(([k, v]) => s.labels[k] !== v)) continue;
    sum += s.value;
  }
  return sum;
}

export async function scrape(adminUrl: string): Promise<Sample[]> {
  return parsePrometheus(await (await fetch(`${adminUrl}/stats/prometheus`)).text());
}

// Histograms reach the admin output at Envoy's stats flush (1 s in the harness): polls until
// `ready` holds, for up to 5 s.
export async function scrapeUntil(adminUrl: string, ready: (s: Sample[]) => boolean): Promise<Sample[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = await scrape(adminUrl);
    if (ready(s) || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
}
