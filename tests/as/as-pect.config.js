// as-pect configuration for the AssemblyScript unit tests: `npx asp --config tests/as/as-pect.config.js`
// (make test-as). `as-pect.fuzz.config.js` reuses it for the long fuzz run (make fuzz).
import { program } from "commander";

// asp takes its compiler config only from --as-config, whose default (./as-pect.asconfig.json) is at
// the project root; ours lives beside this file. asp parses its command line before importing this
// module and reads the option afterwards, so setting it here points asp at ours unless the command
// line names another. The commander instance is asp's own (one hoisted copy in node_modules); if that
// ever changes, stop with a clear message instead of compiling without the as-pect transform.
if (program.options.length === 0) {
  throw new Error("as-pect.config.js: cannot reach asp's command line; run asp with --as-config tests/as/as-pect.asconfig.json");
}
if (program.getOptionValueSource("asConfig") !== "cli") {
  program.setOptionValue("asConfig", "tests/as/as-pect.asconfig.json");
}

function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${name} must be an integer in [0, 2^32), got ${raw}`);
  return n;
}

// What the fuzz spec's counts measure, by test.
const FUZZ_TESTS = {
  1: "random byte strings that scanned Ok",
  2: "token soups that scanned Ok",
  3: "mutated OpenAI bodies that scanned Ok",
  4: "generated valid documents checked member by member",
  5: "mutated configurations accepted",
  6: "request bodies routed (the rest got a local reply)",
  7: "SSE streams (random and mutated) that yielded events, every one also fed at random splits",
  8: "mutated JSON answers whose usage was read",
  9: "mutated vLLM load reports and metrics pages that gave figures",
};

// The fuzz spec asks the host for its budget and seed (imports "fuzz"), so one compiled spec serves both
// the short run in `make test` and the long one in `make fuzz`; FUZZ_ITERATIONS, FUZZ_CONFIG_ITERATIONS
// and FUZZ_SEED override the defaults (e.g. to replay a failing seed).
export function makeConfig({ entries, iterations, configIterations, seed }) {
  const fuzz = {
    iterations: envNumber("FUZZ_ITERATIONS", iterations),
    configIterations: envNumber("FUZZ_CONFIG_ITERATIONS", configIterations),
    seed: envNumber("FUZZ_SEED", seed),
  };
  let announced = false;
  const announce = () => {
    if (announced) return;
    announced = true;
    process.stdout.write(
      `fuzz: scanJson ${fuzz.iterations} iterations; parseConfig, routeRequest, SSE streams and JSON answers ${fuzz.configIterations} each, ` +
        `seed ${fuzz.seed} (replay: FUZZ_SEED=${fuzz.seed} FUZZ_ITERATIONS=${fuzz.iterations} FUZZ_CONFIG_ITERATIONS=${fuzz.configIterations})\n`,
    );
  };
  return {
    entries,
    include: ["tests/as/**/*.include.ts"],
    disclude: [/node_modules/],
    async instantiate(memory, createImports, instantiate, binary) {
      return instantiate(
        binary,
        createImports({
          env: { memory },
          fuzz: {
            iterations: () => {
              announce();
              return fuzz.iterations;
            },
            configIterations: () => {
              announce();
              return fuzz.configIterations;
            },
            seed: () => {
              announce();
              return fuzz.seed;
            },
            count: (test, reached, total) => {
              process.stdout.write(`fuzz: ${FUZZ_TESTS[test] ?? `test ${test}`}: ${reached} of ${total}\n`);
            },
          },
        }),
      );
    },
    outputBinary: false,
  };
}

// make test: every spec, a short fuzz run with a fixed seed so failures reproduce.
export default makeConfig({
  entries: ["tests/as/**/*.spec.ts"],
  iterations: 20000,
  configIterations: 2000,
  seed: 20240611,
});
