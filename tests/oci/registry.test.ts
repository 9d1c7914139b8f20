// `make image` / `make push` against a real registry (Debian's docker-registry = CNCF distribution
// 2.8), read back by an independent client (skopeo), plus the failure modes a user meets.
// Needs: tests/oci/install-deps.sh. Run: node --import tsx --test tests/oci/registry.test.ts

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import {
  cli,
  dockerConfig,
  fakeWasm,
  freePort,
  skopeoPull,
  startFakeHttp,
  startJunkTcp,
  startRegistry,
  startTokenService,
  tempDir,
  type Registry,
  type TokenService,
} from "./harness.ts";

const SPEC = "deploy-scripts/oci/spec.yaml";
const TAG = "0.1.0";
const USER = "ci-user";
const PASSWORD = "s3cret-Pa55-do-not-print";

interface Manifest {
  mediaType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
}

const work = tempDir("oci-test");
const wasmPath = join(work, "plugin.wasm");
const readmePath = join(work, "README.md");
const wasm = fakeWasm(200_000, "llm-gateway");
writeFileSync(wasmPath, wasm);
writeFileSync(readmePath, "# llm-gateway\n\nTest README for the image layer.\n");
/** DOCKER_CONFIG with no credentials, so the machine's ~/.docker never leaks into a test. */
const emptyDockerConfig = tempDir("docker-config-empty");
const baseEnv: NodeJS.ProcessEnv = { PATH: process.env["PATH"] ?? "", DOCKER_CONFIG: emptyDockerConfig };

function layoutFiles(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else files.set(path, readFileSync(join(dir, path)));
    }
  };
  walk("");
  return files;
}

function readOciManifest(dir: string, tag: string): { digest: string; manifest: Manifest } {
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const entry = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  assert.ok(entry, `no manifest tagged ${tag} in ${dir}/index.json`);
  const blob = (digest: string): Buffer => readFileSync(join(dir, "blobs", "sha256", digest.slice(7)));
  return { digest: entry.digest, manifest: JSON.parse(blob(entry.digest).toString("utf8")) as Manifest };
}

/** The "pushed …" line: push prints it, then the lines that say what to pin. */
function pushedLine(out: string[]): string | undefined {
  return out.find((l) => /^pushed \S+@sha256:/.test(l));
}

function blobOf(dir: string, digest: string): Buffer {
  return readFileSync(join(dir, "blobs", "sha256", digest.slice(7)));
}

async function buildLayout(out: string, env: NodeJS.ProcessEnv = baseEnv): Promise<string[]> {
  const r = await cli(["image", "--wasm", wasmPath, "--readme", readmePath, "--spec", SPEC, "--out", out, "--tag", TAG], env);
  assert.equal(r.code, 0, r.err.join("\n"));
  return r.out;
}

const layout = join(work, "oci");
let builtDigest = "";

before(async () => {
  const out = await buildLayout(layout);
  const line = out.find((l) => l.startsWith("manifest "));
  assert.ok(line !== undefined, out.join("\n"));
  builtDigest = line.split(" ")[1] ?? "";
  assert.match(builtDigest, /^sha256:[0-9a-f]{64}$/);
});

after(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(emptyDockerConfig, { recursive: true, force: true });
});

