// Per-request state, split like the request/attempt distinction fallback needs: facts about the
// client's request (arrival, requested model, how far fallback got) apart from facts about one
// upstream attempt (which model served it, status, timings, usage).
import { ModelRoute } from "./config/gateway-config";
import { FallbackState } from "./fallback/fallback-state";
import { UsageRecord } from "./response/usage";

export class RequestFacts {
  startNs: u64 = 0;
  requestedModel: string = "";
  routedModel: string = ""; // the configured model it was routed to first (metric label)
  operation: string = ""; // gen_ai.operation.name: chat, text_completion, embeddings
  route: ModelRoute | null = null;
  stream: bool = false; // the client asked for a stream
  usageInjected: bool = false; // we asked for the usage chunk the client did not
  promptEstimate: i64 = -1; // tokens, for when no usage comes back
  prefixKey: string = ""; // prefixAffinity's key, when one was set
  quotaRefused: string = ""; // the quota rule that refused the request
  fallback: FallbackState = new FallbackState(); // how far fallback got, and why
}

export class AttemptFacts {
  model: string = ""; // the configured model that serves this attempt (metric label)
  routeValue: string = "";
  status: i32 = 0;
  viaUpstream: bool = true;
  headersNs: u64 = 0;
  firstTokenNs: u64 = 0; // first generated token of any kind (reasoning included)
  firstAnswerNs: u64 = 0; // first answer token (content or tool calls)
  endNs: u64 = 0;
  isStream: bool = false; // the response is text/event-stream
  arrivedWhole: bool = false; // the body came in one piece (a backup's answer relayed by the plugin)
  cluster: string = ""; // the Envoy cluster that served, when it is not the one Envoy picked
  statusCounted: bool = false; // the attempt stage counted this attempt's status
  ended: bool = false; // the body ended cleanly (end of stream seen)
  sawDone: bool = false; // data: [DONE] arrived
  unparsed: bool = false; // an SSE event exceeded maxSseEventBytes (or the JSON body maxResponseBytes)
  signalledCut: bool = false; // we appended an error event to a stream that ended without [DONE]
  completionEstimate: i64 = -1;
  servedModel: string = ""; // `model` the upstream put in its response
  usage: UsageRecord = new UsageRecord();
}
