// Files generated from code and committed (manifests, the dashboard): write them, or with --check
// report the ones that differ from what the generator makes, so a test can keep them from drifting.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";

export interface GeneratedFile {
  path: string;
  content: string;
}

/** Writes (or with `check`, only reports) every file whose content differs; returns how many differ. */
export function syncGeneratedFiles(files: GeneratedFile[], check: boolean, root: string, hint: string): number {
  let stale = 0;
  for (const f of files) {
    let current: string | undefined;
    try {
      current = readFileSync(f.path, "utf8");
    } catch {
      current = undefined;
    }
    if (current === f.content) continue;
    stale++;
    if (check) {
      console.error(`stale: ${relative(root, f.path)} (run ${hint})`);
    } else {
      mkdirSync(dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.content);
      console.log(`wrote ${relative(root, f.path)}`);
    }
  }
  return stale;
}
