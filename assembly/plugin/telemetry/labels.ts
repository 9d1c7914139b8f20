// The metric labels of the current request, read from Envoy: the route and cluster it picked, the
// consumer an auth plugin named, and the model that served. Sanitised and bounded by metrics.ts.
import { MapType } from "../../abi/enums";
import * as host from "../../abi/host";
import * as metrics from "./metrics";
import { CLUSTER_NAME, ROUTE_NAME, XDS_CLUSTER_NAME, XDS_ROUTE_NAME } from "../envoy-names";
import { GatewayConfig } from "../config/gateway-config";

// `clusterOverride`: the cluster that served when Envoy's pick is not it ("" = the one Envoy picked).
// The consumer is read only where the configuration trusts its header (an auth plugin sets it): a
// client could send it anywhere else.
export function requestLabels(model: string, cfg: GatewayConfig, clusterOverride: string): metrics.Labels {
  const route = propertyOr(ROUTE_NAME, XDS_ROUTE_NAME);
  const cluster = clusterOverride.length > 0 ? clusterOverride : clusterName();
  const consumer = cfg.trustConsumerHeader ? host.getHeader(MapType.HttpRequestHeaders, cfg.consumerHeader) : null;
  const r = metrics.sanitizeConfigLabel(route != null ? route : "");
  const c = metrics.sanitizeConfigLabel(cluster);
  const m = metrics.sanitizeClientLabel(model);
  const u = metrics.sanitizeClientLabel(consumer != null ? consumer : "");
  // Consecutive requests mostly share their labels: reusing the last set skips building its ~100-byte
  // prefix and hashing it (make bench: a fifth of the log phase).
  const last = lastLabels;
  if (last != null && last.route == r && last.cluster == c && last.model == m && last.consumer == u) return last;
  const l = metrics.admit(new metrics.Labels(r, c, m, u));
  lastLabels = l;
  return l;
}

let lastLabels: metrics.Labels | null = null;

// The cluster Envoy picked ("" when unknown).
export function clusterName(): string {
  const c = propertyOr(CLUSTER_NAME, XDS_CLUSTER_NAME);
  return c != null ? c : "";
}

function propertyOr(first: Array<string>, second: Array<string>): string | null {
  const v = host.getProperty(first);
  if (v != null && v.length > 0) return v;
  return host.getProperty(second);
}
