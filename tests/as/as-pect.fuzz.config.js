// make fuzz: only the fuzz spec, 50 times the iterations of `make test` (about half a minute), a fresh
// seed each run (printed, with the environment that replays it).
import { makeConfig } from "./as-pect.config.js";

export default makeConfig({
  entries: ["tests/as/fuzz.spec.ts"],
  iterations: 1000000,
  configIterations: 100000,
  seed: (Date.now() ^ (process.pid << 16)) >>> 0,
});
