// The fallback state machine (assembly/plugin/fallback/fallback-state.ts): every transition the request
// stage relies on, without Envoy.
import { FallbackState, Step } from "../../assembly/plugin/fallback/fallback-state";
import { Reason } from "../../assembly/plugin/fallback/policy";
import { parseConfig } from "../../assembly/plugin/config/gateway-config";

const POLICY = parseConfig(
  '{"models":[{"name":"a","fallback":["b","c"]},{"name":"b"},{"name":"c"}],"fallback":{"mechanism":"dispatch","maxAttempts":3}}',
).config!.global.fallback;
const CHAIN: Array<string> = ["b", "c"];

describe("FallbackState", () => {
  it("delivers the primary's good answer: no fallback recorded", () => {
    const s = new FallbackState();
    s.onPrimary = true;
    s.watch();
    expect<i32>(s.step).toBe(Step.Watching);
    expect<i32>(s.judge(POLICY, 200, true, 5)).toBe(Reason.None);
    s.delivered();
    expect<i32>(s.step).toBe(Step.Idle);
    expect<string>(s.from).toBe("");
    expect<bool>(s.answeredByPlugin).toBe(false);
  });

  it("a failing primary goes to the chain's backups in order, within maxAttempts, then gives up naming them", () => {
    const s = new FallbackState();
    s.onPrimary = true;
    s.watch();
    expect<i32>(s.judge(POLICY, 503, true, 5)).toBe(Reason.Status);
    s.primaryFailed("a", "status 503", "status_503");
    expect<bool>(s.onPrimary).toBe(false);
    expect<string>(s.nextBackup(CHAIN, POLICY.maxAttempts)!).toBe("b");
    expect<bool>(s.holdsResponse).toBe(true);
    s.attemptFailed("b", "status 502");
    expect<string>(s.nextBackup(CHAIN, POLICY.maxAttempts)!).toBe("c");
    s.attemptFailed("c", "unreachable or timed out");
    expect<bool>(s.nextBackup(CHAIN, POLICY.maxAttempts) == null).toBe(true, "the chain is used up");
    expect<bool>(s.exhausted()).toBe(true);
    s.gaveUp();
    expect<bool>(s.answeredByPlugin).toBe(true);
    expect<string>(s.tried.join(", ")).toBe("a (status 503), b (status 502), c (unreachable or timed out)");
    expect<string>(s.from).toBe("a");
    expect<string>(s.reason).toBe("status_503");
  });

  it("maxAttempts stops the chain early", () => {
    const s = new FallbackState();
    s.watch();
    s.primaryFailed("a", "status 503", "status_503");
    expect<string>(s.nextBackup(CHAIN, 2)!).toBe("b");
    expect<bool>(s.nextBackup(CHAIN, 2) == null).toBe(true);
  });

  it("with nothing to try, the primary's own failure goes to the client and is not a fallback", () => {
    const s = new FallbackState();
    s.watch();
    s.primaryFailed("a", "status 503", "status_503");
    expect<bool>(s.nextBackup(CHAIN, 1) == null).toBe(true, "maxAttempts 1");
    expect<bool>(s.exhausted()).toBe(false);
    expect<string>(s.from).toBe("");
    expect<string>(s.reason).toBe("");
    expect<i32>(s.step).toBe(Step.Idle);
  });

  it("a cooled-down primary is skipped: the request starts on the first backup, which uses an attempt", () => {
    const s = new FallbackState();
    s.skipPrimary("a");
    expect<string>(s.from).toBe("a");
    expect<string>(s.reason).toBe("cooldown");
    expect<string>(s.tried[0]).toBe("a (cooling down)");
    s.watch();
    s.attemptFailed("b", "status 503");
    expect<string>(s.nextBackup(CHAIN, 3)!).toBe("c");
    expect<bool>(s.nextBackup(CHAIN, 3) == null).toBe(true);
  });

  it("the first reason stands when the request switches model again", () => {
    const s = new FallbackState();
    s.switched("a", "higress_redirect");
    s.switched("b", "status_503");
    expect<string>(s.from).toBe("a");
    expect<string>(s.reason).toBe("higress_redirect");
  });

  it("judges only while watching: an answer after the decision is delivered as it is", () => {
    const s = new FallbackState();
    expect<i32>(s.judge(POLICY, 503, true, 5)).toBe(Reason.None, "idle");
    s.watch();
    expect<i32>(s.judge(POLICY, 503, false, 5)).toBe(Reason.LocalReply, "Envoy's own 503");
    s.relayed();
    expect<i32>(s.judge(POLICY, 503, true, 5)).toBe(Reason.None, "relayed");
  });
});
