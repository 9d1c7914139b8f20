// What the request stage tells the attempt stage (stages/attempt-stage.ts) about a request that Envoy
// may retry on a backup model. The plan travels in the request's filter state (set_property
// "llm_gateway_plan", which Envoy stores as wasm.llm_gateway_plan and an upstream filter can read),
// not in a header: request headers are one map shared by every attempt, and whatever is in them
// reaches the upstream server.
//   <model>;<start>;<end>;<probe>
// model: the configured model the request was routed to; [start, end): where the JSON string of
// `model` lies in the body as sent upstream; probe: 1 when this request holds the cooldown probe slot.
import { parseDigits } from "../../util/digits";
import { ModelRoute } from "../config/gateway-config";

export class Plan {
  constructor(
    public model: string,
    public start: i32,
    public end: i32,
    public probe: bool,
  ) {}

  encode(): string {
    return this.model + ";" + this.start.toString() + ";" + this.end.toString() + ";" + (this.probe ? "1" : "0");
  }

  // null for anything malformed.
  static decode(s: string): Plan | null {
    const c = s.lastIndexOf(";");
    const b = c > 0 ? s.lastIndexOf(";", c - 1) : -1;
    const a = b > 0 ? s.lastIndexOf(";", b - 1) : -1;
    if (a <= 0) return null;
    const start = parseDigits(s.substring(a + 1, b));
    const end = parseDigits(s.substring(b + 1, c));
    const probe = s.substring(c + 1);
    if (start < 0 || end <= start || end > 0x7fff_ffff || (probe != "0" && probe != "1")) return null;
    return new Plan(s.substring(0, a), <i32>start, <i32>end, probe == "1");
  }
}

// Attempt N of the chain: the routed model, then its fallbacks in order, the order in which
// previous_priorities walks the aggregate cluster's priorities.
export function chainModel(routed: string, route: ModelRoute, attempt: i32): string {
  if (attempt <= 1) return routed;
  const chain = route.fallback;
  if (chain.length == 0) return routed;
  const k = attempt - 2;
  return k < chain.length ? unchecked(chain[k]) : unchecked(chain[chain.length - 1]);
}
