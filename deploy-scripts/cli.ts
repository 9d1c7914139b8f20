// llm-gateway deploy CLI: one deployment file in, every Kubernetes object out (and, for gateway.type envoy, the
// Envoy bootstrap).
//
//   render -f FILE [--kubernetes]        print all objects (multi-document YAML); same as apply --dry-run
//                                        gateway.type envoy: the Envoy bootstrap (--kubernetes: the llmaz objects)
//   apply  -f FILE [--install-helm] [--timeout 30m] [--no-wait] [--dry-run] [--envoy-config PATH] [--disable-model-router]
//   status -f FILE
//   delete -f FILE
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { apply } from "./cluster/apply.ts";
import { del } from "./cluster/delete.ts";
import { CliError, EXIT, explain } from "./errors.ts";
import { helmCommandText, helmCommands, installHelm } from "./cluster/helm.ts";
import { line, redacting, type Io } from "./io.ts";
import { connect, type Cluster } from "./cluster/kube.ts";
import { renderEnvoyYaml, renderYaml } from "./render/render.ts";
import { hfToken, redactor } from "./cluster/secret.ts";
import { parseSpec, type DeploySpec } from "./spec.ts";
import { status } from "./cluster/status.ts";
import { parseDuration } from "./cluster/wait.ts";

export const USAGE = `usage: cli.ts <command> -f FILE [options]

commands:
  render  -f FILE                print every object as multi-document YAML (kubectl-applyable); --dry-run is implied
                                 gateway.type envoy: print the Envoy bootstrap instead (for envoy -c)
          --kubernetes           gateway.type envoy: print the Kubernetes objects (the llmaz models) instead
  apply   -f FILE                server-side apply, wait for the models, print the endpoint
          --dry-run              print what would be applied instead (no cluster needed)
          --install-helm         first install Higress and llmaz with Helm (needs helm on PATH; envoy: llmaz only)
          --envoy-config PATH    gateway.type envoy: also write the Envoy bootstrap to PATH
          --timeout DURATION     how long to wait for the models (default 30m)
          --poll-interval DUR    how often to check them (default 5s)
          --no-wait              return after applying
          --disable-model-router set spec.defaultConfigDisable on Higress's model-router WasmPlugin (which the console
                                 enables with AI routes and which writes the routing header too) instead of warning
  status  -f FILE                each model's Playground conditions, pods and Service, and the gateway endpoint
  delete  -f FILE                remove what apply created for this file's deployment, nothing else

gateway.type envoy (upstream Envoy instead of Higress): apply applies only the Kubernetes objects (the llmaz models
and the token Secret) and does not run Envoy: run the bootstrap (render's output, or the file --envoy-config
writes) with envoy -c where cluster DNS resolves the model Services.
environment: KUBECONFIG (else ~/.kube/config, else in-cluster); HF_TOKEN creates Secret modelhub-secret on apply.
exit codes: 0 ok, 1 cluster or API error, 2 invalid command line or file, 3 a model failed or timed out.`;

/** A command-line mistake: the usage text follows the message. */
class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

const COMMANDS = ["render", "apply", "status", "delete"] as const;
type Command = (typeof COMMANDS)[number];

interface Args {
  command: Command;
  file: string;
  dryRun: boolean;
  installHelm: boolean;
  wait: boolean;
  timeoutMs: number;
  intervalMs: number;
  /** render, gateway.type envoy: the Kubernetes objects instead of the Envoy bootstrap. */
  kubernetes: boolean;
  /** apply, gateway.type envoy: where to write the Envoy bootstrap. */
  envoyConfig?: string;
  /** apply, Higress: disable Higress's model-router WasmPlugins (modelrouter.ts). */
  disableModelRouter: boolean;
}

export function parseCommandLine(argv: string[]): Args | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        file: { type: "string", short: "f" },
        "dry-run": { type: "boolean" },
        "install-helm": { type: "boolean" },
        timeout: { type: "string" },
        "poll-interval": { type: "string" },
        "no-wait": { type: "boolean" },
        kubernetes: { type: "boolean" },
        "envoy-config": { type: "string" },
        "disable-model-router": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals[0] === "help") return "help";
  const command = positionals[0];
  if (command === undefined) throw new UsageError("missing command");
  if (!(COMMANDS as readonly string[]).includes(command)) throw new UsageError(`unknown command "${command}"`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1] ?? ""}"`);
  if (values.file === undefined) throw new UsageError(`${command}: -f FILE is required`);
  const applyOnly = (["install-helm", "timeout", "poll-interval", "no-wait", "envoy-config", "disable-model-router"] as const).filter(
    (k) => values[k] !== undefined,
  );
  if (command !== "apply" && applyOnly.length > 0) throw new UsageError(`${command}: --${applyOnly[0] ?? ""} is only for apply`);
  if (command !== "render" && values.kubernetes !== undefined) throw new UsageError(`${command}: --kubernetes is only for render`);
  if (values["dry-run"] === true && command !== "apply" && command !== "render") {
    throw new UsageError(`${command}: --dry-run is only for render and apply`);
  }
  const intervalMs = parseDuration(values["poll-interval"] ?? "5s", "--poll-interval");
  if (intervalMs <= 0) throw new UsageError("--poll-interval: must be more than 0");
  return {
    command: command as Command,
    file: values.file,
    dryRun: command === "render" || values["dry-run"] === true,
    installHelm: values["install-helm"] === true,
    wait: values["no-wait"] !== true,
    timeoutMs: parseDuration(values.timeout ?? "30m", "--timeout"),
    intervalMs,
    kubernetes: values.kubernetes === true,
    disableModelRouter: values["disable-model-router"] === true,
    ...(values["envoy-config"] !== undefined ? { envoyConfig: values["envoy-config"] } : {}),
  };
}

