// OCI distribution client, push side only.
//
// Flow (OCI distribution-spec v1.1, "Push"): GET /v2/ (API check + auth discovery), then per blob
// HEAD /v2/<name>/blobs/<digest> (200 = already there) or POST /v2/<name>/blobs/uploads/ (202 +
// Location) followed by a monolithic PUT <location>?digest=<digest> (201); finally
// PUT /v2/<name>/manifests/<tag> with the manifest's media type (201).
// Auth: a 401 carries WWW-Authenticate; Basic gets the docker-config credentials, Bearer gets a
// token from realm?service=&scope=repository:<name>:pull,push (credentials sent as Basic when known).

import type { Challenge, CredentialLookup } from "./auth.ts";
import { basicAuthorization, parseWwwAuthenticate } from "./auth.ts";
import type { Descriptor } from "./image.ts";
import { PushError, snippet, summariseRegistryErrors } from "./errors.ts";
import { MEDIA_TYPE_JSON, MEDIA_TYPE_MANIFEST } from "./mediatypes.ts";

const BODY_CAP = 64 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface RegistryTarget {
  /** As the user named it; used in messages and credential lookup. */
  registry: string;
  repository: string;
  /** e.g. "http://127.0.0.1:5000" */
  baseUrl: string;
}

export interface PushOptions {
  credentials: CredentialLookup;
  timeoutMs?: number;
  /** Progress lines (never contain credentials). */
  log?: (line: string) => void;
}

interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  body: string;
}

interface RequestSpec {
  /** Short description for messages, e.g. "HEAD blob sha256:ab12…". */
  step: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

function shortDigest(digest: string): string {
  return digest.slice(0, "sha256:".length + 12);
}

/** Reads at most BODY_CAP bytes of a response body and drops the rest. */
async function readCapped(res: Response): Promise<string> {
  if (res.body === null) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
    if (total >= BODY_CAP) {
      await reader.cancel().catch(() => undefined);
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, BODY_CAP).toString("utf8");
}

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === "object" && e !== null; depth++) {
    const rec = e as { code?: unknown; cause?: unknown };
    if (typeof rec.code === "string") return rec.code;
    e = rec.cause;
  }
  return undefined;
}

function errorText(err: unknown): string {
  let e: unknown = err;
  let last = String(err);
  for (let depth = 0; depth < 4 && typeof e === "object" && e !== null; depth++) {
    const rec = e as { message?: unknown; cause?: unknown };
    if (typeof rec.message === "string" && rec.message !== "") last = rec.message;
    e = rec.cause;
  }
  return snippet(last);
}

export class RegistryClient {
  private readonly target: RegistryTarget;
  private readonly creds: CredentialLookup;
  private readonly timeoutMs: number;
  private authorization: string | undefined;
  /** True when `authorization` was obtained with the user's credentials. */
  private authorizationUsesCredentials = false;

  constructor(target: RegistryTarget, creds: CredentialLookup, timeoutMs: number = DEFAULT_TIMEOUT_MS) {
    this.target = target;
    this.creds = creds;
    this.timeoutMs = timeoutMs;
  }

  private url(path: string): string {
    return this.target.baseUrl + path;
  }

  private async send(spec: RequestSpec, authorization: string | undefined): Promise<Answer> {
    const headers: Record<string, string> = { "user-agent": "llm-gateway-oci/0.1", ...spec.headers };
    // Never hand our Authorization to another origin (e.g. a storage redirect in Location).
    if (authorization !== undefined && new URL(spec.url).origin === new URL(this.target.baseUrl).origin) {
      headers["authorization"] = authorization;
    }
    let res: Response;
    try {
      const init: RequestInit = { method: spec.method, headers, signal: AbortSignal.timeout(this.timeoutMs) };
      // Copy into a plain ArrayBuffer-backed view: the fetch typings reject a pooled Buffer.
      if (spec.body !== undefined) init.body = Uint8Array.from(spec.body);
      res = await fetch(spec.url, init);
    } catch (err) {
      throw this.transportError(spec, err);
    }
    let body: string;
    try {
      body = spec.method === "HEAD" ? "" : await readCapped(res);
    } catch (err) {
      throw this.transportError(spec, err);
    }
    return { status: res.status, statusText: res.statusText, headers: res.headers, body };
  }

