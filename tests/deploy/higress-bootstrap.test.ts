// manifests/higress-bootstrap/: what an operator adds to Higress's Envoy bootstrap. The real Envoy takes the
// override the way Higress's pilot-agent hands it over (--config-yaml over the generated bootstrap), and the merged
// stats_config is the one the local harness and its end-to-end tests run with. That the files are exactly what the
// generator makes is checked with the other manifests (render.test.ts).
//
// Run: node --import tsx --test tests/deploy/higress-bootstrap.test.ts   (needs `make venv`)
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { HIGRESS_BOOTSTRAP_DIR } from "../../deploy-scripts/generators/gen-manifests.ts";
import { BOOTSTRAP_CONFIGMAP_NAME, DEFAULT_GATEWAY_NAMESPACE, HIGRESS_GATEWAY_CONTAINER } from "../../deploy-scripts/names.ts";
import { HIGRESS_STATS_TAGS, statsConfig } from "../../deploy-scripts/render/envoy/stats.ts";
import { BOOTSTRAP_KEY, BOOTSTRAP_OVERRIDE_ENV, bootstrapOverride } from "../../deploy-scripts/render/higress-bootstrap.ts";
import { envoyBinary } from "../harness/envoy.ts";
import { waitFor } from "../harness/net.ts";

type Obj = Record<string, any>;

const configMap = parse(readFileSync(join(HIGRESS_BOOTSTRAP_DIR, "10-configmap.yaml"), "utf8")) as Obj;
const patch = parse(readFileSync(join(HIGRESS_BOOTSTRAP_DIR, "20-gateway-patch.yaml"), "utf8")) as Obj;
const overrideText = configMap["data"][BOOTSTRAP_KEY] as string;

describe("manifests/higress-bootstrap", () => {
  it("is a ConfigMap in Higress's namespace whose file is the override, as JSON", () => {
    assert.equal(configMap["kind"], "ConfigMap");
    assert.equal(configMap["metadata"]["name"], BOOTSTRAP_CONFIGMAP_NAME);
    assert.equal(configMap["metadata"]["namespace"], DEFAULT_GATEWAY_NAMESPACE);
    assert.deepEqual(JSON.parse(overrideText), bootstrapOverride());
  });

  it("adds only what Higress lacks: none of Higress's own tags, no singular stats field that would replace its own", () => {
    const stats = JSON.parse(overrideText).stats_config as Obj;
    assert.deepEqual(Object.keys(stats), ["stats_tags", "histogram_bucket_settings"]);
    const higress = new Set(HIGRESS_STATS_TAGS.map((t) => t.tag_name));
    for (const t of stats["stats_tags"] as { tag_name: string }[]) assert.ok(!higress.has(t.tag_name), t.tag_name);
  });

  it("the patch mounts that ConfigMap into the chart's gateway container and names the file in ISTIO_BOOTSTRAP_OVERRIDE", () => {
    const pod = patch["spec"]["template"]["spec"] as Obj;
    const container = (pod["containers"] as Obj[]).find((c) => c["name"] === HIGRESS_GATEWAY_CONTAINER);
    assert.ok(container, "no higress-gateway container in the patch");
    const mount = (container["volumeMounts"] as Obj[])[0] as Obj;
    const volume = (pod["volumes"] as Obj[]).find((v) => v["name"] === mount["name"]);
    assert.equal(volume?.["configMap"]?.["name"], BOOTSTRAP_CONFIGMAP_NAME);
    const env = (container["env"] as Obj[]).find((e) => e["name"] === BOOTSTRAP_OVERRIDE_ENV);
    assert.equal(env?.["value"], `${mount["mountPath"]}/${BOOTSTRAP_KEY}`);
    // Away from the chart's own SkyWalking override mount.
    assert.notEqual(mount["mountPath"], "/etc/istio/custom-bootstrap");
  });
});

describe("the override in the real Envoy, over a bootstrap with Higress's stats_config", () => {
  let dir = "";
  let envoy: ChildProcess | undefined;
  let log = "";
  let merged: Obj = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "llm-gw-higress-bootstrap-"));
    const base = join(dir, "bootstrap.yaml");
    const adminFile = join(dir, "admin-address");
    // The stats part of Higress's bootstrap: its own tags (use_all_default_tags false), no bucket settings.
    writeFileSync(
      base,
      stringify({
        stats_config: { use_all_default_tags: false, stats_tags: HIGRESS_STATS_TAGS },
        admin: { address: { socket_address: { address: "127.0.0.1", port_value: 0 } } },
      }),
    );
    envoy = spawn(
      envoyBinary(),
      ["-c", base, "--config-yaml", overrideText, "--admin-address-path", adminFile, "--disable-hot-restart", "--log-level", "warn"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    envoy.stdout?.on("data", (d: Buffer) => (log += d.toString()));
    envoy.stderr?.on("data", (d: Buffer) => (log += d.toString()));
    let admin = "";
    await waitFor(
      async () => {
        if (envoy?.exitCode !== null) throw new Error(`Envoy exited during start-up:\n${log.slice(-4000)}`);
        admin = readFileSync(adminFile, "utf8").trim();
        return admin !== "";
      },
      20000,
      "Envoy's admin address",
    );
    const dump = (await (await fetch(`http://${admin}/config_dump`)).json()) as Obj;
    const bootstrap = (dump["configs"] as Obj[]).find((c) => String(c["@type"]).endsWith("BootstrapConfigDump"));
    merged = bootstrap?.["bootstrap"]?.["stats_config"] as Obj;
  });

  after(async () => {
    if (envoy !== undefined && envoy.exitCode === null) {
      const exited = new Promise((r) => envoy?.once("exit", r));
      envoy.kill("SIGTERM");
      await exited;
    }
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("appends our tags to Higress's: the tags the harness runs with (tests/harness/envoy-config.ts)", () => {
    assert.deepEqual(merged["stats_tags"], statsConfig()["stats_tags"]);
    assert.equal(merged["use_all_default_tags"], false, "the override must leave Higress's singular settings alone");
  });

  it("brings the histogram buckets the dashboard's percentiles assume", () => {
    assert.deepEqual(merged["histogram_bucket_settings"], statsConfig()["histogram_bucket_settings"]);
  });
});
