// Pure pieces of the OCI tool: challenge parsing, references, credential lookup, error summaries.
// Run: node --import tsx --test tests/oci/units.test.ts

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { lookupCredentials, normaliseRegistryKey, parseWwwAuthenticate } from "../../deploy-scripts/oci/auth.ts";
import { snippet, summariseRegistryErrors } from "../../deploy-scripts/oci/errors.ts";
import { parseReference, registryBaseUrl } from "../../deploy-scripts/oci/reference.ts";
import { gzipDeterministic, sourceDateEpoch, tarHeader } from "../../deploy-scripts/oci/tar.ts";

describe("parseWwwAuthenticate", () => {
  const cases: Array<[string, string, Array<{ scheme: string; params: Record<string, string> }>]> = [
    ["basic", `Basic realm="Registry Realm"`, [{ scheme: "basic", params: { realm: "Registry Realm" } }]],
    [
      "bearer with a comma inside a quoted scope",
      `Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"`,
      [
        {
          scheme: "bearer",
          params: { realm: "https://auth.example.com/token", service: "registry.example.com", scope: "repository:a/b:pull,push" },
        },
      ],
    ],
    [
      "escaped quote and unquoted token",
      `Bearer realm="a\\"b", error=invalid_token`,
      [{ scheme: "bearer", params: { realm: 'a"b', error: "invalid_token" } }],
    ],
    [
      "two challenges",
      `Bearer realm="r1", Basic realm="r2"`,
      [
        { scheme: "bearer", params: { realm: "r1" } },
        { scheme: "basic", params: { realm: "r2" } },
      ],
    ],
    ["empty", "", []],
  ];
  for (const [name, header, want] of cases) {
    test(name, () => assert.deepEqual(parseWwwAuthenticate(header), want));
  }
});

describe("parseReference and registryBaseUrl", () => {
  const cases: Array<[string, { registry: string; repository: string; tag: string | undefined }, string]> = [
    [
      "127.0.0.1:5000/plugins/llm-gateway:0.1.0",
      { registry: "127.0.0.1:5000", repository: "plugins/llm-gateway", tag: "0.1.0" },
      "http://127.0.0.1:5000",
    ],
    ["localhost/x", { registry: "localhost", repository: "x", tag: undefined }, "http://localhost"],
    [
      "oci://registry.example.com/a/b:v1",
      { registry: "registry.example.com", repository: "a/b", tag: "v1" },
      "https://registry.example.com",
    ],
    ["[::1]:5000/a:b", { registry: "[::1]:5000", repository: "a", tag: "b" }, "http://[::1]:5000"],
    ["nginx:1.25", { registry: "docker.io", repository: "library/nginx", tag: "1.25" }, "https://registry-1.docker.io"],
    ["me/plugin", { registry: "docker.io", repository: "me/plugin", tag: undefined }, "https://registry-1.docker.io"],
  ];
  for (const [text, want, base] of cases) {
    test(text, () => {
      const ref = parseReference(text);
      assert.deepEqual(ref, want);
      assert.equal(registryBaseUrl(ref.registry, false), base);
    });
  }
  test("--insecure turns a remote registry to http", () =>
    assert.equal(registryBaseUrl("registry.example.com", true), "http://registry.example.com"));
  test("rejects digests, upper case names and bad tags", () => {
    assert.throws(() => parseReference("r.example.com/a@sha256:00"), /push needs a tag, not a digest/);
    assert.throws(() => parseReference("r.example.com/Upper:x"), /invalid repository name "Upper"/);
    assert.throws(() => parseReference("r.example.com/a:-bad"), /invalid tag "-bad"/);
  });
});

