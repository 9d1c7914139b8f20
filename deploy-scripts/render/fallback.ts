// Higress's native route fallback, rendered for every model that names a fallback.
//
// What was checked (read only, nothing copied), 2026:
// - higress-group/higress-console, backend/sdk/.../service/ai/AiRouteServiceImpl.java and
//   resources/templates/envoyfilter-route-fallback.yaml: for an AI route R with fallback enabled the console writes
//   (1) an EnvoyFilter named after R's Ingress, in Higress's namespace, with one HTTP_ROUTE patch (context GATEWAY,
//   route name = R's Ingress name, operation MERGE) that sets typed_per_filter_config for
//   `envoy.filters.http.custom_response`: a matcher on the response-code class (HttpResponseStatusCodeClassMatchInput,
//   "4xx"/"5xx"; console default both) whose action is a RedirectPolicy wrapped in a udpa TypedStruct with
//   max_internal_redirects, use_original_request_uri, use_original_request_body, keep_original_response_code: false,
//   only_redirect_upstream_code: false, and request/response headers `x-higress-fallback-from: <R>`; since console PR
//   #658 (gateway 2.1.10) also `with_request_body.max_request_bytes` on the CustomResponse so the body can be replayed;
//   (2) an Ingress `<R-without-.internal>.fallback.internal` with the same model-header predicate as R plus an exact,
//   case-sensitive match on `x-higress-fallback-from: <R>`, pointing at the backup's service, and a model-mapper
//   plugin instance on it (our plugin rewrites the model itself, from the `fallback` list in its config).
// - alibaba/higress helm/core/templates/fallback-envoyfilter.yaml (added by PR #1381, "Support route fallback by
//   default"): the Higress chart itself installs `higress-gateway-global-custom-response`, an EnvoyFilter that
//   INSERT_FIRSTs the custom_response filter into the gateway's HTTP connection manager. higress-standalone PR #134
//   adds the same to the all-in-one image. Issue #2719 and #3821 discuss the dependence on EnvoyFilter CRDs.
//
// Assumptions (not verified against a running Higress):
// - The Envoy route name of an Ingress in Higress's own namespace is the bare Ingress name (notes/higress.md), so the
//   EnvoyFilter matches `<route>` and the fallback Ingress matches the header value `<route>`.
// - A route with two header matches is ordered before one with a single header match for the same host and path
//   (the console relies on this too: its fallback Ingress repeats the model predicate), so the replayed request,
//   which still carries `x-<routing header>: <model>`, lands on `<route>.fallback` and not back on `<route>`.
// - Because we do not install the global filter by default (the chart already does; two custom_response filters
//   would both act on the per-route config), fallback.globalFilter: true is only for gateways installed without it.
// - Only the first entry of a model's fallback list gets a native fallback Ingress; the plugin sees the whole list.
// - max_internal_redirects is 1: one hop is all this topology needs, and a wrong route order then costs one extra
//   attempt instead of ten.
import { hashByAnnotation } from "./affinity.ts";
import { higressIngress, header, type K8sObject } from "./objects.ts";
import { FALLBACK_FROM_HEADER, FALLBACK_INGRESS_SUFFIX, GLOBAL_CUSTOM_RESPONSE_FILTER, KINDS, registryDestination } from "../names.ts";
import { routingHeader, type DeploySpec, type ModelSpec } from "../spec.ts";

const CUSTOM_RESPONSE_FILTER = "envoy.filters.http.custom_response";
const TYPED_STRUCT = "type.googleapis.com/udpa.type.v1.TypedStruct";
const CUSTOM_RESPONSE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.custom_response.v3.CustomResponse";
const REDIRECT_POLICY_TYPE = "type.googleapis.com/envoy.extensions.http.custom_response.redirect_policy.v3.RedirectPolicy";
const STATUS_CLASS_INPUT = "type.googleapis.com/envoy.type.matcher.v3.HttpResponseStatusCodeClassMatchInput";
const MAX_INTERNAL_REDIRECTS = 1;

export function fallbackIngressName(route: string): string {
  return `${route}${FALLBACK_INGRESS_SUFFIX}`;
}

/** The model that Higress's native fallback sends a failed request of `model` to, if any. */
export function nativeFallbackTarget(model: ModelSpec): string | undefined {
  return model.fallback[0];
}

