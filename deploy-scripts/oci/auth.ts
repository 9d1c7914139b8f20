// Registry authentication inputs: WWW-Authenticate challenges and docker config credentials.
//
// Facts: RFC 7235 challenge syntax (scheme, then comma-separated auth-params, values as tokens or
// quoted strings); the distribution token flow (Bearer realm/service/scope, token endpoint answers
// {"token"} or {"access_token"}); docker's config.json keeps `auths[<registry>].auth` =
// base64("user:password") (or separate username/password fields). Credentials never leave this
// module in any printable form: error messages name the config file only.

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { DOCKER_HUB } from "./reference.ts";

export interface Challenge {
  /** Lowercased scheme: "basic", "bearer", ... */
  scheme: string;
  params: Record<string, string>;
}

const TOKEN_CHAR_RE = /[!#$%&'*+\-.^_`|~0-9A-Za-z/:]/;

/**
 * Parses a WWW-Authenticate header value into challenges. Unparseable tails are dropped rather
 * than thrown: the caller reports "unsupported challenge" with the raw header.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpaces = (): void => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR_RE.test(header[i] ?? "")) i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    // at opening quote
    i++;
    let value = "";
    while (i < n && header[i] !== '"') {
      if (header[i] === "\\" && i + 1 < n) i++;
      value += header[i];
      i++;
    }
    i++; // closing quote (or end)
    return value;
  };
  while (i < n) {
    skipSpaces();
    while (i < n && header[i] === ",") {
      i++;
      skipSpaces();
    }
    const scheme = readToken();
    if (scheme === "") break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    for (;;) {
      skipSpaces();
      const save = i;
      const key = readToken();
      skipSpaces();
      if (key === "" || header[i] !== "=") {
        // Not a param: next challenge starts here (or token68 form, which registries don't use).
        i = save;
        break;
      }
      i++; // '='
      skipSpaces();
      const value = header[i] === '"' ? readQuoted() : readToken();
      challenge.params[key.toLowerCase()] = value;
      skipSpaces();
      if (header[i] === ",") {
        i++;
        continue;
      }
      break;
    }
    // Skip anything unexpected up to the next comma so one odd challenge doesn't hide the rest.
    while (i < n && header[i] !== ",") {
      if (TOKEN_CHAR_RE.test(header[i] ?? "") && out.length > 0 && header[i - 1] === " ") break;
      i++;
    }
  }
  return out;
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** Where they came from, safe to print (a file path). */
  readonly source: string;
}

export interface CredentialLookup {
  credentials: Credentials | undefined;
  /** The config file consulted (it may not exist). */
  configPath: string;
  /** Why nothing was found, when a config exists but can't be used (safe to print). */
  note: string | undefined;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv): string {
  const dir = env["DOCKER_CONFIG"];
  return join(dir !== undefined && dir !== "" ? dir : join(homedir(), ".docker"), "config.json");
}

/** "https://host:port/v1/" -> "host:port"; Docker Hub's many spellings -> "docker.io". */
export function normaliseRegistryKey(key: string): string {
  let k = key
    .trim()
    .toLowerCase()
    .replace(/^[a-z]+:\/\//, "");
  const slash = k.indexOf("/");
  if (slash >= 0) k = k.slice(0, slash);
  if (k === "index.docker.io" || k === "registry-1.docker.io" || k === "registry.hub.docker.com") {
    return DOCKER_HUB;
  }
  return k;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function lookupCredentials(registry: string, env: NodeJS.ProcessEnv): CredentialLookup {
  const configPath = dockerConfigPath(env);
  const result: CredentialLookup = { credentials: undefined, configPath, note: undefined };
  let text: string;
  try {
    text = readFileSync(configPath, "utf8");
  } catch {
    return result;
  }
  let config: unknown;
  try {
    config = JSON.parse(text) as unknown;
  } catch {
    result.note = `${configPath} is not valid JSON`;
    return result;
  }
  if (!isRecord(config)) {
    result.note = `${configPath} is not a JSON object`;
    return result;
  }
  const want = normaliseRegistryKey(registry);
  const auths = config["auths"];
  if (isRecord(auths)) {
    for (const [key, entry] of Object.entries(auths)) {
      if (normaliseRegistryKey(key) !== want || !isRecord(entry)) continue;
      const auth = entry["auth"];
      if (typeof auth === "string" && auth !== "") {
        const decoded = Buffer.from(auth, "base64").toString("utf8");
        const colon = decoded.indexOf(":");
        if (colon <= 0) {
          result.note = `auths entry for ${key} in ${configPath} is not base64 of "user:password"`;
          return result;
        }
        result.credentials = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source: configPath };
        return result;
      }
      const user = entry["username"];
      const pass = entry["password"];
      if (typeof user === "string" && typeof pass === "string" && user !== "") {
        result.credentials = { username: user, password: pass, source: configPath };
        return result;
      }
    }
  }
  const helpers = config["credHelpers"];
  if (
    typeof config["credsStore"] === "string" ||
    (isRecord(helpers) && Object.keys(helpers).some((k) => normaliseRegistryKey(k) === want))
  ) {
    result.note = `${configPath} delegates to a credential helper, which this tool does not run; put an auths entry in a separate DOCKER_CONFIG`;
  }
  return result;
}

export function basicAuthorization(creds: Credentials): string {
  return "Basic " + Buffer.from(`${creds.username}:${creds.password}`, "utf8").toString("base64");
}
