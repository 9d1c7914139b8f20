// The plugin configuration (assembly/plugin/config/: the field table and its compiled form): defaults, every field, `_rules_` selection, and
// every refusal with the exact message and JSON path the operator sees in Envoy's log.
import { ConfigResult, GatewayConfig, ModelRoute, PluginConfig, parseConfig } from "../../assembly/plugin/config/gateway-config";
import { JsonType } from "../../assembly/json/reader";
import { parseJson } from "../../assembly/json/value";
import { NO_KEYS, errorName, scanText } from "./helpers";

const MODELS = '"models":[{"name":"a"}]';

function accepted(text: string): PluginConfig {
  const res = parseConfig(text);
  expect<string>(res.error).toBe("", text);
  expect<bool>(res.config != null).toBe(true, text);
  return res.config!;
}

function global(text: string): GatewayConfig {
  return accepted(text).global;
}

// A model list body is JSON the scanner accepts: clients parse it.
function expectValidJson(text: string): void {
  expect<string>(errorName(scanText(text, NO_KEYS).error)).toBe("Ok", text);
}

function routeName(cfg: GatewayConfig, model: string): string {
  const r = cfg.findRoute(model);
  return r == null ? "<none>" : r.isPrefix ? r.name + "*" : r.name;
}

class Refusal {
  constructor(
    public text: string,
    public error: string,
  ) {}
}

function expectRefusals(cases: Array<Refusal>): void {
  for (let i = 0; i < cases.length; i++) {
    const res: ConfigResult = parseConfig(cases[i].text);
    expect<bool>(res.config == null).toBe(true, "accepted: " + cases[i].text);
    expect<string>(res.error).toBe(cases[i].error, cases[i].text);
  }
}

// For offending values that are integers: the message up to "got ", and the value as written; "shows
// offending numbers as the operator wrote them" checks the whole text.
class NumberRefusal {
  constructor(
    public text: string,
    public message: string,
    public shown: string,
  ) {}
}

function expectNumberRefusals(cases: Array<NumberRefusal>, exact: bool): void {
  for (let i = 0; i < cases.length; i++) {
    const res: ConfigResult = parseConfig(cases[i].text);
    expect<bool>(res.config == null).toBe(true, "accepted: " + cases[i].text);
    if (exact) expect<string>(res.error).toBe(cases[i].message + cases[i].shown, cases[i].text);
    else expect<string>(res.error.substring(0, cases[i].message.length)).toBe(cases[i].message, cases[i].text);
  }
}

const SIZE = "must be an integer between 1 and 536870912, got ";
const TRIGGER = 'must be a status code (e.g. 503) or a class (e.g. "5xx"), got ';

function integerRefusals(): Array<NumberRefusal> {
  return [
    new NumberRefusal("{" + MODELS + ',"maxBodyBytes":0}', "maxBodyBytes: " + SIZE, "0"),
    new NumberRefusal("{" + MODELS + ',"maxBodyBytes":-1}', "maxBodyBytes: " + SIZE, "-1"),
    new NumberRefusal("{" + MODELS + ',"maxBodyBytes":536870913}', "maxBodyBytes: " + SIZE, "536870913"),
    new NumberRefusal("{" + MODELS + ',"maxSseEventBytes":0}', "maxSseEventBytes: " + SIZE, "0"),
    new NumberRefusal("{" + MODELS + ',"maxResponseBytes":1e3}', "maxResponseBytes: " + SIZE, "1e3"),
    new NumberRefusal('{"models":[{"name":5}]}', "models[0].name: must be a string, got ", "5"),
    new NumberRefusal("{" + MODELS + ',"ownedBy":7}', "ownedBy: must be a string, got ", "7"),
    new NumberRefusal("{" + MODELS + ',"fallback":{"onStatus":[600]}}', "fallback.onStatus[0]: " + TRIGGER, "600"),
    new NumberRefusal("{" + MODELS + ',"fallback":{"onStatus":[99]}}', "fallback.onStatus[0]: " + TRIGGER, "99"),
    new NumberRefusal(
      "{" + MODELS + ',"fallback":{"maxAttempts":11}}',
      "fallback.maxAttempts: must be an integer between 1 and 10, got ",
      "11",
    ),
    new NumberRefusal(
      "{" + MODELS + ',"fallback":{"maxAttempts":0}}',
      "fallback.maxAttempts: must be an integer between 1 and 10, got ",
      "0",
    ),
    new NumberRefusal(
      "{" + MODELS + ',"fallback":{"attemptTimeoutMs":3600001}}',
      "fallback.attemptTimeoutMs: must be an integer between 1 and 3600000, got ",
      "3600001",
    ),
    new NumberRefusal(
      "{" + MODELS + ',"fallback":{"slowFailureMs":-1}}',
      "fallback.slowFailureMs: must be an integer between 0 and 3600000, got ",
      "-1",
    ),
    new NumberRefusal("{" + MODELS + ',"fallback":{"cooldown":3}}', "fallback.cooldown: must be an object, got ", "3"),
    new NumberRefusal(
      "{" + MODELS + ',"fallback":{"cooldown":{"failures":1001}}}',
      "fallback.cooldown.failures: must be an integer between 0 and 1000, got ",
      "1001",
    ),
    new NumberRefusal(
      "{" + MODELS + ',"fallback":{"cooldown":{"windowMs":0}}}',
      "fallback.cooldown.windowMs: must be an integer between 1 and 86400000, got ",
      "0",
    ),
    new NumberRefusal(
      "{" + MODELS + ',"fallback":{"cooldown":{"durationMs":86400001}}}',
      "fallback.cooldown.durationMs: must be an integer between 1 and 86400000, got ",
      "86400001",
    ),
    new NumberRefusal("{" + MODELS + ',"_rules_":[{"_match_service_":[1]}]}', "_rules_[0]._match_service_[0]: must be a string, got ", "1"),
    new NumberRefusal(
      "{" + MODELS + ',"_rules_":[{"_match_route_":["r"],"fallback":{"maxAttempts":0}}]}',
      "_rules_[0].fallback.maxAttempts: must be an integer between 1 and 10, got ",
      "0",
    ),
  ];
}

