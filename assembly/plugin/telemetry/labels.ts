// The metric labels of the current request, read from Envoy: the route and cluster it picked, the
// consumer an auth plugin named, and the model that served. Sanitised and bounded by metrics.ts.
import { MapType } from "../../abi/enums";
import * as host from "../../abi/host";
import * as metrics from "./metrics";
import { CLUSTER_NAME, ROUTE_NAME, XDS_CLUSTER_NAME, XDS_ROUTE_NAME } from "../envoy-names";

// `clusterOverride`: the cluster the plugin called itself ("" = the one Envoy picked).
export function requestLabels(model: string, consumerHeader: string, clusterOverride: string): metrics.Labels {
  const route = propertyOr(ROUTE_NAME, XDS_ROUTE_NAME);
  const cluster = clusterOverride.length > 0 ? clusterOverride : propertyOr(CLUSTER_NAME, XDS_CLUSTER_NAME);
  const consumer = host.getHeader(MapType.HttpRequestHeaders, consumerHeader);
  return metrics.admit(
    new metrics.Labels(
      metrics.sanitizeConfigLabel(route != null ? route : ""),
      metrics.sanitizeConfigLabel(cluster != null ? cluster : ""),
      metrics.sanitizeClientLabel(model),
      metrics.sanitizeClientLabel(consumer != null ? consumer : ""),
    ),
  );
}

function propertyOr(first: Array<string>, second: Array<string>): string | null {
  const v = host.getProperty(first);
  if (v != null && v.length > 0) return v;
  return host.getProperty(second);
}
