// --install-helm: the documented Helm installs of Higress and llmaz, run only when asked. `upgrade --install` keeps
// them idempotent; `--wait` matters for llmaz, whose webhooks fail closed until its controller runs.
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { CliError } from "../errors.ts";
import { line, type Io } from "../io.ts";
import { HELM } from "../names.ts";
import type { DeploySpec } from "../spec.ts";

/**
 * Quotas in mode cluster on Higress: the plugin calls the rate-limit service through the Envoy cluster Istio makes
 * for its Kubernetes Service, which no route names. Higress's chart pushes only the clusters routes use
 * (global.onlyPushRouteCluster, default true, becomes istio's PILOT_FILTER_GATEWAY_CLUSTER_CONFIG), so the install
 * turns that off.
 */
export function pushesEveryCluster(spec: DeploySpec): boolean {
  return spec.gateway.type === "higress" && spec.quotas?.mode === "cluster";
}

/** Higress (not for gateway.type envoy: that gateway is an Envoy you run) and llmaz. */
export function helmCommands(spec: DeploySpec): string[][] {
  const higress =
    spec.gateway.type === "envoy"
      ? []
      : [
          ["repo", "add", HELM.higressRepoName, HELM.higressRepoUrl, "--force-update"],
          [
            "upgrade",
            "--install",
            "higress",
            HELM.higressChart,
            "--namespace",
            spec.gateway.namespace,
            "--create-namespace",
            "--render-subchart-notes",
            ...(pushesEveryCluster(spec) ? ["--set", "global.onlyPushRouteCluster=false"] : []),
            "--wait",
          ],
        ];
  return [
    ...higress,
    [
      "upgrade",
      "--install",
      "llmaz",
      HELM.llmazChart,
      "--namespace",
      HELM.llmazNamespace,
      "--create-namespace",
      "--version",
      HELM.llmazVersion,
      // The chart also brings Envoy Gateway, Envoy AI Gateway and Open WebUI: Higress is our gateway.
      "--set",
      "envoy-gateway.enabled=false",
      "--set",
      "envoy-ai-gateway.enabled=false",
      "--set",
      "open-webui.enabled=false",
      "--wait",
    ],
  ];
}

export function findOnPath(command: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function run(helm: string, args: string[], io: Io): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(helm, args, { env: io.env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (b: Buffer) => io.out.write(b.toString()));
    child.stderr.on("data", (b: Buffer) => io.err.write(b.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

export function helmCommandText(args: string[]): string {
  return ["helm", ...args].join(" ");
}

export async function installHelm(spec: DeploySpec, io: Io): Promise<void> {
  const helm = findOnPath("helm", io.env);
  if (helm === undefined) {
    throw new CliError(
      "--install-helm: helm is not on PATH; install Helm 3 (https://helm.sh/docs/intro/install/) or leave out --install-helm",
    );
  }
  for (const args of helmCommands(spec)) {
    line(io.out, `$ ${helmCommandText(args)}`);
    const code = await run(helm, args, io);
    if (code !== 0) throw new CliError(`--install-helm: "${helmCommandText(args)}" exited with ${code}`);
  }
}