describe("parseConfig: defaults", () => {
  it("fills every gateway field from the documented defaults", () => {
    const g = global("{" + MODELS + "}");
    expect<string>(g.routingHeader).toBe("x-higress-llm-model");
    expect<string>(g.pathSuffixes.join(",")).toBe("/v1/chat/completions,/v1/completions,/v1/embeddings,/v1/responses");
    expect<i32>(g.maxBodyBytes).toBe(10485760);
    expect<bool>(g.serveModelList).toBe(true);
    expect<string>(g.ownedBy).toBe("llm-gateway");
    expect<string>(g.defaultModel).toBe("");
    expect<bool>(g.injectStreamUsage).toBe(true);
    expect<string>(g.consumerHeader).toBe("x-mse-consumer");
    expect<i32>(g.maxSseEventBytes).toBe(1048576);
    expect<i32>(g.maxResponseBytes).toBe(10485760);
  });

  it("fills every model field's default: the route is the name, a pattern routes by the requested model", () => {
    const g = global('{"models":[{"name":"a"},{"name":"qwen*"}]}');
    const a = g.models[0];
    expect<string>(a.name).toBe("a");
    expect<bool>(a.isPrefix).toBe(false);
    expect<string>(a.route).toBe("a");
    expect<string>(a.upstreamModel).toBe("");
    expect<i32>(a.fallback.length).toBe(0);
    expect<string>(a.cluster).toBe("");
    const q = g.models[1];
    expect<string>(q.name).toBe("qwen");
    expect<bool>(q.isPrefix).toBe(true);
    expect<string>(q.route).toBe("");
  });

  it("fills the fallback policy's defaults", () => {
    const f = global("{" + MODELS + "}").fallback;
    expect<bool>(f.enabled).toBe(true);
    expect<i32>(f.onStatus.length).toBe(2);
    expect<i32>(f.onStatus[0].code).toBe(5);
    expect<bool>(f.onStatus[0].isClass).toBe(true);
    expect<i32>(f.onStatus[1].code).toBe(429);
    expect<bool>(f.onStatus[1].isClass).toBe(false);
    expect<bool>(f.onLocalReply).toBe(true);
    expect<i32>(f.maxAttempts).toBe(3);
    expect<u32>(f.attemptTimeoutMs).toBe(60000);
    expect<i64>(f.slowFailureMs).toBe(0);
    expect<i32>(f.cooldownFailures).toBe(3);
    expect<i64>(f.cooldownWindowMs).toBe(10000);
    expect<i64>(f.cooldownMs).toBe(30000);
    expect<string>(f.clusterTemplate).toBe("outbound|8080||llm-{route}.dns");
  });

  it("has no rules unless _rules_ is given, and then selects the global config", () => {
    const pc = accepted("{" + MODELS + "}");
    expect<i32>(pc.rules.length).toBe(0);
    expect<bool>(pc.select("r", "h", "s") === pc.global).toBe(true);
  });
});