// A backup with prefix affinity hashes here too: Higress builds one traffic policy per destination from the first
// Ingress that names it, so every Ingress of that destination must carry the same annotation.
export function fallbackIngress(spec: DeploySpec, model: ModelSpec, target: string): K8sObject {
  const backupHashes = spec.models.find((m) => m.name === target)?.affinity !== undefined;
  return higressIngress(spec, fallbackIngressName(model.route), {
    "higress.io/destination": registryDestination(target),
    [`higress.io/exact-match-header-${FALLBACK_FROM_HEADER}`]: model.route,
    [`higress.io/exact-match-header-${routingHeader(spec)}`]: model.name,
    ...(backupHashes ? hashByAnnotation() : {}),
  });
}

function statusClassPredicate(cls: string): Record<string, unknown> {
  return {
    single_predicate: {
      input: { name: `${cls}_response`, typed_config: { "@type": STATUS_CLASS_INPUT } },
      value_match: { exact: cls },
    },
  };
}

/** Per-route custom_response policy: on the configured status classes, replay the request with the fallback header. */
export function routeFallbackFilter(spec: DeploySpec, model: ModelSpec, target: string): K8sObject {
  const classes = spec.fallback.on;
  const predicate =
    classes.length === 1 && classes[0] !== undefined
      ? statusClassPredicate(classes[0])
      : { or_matcher: { predicate: classes.map(statusClassPredicate) } };
  const fallbackHeader = [{ header: { key: FALLBACK_FROM_HEADER, value: model.route }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" }];
  const customResponse: Record<string, unknown> = {
    custom_response_matcher: {
      matcher_list: {
        matchers: [
          {
            predicate,
            on_match: {
              action: {
                name: `fallback-to-${target}`,
                typed_config: {
                  "@type": TYPED_STRUCT,
                  type_url: REDIRECT_POLICY_TYPE,
                  value: {
                    max_internal_redirects: MAX_INTERNAL_REDIRECTS,
                    use_original_request_uri: true,
                    use_original_request_body: true,
                    keep_original_response_code: false,
                    // Gateway-made 5xx count too: a model with no ready pod answers 503 from Envoy itself.
                    only_redirect_upstream_code: false,
                    request_headers_to_add: fallbackHeader,
                    response_headers_to_add: fallbackHeader,
                  },
                },
              },
            },
          },
        ],
      },
    },
  };
  if (spec.fallback.bufferRequestBody) {
    customResponse["with_request_body"] = { max_request_bytes: spec.fallback.maxRequestBytes };
  }
  return {
    ...header(KINDS.EnvoyFilter, spec, model.route, spec.gateway.namespace),
    spec: {
      configPatches: [
        {
          applyTo: "HTTP_ROUTE",
          match: { context: "GATEWAY", routeConfiguration: { vhost: { route: { name: model.route } } } },
          patch: {
            operation: "MERGE",
            value: {
              typed_per_filter_config: {
                [CUSTOM_RESPONSE_FILTER]: { "@type": TYPED_STRUCT, type_url: CUSTOM_RESPONSE_TYPE, value: customResponse },
              },
            },
          },
        },
      ],
    },
  };
}

/** Inserts custom_response first in the gateway's HTTP filters; only for gateways whose chart did not. */
export function globalCustomResponseFilter(spec: DeploySpec): K8sObject {
  return {
    ...header(KINDS.EnvoyFilter, spec, GLOBAL_CUSTOM_RESPONSE_FILTER, spec.gateway.namespace),
    spec: {
      configPatches: [
        {
          applyTo: "HTTP_FILTER",
          match: {
            context: "GATEWAY",
            listener: { filterChain: { filter: { name: "envoy.filters.network.http_connection_manager" } } },
          },
          patch: {
            operation: "INSERT_FIRST",
            value: { name: CUSTOM_RESPONSE_FILTER, typed_config: { "@type": CUSTOM_RESPONSE_TYPE } },
          },
        },
      ],
    },
  };
}

/** Everything fallback needs, in apply order: the global filter (if asked), then per model its Ingress and filter. */
export function renderFallback(spec: DeploySpec): K8sObject[] {
  const out: K8sObject[] = [];
  if (spec.fallback.globalFilter && spec.models.some((m) => nativeFallbackTarget(m) !== undefined)) {
    out.push(globalCustomResponseFilter(spec));
  }
  for (const model of spec.models) {
    const target = nativeFallbackTarget(model);
    if (target === undefined) continue;
    out.push(fallbackIngress(spec, model, target), routeFallbackFilter(spec, model, target));
  }
  return out;
}
