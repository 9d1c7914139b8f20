// The answers the plugin gives itself, in OpenAI's error format:
// {"error":{"message","type","param","code"}} (https://platform.openai.com/docs/guides/error-codes).
import { jsonString, jsonStringArray } from "../json/writer";

export class LocalReply {
  constructor(
    public status: u32,
    public code: string, // OpenAI-style error code, also Envoy's response code details suffix
    public message: string,
    public param: string, // "" = null
    public extra: string = "", // additional members of the error object, already JSON ("" = none)
    public errorType: string = "", // "" = by status
  ) {}

  body(): string {
    const type = this.errorType.length > 0 ? this.errorType : this.status >= 500 ? "server_error" : "invalid_request_error";
    return (
      '{"error":{"message":' +
      jsonString(this.message) +
      ',"type":' +
      jsonString(type) +
      ',"param":' +
      (this.param.length > 0 ? jsonString(this.param) : "null") +
      ',"code":' +
      jsonString(this.code) +
      this.extra +
      "}}"
    );
  }

  // Envoy's response.code_details for this reply (no spaces allowed there).
  details(): string {
    return "llm_gateway_" + this.code;
  }
}

export function invalidJson(reason: string): LocalReply {
  return new LocalReply(400, "invalid_json", "We could not parse the JSON body of your request: " + reason + ".", "");
}

export function notAnObject(): LocalReply {
  return new LocalReply(400, "invalid_json", "The request body must be a JSON object.", "");
}

export function emptyBody(): LocalReply {
  return new LocalReply(400, "invalid_json", "The request has no body; a JSON object with a `model` is required.", "");
}

export function missingModel(): LocalReply {
  return new LocalReply(400, "missing_required_parameter", "You must provide a model parameter.", "model");
}

export function modelNotString(): LocalReply {
  return new LocalReply(400, "invalid_type", "Invalid type for 'model': expected a string.", "model");
}

export function badModelName(): LocalReply {
  return new LocalReply(
    400,
    "invalid_value",
    "Invalid 'model': the name is empty, too long or contains characters that are not allowed.",
    "model",
  );
}

export function duplicateKey(key: string): LocalReply {
  return new LocalReply(400, "duplicate_key", "The key '" + key + "' appears more than once in the request body.", key);
}

export function modelNotFound(model: string, served: Array<string>): LocalReply {
  return new LocalReply(
    404,
    "model_not_found",
    "The model '" + model + "' does not exist or you do not have access to it. Served models: " + served.join(", ") + ".",
    "model",
    ',"served_models":' + jsonStringArray(served),
  );
}

export function bodyTooLarge(limit: i32): LocalReply {
  return new LocalReply(
    413,
    "request_too_large",
    "The request body is larger than this gateway's limit of " + limit.toString() + " bytes.",
    "",
  );
}

// Every attempt (the model and its backups) failed: name them, so the client knows what was tried.
export function allAttemptsFailed(attempts: Array<string>, status: u32): LocalReply {
  return new LocalReply(status, "all_attempts_failed", "The model and its fallbacks all failed: " + attempts.join(", ") + ".", "");
}

export function overloaded(): LocalReply {
  return new LocalReply(503, "server_overloaded", "The gateway is at its memory budget for requests in flight; please retry shortly.", "");
}

// Envoy's own answers to a routed request (its response.code_details say why), in OpenAI's shape:
// clients of an OpenAI API parse error bodies. null for statuses left as they are.
export function envoyError(status: i32, details: string): LocalReply | null {
  switch (status) {
    case 413:
      return new LocalReply(413, "request_too_large", "The request body is larger than the gateway's buffer allows (" + details + ").", "");
    case 502:
      return new LocalReply(502, "upstream_error", "The model server's answer could not be used (" + details + ").", "");
    case 503:
      return new LocalReply(503, "upstream_unavailable", "No model server could take the request (" + details + ").", "");
    case 504:
      return new LocalReply(504, "upstream_timeout", "The model server did not answer in time (" + details + ").", "");
    default:
      return null;
  }
}

// A quota rule's budget is spent (OpenAI's 429: type "tokens" or "requests", code rate_limit_exceeded).
export function rateLimited(message: string, tokens: bool): LocalReply {
  return new LocalReply(429, "rate_limit_exceeded", message, "", "", tokens ? "tokens" : "requests");
}

// quotas.service.onUnavailable "deny": the rate-limit service could not say.
export function quotaServiceUnavailable(): LocalReply {
  return new LocalReply(503, "quota_service_unavailable", "The gateway could not check your quota; please retry shortly.", "");
}