/** Options that only mean something for gateway.type envoy are refused for Higress, not ignored. */
function checkArgsForGateway(args: Args, spec: DeploySpec): void {
  if (spec.gateway.type === "envoy") {
    if (args.disableModelRouter)
      throw new UsageError(`${args.command}: --disable-model-router is only for gateway.type higress (${args.file} deploys to envoy)`);
    return;
  }
  const option = args.kubernetes ? "--kubernetes" : args.envoyConfig !== undefined ? "--envoy-config" : undefined;
  if (option !== undefined) {
    throw new UsageError(`${args.command}: ${option} is only for gateway.type envoy (${args.file} deploys to ${spec.gateway.type})`);
  }
}

export function loadSpec(file: string): DeploySpec {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`${file}: cannot read it (${code === "ENOENT" ? "no such file" : (code ?? String(err))})`, EXIT.usage);
  }
  const result = parseSpec(text);
  if (!result.ok) throw new CliError(result.errors.map((e) => `${file}: ${e}`).join("\n"), EXIT.usage);
  return result.spec;
}

function printDryRun(spec: DeploySpec, args: Args, io: Io): void {
  if (args.command === "render" && spec.gateway.type === "envoy" && !args.kubernetes) {
    io.out.write(renderEnvoyYaml(spec));
    return;
  }
  if (args.installHelm) {
    io.out.write("# --install-helm would first run:\n");
    for (const c of helmCommands(spec)) io.out.write(`#   ${helmCommandText(c)}\n`);
  }
  if (args.command === "apply" && spec.gateway.type === "envoy") {
    const where = args.envoyConfig !== undefined ? `written to ${args.envoyConfig}` : "not written (--envoy-config PATH writes it)";
    io.out.write(
      `# gateway.type envoy: apply applies these Kubernetes objects only; the Envoy bootstrap would be ${where}; render -f ${args.file} prints it.\n`,
    );
  }
  io.out.write(renderYaml(spec, { hfTokenSet: hfToken(io.env) !== undefined }));
}

/** apply --envoy-config: the bootstrap goes to its file first, so Envoy can start while the models come up. */
function writeEnvoyConfig(spec: DeploySpec, path: string, io: Io): void {
  try {
    writeFileSync(path, renderEnvoyYaml(spec));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`--envoy-config: cannot write ${path} (${code ?? String(err)})`, EXIT.usage);
  }
  line(io.out, `wrote      Envoy bootstrap ${path}`);
}

async function runCommand(args: Args, spec: DeploySpec, io: Io): Promise<number> {
  checkArgsForGateway(args, spec);
  if (args.dryRun) {
    printDryRun(spec, args, io);
    return EXIT.ok;
  }
  if (args.envoyConfig !== undefined) writeEnvoyConfig(spec, args.envoyConfig, io);
  const bootstrap = args.envoyConfig ?? `(npx tsx deploy-scripts/cli.ts render -f ${args.file} prints it)`;
  if (args.installHelm) await installHelm(spec, io);
  let cluster: Cluster | undefined;
  try {
    cluster = connect(io.env);
    switch (args.command) {
      case "apply":
        return await apply(spec, cluster, io, {
          envoyBootstrap: bootstrap,
          disableModelRouter: args.disableModelRouter,
          ...(args.wait ? { wait: { timeoutMs: args.timeoutMs, intervalMs: args.intervalMs } } : {}),
        });
      case "status":
        return await status(spec, cluster, io, bootstrap);
      case "delete":
        return await del(spec, cluster, io);
      case "render":
        return EXIT.ok; // handled by dryRun
    }
  } catch (err) {
    throw explain(err, cluster?.server ?? "(no cluster)");
  }
}

/** Runs the CLI; never throws for anything a user can cause. Returns the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  const safe: Io = { ...io, out: redacting(io.out, redactor(hfToken(io.env))), err: redacting(io.err, redactor(hfToken(io.env))) };
  try {
    const args = parseCommandLine(argv);
    if (args === "help") {
      line(safe.out, USAGE);
      return EXIT.ok;
    }
    return await runCommand(args, loadSpec(args.file), safe);
  } catch (err) {
    if (err instanceof CliError) {
      line(safe.err, `error: ${err.message.split("\n").join("\nerror: ")}`);
      if (err instanceof UsageError) line(safe.err, `\n${USAGE}`);
      return err.exitCode;
    }
    line(safe.err, `internal error (please report): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return EXIT.failure;
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  process.exitCode = await run(process.argv.slice(2), { out: process.stdout, err: process.stderr, env: process.env });
}