describe("parseConfig: fields", () => {
  it("reads every gateway field", () => {
    const g = global(
      '{"models":[{"name":"a"},{"name":"b"}],"routingHeader":"x-model.route_1",' +
        '"pathSuffixes":["/chat","/v2/embed"],"maxBodyBytes":1,"serveModelList":false,"defaultModel":"b",' +
        '"ownedBy":"team \\"ml\\"","injectStreamUsage":false,"consumerHeader":"x-consumer",' +
        '"maxSseEventBytes":536870912,"maxResponseBytes":4096}',
    );
    expect<string>(g.routingHeader).toBe("x-model.route_1");
    expect<string>(g.pathSuffixes.join(",")).toBe("/chat,/v2/embed");
    expect<i32>(g.maxBodyBytes).toBe(1);
    expect<bool>(g.serveModelList).toBe(false);
    expect<string>(g.defaultModel).toBe("b");
    expect<string>(g.ownedBy).toBe('team "ml"');
    expect<bool>(g.injectStreamUsage).toBe(false);
    expect<string>(g.consumerHeader).toBe("x-consumer");
    expect<i32>(g.maxSseEventBytes).toBe(536870912);
    expect<i32>(g.maxResponseBytes).toBe(4096);
    expect<bool>(g.isRoutedPath("/api/chat")).toBe(true);
    expect<bool>(g.isRoutedPath("/v1/chat/completions")).toBe(false);
  });

  it("reads every model field", () => {
    const g = global(
      '{"models":[{"name":"gpt-4o","route":"qwen-72b","upstreamModel":"Qwen/Qwen2-72B",' +
        '"fallback":["b","c-mini"],"cluster":"outbound|80||qwen.dns"},{"name":"b"},{"name":"c*","route":"c-pool"}]}',
    );
    const m = g.models[0];
    expect<string>(m.route).toBe("qwen-72b");
    expect<string>(m.upstreamModel).toBe("Qwen/Qwen2-72B");
    expect<string>(m.fallback.join(",")).toBe("b,c-mini");
    expect<string>(m.cluster).toBe("outbound|80||qwen.dns");
    expect<string>(g.clusterOf(m, "qwen-72b")).toBe("outbound|80||qwen.dns");
    expect<string>(g.clusterOf(g.models[1], "b")).toBe("outbound|8080||llm-b.dns");
    expect<string>(g.models[2].route).toBe("c-pool");
  });

  it("reads every fallback field, statuses as numbers, strings or classes", () => {
    const f = global(
      "{" +
        MODELS +
        ',"fallback":{"enabled":false,"onStatus":[503,"429","4xx","1xx",599,100],' +
        '"onUpstreamUnreachable":false,"maxAttempts":10,"attemptTimeoutMs":3600000,"slowFailureMs":2500,' +
        '"cooldown":{"failures":0,"windowMs":1,"durationMs":86400000},"clusterTemplate":"{route}.static"}}',
    ).fallback;
    expect<bool>(f.enabled).toBe(false);
    expect<i32>(f.onStatus.length).toBe(6);
    const codes: Array<i32> = [503, 429, 4, 1, 599, 100];
    const classes: Array<bool> = [false, false, true, true, false, false];
    for (let i = 0; i < 6; i++) {
      expect<i32>(f.onStatus[i].code).toBe(codes[i]);
      expect<bool>(f.onStatus[i].isClass).toBe(classes[i]);
    }
    expect<bool>(f.onLocalReply).toBe(false);
    expect<i32>(f.maxAttempts).toBe(10);
    expect<u32>(f.attemptTimeoutMs).toBe(3600000);
    expect<i64>(f.slowFailureMs).toBe(2500);
    expect<i32>(f.cooldownFailures).toBe(0);
    expect<i64>(f.cooldownWindowMs).toBe(1);
    expect<i64>(f.cooldownMs).toBe(86400000);
    expect<string>(f.clusterTemplate).toBe("{route}.static");
    const empty = global("{" + MODELS + ',"fallback":{"onStatus":[]}}').fallback;
    expect<i32>(empty.onStatus.length).toBe(0);
    expect<i32>(empty.maxAttempts).toBe(3, "fields not given keep their defaults");
  });

  it("finds routes: exact names first, then prefix patterns longest first, whatever their order in the file", () => {
    const g = global('{"models":[{"name":"q*"},{"name":"qwen*"},{"name":"qwen2-7b"},{"name":"qwen2-*"},{"name":"*"}]}');
    expect<string>(g.prefixes.map<string>((r: ModelRoute): string => r.name).join(",")).toBe("qwen2-,qwen,q,");
    expect<string>(routeName(g, "qwen2-7b")).toBe("qwen2-7b");
    expect<string>(routeName(g, "qwen2-72b")).toBe("qwen2-*");
    expect<string>(routeName(g, "qwen1.5")).toBe("qwen*");
    expect<string>(routeName(g, "qx")).toBe("q*");
    expect<string>(routeName(g, "llama")).toBe("*");
    expect<string>(routeName(g, "")).toBe("*");
    const exactOnly = global('{"models":[{"name":"a"},{"name":"ab"}]}');
    expect<string>(routeName(exactOnly, "abc")).toBe("<none>");
    expect<string>(routeName(exactOnly, "A")).toBe("<none>");
  });

  it("serves exact models in /v1/models in file order, without patterns, as valid JSON", () => {
    const g = global('{"models":[{"name":"b"},{"name":"q*"},{"name":"a\\"x"}],"ownedBy":"me"}');
    expect<string>(g.servedNames.join(",")).toBe('b,a"x');
    expect<string>(g.modelListBody).toBe(
      '{"object":"list","data":[' +
        '{"id":"b","object":"model","created":0,"owned_by":"me"},' +
        '{"id":"a\\"x","object":"model","created":0,"owned_by":"me"}]}',
    );
    expectValidJson(g.modelListBody);
    const patterns = global('{"models":[{"name":"q*"}]}');
    expect<string>(patterns.modelListBody).toBe('{"object":"list","data":[]}');
  });

  it("knows which paths carry stream usage", () => {
    const g = global("{" + MODELS + "}");
    expect<bool>(g.carriesStreamUsage("/v1/chat/completions")).toBe(true);
    expect<bool>(g.carriesStreamUsage("/openai/v1/completions")).toBe(true);
    expect<bool>(g.carriesStreamUsage("/v1/embeddings")).toBe(false);
    expect<bool>(g.carriesStreamUsage("/v1/responses")).toBe(false);
  });

  it("ignores Higress-reserved keys starting with '_' other than _rules_", () => {
    global("{" + MODELS + ',"_match_route_":["r"],"_private":{"x":1}}');
  });
});