describe("image", () => {
  test("two builds of the same inputs give byte-identical layouts and the same digest", async () => {
    const second = join(work, "oci-again");
    await buildLayout(second);
    const a = layoutFiles(layout);
    const b = layoutFiles(second);
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [path, data] of a) assert.ok(data.equals(b.get(path) ?? Buffer.alloc(0)), `${path} differs`);
    assert.equal(readOciManifest(second, TAG).digest, builtDigest);
  });

  test("SOURCE_DATE_EPOCH changes only the tar mtime, so the digest changes", async () => {
    const dated = join(work, "oci-dated");
    await buildLayout(dated, { ...baseEnv, SOURCE_DATE_EPOCH: "1700000000" });
    assert.notEqual(readOciManifest(dated, TAG).digest, builtDigest);
    const { manifest } = readOciManifest(dated, TAG);
    const listing = execFileSync(
      "tar",
      ["--numeric-owner", "--full-time", "-tvzf", join(dated, "blobs", "sha256", (manifest.layers[2]?.digest ?? "").slice(7))],
      {
        encoding: "utf8",
        env: { ...process.env, TZ: "UTC" },
      },
    );
    assert.match(listing, /2023-11-14 22:13:20 plugin\.wasm/);
  });

  test("layout has oci-layout, an index tagged with ref.name, and the Higress layer order", () => {
    assert.deepEqual(JSON.parse(readFileSync(join(layout, "oci-layout"), "utf8")), { imageLayoutVersion: "1.0.0" });
    const { manifest } = readOciManifest(layout, TAG);
    assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(manifest.config.mediaType, "application/vnd.oci.image.config.v1+json");
    assert.deepEqual(
      manifest.layers.map((l) => [l.mediaType, l.annotations?.["org.opencontainers.image.title"]]),
      [
        ["application/vnd.module.wasm.doc.v1+markdown", "README.md"],
        ["application/vnd.module.wasm.spec.v1+yaml", "spec.yaml"],
        ["application/vnd.oci.image.layer.v1.tar+gzip", "plugin.tar.gz"],
      ],
    );
    assert.ok(blobOf(layout, manifest.layers[0]?.digest ?? "").equals(readFileSync(readmePath)));
    assert.ok(blobOf(layout, manifest.layers[1]?.digest ?? "").equals(readFileSync(SPEC)));
  });

  test("config is a valid image config whose diff_ids are the uncompressed layers", () => {
    const { manifest } = readOciManifest(layout, TAG);
    const config = JSON.parse(blobOf(layout, manifest.config.digest).toString("utf8")) as {
      architecture: string;
      os: string;
      rootfs: { type: string; diff_ids: string[] };
    };
    assert.equal(config.architecture, "wasm");
    assert.equal(config.os, "wasip1");
    assert.equal(config.rootfs.type, "layers");
    const tar = gunzipSync(blobOf(layout, manifest.layers[2]?.digest ?? ""));
    const sha = (b: Buffer): string => "sha256:" + execFileSync("sha256sum", { input: b, encoding: "utf8" }).split(" ")[0];
    assert.deepEqual(config.rootfs.diff_ids, [manifest.layers[0]?.digest, manifest.layers[1]?.digest, sha(tar)]);
  });

  test("plugin layer holds only plugin.wasm at the root: mode 0644, owner 0/0, mtime 0 (GNU tar reads it)", () => {
    const { manifest } = readOciManifest(layout, TAG);
    const blob = join(layout, "blobs", "sha256", (manifest.layers[2]?.digest ?? "").slice(7));
    const listing = execFileSync("tar", ["--numeric-owner", "--full-time", "-tvzf", blob], {
      encoding: "utf8",
      env: { ...process.env, TZ: "UTC" },
    })
      .trim()
      .split("\n");
    assert.equal(listing.length, 1, listing.join("\n"));
    assert.match(listing[0] ?? "", new RegExp(`^-rw-r--r-- 0/0 +${wasm.length} 1970-01-01 00:00:00 plugin\\.wasm$`));
    const extracted = join(work, "extract-local");
    mkdirSync(extracted);
    execFileSync("tar", ["-xzf", blob, "-C", extracted]);
    assert.ok(readFileSync(join(extracted, "plugin.wasm")).equals(wasm));
  });

  test("refuses a file that is not WebAssembly, and a bad spec.yaml, with one line each", async () => {
    const notWasm = join(work, "not.wasm");
    writeFileSync(notWasm, "MZ this is not wasm");
    const r1 = await cli(["image", "--wasm", notWasm, "--readme", readmePath, "--spec", SPEC, "--out", join(work, "x1")], baseEnv);
    assert.equal(r1.code, 1);
    assert.deepEqual(r1.err, ["oci: error: plugin.wasm is not a WebAssembly module (missing \\0asm magic)"]);
    const badSpec = join(work, "bad-spec.yaml");
    writeFileSync(badSpec, "apiVersion: 1.0.0\ninfo: {name: x}\n");
    const r2 = await cli(["image", "--wasm", wasmPath, "--readme", readmePath, "--spec", badSpec, "--out", join(work, "x2")], baseEnv);
    assert.equal(r2.code, 1);
    assert.equal(r2.err.length, 1);
    assert.match(r2.err[0] ?? "", /bad-spec\.yaml is not a usable plugin spec: info\.category: missing/);
  });

  test("refuses to overwrite a directory that is not an OCI layout", async () => {
    const victim = join(work, "precious");
    mkdirSync(victim);
    writeFileSync(join(victim, "keep.txt"), "keep");
    const r = await cli(["image", "--wasm", wasmPath, "--readme", readmePath, "--spec", SPEC, "--out", victim], baseEnv);
    assert.equal(r.code, 1);
    assert.match(r.err[0] ?? "", /exists and is not an OCI layout; refusing to overwrite it/);
    assert.equal(readFileSync(join(victim, "keep.txt"), "utf8"), "keep");
  });
});

