// gateway.type envoy: the deployment file rendered as an upstream-Envoy bootstrap, checked by the real Envoy
// (the project's pinned one, .venv): `envoy --mode validate` on what `render` prints, and a running Envoy from the
// same renderer serving and falling back between two vLLM stubs with the plugin fetched over HTTP.
//
// Run: node --import tsx --test tests/deploy/envoy-target.test.ts   (needs `make build venv`)
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { run } from "../../deploy-scripts/cli.ts";
import { pluginCode } from "../../deploy-scripts/render/envoy/plugin-code.ts";
import { ENVOY_SEED_DIR, ENVOY_SEED_FILE, SEED_FILE } from "../../deploy-scripts/generators/gen-manifests.ts";
import { helmCommands } from "../../deploy-scripts/cluster/helm.ts";
import { capture } from "./capture.ts";
import { renderEnvoyYaml, renderObjects } from "../../deploy-scripts/render/render.ts";
import { validateSpec, type DeploySpec } from "../../deploy-scripts/spec.ts";
import { startStub, type StubHandle } from "../backends/vllm-stub.ts";
import { WASM_PATH, envoyBinary } from "../harness/envoy.ts";
import { freePort, waitFor } from "../harness/net.ts";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MANIFEST = join(ENVOY_SEED_DIR, "envoy.yaml");

function envoyRaw(): Raw {
  return parse(readFileSync(ENVOY_SEED_FILE, "utf8")) as Raw;
}

function specFrom(raw: unknown): DeploySpec {
  const r = validateSpec(raw);
  if (!r.ok) assert.fail(`expected a valid file, got:\n${r.errors.join("\n")}`);
  return r.spec;
}