  private transportError(spec: RequestSpec, err: unknown): PushError {
    const where = `${spec.method} ${spec.url}`;
    const name = typeof err === "object" && err !== null ? (err as { name?: unknown }).name : undefined;
    if (name === "TimeoutError" || name === "AbortError") {
      return new PushError(
        "unreachable",
        `registry ${this.target.registry} unreachable: no answer within ${this.timeoutMs / 1000}s (${where})`,
      );
    }
    const code = errorCode(err);
    if (
      code !== undefined &&
      (code.startsWith("HPE_") || code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_RES_CONTENT_LENGTH_MISMATCH")
    ) {
      return new PushError("garbage", `registry ${this.target.registry} sent something that is not HTTP (${code}) to ${where}`);
    }
    const detail = code !== undefined ? code : errorText(err);
    return new PushError("unreachable", `registry ${this.target.registry} unreachable: ${detail} (${where})`);
  }

  /** Sends a request, answering one 401 by authenticating and retrying once. */
  private async request(spec: RequestSpec): Promise<Answer> {
    const first = await this.send(spec, this.authorization);
    if (first.status !== 401) return first;
    await this.authenticate(spec, first);
    const second = await this.send(spec, this.authorization);
    if (second.status === 401) {
      throw this.authFailure(spec, second);
    }
    return second;
  }

  private authFailure(spec: RequestSpec, answer: Answer): PushError {
    const why = summariseRegistryErrors(answer.body) ?? `${answer.status} ${answer.statusText}`;
    if (this.authorizationUsesCredentials) {
      return new PushError(
        "auth-rejected",
        `registry ${this.target.registry} rejected the credentials from ${this.creds.configPath} (${spec.step}: ${why})`,
      );
    }
    return this.missingCredentials(why);
  }

  private missingCredentials(why: string): PushError {
    const hint = this.creds.note ?? `no auths entry for ${this.target.registry} in ${this.creds.configPath}`;
    return new PushError(
      "auth-required",
      `registry ${this.target.registry} requires authentication (${why}) but there are no credentials: ${hint} (set DOCKER_CONFIG or run docker login)`,
    );
  }

  private async authenticate(spec: RequestSpec, answer: Answer): Promise<void> {
    const header = answer.headers.get("www-authenticate");
    if (header === null || header.trim() === "") {
      throw new PushError("garbage", `registry ${this.target.registry} answered ${spec.step} with 401 but no WWW-Authenticate challenge`);
    }
    const challenges = parseWwwAuthenticate(header);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const creds = this.creds.credentials;
    if (bearer !== undefined) {
      await this.fetchToken(bearer);
      return;
    }
    if (basic !== undefined) {
      if (creds === undefined) {
        throw this.missingCredentials(`Basic realm "${snippet(basic.params["realm"] ?? "")}"`);
      }
      this.authorization = basicAuthorization(creds);
      this.authorizationUsesCredentials = true;
      return;
    }
    throw new PushError("garbage", `registry ${this.target.registry} asked for an unsupported authentication scheme: ${snippet(header)}`);
  }

  private async fetchToken(challenge: Challenge): Promise<void> {
    const realm = challenge.params["realm"];
    if (realm === undefined || !/^https?:\/\//.test(realm)) {
      throw new PushError("garbage", `registry ${this.target.registry} sent a Bearer challenge without a usable realm`);
    }
    const url = new URL(realm);
    const service = challenge.params["service"];
    if (service !== undefined) url.searchParams.set("service", service);
    const wanted = `repository:${this.target.repository}:pull,push`;
    const scopes = new Set<string>([wanted]);
    const offered = challenge.params["scope"];
    if (offered !== undefined && offered !== "") {
      for (const s of offered.split(" ")) if (s !== "") scopes.add(s);
    }
    for (const s of scopes) url.searchParams.append("scope", s);
    const creds = this.creds.credentials;
    const headers: Record<string, string> = { accept: MEDIA_TYPE_JSON, "user-agent": "llm-gateway-oci/0.1" };
    if (creds !== undefined) headers["authorization"] = basicAuthorization(creds);
    const spec: RequestSpec = { step: "token request", method: "GET", url: url.toString() };
    let res: Response;
    try {
      res = await fetch(url, { method: "GET", headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const e = this.transportError(spec, err);
      throw new PushError(e.kind, e.message.replace(`registry ${this.target.registry}`, `token service ${url.host}`));
    }
    const body = await readCapped(res).catch(() => "");
    if (res.status === 401 || res.status === 403) {
      const why = summariseRegistryErrors(body) ?? `${res.status} ${res.statusText}`;
      if (creds !== undefined) {
        throw new PushError("auth-rejected", `token service ${url.host} rejected the credentials from ${this.creds.configPath} (${why})`);
      }
      throw this.missingCredentials(`Bearer token service ${url.host}: ${why}`);
    }
    if (res.status !== 200) {
      throw this.statusError(
        { step: "token request", method: "GET", url: url.toString() },
        { status: res.status, statusText: res.statusText, headers: res.headers, body },
      );
    }
    let token: unknown;
    try {
      const parsed = JSON.parse(body) as Record<string, unknown>;
      token = parsed["token"] ?? parsed["access_token"];
    } catch {
      throw new PushError("garbage", `token service ${url.host} answered 200 with non-JSON (${snippet(body)})`);
    }
    if (typeof token !== "string" || token === "") {
      throw new PushError("garbage", `token service ${url.host} answered without a token`);
    }
    this.authorization = `Bearer ${token}`;
    this.authorizationUsesCredentials = creds !== undefined;
  }

  /** Error for a status the step does not expect. */
  private statusError(spec: RequestSpec, answer: Answer): PushError {
    const status = `${answer.status} ${answer.statusText}`.trim();
    const summary = summariseRegistryErrors(answer.body);
    const where = `${spec.step} (${spec.method} ${new URL(spec.url).pathname})`;
    if (answer.status >= 400 && answer.status < 500) {
      const what = summary ?? (answer.body.trim() === "" ? "no error details" : `non-JSON answer: ${snippet(answer.body)}`);
      return new PushError("refused", `registry ${this.target.registry} refused ${where}: ${status}: ${what}`);
    }
    if (answer.status >= 500) {
      const what = summary ?? snippet(answer.body);
      return new PushError("server-error", `registry ${this.target.registry} failed ${where}: ${status}${what !== "" ? `: ${what}` : ""}`);
    }
    const type = answer.headers.get("content-type") ?? "no content-type";
    return new PushError(
      "garbage",
      `registry ${this.target.registry} sent an unexpected answer to ${where}: ${status} ${type}${answer.body !== "" ? `: ${snippet(answer.body)}` : ""}`,
    );
  }

  /** GET /v2/: the endpoint must exist and speak the registry API; sets up auth. */
  async checkApi(): Promise<void> {
    const spec: RequestSpec = { step: "API check", method: "GET", url: this.url("/v2/") };
    const answer = await this.request(spec);
    if (answer.status === 200) {
      const versionHeader = answer.headers.get("docker-distribution-api-version");
      let json = false;
      try {
        JSON.parse(answer.body);
        json = true;
      } catch {
        json = false;
      }
      if (versionHeader === null && !json) {
        const type = answer.headers.get("content-type") ?? "no content-type";
        throw new PushError(
          "garbage",
          `${this.target.baseUrl} does not look like an OCI registry: GET /v2/ answered 200 ${type}: ${snippet(answer.body)}`,
        );
      }
      return;
    }
    if (answer.status === 404) {
      throw new PushError("garbage", `${this.target.baseUrl} does not look like an OCI registry: GET /v2/ answered 404`);
    }
    throw this.statusError(spec, answer);
  }

  /** True when the registry already holds the blob. */
  async hasBlob(d: Descriptor): Promise<boolean> {
    const spec: RequestSpec = {
      step: `HEAD blob ${shortDigest(d.digest)}`,
      method: "HEAD",
      url: this.url(`/v2/${this.target.repository}/blobs/${d.digest}`),
    };
    const answer = await this.request(spec);
    if (answer.status === 404) return false;
    if (answer.status === 200) {
      const length = answer.headers.get("content-length");
      const digest = answer.headers.get("docker-content-digest");
      if ((length !== null && Number(length) !== d.size) || (digest !== null && digest !== d.digest)) {
        throw new PushError(
          "garbage",
          `registry ${this.target.registry} claims blob ${shortDigest(d.digest)} exists but describes another one (length ${length ?? "?"}, digest ${digest ?? "?"})`,
        );
      }
      return true;
    }
    throw this.statusError(spec, answer);
  }

  async uploadBlob(d: Descriptor, data: Buffer): Promise<void> {
    const start: RequestSpec = {
      step: `start upload of ${shortDigest(d.digest)}`,
      method: "POST",
      url: this.url(`/v2/${this.target.repository}/blobs/uploads/`),
      body: Buffer.alloc(0),
    };
    const started = await this.request(start);
    if (started.status !== 202) throw this.statusError(start, started);
    const location = started.headers.get("location");
    if (location === null || location === "") {
      throw new PushError("garbage", `registry ${this.target.registry} started an upload without a Location header`);
    }
    let uploadUrl: URL;
    try {
      uploadUrl = new URL(location, this.target.baseUrl + "/");
    } catch {
      throw new PushError("garbage", `registry ${this.target.registry} sent an invalid upload Location: ${snippet(location)}`);
    }
    const href = uploadUrl.toString();
    const put: RequestSpec = {
      step: `upload of ${shortDigest(d.digest)}`,
      method: "PUT",
      url: `${href}${href.includes("?") ? "&" : "?"}digest=${encodeURIComponent(d.digest)}`,
      headers: { "content-type": "application/octet-stream" },
      body: data,
    };
    const done = await this.request(put);
    if (done.status !== 201) throw this.statusError(put, done);
    const echoed = done.headers.get("docker-content-digest");
    if (echoed !== null && echoed !== d.digest) {
      throw new PushError(
        "garbage",
        `registry ${this.target.registry} stored blob ${shortDigest(d.digest)} under another digest ${snippet(echoed)}`,
      );
    }
  }

  async putManifest(tag: string, manifestBytes: Buffer, digest: string): Promise<void> {
    const spec: RequestSpec = {
      step: `manifest upload for tag ${tag}`,
      method: "PUT",
      url: this.url(`/v2/${this.target.repository}/manifests/${tag}`),
      headers: { "content-type": MEDIA_TYPE_MANIFEST },
      body: manifestBytes,
    };
    const answer = await this.request(spec);
    if (answer.status !== 201) throw this.statusError(spec, answer);
    const echoed = answer.headers.get("docker-content-digest");
    if (echoed !== null && echoed !== digest) {
      throw new PushError(
        "garbage",
        `registry ${this.target.registry} stored the manifest under another digest ${snippet(echoed)} (expected ${digest})`,
      );
    }
  }
}

export interface PushInput {
  manifestBytes: Buffer;
  manifestDigest: string;
  /** Config first, then layers. */
  blobs: Array<{ descriptor: Descriptor; data: Buffer }>;
}

export interface PushResult {
  digest: string;
  uploaded: number;
  skipped: number;
}

export async function pushImage(target: RegistryTarget, tag: string, image: PushInput, options: PushOptions): Promise<PushResult> {
  const log = options.log ?? (() => undefined);
  const client = new RegistryClient(target, options.credentials, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  await client.checkApi();
  let uploaded = 0;
  let skipped = 0;
  for (const { descriptor, data } of image.blobs) {
    if (await client.hasBlob(descriptor)) {
      skipped++;
      log(`exists  ${descriptor.digest} ${descriptor.size} B ${descriptor.mediaType}`);
      continue;
    }
    await client.uploadBlob(descriptor, data);
    uploaded++;
    log(`pushed  ${descriptor.digest} ${descriptor.size} B ${descriptor.mediaType}`);
  }
  await client.putManifest(tag, image.manifestBytes, image.manifestDigest);
  return { digest: image.manifestDigest, uploaded, skipped };
}