describe("push to a registry without auth", () => {
  let registry: Registry;
  let started: Registry | undefined;
  before(async () => {
    registry = started = await startRegistry({ kind: "none" });
  });
  after(async () => {
    await started?.stop();
  });

  test("skopeo pulls back the same manifest, media types, layer order and plugin.wasm bytes", async () => {
    const ref = `${registry.host}/plugins/llm-gateway:${TAG}`;
    const r = await cli(["push", "--layout", layout, "--image", ref], baseEnv);
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.equal(pushedLine(r.out), `pushed ${ref}@${builtDigest} (4 uploaded, 0 already present)`);

    const pulled = join(work, "pulled");
    skopeoPull(ref, pulled, TAG);
    const { digest, manifest } = readOciManifest(pulled, TAG);
    assert.equal(digest, builtDigest, "the registry and skopeo kept the manifest bytes");
    assert.equal(manifest.config.mediaType, "application/vnd.oci.image.config.v1+json");
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [
        "application/vnd.module.wasm.doc.v1+markdown",
        "application/vnd.module.wasm.spec.v1+yaml",
        "application/vnd.oci.image.layer.v1.tar+gzip",
      ],
    );
    const last = manifest.layers.at(-1);
    assert.ok(last);
    const extracted = join(work, "extract-pulled");
    mkdirSync(extracted);
    execFileSync("tar", ["-xzf", join(pulled, "blobs", "sha256", last.digest.slice(7)), "-C", extracted]);
    assert.deepEqual(readdirSync(extracted), ["plugin.wasm"]);
    assert.ok(readFileSync(join(extracted, "plugin.wasm")).equals(wasm), "plugin.wasm differs after the round trip");
    assert.ok(blobOf(pulled, manifest.layers[1]?.digest ?? "").equals(readFileSync(SPEC)));
  });

  test("a second push finds every blob with HEAD and uploads nothing", async () => {
    const ref = `${registry.host}/plugins/llm-gateway`; // no tag: the layout's ref name is used
    const r = await cli(["push", "--layout", layout, "--image", ref], baseEnv);
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.equal(r.out.filter((l) => l.startsWith("exists ")).length, 4);
    assert.equal(pushedLine(r.out), `pushed ${ref}:${TAG}@${builtDigest} (0 uploaded, 4 already present)`);
  });

  test("the sha256 to pin is the manifest digest: the registry's Docker-Content-Digest and the sha256 of the manifest bytes it serves, not plugin.wasm's", async () => {
    const ref = `${registry.host}/plugins/pinned:${TAG}`;
    const r = await cli(["push", "--layout", layout, "--image", ref], baseEnv);
    assert.equal(r.code, 0, r.err.join("\n"));
    const pin = r.out.find((l) => l.startsWith("pin "));
    assert.ok(pin !== undefined, r.out.join("\n"));
    const hex = /plugin\.sha256: "([0-9a-f]{64})"/.exec(pin)?.[1];
    assert.ok(hex !== undefined, pin);
    assert.ok(r.out.includes(`         or plugin.url: oci://${registry.host}/plugins/pinned@sha256:${hex}`), r.out.join("\n"));

    const answer = await fetch(`http://${registry.host}/v2/plugins/pinned/manifests/${TAG}`, {
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(answer.status, 200);
    const served = Buffer.from(await answer.arrayBuffer());
    assert.equal(answer.headers.get("docker-content-digest"), `sha256:${hex}`);
    assert.equal(createHash("sha256").update(served).digest("hex"), hex);
    assert.equal(`sha256:${hex}`, builtDigest);
    assert.notEqual(hex, createHash("sha256").update(wasm).digest("hex"), "plugin.wasm's own sha256 is not what Higress compares");
  });

  test("the CLI as a process prints the digest and exits 0", () => {
    const p = spawnSync(
      process.execPath,
      ["--import", "tsx", "deploy-scripts/oci/cli.ts", "push", "--layout", layout, "--image", `${registry.host}/other/name:v1`],
      {
        encoding: "utf8",
        env: { ...process.env, DOCKER_CONFIG: emptyDockerConfig },
      },
    );
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, new RegExp(`pushed ${registry.host}/other/name:v1@${builtDigest}`));
  });
});

