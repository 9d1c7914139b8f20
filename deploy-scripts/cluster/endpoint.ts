// How to reach the gateway once the models are up: the higress-gateway Service's LoadBalancer address, or a
// port-forward when it has none (kind, minikube, bare metal without a load balancer).
import type { V1Service } from "@kubernetes/client-node";
import { CliError } from "../errors.ts";
import { line, type Io } from "../io.ts";
import { readOrNull, type Cluster } from "./kube.ts";
import type { DeploySpec } from "../spec.ts";

const LOCAL_PORT = 8080;

export type Endpoint =
  { kind: "loadBalancer"; url: string } | { kind: "portForward"; url: string; command: string } | { kind: "missing"; message: string };

function servicePort(svc: V1Service): number {
  const ports = svc.spec?.ports ?? [];
  return (ports.find((p) => p.name === "http" || p.name === "http2" || p.port === 80) ?? ports[0])?.port ?? 80;
}

/** Pure: the endpoint a gateway Service offers (or null when there is no such Service). */
export function endpointOf(spec: DeploySpec, svc: V1Service | null): Endpoint {
  const ref = `${spec.gateway.namespace}/${spec.gateway.service}`;
  if (svc === null) return { kind: "missing", message: `Service ${ref} not found: is Higress installed in ${spec.gateway.namespace}?` };
  const port = servicePort(svc);
  const ingress = svc.status?.loadBalancer?.ingress?.[0];
  const address = ingress?.ip ?? ingress?.hostname;
  if (address !== undefined && address !== "") {
    const host = address.includes(":") ? `[${address}]` : address;
    return { kind: "loadBalancer", url: `http://${host}${port === 80 ? "" : `:${port}`}` };
  }
  return {
    kind: "portForward",
    url: `http://localhost:${LOCAL_PORT}`,
    command: `kubectl -n ${spec.gateway.namespace} port-forward service/${spec.gateway.service} ${LOCAL_PORT}:${port}`,
  };
}

export async function gatewayEndpoint(cluster: Cluster, spec: DeploySpec): Promise<Endpoint> {
  const ref = { apiVersion: "v1", kind: "Service", metadata: { name: spec.gateway.service, namespace: spec.gateway.namespace } };
  try {
    return endpointOf(spec, await readOrNull<V1Service & typeof ref>(cluster, ref));
  } catch (err) {
    if (err instanceof CliError)
      return { kind: "missing", message: `cannot read Service ${ref.metadata.namespace}/${ref.metadata.name}: ${err.message}` };
    throw err;
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function curlCommand(spec: DeploySpec, url: string): string {
  const model = spec.models[0]?.name ?? "MODEL";
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Say hello in one sentence." }] });
  const parts = [`curl -sS ${url}/v1/chat/completions`];
  if (spec.gateway.host !== undefined && !spec.gateway.host.startsWith("*")) parts.push(`-H ${shellQuote(`Host: ${spec.gateway.host}`)}`);
  parts.push(`-H 'Content-Type: application/json'`, `-d ${shellQuote(body)}`);
  return parts.join(" \\\n    ");
}

/**
 * gateway.type envoy: the CLI does not run Envoy; say how to, and how to reach it. `bootstrap` names where the
 * bootstrap is (the file apply wrote, or how to print it).
 */
export function printEnvoyGateway(io: Io, spec: DeploySpec, bootstrap: string): void {
  line(io.out, `gateway: upstream Envoy (gateway.type envoy), which you run with the bootstrap ${bootstrap}:`);
  line(io.out, "  envoy -c <bootstrap>");
  line(
    io.out,
    `  where cluster DNS resolves the model Services (<model>-lb.${spec.namespace}.svc.cluster.local), e.g. in a Pod of this cluster`,
  );
  line(io.out, `gateway endpoint: http://<Envoy's address>:${spec.gateway.listenPort}`);
  line(io.out, "try it:");
  line(io.out, `  ${curlCommand(spec, `http://ENVOY_HOST:${spec.gateway.listenPort}`)}`);
}

export function printEndpoint(io: Io, spec: DeploySpec, ep: Endpoint): void {
  if (ep.kind === "missing") {
    line(io.err, `warning: ${ep.message}`);
    return;
  }
  if (ep.kind === "loadBalancer") {
    line(io.out, `gateway endpoint: ${ep.url}`);
  } else {
    line(io.out, `gateway ${spec.gateway.namespace}/${spec.gateway.service} has no LoadBalancer address; forward a local port:`);
    line(io.out, `  ${ep.command}`);
    line(io.out, `gateway endpoint: ${ep.url} (while the port-forward runs)`);
  }
  line(io.out, "try it:");
  line(io.out, `  ${curlCommand(spec, ep.url)}`);
}
