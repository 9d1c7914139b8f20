// The plugin's own answers (assembly/plugin/errors.ts): OpenAI's error shape, status, code, param and
// Envoy's response code details, for every kind of reply.
import {
  LocalReply,
  badModelName,
  bodyTooLarge,
  duplicateKey,
  emptyBody,
  invalidJson,
  missingModel,
  modelNotFound,
  modelNotString,
  notAnObject,
} from "../../assembly/plugin/replies";
import { decodeString } from "../../assembly/json/reader";
import { errorName, hold, scanBuf, utf8 } from "./helpers";

const ERROR_KEYS: Array<string> = ["error"];
const INNER_KEYS: Array<string> = ["message", "type", "param", "code", "served_models"];

class ReplyCase {
  constructor(
    public reply: LocalReply,
    public status: u32,
    public code: string,
    public param: string,
    public type: string,
  ) {}
}

function memberText(buf: ArrayBuffer, start: i32, end: i32): string {
  return String.UTF8.decodeUnsafe(changetype<usize>(buf) + <usize>start, <usize>(end - start));
}

describe("local replies", () => {
  it("have the status, code, param and type OpenAI clients expect", () => {
    const cases: Array<ReplyCase> = [
      new ReplyCase(invalidJson("the body is truncated JSON (at byte 3)"), 400, "invalid_json", "", "invalid_request_error"),
      new ReplyCase(notAnObject(), 400, "invalid_json", "", "invalid_request_error"),
      new ReplyCase(emptyBody(), 400, "invalid_json", "", "invalid_request_error"),
      new ReplyCase(missingModel(), 400, "missing_required_parameter", "model", "invalid_request_error"),
      new ReplyCase(modelNotString(), 400, "invalid_type", "model", "invalid_request_error"),
      new ReplyCase(badModelName(), 400, "invalid_value", "model", "invalid_request_error"),
      new ReplyCase(duplicateKey("stream"), 400, "duplicate_key", "stream", "invalid_request_error"),
      new ReplyCase(modelNotFound("x", ["a", "b"]), 404, "model_not_found", "model", "invalid_request_error"),
      new ReplyCase(bodyTooLarge(1024), 413, "request_too_large", "", "invalid_request_error"),
      new ReplyCase(new LocalReply(503, "no_backend", "down", ""), 503, "no_backend", "", "server_error"),
    ];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      expect<u32>(c.reply.status).toBe(c.status, c.code);
      expect<string>(c.reply.code).toBe(c.code);
      expect<string>(c.reply.param).toBe(c.param, c.code);
      expect<string>(c.reply.details()).toBe("llm_gateway_" + c.code);
      // The body is {"error":{"message","type","param","code"}} and valid JSON.
      const buf = utf8(c.reply.body());
      const outer = scanBuf(buf, ERROR_KEYS);
      expect<string>(errorName(outer.error)).toBe("Ok", c.reply.body());
      const e = outer.field(0);
      expect<bool>(e.found).toBe(true, c.code);
      const inner = scanBuf(buf.slice(e.start, e.end), INNER_KEYS);
      expect<string>(errorName(inner.error)).toBe("Ok", c.code);
      const span = buf.slice(e.start, e.end);
      const p = hold(span);
      const message = inner.field(0);
      expect<string | null>(decodeString(p, message.start, message.end, 10000)).toBe(c.reply.message, c.code);
      const type = inner.field(1);
      expect<string | null>(decodeString(p, type.start, type.end, 100)).toBe(c.type, c.code);
      const param = inner.field(2);
      expect<string>(memberText(span, param.start, param.end)).toBe(c.param.length > 0 ? '"' + c.param + '"' : "null", c.code);
      const code = inner.field(3);
      expect<string | null>(decodeString(p, code.start, code.end, 100)).toBe(c.code);
    }
  });

  it("say what went wrong in the message", () => {
    expect<string>(invalidJson("the body is empty (at byte 0)").message).toBe(
      "We could not parse the JSON body of your request: the body is empty (at byte 0).",
    );
    expect<string>(missingModel().message).toBe("You must provide a model parameter.");
    expect<string>(duplicateKey("model").message).toBe("The key 'model' appears more than once in the request body.");
    expect<string>(bodyTooLarge(10485760).message).toBe("The request body is larger than this gateway's limit of 10485760 bytes.");
  });

  it("list the served models for an unknown model, in the message and as served_models", () => {
    const reply = modelNotFound("gpt-5", ["qwen2-1-5b", "gemma-2-2b"]);
    expect<string>(reply.message).toBe(
      "The model 'gpt-5' does not exist or you do not have access to it. Served models: qwen2-1-5b, gemma-2-2b.",
    );
    const buf = utf8(reply.body());
    const outer = scanBuf(buf, ERROR_KEYS);
    const e = outer.field(0);
    const inner = scanBuf(buf.slice(e.start, e.end), INNER_KEYS);
    const served = inner.field(4);
    expect<bool>(served.found).toBe(true);
    const span = buf.slice(e.start, e.end);
    expect<string>(memberText(span, served.start, served.end)).toBe('["qwen2-1-5b","gemma-2-2b"]');
  });

  it("stay valid JSON whatever the client's model name contains", () => {
    const names: Array<string> = ['a"b', "back\\slash", "new\nline", "\u0000", String.fromCharCode(0xd800), "😀", "'quoted'"];
    for (let i = 0; i < names.length; i++) {
      const buf = utf8(modelNotFound(names[i], ["a"]).body());
      expect<string>(errorName(scanBuf(buf, ERROR_KEYS).error)).toBe("Ok", names[i]);
    }
  });
});
