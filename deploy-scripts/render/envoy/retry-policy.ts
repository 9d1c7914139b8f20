// The retry policy of a route whose model has backups: what the plugin's fallback.onStatus and
// onUpstreamUnreachable say, retried at once (1 ms backoff) on the next priority of the aggregate cluster
// (previous_priorities, updated after every attempt), each attempt given fallback.firstByteTimeoutMs (or
// attemptTimeoutMs) to answer with headers. Envoy's per-try timeout ends when response headers arrive, so a long
// stream is never cut by it; and Envoy retries only before any byte went to the client.
import { fallbackSettings } from "./fallback-chains.ts";

export function fallbackRetryPolicy(pluginConfig: unknown, backups: number): Record<string, unknown> {
  const f = fallbackSettings(pluginConfig);
  const on = new Set<string>();
  const codes: number[] = [];
  for (const t of f.onStatus) {
    if (t === "5xx") {
      on.add("5xx");
    } else if (typeof t === "string" && /^[1-5]xx$/.test(t)) {
      on.add("retriable-status-codes");
      codes.push(...Array.from({ length: 100 }, (_, i) => Number(t[0]) * 100 + i));
    } else if (/^[1-5]\d\d$/.test(String(t))) {
      on.add("retriable-status-codes");
      codes.push(Number(t));
    }
    // Anything else is not a trigger: the plugin refuses that configuration, naming the field.
  }
  if (f.onUpstreamUnreachable) {
    on.add("reset");
    on.add("connect-failure");
  }
  const perTry = f.firstByteTimeoutMs > 0 ? f.firstByteTimeoutMs : f.attemptTimeoutMs;
  return {
    retry_on: [...on].join(","),
    ...(codes.length > 0 ? { retriable_status_codes: codes } : {}),
    num_retries: backups,
    per_try_timeout: `${perTry / 1000}s`,
    retry_back_off: { base_interval: "0.001s", max_interval: "0.002s" },
    retry_priority: {
      name: "envoy.retry_priorities.previous_priorities",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        update_frequency: 1,
      },
    },
  };
}