describe("push to a registry with htpasswd basic auth", () => {
  let registry: Registry;
  let started: Registry | undefined;
  before(async () => {
    registry = started = await startRegistry({ kind: "htpasswd", user: USER, password: PASSWORD });
  });
  after(async () => {
    await started?.stop();
  });

  test("without credentials: one line saying auth is required and where credentials were looked for", async () => {
    const r = await cli(["push", "--layout", layout, "--image", `${registry.host}/p/x:${TAG}`], baseEnv);
    assert.equal(r.code, 1);
    assert.deepEqual(r.err, [
      `oci: error: registry ${registry.host} requires authentication (Basic realm "test-realm") but there are no credentials: ` +
        `no auths entry for ${registry.host} in ${join(emptyDockerConfig, "config.json")} (set DOCKER_CONFIG or run docker login)`,
    ]);
  });

  test("with wrong credentials: one line saying they were rejected, password never printed", async () => {
    const cfg = dockerConfig({ [registry.host]: { user: USER, password: "wrong-password" } });
    try {
      const r = await cli(["push", "--layout", layout, "--image", `${registry.host}/p/x:${TAG}`], { ...baseEnv, DOCKER_CONFIG: cfg });
      assert.equal(r.code, 1);
      assert.equal(r.err.length, 1);
      assert.match(
        r.err[0] ?? "",
        new RegExp(
          `^oci: error: registry ${registry.host} rejected the credentials from ${join(cfg, "config.json")} \\(API check: UNAUTHORIZED: authentication required\\)$`,
        ),
      );
      assert.ok(!r.err.concat(r.out).join("\n").includes("wrong-password"));
    } finally {
      rmSync(cfg, { recursive: true, force: true });
    }
  });

  test("with the right credentials from DOCKER_CONFIG (scheme-prefixed key): push succeeds and skopeo reads it", async () => {
    const cfg = dockerConfig({ [`http://${registry.host}`]: { user: USER, password: PASSWORD } });
    try {
      const ref = `${registry.host}/plugins/llm-gateway:${TAG}`;
      const r = await cli(["push", "--layout", layout, "--image", ref], { ...baseEnv, DOCKER_CONFIG: cfg });
      assert.equal(r.code, 0, r.err.join("\n"));
      assert.equal(pushedLine(r.out), `pushed ${ref}@${builtDigest} (4 uploaded, 0 already present)`);
      assert.ok(!r.out.join("\n").includes(PASSWORD));
      const pulled = join(work, "pulled-basic");
      skopeoPull(ref, pulled, TAG, { user: USER, password: PASSWORD });
      assert.equal(readOciManifest(pulled, TAG).digest, builtDigest);
    } finally {
      rmSync(cfg, { recursive: true, force: true });
    }
  });
});