describe("gateway.type envoy: render", () => {
  it("render -f prints the Envoy bootstrap, which is manifests/seed-envoy/envoy.yaml", async () => {
    const c = capture();
    assert.equal(await run(["render", "-f", ENVOY_SEED_FILE], c.io), 0, c.err());
    assert.equal(c.out(), readFileSync(MANIFEST, "utf8"));
    assert.match(c.out(), /^# llm-gateway deployment "seed-envoy" for upstream Envoy/);
  });

  it("is accepted by the real Envoy: envoy --mode validate (the llmaz Service names need not resolve for it)", () => {
    const r = spawnSync(envoyBinary(), ["--mode", "validate", "-c", MANIFEST, "--disable-hot-restart", "--log-level", "warn"], {
      encoding: "utf8",
      timeout: 60000,
    });
    assert.equal(r.status, 0, `envoy --mode validate failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout + r.stderr, /configuration '.*envoy\.yaml' OK/);
  });

  it("routes a model with backups to an aggregate cluster with a retry policy; every endpoint names its model", () => {
    const b = parse(readFileSync(MANIFEST, "utf8")) as Raw;
    const clusters = b.static_resources.clusters as Raw[];
    const byName = (n: string): Raw => clusters.find((x) => x.name === n) ?? assert.fail(`no cluster ${n}`);
    const qwen = byName("outbound|8080||llm-qwen2-1-5b.dns");
    assert.equal(qwen.type, "STRICT_DNS");
    const endpoint = qwen.load_assignment.endpoints[0].lb_endpoints[0];
    assert.deepEqual(endpoint.endpoint.address.socket_address, { address: "qwen2-1-5b-lb.default.svc.cluster.local", port_value: 8080 });
    assert.deepEqual(endpoint.metadata, {
      filter_metadata: { "llm-gateway": { model: "qwen2-1-5b", cluster: "outbound|8080||llm-qwen2-1-5b.dns" } },
    });
    const aggregate = byName("outbound|8080||llm-qwen2-1-5b.fallback");
    assert.equal(aggregate.lb_policy, "CLUSTER_PROVIDED");
    assert.equal(aggregate.cluster_type.name, "envoy.clusters.aggregate");
    assert.deepEqual(aggregate.cluster_type.typed_config.clusters, [
      "outbound|8080||llm-qwen2-1-5b.dns",
      "outbound|8080||llm-gemma-2-2b.dns",
    ]);

    const hcm = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const vhost = hcm.route_config.virtual_hosts[0];
    assert.equal(vhost.include_request_attempt_count, true);
    assert.deepEqual(vhost.domains, ["llm.example.com"]);
    const [qwenRoute, gemmaRoute] = vhost.routes as Raw[];
    assert.deepEqual(qwenRoute?.match.headers, [{ name: "x-higress-llm-model", string_match: { exact: "qwen2-1-5b" } }]);
    assert.equal(qwenRoute?.route.cluster, "outbound|8080||llm-qwen2-1-5b.fallback");
    assert.equal(qwenRoute?.route.retry_policy.num_retries, 1);
    assert.equal(qwenRoute?.route.retry_policy.retry_priority.name, "envoy.retry_priorities.previous_priorities");
    assert.equal(gemmaRoute?.route.cluster, "outbound|8080||llm-gemma-2-2b.dns");
    assert.equal(gemmaRoute?.route.retry_policy, undefined);

    const [request, router] = hcm.http_filters as Raw[];
    const attempt = router?.typed_config.upstream_http_filters[0].typed_config.config;
    const requestConfig = request?.typed_config.config;
    assert.deepEqual([requestConfig.root_id, attempt.root_id], ["llm-gateway", "llm-gateway-attempt"]);
    assert.deepEqual(requestConfig.vm_config, attempt.vm_config, "one VM per worker serves both stages");
    for (const c of [requestConfig, attempt]) {
      assert.equal(c.failure_policy, "FAIL_RELOAD");
      assert.equal(c.allow_on_headers_stop_iteration, true);
    }
    const config = JSON.parse(requestConfig.configuration.value);
    assert.equal(config.fallback.mechanism, "envoy");
    assert.deepEqual(JSON.parse(attempt.configuration.value), { ...config, stage: "attempt" });
    assert.equal(router?.typed_config.upstream_http_filters[1].name, "envoy.filters.http.upstream_codec");
    assert.deepEqual(requestConfig.vm_config.code.remote.http_uri.uri, "https://plugins.example.com/llm-gateway/0.1.0/plugin.wasm");
  });

  it("render --kubernetes prints only the llmaz objects, which is all apply applies", async () => {
    const c = capture();
    assert.equal(await run(["render", "--kubernetes", "-f", ENVOY_SEED_FILE], c.io), 0, c.err());
    const kinds = c
      .out()
      .split(/^---$/m)
      .slice(1)
      .map((d) => `${(parse(d) as Raw).kind}/${(parse(d) as Raw).metadata.name}`);
    assert.deepEqual(kinds, ["OpenModel/qwen2-1-5b", "Playground/qwen2-1-5b", "OpenModel/gemma-2-2b", "Playground/gemma-2-2b"]);
    const spec = specFrom(envoyRaw());
    assert.deepEqual(
      renderObjects(spec, { hfTokenSet: false }).map((o) => o.kind),
      ["OpenModel", "Playground", "OpenModel", "Playground"],
    );
  });

  it("apply --dry-run prints the Kubernetes objects and where the bootstrap would go", async () => {
    const c = capture();
    assert.equal(await run(["apply", "--dry-run", "--envoy-config", "/tmp/x.yaml", "-f", ENVOY_SEED_FILE], c.io), 0, c.err());
    assert.match(
      c.out(),
      /^# gateway\.type envoy: apply applies these Kubernetes objects only; the Envoy bootstrap would be written to \/tmp\/x\.yaml/,
    );
    assert.ok(!c.out().includes("static_resources"));
    assert.match(c.out(), /^kind: Playground$/m);
  });

  it("refuses the Envoy-only options for a Higress file, naming the gateway type", async () => {
    for (const argv of [
      ["render", "--kubernetes", "-f", SEED_FILE],
      ["apply", "--envoy-config", "e.yaml", "-f", SEED_FILE],
    ]) {
      const c = capture();
      assert.equal(await run(argv, c.io), 2);
      assert.match(
        c.err(),
        /^error: (render|apply): --(kubernetes|envoy-config) is only for gateway\.type envoy \(.*seed\.yaml deploys to higress\)\n/,
      );
    }
  });

  it("--install-helm would install llmaz only", () => {
    const cmds = helmCommands(specFrom(envoyRaw()));
    assert.deepEqual(
      cmds.map((c) => c.slice(0, 3).join(" ")),
      ["upgrade --install llmaz"],
    );
  });
});

describe("gateway.type envoy: where Envoy gets the plugin", () => {
  const sha = "ab".repeat(32);

  it("file:///path is local code", () => {
    assert.deepEqual(pluginCode("file:///opt/llm-gateway/plugin.wasm", undefined), {
      code: { local: { filename: "/opt/llm-gateway/plugin.wasm" } },
      clusters: [],
    });
  });

  it("http:// is remote code with the sha256, fetched through a cluster of its own", () => {
    const p = pluginCode("http://10.0.0.7:8000/p/plugin.wasm", sha) as Raw;
    assert.deepEqual(p.code.remote.http_uri, {
      uri: "http://10.0.0.7:8000/p/plugin.wasm",
      cluster: "llm-gateway-plugin-source",
      timeout: "30s",
    });
    assert.equal(p.code.remote.sha256, sha);
    assert.deepEqual(p.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, {
      address: "10.0.0.7",
      port_value: 8000,
    });
    assert.equal(p.clusters[0].transport_socket, undefined);
  });

  it("https:// adds TLS with the host as SNI, port 443 by default", () => {
    const p = pluginCode("https://plugins.example.com/plugin.wasm", sha) as Raw;
    assert.equal(p.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, 443);
    assert.equal(p.clusters[0].transport_socket.typed_config.sni, "plugins.example.com");
  });

  it("a file:// plugin renders without a fetch cluster", () => {
    const raw = envoyRaw();
    raw["plugin"] = { url: "file:///etc/envoy/plugin.wasm" };
    const b = parse(renderEnvoyYaml(specFrom(raw))) as Raw;
    assert.ok(!(b.static_resources.clusters as Raw[]).some((c) => c.name === "llm-gateway-plugin-source"));
    const filter = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0];
    assert.deepEqual(filter.typed_config.config.vm_config.code, { local: { filename: "/etc/envoy/plugin.wasm" } });
  });
});

describe("gateway.type envoy: validation", () => {
  // Each case: how the Envoy example is broken, and the exact line the user gets for it.
  const cases: { name: string; break: (r: Raw) => void; message: string }[] = [
    {
      name: "an oci:// plugin",
      break: (r) => (r["plugin"].url = "oci://ghcr.io/llm-gateway/plugin:0.1.0"),
      message:
        'plugin.url: must be an http(s):// URL of plugin.wasm or a file:/// path for gateway.type envoy (plain Envoy cannot fetch OCI images), got "oci://ghcr.io/llm-gateway/plugin:0.1.0"',
    },
    {
      name: "an http(s):// plugin without sha256",
      break: (r) => delete r["plugin"].sha256,
      message:
        "plugin.sha256: is required with an http(s):// plugin.url for gateway.type envoy (Envoy checks the fetched code against it), got nothing",
    },
    {
      name: "a relative file:// plugin",
      break: (r) => (r["plugin"].url = "file://plugin.wasm"),
      message: 'plugin.url: must be file:///absolute/path/plugin.wasm (a path on Envoy\'s host), got "file://plugin.wasm"',
    },
    {
      name: "an image pull policy",
      break: (r) => (r["plugin"].imagePullPolicy = "IfNotPresent"),
      message: 'plugin.imagePullPolicy: only for gateway.type higress (Envoy pulls no images), got "IfNotPresent"',
    },
    {
      name: "a Higress namespace",
      break: (r) => (r["gateway"].namespace = "higress-system"),
      message: 'gateway.namespace: only for gateway.type higress (where Higress runs), got "higress-system"',
    },
    {
      name: "an ingress class",
      break: (r) => (r["gateway"].ingressClassName = "higress"),
      message: 'gateway.ingressClassName: only for gateway.type higress (Higress\'s Ingresses), got "higress"',
    },
    {
      name: "Higress's global custom_response filter",
      break: (r) => (r["fallback"].globalFilter = true),
      message: "fallback.globalFilter: only for gateway.type higress (Higress's native fallback), got true",
    },
    {
      name: "a port out of range",
      break: (r) => (r["gateway"].listenPort = 70000),
      message: "gateway.listenPort: must be a port number (1 to 65535), got 70000",
    },
    {
      name: "admin port 0",
      break: (r) => (r["gateway"].adminPort = 0),
      message: "gateway.adminPort: must be a positive integer, got 0",
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      const raw = envoyRaw();
      c.break(raw);
      const r = validateSpec(raw);
      assert.equal(r.ok, false, "expected the file to be refused");
      if (!r.ok) assert.deepEqual(r.errors, [c.message]);
    });
  }

  it("takes a file:/// plugin without sha256, and the example as it is", () => {
    const raw = envoyRaw();
    raw["plugin"] = { url: "file:///etc/envoy/plugin.wasm" };
    assert.equal(specFrom(raw).gateway.type, "envoy");
    assert.deepEqual(specFrom(envoyRaw()).gateway, {
      type: "envoy",
      namespace: "higress-system",
      host: "llm.example.com",
      ingressClassName: "higress",
      service: "higress-gateway",
      listenPort: 10000,
      adminPort: 9901,
    });
  });

  it("prints one line per bad field from the CLI, exit 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llm-gw-envoy-spec-"));
    try {
      const raw = envoyRaw();
      raw["plugin"].url = "oci://r/p:1";
      raw["gateway"].service = "higress-gateway";
      const file = join(dir, "bad.yaml");
      writeFileSync(file, JSON.stringify(raw));
      const c = capture();
      assert.equal(await run(["render", "-f", file], c.io), 2);
      assert.deepEqual(c.err().trim().split("\n"), [
        `error: ${file}: gateway.service: only for gateway.type higress (Higress's gateway Service), got "higress-gateway"`,
        `error: ${file}: plugin.url: must be an http(s):// URL of plugin.wasm or a file:/// path for gateway.type envoy (plain Envoy cannot fetch OCI images), got "oci://r/p:1"`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("gateway.type envoy: a running Envoy from the rendered bootstrap", () => {
  // The example with loopback stand-ins for what differs on a cluster: the vLLM stubs instead of the llmaz
  // Services (EnvoyRenderOptions.addresses), free ports, and the plugin served over HTTP by this test with its
  // real sha256, so Envoy's remote code source is what loads it.
  let wasmServer: Server;
  let envoy: ChildProcess | undefined;
  let envoyLog = "";
  let url = "";
  let dir = "";
  const stubs = new Map<string, StubHandle>();

  before(async () => {
    const wasm = readFileSync(WASM_PATH);
    wasmServer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/wasm" });
      res.end(wasm);
    });
    await new Promise<void>((r) => wasmServer.listen(0, "127.0.0.1", r));
    const wasmPort = (wasmServer.address() as { port: number }).port;
    for (const model of ["qwen2-1-5b", "gemma-2-2b"]) stubs.set(model, await startStub({ model }));

    const raw = envoyRaw();
    const listenPort = await freePort();
    const adminPort = await freePort();
    raw["gateway"] = { type: "envoy", listenPort, adminPort };
    raw["plugin"].url = `http://127.0.0.1:${wasmPort}/llm-gateway/plugin.wasm`;
    raw["plugin"].sha256 = createHash("sha256").update(wasm).digest("hex");
    const addresses = Object.fromEntries([...stubs].map(([model, s]) => [model, { address: "127.0.0.1", port: s.port }]));
    dir = mkdtempSync(join(tmpdir(), "llm-gw-envoy-target-"));
    const config = join(dir, "envoy.yaml");
    writeFileSync(config, renderEnvoyYaml(specFrom(raw), { addresses }));
    envoy = spawn(
      envoyBinary(),
      ["-c", config, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn", "--component-log-level", "wasm:info"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    envoy.stdout?.on("data", (d: Buffer) => (envoyLog += d.toString()));
    envoy.stderr?.on("data", (d: Buffer) => (envoyLog += d.toString()));
    url = `http://127.0.0.1:${listenPort}`;
    // The plugin answers GET /v1/models itself: it was fetched, checked and configured.
    await waitFor(
      async () => {
        if (envoy?.exitCode !== null) throw new Error(`Envoy exited during start-up:\n${envoyLog.slice(-4000)}`);
        const r = await fetch(`${url}/v1/models`).catch(() => null);
        return r !== null && r.status === 200;
      },
      30000,
      "Envoy with the plugin fetched over HTTP",
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${envoyLog.slice(-4000)}`);
    });
  });

  after(async () => {
    if (envoy !== undefined && envoy.exitCode === null) {
      const exited = new Promise((r) => envoy?.once("exit", r));
      envoy.kill("SIGTERM");
      await exited;
    }
    await new Promise((r) => wasmServer?.close(r));
    for (const s of stubs.values()) await s.close();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  const chat = (model: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "Hello" }] }),
      signal: AbortSignal.timeout(15000),
    });

  it("lists the models and routes each request to its model's cluster", async () => {
    const list = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(
      list.data.map((m) => m.id),
      ["qwen2-1-5b", "gemma-2-2b"],
    );
    for (const model of ["qwen2-1-5b", "gemma-2-2b"]) {
      const r = await chat(model);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-stub-model"), model);
      assert.match(await r.text(), /data: \[DONE\]\n\n$/);
    }
  });

  it("falls back to the backup through Envoy's retry when the primary answers 503, streaming, with the backup's name in the body", async () => {
    const gemmaBefore = stubs.get("gemma-2-2b")?.hits() ?? 0;
    const r = await chat("qwen2-1-5b", { "x-stub-status": "503", "x-stub-target": "qwen2-1-5b" });
    // The stub answers 404 to a model name it does not serve: 200 means the attempt stage renamed it.
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("x-stub-model"), "gemma-2-2b");
    assert.equal(r.headers.get("x-llm-gateway-model"), "gemma-2-2b");
    assert.equal(r.headers.get("x-llm-gateway-fallback-from"), "qwen2-1-5b");
    assert.match(r.headers.get("content-type") ?? "", /^text\/event-stream/);
    assert.match(await r.text(), /data: \[DONE\]\n\n$/);
    assert.equal((stubs.get("gemma-2-2b")?.hits() ?? 0) - gemmaBefore, 1);
  });

  it("answers a request without a known model from the plugin, and one with no route from the last route", async () => {
    const r = await chat("llama");
    assert.equal(r.status, 404);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, "model_not_found");
    const none = await fetch(`${url}/other`);
    assert.equal(none.status, 404);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, "no_route");
  });
});
