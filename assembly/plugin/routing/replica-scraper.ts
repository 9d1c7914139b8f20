// Reads each known replica's vLLM metrics page (prefixAffinity.loadAware.scrapeIntervalMs), so that the
// picker sees queues and KV-cache usage under streaming traffic too: vLLM attaches its per-answer load
// report to non-streamed answers only.
//
// A scrape goes through the model's own cluster with the replica named in the picked-host header, the
// same override-host path requests take, so it needs no cluster per replica. One worker scrapes a given
// replica per interval: the claim is a compare-and-swap on the replica table (replica-table.ts). Calls in
// flight are bounded (MAX_CALLS); a page over MAX_METRICS_BYTES is not read.
import { BufferType, MapType } from "../../abi/enums";
import { HeaderPair } from "../../abi/headers";
import * as host from "../../abi/host";
import { GatewayConfig } from "../config/gateway-config";
import { MAX_METRICS_BYTES, parseMetricsPage } from "./load-report";
import { claimScrape, noteLoad, replicasOf, scrapeDue } from "./replica-table";

const MAX_CALLS: i32 = 64;

const MAX_TIMEOUT_MS: i64 = 1000;

export const enum Scrape {
  NotOurs = 0, // the token is not a scrape's
  Read = 1,
  Failed = 2, // no answer, not 200, too large, or no figures on the page
}

export class ReplicaScraper {
  private tokens: Array<u32> = new Array<u32>();
  private models: Array<string> = new Array<string>();
  private addresses: Array<string> = new Array<string>();
  private nextMs: i64 = 0;

  // From the root's tick: claims and starts the scrapes that are due.
  tick(cfg: GatewayConfig, nowMs: i64): void {
    const p = cfg.affinity.loadAware;
    if (!p.enabled || p.scrapeIntervalMs <= 0 || nowMs < this.nextMs) return;
    // Looked at four times an interval: a replica's claim may have been another worker's.
    this.nextMs = nowMs + max<i64>(p.scrapeIntervalMs / 4, 1);
    const routes = cfg.models;
    for (let i = 0; i < routes.length; i++) {
      const route = unchecked(routes[i]);
      // Replicas are kept per routing header value, for routes that have one whatever the name.
      if (!route.hasFixedRoute || !cfg.affinity.appliesTo(route.name)) continue;
      const routeValue = route.routeFor(route.name);
      const replicas = replicasOf(routeValue);
      const cluster = cfg.clusterOf(route, routeValue);
      for (let j = 0; j < replicas.length && this.tokens.length < MAX_CALLS; j++) {
        const r = unchecked(replicas[j]);
        if (nowMs - r.seenMs > p.reportTtlMs) continue;
        // This worker's copy first (no write when it is not due), then the claim on the table.
        if (!scrapeDue(r, nowMs, p.scrapeIntervalMs) || !claimScrape(routeValue, r.address, nowMs, p.scrapeIntervalMs)) continue;
        const headers: Array<HeaderPair> = [
          new HeaderPair(":method", "GET"),
          new HeaderPair(":path", p.metricsPath),
          new HeaderPair(":authority", routeValue),
          new HeaderPair(p.header, r.address),
        ];
        const token = host.httpCall(cluster, headers, 0, 0, <u32>min<i64>(p.scrapeIntervalMs, MAX_TIMEOUT_MS));
        if (token == 0) continue;
        this.tokens.push(token);
        this.models.push(routeValue);
        this.addresses.push(r.address);
      }
    }
  }

  // A scrape's answer.
  onResponse(token: u32, numHeaders: u32, bodySize: u32, nowMs: i64): Scrape {
    const i = this.tokens.indexOf(token);
    if (i < 0) return Scrape.NotOurs;
    const model = unchecked(this.models[i]);
    const address = unchecked(this.addresses[i]);
    this.remove(i);
    if (numHeaders == 0 || bodySize == 0 || bodySize > <u32>MAX_METRICS_BYTES) return Scrape.Failed;
    const status = host.getHeader(MapType.HttpCallResponseHeaders, ":status");
    if (status == null || status != "200") return Scrape.Failed;
    const page = host.getBufferBytes(BufferType.HttpCallResponseBody, 0, bodySize);
    if (page == null) return Scrape.Failed;
    const figures = parseMetricsPage(page);
    page.release();
    if (figures == null) return Scrape.Failed;
    noteLoad(model, address, figures, nowMs);
    return Scrape.Read;
  }

  private remove(i: i32): void {
    const last = this.tokens.length - 1;
    unchecked((this.tokens[i] = unchecked(this.tokens[last])));
    unchecked((this.models[i] = unchecked(this.models[last])));
    unchecked((this.addresses[i] = unchecked(this.addresses[last])));
    this.tokens.pop();
    this.models.pop();
    this.addresses.pop();
  }
}