describe("push to a registry with token (Bearer) auth", () => {
  let tokens: TokenService;
  let registry: Registry;
  let startedTokens: TokenService | undefined;
  let started: Registry | undefined;
  before(async () => {
    tokens = startedTokens = await startTokenService(USER, PASSWORD);
    registry = started = await startRegistry({
      kind: "token",
      realm: tokens.realm,
      service: tokens.service,
      issuer: tokens.issuer,
      certPem: tokens.certPem,
    });
  });
  after(async () => {
    // Stop whatever did start, even if the other half failed to.
    await started?.stop();
    await startedTokens?.stop();
  });

  test("right credentials: token with pull,push scope, push succeeds", async () => {
    const cfg = dockerConfig({ [registry.host]: { user: USER, password: PASSWORD } });
    try {
      const ref = `${registry.host}/plugins/llm-gateway:${TAG}`;
      const r = await cli(["push", "--layout", layout, "--image", ref], { ...baseEnv, DOCKER_CONFIG: cfg });
      assert.equal(r.code, 0, r.err.join("\n"));
      assert.equal(pushedLine(r.out), `pushed ${ref}@${builtDigest} (4 uploaded, 0 already present)`);
      assert.ok(
        tokens.requests.some((l) => l.includes("scope=repository%3Aplugins%2Fllm-gateway%3Apull%2Cpush")),
        tokens.requests.join("\n"),
      );
    } finally {
      rmSync(cfg, { recursive: true, force: true });
    }
  });

  test("wrong credentials: the token service's refusal is reported", async () => {
    const cfg = dockerConfig({ [registry.host]: { user: USER, password: "nope" } });
    try {
      const r = await cli(["push", "--layout", layout, "--image", `${registry.host}/p/x:${TAG}`], { ...baseEnv, DOCKER_CONFIG: cfg });
      assert.equal(r.code, 1);
      assert.deepEqual(r.err, [
        `oci: error: token service ${tokens.host} rejected the credentials from ${join(cfg, "config.json")} (UNAUTHORIZED: invalid username or password)`,
      ]);
    } finally {
      rmSync(cfg, { recursive: true, force: true });
    }
  });

  test("no credentials: the anonymous token is not enough and the message says credentials are missing", async () => {
    const r = await cli(["push", "--layout", layout, "--image", `${registry.host}/p/x:${TAG}`], baseEnv);
    assert.equal(r.code, 1);
    assert.equal(r.err.length, 1);
    assert.match(
      r.err[0] ?? "",
      new RegExp(
        `^oci: error: registry ${registry.host} requires authentication \\(.*\\) but there are no credentials: no auths entry for ${registry.host}`,
      ),
    );
  });
});

