// The portable fallback mechanism's pieces: the request sent to a backup model's cluster (the body we
// held, with `model` rewritten) and the answer relayed to the client from the backup's response.
// Works in upstream Envoy and in Higress alike (dispatch_http_call + a local reply).
import { HeaderPair } from "../../abi/headers";
import { HostBytes } from "../../abi/memory";
import { RoutingResult } from "../routing/route-request";

// What a backup call needs, kept while the primary's answer may still send the request to a backup:
// the routing result (to rebuild the body's edits for another model), the body and the headers as the
// host serialised them (decoded only if a backup call is made).
export class HeldRequest {
  constructor(
    public routing: RoutingResult,
    public body: HostBytes,
    public headers: HostBytes,
  ) {}

  release(): void {
    this.body.release();
    this.headers.release();
  }
}

// Headers not copied to the backup call: hop-by-hop ones, the framing (Envoy recomputes it), and the
// routing header (set explicitly).
function skipRequestHeader(name: string, routingHeader: string): bool {
  return (
    name == "content-length" ||
    name == "transfer-encoding" ||
    name == "connection" ||
    name == "keep-alive" ||
    name == "upgrade" ||
    name == "te" ||
    name == routingHeader ||
    name.startsWith("x-envoy-")
  );
}

export function backupRequestHeaders(original: Array<HeaderPair>, routingHeader: string, routeValue: string): Array<HeaderPair> {
  const out = new Array<HeaderPair>();
  for (let i = 0; i < original.length; i++) {
    const h = unchecked(original[i]);
    if (!skipRequestHeader(h.key, routingHeader)) out.push(h);
  }
  out.push(new HeaderPair(routingHeader, routeValue));
  return out;
}

// Response headers of the backup relayed to the client: without pseudo-headers and framing (the
// local reply sets its own), plus which model answered and which one it stands in for.
export function relayedResponseHeaders(
  call: Array<HeaderPair>,
  modelHeader: string,
  model: string,
  fromHeader: string,
  from: string,
): Array<HeaderPair> {
  const out = new Array<HeaderPair>();
  for (let i = 0; i < call.length; i++) {
    const h = unchecked(call[i]);
    const k = h.key;
    if (k.startsWith(":") || k == "content-length" || k == "transfer-encoding" || k == "connection" || k == modelHeader || k == fromHeader)
      continue;
    out.push(h);
  }
  out.push(new HeaderPair(modelHeader, model));
  out.push(new HeaderPair(fromHeader, from));
  return out;
}

export function headerValue(headers: Array<HeaderPair>, name: string): string | null {
  for (let i = 0; i < headers.length; i++) {
    const h = unchecked(headers[i]);
    if (h.key == name) return h.value;
  }
  return null;
}