describe("lookupCredentials", () => {
  const withConfig = (config: unknown, fn: (env: NodeJS.ProcessEnv, path: string) => void): void => {
    const dir = mkdtempSync(join(tmpdir(), "oci-units-"));
    try {
      writeFileSync(join(dir, "config.json"), typeof config === "string" ? config : JSON.stringify(config));
      fn({ DOCKER_CONFIG: dir }, join(dir, "config.json"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  test("auth field, key with scheme and path", () =>
    withConfig({ auths: { "https://r.example.com/v1/": { auth: Buffer.from("u:p:with:colons").toString("base64") } } }, (env) => {
      const c = lookupCredentials("r.example.com", env).credentials;
      assert.equal(c?.username, "u");
      assert.equal(c?.password, "p:with:colons");
    }));
  test("username/password fields", () =>
    withConfig({ auths: { "r.example.com": { username: "u", password: "p" } } }, (env) =>
      assert.equal(lookupCredentials("r.example.com", env).credentials?.password, "p"),
    ));
  test("docker hub spellings are one registry", () => {
    assert.equal(normaliseRegistryKey("https://index.docker.io/v1/"), "docker.io");
    assert.equal(normaliseRegistryKey("registry-1.docker.io"), "docker.io");
  });
  test("no entry: no credentials, the path is reported", () =>
    withConfig({ auths: {} }, (env, path) =>
      assert.deepEqual(lookupCredentials("r.example.com", env), { credentials: undefined, configPath: path, note: undefined }),
    ));
  test("credential helper: explained, not run", () =>
    withConfig({ credsStore: "desktop" }, (env) =>
      assert.match(lookupCredentials("r.example.com", env).note ?? "", /credential helper, which this tool does not run/),
    ));
  test("broken JSON: explained", () =>
    withConfig("{nope", (env, path) => assert.equal(lookupCredentials("r.example.com", env).note, `${path} is not valid JSON`)));
});

describe("error summaries", () => {
  test("distribution error JSON", () =>
    assert.equal(
      summariseRegistryErrors(
        JSON.stringify({
          errors: [
            { code: "DENIED", message: "no" },
            { code: "NAME_UNKNOWN", message: "repository name not known" },
          ],
        }),
      ),
      "DENIED: no; NAME_UNKNOWN: repository name not known",
    ));
  test("non-JSON and other JSON are not summarised", () => {
    assert.equal(summariseRegistryErrors("<html>"), undefined);
    assert.equal(summariseRegistryErrors(`{"message":"x"}`), undefined);
  });
  test("snippet flattens, strips control bytes and shortens", () => {
    assert.equal(snippet("a\n\tb\u0000c"), "a b?c");
    assert.equal(snippet("x".repeat(200)).length, 83);
  });
});

describe("tar and gzip", () => {
  test("header checksum is the byte sum with the checksum field as spaces", () => {
    const h = tarHeader({ name: "plugin.wasm", data: new Uint8Array(10), mtime: 0 });
    const stored = parseInt(h.subarray(148, 154).toString("ascii"), 8);
    const copy = Buffer.from(h);
    copy.fill(0x20, 148, 156);
    assert.equal(
      stored,
      copy.reduce((a, b) => a + b, 0),
    );
  });
  test("unsafe names are refused", () => {
    assert.throws(() => tarHeader({ name: "../x", data: new Uint8Array(0), mtime: 0 }), /relative printable ASCII path/);
    assert.throws(() => tarHeader({ name: "/x", data: new Uint8Array(0), mtime: 0 }), /relative printable ASCII path/);
  });
  test("gzip header: no mtime, OS pinned to Unix", () => {
    const gz = gzipDeterministic(Buffer.from("hello"));
    assert.deepEqual([...gz.subarray(4, 8)], [0, 0, 0, 0]);
    assert.equal(gz[9], 3);
  });
  test("SOURCE_DATE_EPOCH", () => {
    assert.equal(sourceDateEpoch({}), 0);
    assert.equal(sourceDateEpoch({ SOURCE_DATE_EPOCH: "1700000000" }), 1700000000);
    assert.throws(() => sourceDateEpoch({ SOURCE_DATE_EPOCH: "yesterday" }), /whole number of seconds/);
  });
});
