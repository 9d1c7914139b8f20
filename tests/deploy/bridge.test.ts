// The shared McpBridge: merging this deployment's registries in, and taking them out again.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadSeed } from "../../deploy-scripts/generators/gen-manifests.ts";
import { mergeBridge, removeFromBridge } from "../../deploy-scripts/cluster/mcpbridge.ts";
import type { K8sObject } from "../../deploy-scripts/render/objects.ts";
import { mcpBridge } from "../../deploy-scripts/render/render.ts";
import type { DeploySpec } from "../../deploy-scripts/spec.ts";

const seed = loadSeed();
const desired = mcpBridge(seed);
const OURS = { "app.kubernetes.io/managed-by": "llm-gateway-deploy", "llm-gateway.io/deployment": "seed" };
const consoleEntry = { name: "llm-openai.internal", domain: "api.openai.com", port: 443, type: "dns" };
const reg = (model: string, ns = "default"): Record<string, unknown> => ({
  name: `llm-${model}`,
  domain: `${model}-lb.${ns}.svc.cluster.local`,
  port: 8080,
  type: "dns",
  protocol: "http",
});

function bridge(registries: unknown[], annotations?: Record<string, string>, labels?: Record<string, string>): K8sObject {
  const metadata: K8sObject["metadata"] = { name: "default", namespace: "higress-system", resourceVersion: "42" };
  if (annotations) metadata.annotations = annotations;
  if (labels) metadata.labels = labels;
  return { apiVersion: "networking.higress.io/v1", kind: "McpBridge", metadata, spec: { registries } };
}

function merged(spec: DeploySpec, existing: K8sObject | null): K8sObject {
  const r = mergeBridge(spec, mcpBridge(spec), existing);
  if (!r.ok) assert.fail(r.conflicts.join("\n"));
  return r.object;
}

describe("mergeBridge", () => {
  it("creates the bridge with our labels when there is none", () => {
    const o = merged(seed, null);
    assert.deepEqual(o.metadata.labels, OURS);
    assert.equal(o.metadata.resourceVersion, undefined);
    assert.deepEqual((o["spec"] as { registries: unknown[] }).registries, [reg("qwen2-1-5b"), reg("gemma-2-2b")]);
  });

  it("keeps entries others made, adds no labels to a bridge it did not create, and pins the resourceVersion", () => {
    const o = merged(seed, bridge([consoleEntry]));
    assert.equal(o.metadata.labels, undefined);
    assert.equal(o.metadata.resourceVersion, "42");
    assert.deepEqual((o["spec"] as { registries: unknown[] }).registries, [consoleEntry, reg("qwen2-1-5b"), reg("gemma-2-2b")]);
    assert.deepEqual(o.metadata.annotations, { "registries.llm-gateway.io/seed": "llm-qwen2-1-5b,llm-gemma-2-2b" });
  });

  it("is stable: merging into its own result gives the same body", () => {
    const once = merged(seed, bridge([consoleEntry]));
    const twice = merged(seed, { ...once, metadata: { ...once.metadata, resourceVersion: "42" } });
    assert.deepEqual(twice, once);
  });

  it("drops the registries of models removed from the file, and keeps other deployments and their records", () => {
    const existing = bridge(
      [consoleEntry, reg("old-model"), reg("qwen2-1-5b"), reg("theirs", "other")],
      { "registries.llm-gateway.io/seed": "llm-old-model,llm-qwen2-1-5b", "registries.llm-gateway.io/other": "llm-theirs", note: "x" },
      OURS,
    );
    const o = merged(seed, existing);
    assert.deepEqual(
      (o["spec"] as { registries: { name: string }[] }).registries.map((r) => r.name),
      ["llm-openai.internal", "llm-theirs", "llm-qwen2-1-5b", "llm-gemma-2-2b"],
    );
    assert.deepEqual(
      o.metadata.annotations,
      {
        "registries.llm-gateway.io/other": "llm-theirs",
        "registries.llm-gateway.io/seed": "llm-qwen2-1-5b,llm-gemma-2-2b",
      },
      "annotations of others than us are not restated",
    );
    assert.deepEqual(o.metadata.labels, OURS, "the creator keeps its labels");
  });

  it("refuses a registry name someone else put there", () => {
    const foreign = mergeBridge(seed, desired, bridge([reg("qwen2-1-5b", "elsewhere")]));
    assert.deepEqual(foreign, {
      ok: false,
      conflicts: [
        "McpBridge higress-system/default already has registry llm-qwen2-1-5b, which llm-gateway-deploy did not put there: remove it or rename the model",
      ],
    });
    const other = mergeBridge(seed, desired, bridge([reg("gemma-2-2b")], { "registries.llm-gateway.io/other": "llm-gemma-2-2b" }));
    assert.equal(other.ok, false);
    if (!other.ok) assert.match(other.conflicts[0] ?? "", /which deployment "other" put there/);
  });
});

describe("removeFromBridge", () => {
  it("does nothing when the bridge is gone or holds nothing of ours", () => {
    assert.deepEqual(removeFromBridge(seed, desired, null), { action: "none" });
    assert.deepEqual(removeFromBridge(seed, desired, bridge([consoleEntry])), { action: "none" });
  });

  it("deletes a bridge we created once our registries were the last", () => {
    const o = merged(seed, null);
    assert.deepEqual(removeFromBridge(seed, desired, o), { action: "delete" });
  });

  it("takes only our registries and record out of a shared bridge", () => {
    const existing = merged(seed, bridge([consoleEntry]));
    const r = removeFromBridge(seed, desired, existing);
    assert.equal(r.action, "apply");
    if (r.action !== "apply") return;
    assert.deepEqual(r.removed, ["llm-qwen2-1-5b", "llm-gemma-2-2b"]);
    assert.deepEqual((r.object["spec"] as { registries: unknown[] }).registries, [consoleEntry]);
    assert.equal(r.object.metadata.annotations, undefined);
    assert.equal(r.object.metadata.labels, undefined);
  });

  it("keeps a bridge we created while another deployment still has registries in it", () => {
    const existing = bridge(
      [reg("qwen2-1-5b"), reg("theirs", "other")],
      {
        "registries.llm-gateway.io/seed": "llm-qwen2-1-5b",
        "registries.llm-gateway.io/other": "llm-theirs",
      },
      OURS,
    );
    const r = removeFromBridge(seed, desired, existing);
    assert.equal(r.action, "apply");
    if (r.action === "apply") {
      assert.deepEqual(r.object.metadata.labels, OURS);
      assert.deepEqual(r.object.metadata.annotations, { "registries.llm-gateway.io/other": "llm-theirs" });
    }
  });
});
