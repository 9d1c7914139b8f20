// Image references ("registry/name:tag") and the registry's base URL.
//
// Grammar facts (distribution reference grammar, as docker resolves it): the first path component
// is a registry host when it contains '.' or ':' or is "localhost"; otherwise the image is on
// Docker Hub (API host registry-1.docker.io, single names get "library/").

import { TAG_RE } from "./layout.ts";

export const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = "registry-1.docker.io";
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

export interface ImageReference {
  /** Registry as the user named it (key for docker config lookups), e.g. "127.0.0.1:5000". */
  registry: string;
  /** Repository path inside the registry, e.g. "plugins/llm-gateway". */
  repository: string;
  /** Tag, or undefined when the reference had none. */
  tag: string | undefined;
}

export function parseReference(text: string): ImageReference {
  const input = text.trim().replace(/^oci:\/\//, "");
  if (input.includes("@")) {
    throw new Error(`image "${text}": push needs a tag, not a digest`);
  }
  const slash = input.indexOf("/");
  let registry = DOCKER_HUB;
  let rest = input;
  if (slash > 0) {
    const first = input.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("[")) {
      registry = first;
      rest = input.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      throw new Error(`image "${text}": invalid tag "${tag}"`);
    }
  }
  if (rest === "" || !rest.split("/").every((c) => PATH_COMPONENT_RE.test(c))) {
    throw new Error(`image "${text}": invalid repository name "${rest}" (lowercase letters, digits, '.', '_', '-', '/')`);
  }
  if (registry === DOCKER_HUB && !rest.includes("/")) {
    rest = `library/${rest}`;
  }
  return { registry, repository: rest, tag };
}

/** Host part without the port, brackets removed for IPv6. */
export function registryHostname(registry: string): string {
  if (registry.startsWith("[")) {
    const end = registry.indexOf("]");
    return end > 0 ? registry.slice(1, end) : registry;
  }
  const colon = registry.lastIndexOf(":");
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

export function isLoopback(registry: string): boolean {
  const host = registryHostname(registry).toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** http for loopback registries or when asked (--insecure), https otherwise. */
export function registryBaseUrl(registry: string, insecure: boolean): string {
  const host = registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
  const scheme = insecure || isLoopback(registry) ? "http" : "https";
  return `${scheme}://${host}`;
}