const RULES =
  '{"models":[{"name":"a"}],"maxBodyBytes":1000,"_rules_":[' +
  '{"_match_route_":["route-a","route-b"],"maxBodyBytes":2000},' +
  '{"_match_domain_":["api.example.com","*.example.com"],"models":[{"name":"b"}],"ownedBy":"dom"},' +
  '{"_match_service_":["llm-qwen.dns","outbound|8080||llm-gemma.dns"],"routingHeader":"x-svc"},' +
  '{"_match_route_":["route-a"],"maxBodyBytes":3000}' +
  "]}";

describe("parseConfig: _rules_", () => {
  it("reads every rule with its matches; a rule inherits the global fields it does not set", () => {
    const pc = accepted(RULES);
    expect<i32>(pc.rules.length).toBe(4);
    expect<string>(pc.rules[0].routes.join(",")).toBe("route-a,route-b");
    expect<string>(pc.rules[1].domains.join(",")).toBe("api.example.com,*.example.com");
    expect<string>(pc.rules[2].services.join(",")).toBe("llm-qwen.dns,outbound|8080||llm-gemma.dns");
    const r0 = pc.rules[0].config;
    expect<i32>(r0.maxBodyBytes).toBe(2000);
    expect<string>(routeName(r0, "a")).toBe("a", "inherited models");
    const r1 = pc.rules[1].config;
    expect<i32>(r1.maxBodyBytes).toBe(1000, "inherited from the global config, not the default");
    expect<string>(r1.ownedBy).toBe("dom");
    expect<string>(routeName(r1, "a")).toBe("<none>", "a rule's models replace the global ones");
    expect<string>(routeName(r1, "b")).toBe("b");
    expect<string>(r1.modelListBody).toBe('{"object":"list","data":[{"id":"b","object":"model","created":0,"owned_by":"dom"}]}');
    expect<string>(pc.rules[2].config.routingHeader).toBe("x-svc");
    expect<string>(pc.global.ownedBy).toBe("llm-gateway", "rules leave the global config alone");
  });

  it("selects by route name; the first matching rule wins", () => {
    const pc = accepted(RULES);
    expect<bool>(pc.select("route-a", "", "") === pc.rules[0].config).toBe(true);
    expect<bool>(pc.select("route-b", "other.org", "x") === pc.rules[0].config).toBe(true);
    expect<bool>(pc.select("route-c", "", "") === pc.global).toBe(true);
  });

  it("selects by domain: exact, or '*.example.com' for any subdomain but not the apex", () => {
    const pc = accepted(RULES);
    const hosts: Array<string> = [
      "api.example.com",
      "chat.example.com",
      "a.b.example.com",
      "example.com",
      "badexample.com",
      "example.com.evil.org",
      "",
    ];
    const rule: Array<bool> = [true, true, true, false, false, false, false];
    for (let i = 0; i < hosts.length; i++) {
      const cfg = pc.select("", hosts[i], "");
      expect<bool>(cfg === pc.rules[1].config).toBe(rule[i], hosts[i]);
      if (!rule[i]) expect<bool>(cfg === pc.global).toBe(true, hosts[i]);
    }
  });

  it("selects by service: the bare name matches Higress's cluster name outbound|port||name, or the exact cluster", () => {
    const pc = accepted(RULES);
    const clusters: Array<string> = [
      "outbound|8080||llm-qwen.dns",
      "outbound|80||llm-qwen.dns",
      "llm-qwen.dns",
      "outbound|8080||llm-gemma.dns",
      "outbound|9090||llm-gemma.dns",
      "outbound|8080||xllm-qwen.dns",
      "outbound|8080||llm-qwen.dns.evil",
      "",
    ];
    const rule: Array<bool> = [true, true, true, true, false, false, false, false];
    for (let i = 0; i < clusters.length; i++) {
      expect<bool>(pc.select("", "", clusters[i]) === pc.rules[2].config).toBe(rule[i], clusters[i]);
    }
  });

  it("never matches empty properties against rules", () => {
    const pc = accepted("{" + MODELS + ',"_rules_":[{"_match_route_":["r"],"_match_domain_":["h"],"_match_service_":["s"]}]}');
    expect<bool>(pc.select("", "", "") === pc.global).toBe(true);
  });

  // Host names are case-insensitive (RFC 4343), and Envoy matches virtual host domains without regard to
  // case; :authority reaches the plugin as the client wrote it.
  it("selects by domain regardless of the host's letter case", () => {
    const pc = accepted(RULES);
    expect<bool>(pc.select("", "API.Example.COM", "") === pc.rules[1].config).toBe(true);
    expect<bool>(pc.select("", "Chat.EXAMPLE.com", "") === pc.rules[1].config).toBe(true);
  });
});

