// Reading llmaz's Playground conditions, the progress display, durations, and the gateway endpoint.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { curlCommand, endpointOf } from "../../deploy-scripts/cluster/endpoint.ts";
import { loadSeed } from "../../deploy-scripts/generators/gen-manifests.ts";
import { ProgressDisplay, formatDuration, type ModelState, type Phase } from "../../deploy-scripts/cluster/progress.ts";
import { parseDuration, playgroundState, type Condition } from "../../deploy-scripts/cluster/wait.ts";

const pg = (...conditions: Condition[]): { status: { conditions: Condition[] } } => ({ status: { conditions } });

describe("playgroundState", () => {
  const cases: { name: string; conditions: Condition[]; phase: string; detail: string }[] = [
    { name: "no conditions yet", conditions: [], phase: "waiting", detail: "waiting for llmaz to pick it up" },
    {
      name: "progressing",
      conditions: [{ type: "Progressing", status: "True", reason: "Pending", message: "Waiting for inference Service ready" }],
      phase: "waiting",
      detail: "Progressing=True (Pending: Waiting for inference Service ready)",
    },
    {
      name: "available",
      conditions: [
        { type: "Progressing", status: "True", reason: "Pending" },
        { type: "Available", status: "True", reason: "PlaygroundReady" },
      ],
      phase: "ready",
      detail: "Available (PlaygroundReady)",
    },
    {
      name: "aborted, with the message",
      conditions: [{ type: "Progressing", status: "False", reason: "AbortProcessing", message: "no node has 8 GPUs" }],
      phase: "failed",
      detail: "no node has 8 GPUs",
    },
    {
      name: "aborted after having been available",
      conditions: [
        { type: "Available", status: "True", reason: "PlaygroundReady" },
        { type: "Progressing", status: "False", reason: "AbortProcessing", message: "bad flavor" },
      ],
      phase: "failed",
      detail: "bad flavor",
    },
    {
      name: "waiting for the model, which llmaz rechecks",
      conditions: [{ type: "Progressing", status: "False", reason: "AbortProcessing", message: "Waiting for model creation" }],
      phase: "waiting",
      detail: "Progressing=False (AbortProcessing: Waiting for model creation)",
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(playgroundState("m", pg(...c.conditions)), { model: "m", phase: c.phase, detail: c.detail }));
  }
  it("a Playground that disappeared failed", () => assert.equal(playgroundState("m", null).phase, "failed"));
});

describe("ProgressDisplay", () => {
  const capture = (isTTY: boolean): { w: { write: (t: string) => void; isTTY: boolean }; text: () => string } => {
    let text = "";
    return { w: { write: (t: string) => (text += t), isTTY }, text: () => text };
  };
  const states = (a: Phase, b: Phase): ModelState[] => [
    { model: "qwen2-1-5b", phase: a, detail: a === "ready" ? "Available" : "Pending" },
    { model: "gemma", phase: b, detail: b === "ready" ? "Available" : "Pending" },
  ];

  it("rewrites its lines in place on a terminal", () => {
    const c = capture(true);
    const d = new ProgressDisplay(c.w, ["qwen2-1-5b", "gemma"]);
    d.update(states("waiting", "waiting"), 1000);
    d.update(states("ready", "waiting"), 2000);
    assert.equal(
      c.text(),
      "\x1b[2Kqwen2-1-5b  waiting  Pending (1s)\n\x1b[2Kgemma       waiting  Pending (1s)\n" +
        "\x1b[2A\x1b[2Kqwen2-1-5b  ready    Available\n\x1b[2Kgemma       waiting  Pending (2s)\n",
    );
  });

  it("prints a plain line per change otherwise", () => {
    const c = capture(false);
    const d = new ProgressDisplay(c.w, ["qwen2-1-5b", "gemma"]);
    d.update(states("waiting", "waiting"), 0);
    d.update(states("waiting", "waiting"), 5000);
    d.update(states("ready", "waiting"), 65_000);
    assert.equal(
      c.text(),
      "[    0s] qwen2-1-5b  waiting  Pending\n[    0s] gemma       waiting  Pending\n[ 1m05s] qwen2-1-5b  ready    Available\n",
    );
  });

  it("formats durations", () => {
    assert.deepEqual([0, 59_999, 60_000, 3_725_000].map(formatDuration), ["0s", "59s", "1m00s", "1h02m"]);
  });
});

describe("parseDuration", () => {
  it("takes ms, s, m, h and bare seconds", () => {
    assert.deepEqual(
      ["500ms", "90s", "15m", "1h30m", "2", "1.5s"].map((t) => parseDuration(t, "--timeout")),
      [500, 90_000, 900_000, 5_400_000, 2000, 1500],
    );
  });
  it("refuses anything else with the flag named", () => {
    for (const t of ["", "soon", "5mx", "-1s"]) {
      assert.throws(() => parseDuration(t, "--timeout"), {
        message: `--timeout: must be a duration such as 500ms, 90s, 15m or 1h, got "${t}"`,
      });
    }
  });
});

describe("gateway endpoint", () => {
  const seed = loadSeed();
  it("uses the LoadBalancer address", () => {
    assert.deepEqual(
      endpointOf(seed, {
        spec: { ports: [{ name: "http2", port: 80 }] },
        status: { loadBalancer: { ingress: [{ hostname: "gw.example.net" }] } },
      }),
      {
        kind: "loadBalancer",
        url: "http://gw.example.net",
      },
    );
  });
  it("suggests a port-forward without one", () => {
    assert.deepEqual(endpointOf(seed, { spec: { ports: [{ name: "http2", port: 80 }] } }), {
      kind: "portForward",
      url: "http://localhost:8080",
      command: "kubectl -n higress-system port-forward service/higress-gateway 8080:80",
    });
  });
  it("says so when Higress is not there", () => {
    assert.equal(endpointOf(seed, null).kind, "missing");
  });
  it("gives a curl for the first model with the host header", () => {
    assert.equal(
      curlCommand(seed, "http://192.0.2.1"),
      "curl -sS http://192.0.2.1/v1/chat/completions \\\n    -H 'Host: llm.example.com' \\\n    -H 'Content-Type: application/json' \\\n" +
        `    -d '{"model":"qwen2-1-5b","messages":[{"role":"user","content":"Say hello in one sentence."}]}'`,
    );
  });
});
