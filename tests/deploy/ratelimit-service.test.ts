// The rate-limit service as the deploy CLI deploys it (quotas mode cluster, service.deploy: true), run for real: the
// pinned envoyproxy/ratelimit (tests/quota/build-ratelimit.sh) with the rendered Deployment's environment and its
// ConfigMap laid out as the kubelet mounts one (the file a symlink through `..data` into a timestamped directory),
// against redis-server. Only the paths (re-rooted under a temporary directory), ports and Redis address differ from
// the cluster. The limit of each request comes with its descriptor, as the plugin sends it.
//
// Run: node --import tsx --test tests/deploy/ratelimit-service.test.ts   (needs `make quota-deps`)
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { renderObjects } from "../../deploy-scripts/render/render.ts";
import { validateSpec } from "../../deploy-scripts/spec.ts";
import { freePort, waitFor } from "../harness/net.ts";
import { ratelimitBinary, startRedis, type Redis } from "../quota/services.ts";
import { REPLICAS_FILE } from "./replica-examples.ts";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The rendered Deployment's container and the ConfigMap it mounts. */
function rendered(): { container: Raw; volumes: Raw[]; configMap: Raw } {
  const r = validateSpec(parse(readFileSync(REPLICAS_FILE, "utf8")));
  if (!r.ok) assert.fail(r.errors.join("\n"));
  const objects = renderObjects(r.spec, { hfTokenSet: false }) as Raw[];
  const d = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "llm-gateway-ratelimit");
  const configMap = objects.find((o) => o.kind === "ConfigMap");
  assert.ok(d && configMap);
  return { container: d.spec.template.spec.containers[0], volumes: d.spec.template.spec.volumes, configMap };
}

/** What the kubelet makes of a ConfigMap volume: <dir>/..<timestamp>/<key>, ..data -> it, <key> -> ..data/<key>. */
function mountConfigMap(dir: string, data: Record<string, string>): void {
  const stamp = "..2026_01_01_00_00_00.000000001";
  mkdirSync(join(dir, stamp), { recursive: true });
  for (const [key, value] of Object.entries(data)) writeFileSync(join(dir, stamp, key), value);
  symlinkSync(stamp, join(dir, "..data"));
  for (const key of Object.keys(data)) symlinkSync(join("..data", key), join(dir, key));
}

interface Service {
  url: string;
  log(): string;
  stop(): Promise<void>;
}

async function startService(root: string, redis: Redis, overrides: Record<string, string> = {}): Promise<Service> {
  const { container, volumes, configMap } = rendered();
  const mount = (container.volumeMounts as Raw[])[0];
  assert.equal((volumes.find((v) => v.name === mount?.name) as Raw | undefined)?.configMap.name, configMap.metadata.name);
  mountConfigMap(join(root, mount?.mountPath), configMap.data);
  const env: Record<string, string> = {};
  for (const e of container.env as { name: string; value: string }[]) env[e.name] = e.value;
  // The cluster's absolute paths, under the temporary root; the local Redis; loopback ports.
  env["RUNTIME_ROOT"] = join(root, env["RUNTIME_ROOT"] ?? "");
  env["REDIS_URL"] = redis.address;
  const [http, grpc, debug] = [await freePort(), await freePort(), await freePort()];
  Object.assign(env, { HOST: "127.0.0.1", PORT: String(http), GRPC_HOST: "127.0.0.1", GRPC_PORT: String(grpc) });
  Object.assign(env, { DEBUG_HOST: "127.0.0.1", DEBUG_PORT: String(debug), LOG_LEVEL: "warn", ...overrides });
  let log = "";
  const child: ChildProcess = spawn(ratelimitBinary(), [], {
    env: { PATH: process.env["PATH"] ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${http}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`ratelimit exited:\n${log}`);
        return (await fetch(`${url}/healthcheck`).catch(() => null))?.status === 200;
      },
      20000,
      "ratelimit's /healthcheck",
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, log: () => log, stop };
}

/** One ShouldRateLimit through the service's JSON endpoint: a descriptor with its own limit, as the plugin sends. */
async function check(service: Service, rule: string, limit: number): Promise<{ status: number; body: string }> {
  const r = await fetch(`${service.url}/json`, {
    method: "POST",
    body: JSON.stringify({
      domain: "llm-gateway",
      descriptors: [
        {
          entries: [
            { key: "rule", value: rule },
            { key: "identity", value: "k-0123456789abcdef" },
            { key: "kind", value: "requests" },
          ],
          // A day: the three calls of a test never straddle a window boundary.
          limit: { requests_per_unit: limit, unit: "DAY" },
        },
      ],
    }),
  });
  return { status: r.status, body: await r.text() };
}

describe("envoyproxy/ratelimit as rendered, with its ConfigMap mounted as the kubelet does", { timeout: 60_000 }, () => {
  let redis: Redis;
  const dirs: string[] = [];
  const root = (): string => {
    const d = mkdtempSync(join(tmpdir(), "llm-gw-ratelimit-mount-"));
    dirs.push(d);
    return d;
  };

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("loads the domain and limits each descriptor by the limit it carries", async () => {
    const service = await startService(root(), redis);
    try {
      const first = await check(service, "team-a", 2);
      assert.equal(first.status, 200, first.body);
      assert.equal(JSON.parse(first.body).overallCode, "OK");
      assert.equal(JSON.parse((await check(service, "team-a", 2)).body).overallCode, "OK");
      const third = await check(service, "team-a", 2);
      assert.equal(third.status, 429, third.body);
      assert.equal(JSON.parse(third.body).overallCode, "OVER_LIMIT");
      // Another rule's counter is its own.
      assert.equal(JSON.parse((await check(service, "team-b", 2)).body).overallCode, "OK");
    } finally {
      await service.stop();
    }
  });

  it("needs RUNTIME_IGNOREDOTFILES: without it the mount's ..data entries load the domain twice and nothing is limited", async () => {
    const service = await startService(root(), redis, { RUNTIME_IGNOREDOTFILES: "false" });
    try {
      const r = await check(service, "team-c", 1);
      assert.equal(r.status, 400, r.body);
      await waitFor(async () => service.log().includes("duplicate domain 'llm-gateway'"), 5000, "the service's log line");
    } finally {
      await service.stop();
    }
  });
});
