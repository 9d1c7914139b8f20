// Per-request state, split like the request/attempt distinction fallback needs: facts about the
// client's request (arrival, requested model, the body we may have to send again) apart from facts
// about one upstream attempt (which model served it, status, timings, usage).
import { HostBytes } from "../abi/memory";
import { ModelRoute } from "./config/gateway-config";
import { UsageRecord } from "./response/usage";

export class RequestFacts {
  startNs: u64 = 0;
  requestedModel: string = "";
  route: ModelRoute | null = null;
  stream: bool = false;            // the client asked for a stream
  usageInjected: bool = false;     // we asked for the usage chunk the client did not
  promptEstimate: i64 = -1;        // tokens, for when no usage comes back
  // Kept only while a fallback may still need to send it again; released as soon as it can't.
  body: HostBytes | null = null;
  modelStart: i32 = -1;            // span of the body's model value (-1: the body had none)
  modelEnd: i32 = -1;
  fallbackFrom: string = "";       // the model this request fell back from ("" = none)
  fallbackReason: string = "";
  attemptsTried: Array<string> = new Array<string>(); // "model (why)" of failed attempts, for the error

  releaseBody(): void {
    const b = this.body;
    if (b != null) b.release();
    this.body = null;
  }
}

export class AttemptFacts {
  model: string = "";        // the configured model that serves this attempt (metric label)
  routeValue: string = "";
  status: i32 = 0;
  viaUpstream: bool = true;
  headersNs: u64 = 0;
  firstTokenNs: u64 = 0;
  endNs: u64 = 0;
  isStream: bool = false;    // the response is text/event-stream
  arrivedWhole: bool = false; // the body came in one piece (a backup's answer relayed by the plugin)
  cluster: string = "";      // the Envoy cluster that served, when the plugin called it itself
  ended: bool = false;       // the body ended cleanly (end of stream seen)
  sawDone: bool = false;     // data: [DONE] arrived
  unparsed: bool = false;    // an SSE event exceeded maxSseEventBytes (or the JSON body maxResponseBytes)
  signalledCut: bool = false; // we appended an error event to a stream that ended without [DONE]
  completionEstimate: i64 = -1;
  servedModel: string = "";  // `model` the upstream put in its response
  usage: UsageRecord = new UsageRecord();
}
