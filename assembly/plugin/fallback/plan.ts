// What the request stage tells the attempt stage (attempt.ts) about a request that may be retried on
// a backup model by Envoy, and the headers the two stages answer with. The plan travels in the
// request's filter state (set_property "llm_gateway_plan", which Envoy stores as
// wasm.llm_gateway_plan and an upstream filter can read), not in a header: request headers are one map
// shared by every attempt, and whatever is in them reaches the upstream server.
//   <model>;<start>;<end>;<probe>
// model: the configured model the request was routed to; [start, end): where the JSON string of
// `model` lies in the body as sent upstream; probe: 1 when this request holds the cooldown probe slot.
import { parseDigits } from "../../util/digits";

export const PLAN_PROPERTY: Array<string> = ["llm_gateway_plan"];
// Response headers: the model that answered, and the one it stands in for (client-visible).
export const MODEL_HEADER = "x-llm-gateway-model";
export const FALLBACK_FROM_HEADER = "x-llm-gateway-fallback-from";
// Internal: why the request fell back (for the fallback metric); removed by the request stage.
export const FALLBACK_REASON_HEADER = "x-llm-gateway-fallback-reason";
export const REQUEST_ID_HEADER = "x-request-id";

export class Plan {
  constructor(public model: string, public start: i32, public end: i32, public probe: bool) {}

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