describe("parseConfig: refusals name the JSON path and the offending value", () => {
  it("refuses empty, malformed and non-object documents", () => {
    expectRefusals([
      new Refusal("", "configuration is empty: at least `models` is required"),
      new Refusal("  ", "configuration: invalid JSON at byte 2: the document is empty"),
      new Refusal("{", "configuration: invalid JSON at byte 1: the document ends too early"),
      new Refusal('{"models":[{"name":"a"}],}', "configuration: invalid JSON at byte 25: not valid JSON"),
      new Refusal('{"models":[{"name":"a","name":"b"}]}', "configuration: duplicate key models[0].name"),
      new Refusal("[]", "configuration must be a JSON object"),
      new Refusal('"models"', "configuration must be a JSON object"),
      new Refusal("null", "configuration must be a JSON object"),
    ]);
  });

  it("refuses missing or malformed models", () => {
    expectRefusals([
      new Refusal("{}", "models: at least one model is required"),
      new Refusal('{"models":[]}', "models: at least one model is required"),
      new Refusal('{"models":{}}', "models: must be an array, got an object"),
      new Refusal('{"models":null}', "models: must be an array, got null"),
      new Refusal('{"models":["a"]}', 'models[0]: must be an object, got "a"'),
      new Refusal('{"models":[{"name":"a"},[]]}', "models[1]: must be an object, got an array"),
      new Refusal('{"models":[{}]}', "models[0].name: is required"),
      new Refusal('{"models":[{"name":""}]}', "models[0].name: must not be empty"),
      new Refusal('{"models":[{"name":true}]}', "models[0].name: must be a string, got true"),
      new Refusal('{"models":[{"name":"a*b"}]}', "models[0].name: only a trailing '*' is supported, got \"a*b\""),
      new Refusal('{"models":[{"name":"a**"}]}', "models[0].name: only a trailing '*' is supported, got \"a**\""),
      new Refusal('{"models":[{"name":"*a"}]}', "models[0].name: only a trailing '*' is supported, got \"*a\""),
      new Refusal(
        '{"models":[{"name":"a","weight":1}]}',
        "models[0].weight: unknown field (known: name, route, upstreamModel, fallback, cluster)",
      ),
      new Refusal('{"models":[{"name":"a"},{"name":"a"}]}', 'models[1].name: duplicate model "a"'),
      new Refusal('{"models":[{"name":"a","route":""}]}', "models[0].route: must not be empty"),
      new Refusal('{"models":[{"name":"a","route":"a b"}]}', "models[0].route: must be printable ASCII (it becomes a header value)"),
      new Refusal('{"models":[{"name":"a","route":"é"}]}', "models[0].route: must be printable ASCII (it becomes a header value)"),
      new Refusal(
        '{"models":[{"name":"a","route":"' + "r".repeat(257) + '"}]}',
        "models[0].route: must be printable ASCII (it becomes a header value)",
      ),
      new Refusal('{"models":[{"name":"a","route":["r"]}]}', "models[0].route: must be a string, got an array"),
      new Refusal('{"models":[{"name":"a","upstreamModel":""}]}', "models[0].upstreamModel: must not be empty"),
      new Refusal('{"models":[{"name":"a","upstreamModel":null}]}', "models[0].upstreamModel: must be a string, got null"),
      new Refusal('{"models":[{"name":"a","fallback":"b"}]}', 'models[0].fallback: must be an array of strings, got "b"'),
      new Refusal('{"models":[{"name":"a","fallback":[""]}]}', "models[0].fallback[0]: must not be empty"),
      new Refusal('{"models":[{"name":"a","fallback":["nope"]}]}', 'models[0].fallback[0]: unknown model "nope"'),
      new Refusal('{"models":[{"name":"a"},{"name":"b","fallback":["a","c"]}]}', 'models[1].fallback[1]: unknown model "c"'),
      new Refusal('{"models":[{"name":"a","cluster":""}]}', "models[0].cluster: must not be empty"),
    ]);
    // A backup may be served by a pattern.
    global('{"models":[{"name":"a","fallback":["qwen-7b"]},{"name":"qwen*"}]}');
  });

  it("refuses unknown fields and wrongly typed gateway fields", () => {
    const known =
      "routingHeader, pathSuffixes, maxBodyBytes, serveModelList, defaultModel, ownedBy, injectStreamUsage, " +
      "consumerHeader, trustConsumerHeader, maxSseEventBytes, maxResponseBytes, memoryBudgetBytes, stage, models, fallback, prefixAffinity, quotas";
    expectRefusals([
      new Refusal("{" + MODELS + ',"modles":[]}', "modles: unknown field (known: " + known + ")"),
      new Refusal("{" + MODELS + ',"stage":"upstream"}', 'stage: must be "request" or "attempt", got "upstream"'),
      // At most 384 MiB, so that the budget, a 512 MiB body and the runtime fit in the VM's 1 GiB.
      new Refusal(
        "{" + MODELS + ',"memoryBudgetBytes":402653185}',
        "memoryBudgetBytes: must be an integer between 1048576 and 402653184, got 402653185",
      ),
      new Refusal(
        "{" + MODELS + ',"memoryBudgetBytes":1048575}',
        "memoryBudgetBytes: must be an integer between 1048576 and 402653184, got 1048575",
      ),
      new Refusal("{" + MODELS + ',"routingHeader":"X-Model"}', 'routingHeader: must be a lowercase header name, got "X-Model"'),
      new Refusal("{" + MODELS + ',"routingHeader":"x model"}', 'routingHeader: must be a lowercase header name, got "x model"'),
      new Refusal("{" + MODELS + ',"routingHeader":""}', "routingHeader: must not be empty"),
      new Refusal("{" + MODELS + ',"routingHeader":true}', "routingHeader: must be a string, got true"),
      new Refusal("{" + MODELS + ',"consumerHeader":"x:y"}', 'consumerHeader: must be a lowercase header name, got "x:y"'),
      new Refusal("{" + MODELS + ',"pathSuffixes":[]}', "pathSuffixes: must not be empty"),
      new Refusal("{" + MODELS + ',"pathSuffixes":"/v1"}', 'pathSuffixes: must be an array of strings, got "/v1"'),
      new Refusal("{" + MODELS + ',"pathSuffixes":["/v1",""]}', "pathSuffixes[1]: must not be empty"),
      new Refusal("{" + MODELS + ',"pathSuffixes":[{}]}', "pathSuffixes[0]: must be a string, got an object"),
      new Refusal("{" + MODELS + ',"maxBodyBytes":1.5}', "maxBodyBytes: must be an integer between 1 and 536870912, got 1.5"),
      new Refusal("{" + MODELS + ',"maxBodyBytes":"10"}', 'maxBodyBytes: must be an integer between 1 and 536870912, got "10"'),
      new Refusal("{" + MODELS + ',"maxSseEventBytes":null}', "maxSseEventBytes: must be an integer between 1 and 536870912, got null"),
      new Refusal("{" + MODELS + ',"serveModelList":"yes"}', 'serveModelList: must be true or false, got "yes"'),
      new Refusal("{" + MODELS + ',"injectStreamUsage":null}', "injectStreamUsage: must be true or false, got null"),
      new Refusal("{" + MODELS + ',"ownedBy":""}', "ownedBy: must not be empty"),
      new Refusal("{" + MODELS + ',"defaultModel":""}', "defaultModel: must not be empty"),
      new Refusal("{" + MODELS + ',"defaultModel":"zzz"}', 'defaultModel: is not one of the configured models: "zzz"'),
      new Refusal(
        "{" + MODELS + ',"ownedBy":"' + "o".repeat(70) + '","routingHeader":"' + "X".repeat(70) + '"}',
        'routingHeader: must be a lowercase header name, got "' + "X".repeat(70) + '"',
      ),
      new Refusal("{" + MODELS + ',"routingHeader":["' + "x".repeat(70) + '"]}', "routingHeader: must be a string, got an array"),
    ]);
    // A default model may be served by a pattern.
    expect<string>(global('{"models":[{"name":"qwen*"}],"defaultModel":"qwen-7b"}').defaultModel).toBe("qwen-7b");
  });

  it("shortens long offending strings to 64 characters", () => {
    expectRefusals([
      new Refusal(
        "{" + MODELS + ',"maxBodyBytes":"' + "9".repeat(100) + '"}',
        'maxBodyBytes: must be an integer between 1 and 536870912, got "' + "9".repeat(64) + '…"',
      ),
    ]);
  });

  it("refuses out-of-range and wrongly typed numbers with the path and the rule", () => {
    expectNumberRefusals(integerRefusals(), false);
  });

  // The offending value should read as the operator wrote it: 0, not 0.0.
  it("shows offending numbers as the operator wrote them", () => {
    expectNumberRefusals(integerRefusals(), true);
  });

  it("refuses malformed fallback policies", () => {
    const known =
      "enabled, mechanism, onStatus, onUpstreamUnreachable, maxAttempts, attemptTimeoutMs, slowFailureMs, firstByteTimeoutMs, cooldown, clusterTemplate";
    const trigger = 'must be a status code (e.g. 503) or a class (e.g. "5xx"), got ';
    expectRefusals([
      new Refusal("{" + MODELS + ',"fallback":true}', "fallback: must be an object, got true"),
      new Refusal("{" + MODELS + ',"fallback":{"retries":1}}', "fallback.retries: unknown field (known: " + known + ")"),
      new Refusal(
        "{" + MODELS + ',"fallback":{"mechanism":"redirect"}}',
        'fallback.mechanism: must be "envoy" or "dispatch", got "redirect"',
      ),
      new Refusal("{" + MODELS + ',"fallback":{"mechanism":1}}', "fallback.mechanism: must be a string, got 1"),
      new Refusal("{" + MODELS + ',"fallback":{"enabled":"no"}}', 'fallback.enabled: must be true or false, got "no"'),
      new Refusal(
        "{" + MODELS + ',"fallback":{"onUpstreamUnreachable":[]}}',
        "fallback.onUpstreamUnreachable: must be true or false, got an array",
      ),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":"5xx"}}', 'fallback.onStatus: must be an array, got "5xx"'),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":["6xx"]}}', "fallback.onStatus[0]: " + trigger + '"6xx"'),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":["0xx"]}}', "fallback.onStatus[0]: " + trigger + '"0xx"'),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":[503,"5XX"]}}', "fallback.onStatus[1]: " + trigger + '"5XX"'),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":["abc"]}}', "fallback.onStatus[0]: " + trigger + '"abc"'),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":["5031"]}}', "fallback.onStatus[0]: " + trigger + '"5031"'),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":[" 50"]}}', "fallback.onStatus[0]: " + trigger + '" 50"'),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":[503.5]}}', "fallback.onStatus[0]: " + trigger + "503.5"),
      new Refusal("{" + MODELS + ',"fallback":{"onStatus":[null]}}', "fallback.onStatus[0]: " + trigger + "null"),
      new Refusal("{" + MODELS + ',"fallback":{"maxAttempts":"3"}}', 'fallback.maxAttempts: must be an integer between 1 and 10, got "3"'),
      new Refusal(
        "{" + MODELS + ',"fallback":{"slowFailureMs":0.5}}',
        "fallback.slowFailureMs: must be an integer between 0 and 3600000, got 0.5",
      ),
      new Refusal("{" + MODELS + ',"fallback":{"clusterTemplate":""}}', "fallback.clusterTemplate: must not be empty"),
      new Refusal(
        "{" + MODELS + ',"fallback":{"cooldown":{"count":3}}}',
        "fallback.cooldown.count: unknown field (known: failures, windowMs, durationMs)",
      ),
      new Refusal(
        "{" + MODELS + ',"fallback":{"cooldown":{"windowMs":true}}}',
        "fallback.cooldown.windowMs: must be an integer between 1 and 86400000, got true",
      ),
    ]);
  });

  it("refuses malformed _rules_ with the rule's index in the path", () => {
    const known =
      "routingHeader, pathSuffixes, maxBodyBytes, serveModelList, defaultModel, ownedBy, injectStreamUsage, " +
      "consumerHeader, trustConsumerHeader, maxSseEventBytes, maxResponseBytes, memoryBudgetBytes, stage, models, fallback, prefixAffinity, quotas";
    const R = '"_match_route_":["r"]';
    expectRefusals([
      new Refusal("{" + MODELS + ',"_rules_":{}}', "_rules_: must be an array, got an object"),
      new Refusal("{" + MODELS + ',"_rules_":["r"]}', '_rules_[0]: must be an object, got "r"'),
      new Refusal("{" + MODELS + ',"_rules_":[{}]}', "_rules_[0]: needs a non-empty _match_route_, _match_domain_ or _match_service_"),
      new Refusal(
        "{" + MODELS + ',"_rules_":[{' + R + '},{"_match_route_":[],"_match_domain_":[]}]}',
        "_rules_[1]: needs a non-empty _match_route_, _match_domain_ or _match_service_",
      ),
      new Refusal("{" + MODELS + ',"_rules_":[{"_match_route_":"r"}]}', '_rules_[0]._match_route_: must be an array of strings, got "r"'),
      new Refusal("{" + MODELS + ',"_rules_":[{"_match_domain_":[""]}]}', "_rules_[0]._match_domain_[0]: must not be empty"),
      new Refusal(
        "{" + MODELS + ',"_rules_":[{' + R + ',"maxBodyBytes":0.5}]}',
        "_rules_[0].maxBodyBytes: must be an integer between 1 and 536870912, got 0.5",
      ),
      new Refusal("{" + MODELS + ',"_rules_":[{' + R + ',"colour":1}]}', "_rules_[0].colour: unknown field (known: " + known + ")"),
      new Refusal(
        "{" + MODELS + ',"_rules_":[{' + R + ',"models":[{"name":"b","fallback":["zz"]}]}]}',
        '_rules_[0].models[0].fallback[0]: unknown model "zz"',
      ),
      new Refusal("{" + MODELS + ',"_rules_":[{' + R + ',"models":[]}]}', "_rules_[0].models: at least one model is required"),
      new Refusal(
        "{" + MODELS + ',"defaultModel":"a","_rules_":[{' + R + ',"models":[{"name":"b"}]}]}',
        '_rules_[0].defaultModel: is not one of the configured models: "a"',
      ),
    ]);
  });

  it("reports the first problem when there are several", () => {
    expectRefusals([
      new Refusal('{"routingHeader":"X","models":[]}', 'routingHeader: must be a lowercase header name, got "X"'),
      new Refusal('{"models":[{"name":""},{"name":"a*b"}]}', "models[0].name: must not be empty"),
    ]);
  });

  // An exact name with no `route` becomes the routing header value, and routing answers 400 for any
  // requested name that is not printable ASCII of at most 256 bytes: such a model can never be served.
  it("refuses an exact model name that cannot be a routing header value", () => {
    expectRefusals([
      new Refusal('{"models":[{"name":"my model"}]}', "models[0].name: must be printable ASCII (it becomes a header value)"),
      new Refusal('{"models":[{"name":"' + "m".repeat(257) + '"}]}', "models[0].name: must be printable ASCII (it becomes a header value)"),
    ]);
  });

  // Two identical patterns: the second can never be chosen, exactly like a duplicated exact name.
  it("refuses a duplicated prefix pattern", () => {
    expectRefusals([new Refusal('{"models":[{"name":"q*"},{"name":"q*","route":"other"}]}', 'models[1].name: duplicate model "q*"')]);
  });
});

describe("parseConfig: robustness", () => {
  it("never traps on configurations that are JSON but of any shape", () => {
    const docs: Array<string> = [
      '{"models":[{"name":"a"}],"_rules_":[null,1,"x",[],{}]}',
      '{"models":[[[[[]]]]]}',
      '{"models":[{"name":{"name":"a"}}]}',
      '{"fallback":{"onStatus":[[],{},null]}}',
      '{"models":[{"name":"a","fallback":[["a"]]}]}',
      '{"models":[{"name":"*"}],"defaultModel":"' + "x".repeat(10000) + '"}',
    ];
    for (let i = 0; i < docs.length; i++) {
      const res = parseConfig(docs[i]);
      expect<bool>(res.config != null || res.error.length > 0).toBe(true, docs[i]);
      // Whatever the verdict, a JSON document parses.
      expect<string>(parseJson(docs[i]).error).toBe("", docs[i]);
    }
    expect<string>(errorName(scanText("{}", NO_KEYS).error)).toBe("Ok");
    expect<i32>(<i32>JsonType.Object).toBe(5);
  });
});
