// What the request stage hands the attempt stage (assembly/plugin/plan.ts), the journal of failed
// attempts (attempt-journal.ts), and which model each attempt goes to (attempt.ts chainModel).
import { failuresOf, noteFailure } from "../../assembly/plugin/fallback/attempt-journal";
import { Plan, chainModel } from "../../assembly/plugin/fallback/plan";
import { parseConfig } from "../../assembly/plugin/config/gateway-config";

describe("Plan", () => {
  test("round-trips, model names with ';' included", () => {
    const names = ["qwen2-1-5b", "a;b", "x"];
    for (let i = 0; i < names.length; i++) {
      const p = Plan.decode(new Plan(names[i], 9, 21, i == 1).encode());
      expect<bool>(p != null).toBe(true, names[i]);
      expect<string>(p!.model).toBe(names[i]);
      expect<i32>(p!.start).toBe(9);
      expect<i32>(p!.end).toBe(21);
      expect<bool>(p!.probe).toBe(i == 1);
    }
  });
  test("anything malformed decodes to null, never aborts", () => {
    const bad = ["", ";", ";;;", "m;1;2", "m;-1;5;0", "m;5;5;0", "m;6;5;0", "m;a;5;0", "m;1;5;2", ";1;5;0", "m;1;99999999999;0"];
    for (let i = 0; i < bad.length; i++) expect<bool>(Plan.decode(bad[i]) == null).toBe(true, bad[i]);
  });
});

describe("attempt journal", () => {
  test("the first word on an attempt stands; lines come back in attempt order", () => {
    noteFailure("req-1", 2, "gemma (status 503)", "status_503");
    noteFailure("req-1", 1, "qwen (no response)", "first_byte_timeout");
    noteFailure("req-1", 1, "qwen (timed out)", "upstream_unreachable"); // later report of the same attempt
    const f = failuresOf("req-1")!;
    expect<string>(f.line(1)).toBe("qwen (no response)");
    expect<string>(f.line(2)).toBe("gemma (status 503)");
    expect<bool>(f.has(3)).toBe(false);
    expect<string>(f.lastReason()).toBe("status_503");
  });
  test("bounded: old requests are forgotten, never grown; bad input is ignored", () => {
    for (let i = 0; i < 1000; i++) noteFailure("r" + i.toString(), 1, "m (x)", "x");
    expect<bool>(failuresOf("r0") == null).toBe(true);
    expect<bool>(failuresOf("r999") != null).toBe(true);
    noteFailure("", 1, "m", "x");
    noteFailure("r-bad", 0, "m", "x");
    noteFailure("r-bad", 1000, "m", "x");
    expect<bool>(failuresOf("") == null).toBe(true);
    expect<bool>(failuresOf("r-bad") == null).toBe(true);
  });
});

describe("chainModel", () => {
  test("attempt N is the routed model, then its fallbacks in order; past the end, the last", () => {
    const cfg = parseConfig('{"models":[{"name":"a","fallback":["b","c"]},{"name":"b"},{"name":"c"}]}').config!.global;
    const route = cfg.findRoute("a")!;
    expect<string>(chainModel("a", route, 1)).toBe("a");
    expect<string>(chainModel("a", route, 2)).toBe("b");
    expect<string>(chainModel("a", route, 3)).toBe("c");
    expect<string>(chainModel("a", route, 7)).toBe("c");
    expect<string>(chainModel("b", cfg.findRoute("b")!, 2)).toBe("b");
  });
});