describe("push failures against servers that are not a working registry", () => {
  test("nothing listening: unreachable", async () => {
    const port = await freePort();
    const r = await cli(["push", "--layout", layout, "--image", `127.0.0.1:${port}/p/x:${TAG}`], baseEnv);
    assert.equal(r.code, 1);
    assert.deepEqual(r.err, [`oci: error: registry 127.0.0.1:${port} unreachable: ECONNREFUSED (GET http://127.0.0.1:${port}/v2/)`]);
  });

  test("registry refusing the upload with 403 and an error JSON: refusal summarised", async () => {
    const server = await startFakeHttp((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(200, { "content-type": "application/json", "docker-distribution-api-version": "registry/2.0" });
        res.end("{}");
      } else if (req.method === "HEAD") {
        res.writeHead(404);
        res.end();
      } else {
        res.writeHead(403, { "content-type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "DENIED", message: "requested access to the resource is denied", detail: null }] }));
      }
    });
    try {
      const r = await cli(["push", "--layout", layout, "--image", `${server.host}/p/x:${TAG}`], baseEnv);
      assert.equal(r.code, 1);
      assert.equal(r.err.length, 1);
      assert.match(
        r.err[0] ?? "",
        new RegExp(
          `^oci: error: registry ${server.host} refused start upload of sha256:[0-9a-f]{12} \\(POST /v2/p/x/blobs/uploads/\\): 403 Forbidden: DENIED: requested access to the resource is denied$`,
        ),
      );
    } finally {
      await server.stop();
    }
  });

  test("server answering 200 text/html junk: not a registry", async () => {
    const server = await startFakeHttp((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html><body><h1>Welcome to nginx!</h1></body></html>");
    });
    try {
      const r = await cli(["push", "--layout", layout, "--image", `${server.host}/p/x:${TAG}`], baseEnv);
      assert.equal(r.code, 1);
      assert.deepEqual(r.err, [
        `oci: error: http://${server.host} does not look like an OCI registry: GET /v2/ answered 200 text/html: <html><body><h1>Welcome to nginx!</h1></body></html>`,
      ]);
    } finally {
      await server.stop();
    }
  });

  test("registry-looking server answering the manifest PUT with 200 junk: unexpected answer", async () => {
    const server = await startFakeHttp((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      } else if (req.method === "HEAD") {
        res.writeHead(404);
        res.end();
      } else if (req.method === "POST") {
        res.writeHead(202, { location: "/v2/p/x/blobs/uploads/abc?_state=xyz" });
        res.end();
      } else if (req.url?.startsWith("/v2/p/x/blobs/uploads/abc?_state=xyz&digest=sha256%3A") === true) {
        res.writeHead(201);
        res.end();
      } else {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<p>ok</p>");
      }
    });
    try {
      const r = await cli(["push", "--layout", layout, "--image", `${server.host}/p/x:${TAG}`], baseEnv);
      assert.equal(r.code, 1);
      assert.deepEqual(r.err, [
        `oci: error: registry ${server.host} sent an unexpected answer to manifest upload for tag ${TAG} (PUT /v2/p/x/manifests/${TAG}): 200 OK text/html: <p>ok</p>`,
      ]);
    } finally {
      await server.stop();
    }
  });

  test("server that does not speak HTTP: reported as such", async () => {
    const server = await startJunkTcp();
    try {
      const r = await cli(["push", "--layout", layout, "--image", `${server.host}/p/x:${TAG}`], baseEnv);
      assert.equal(r.code, 1);
      assert.equal(r.err.length, 1);
      assert.match(
        r.err[0] ?? "",
        new RegExp(
          `^oci: error: registry ${server.host} sent something that is not HTTP \\(HPE_[A-Z_]+\\) to GET http://${server.host}/v2/$`,
        ),
      );
    } finally {
      await server.stop();
    }
  });

  test("registry failing with 500: server error with its message", async () => {
    const server = await startFakeHttp((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      } else {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "storage backend unavailable" }] }));
      }
    });
    try {
      const r = await cli(["push", "--layout", layout, "--image", `${server.host}/p/x:${TAG}`], baseEnv);
      assert.equal(r.code, 1);
      assert.match(
        r.err[0] ?? "",
        /failed HEAD blob sha256:[0-9a-f]{12} \(HEAD \/v2\/p\/x\/blobs\/sha256:[0-9a-f]{64}\): 500 Internal Server Error$/,
      );
    } finally {
      await server.stop();
    }
  });

  test("usage errors exit 2 from the process; failures exit 1 with exactly one stderr line", () => {
    const usage = spawnSync(process.execPath, ["--import", "tsx", "deploy-scripts/oci/cli.ts", "push", "--layout", layout], {
      encoding: "utf8",
    });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /^oci: --image is required\n/);
    const fail = spawnSync(
      process.execPath,
      ["--import", "tsx", "deploy-scripts/oci/cli.ts", "push", "--layout", join(work, "nope"), "--image", "127.0.0.1:1/p/x:t"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(fail.status, 1);
    assert.equal(fail.stderr, `oci: error: cannot read layout marker ${join(work, "nope", "oci-layout")}: ENOENT\n`);
  });
});
