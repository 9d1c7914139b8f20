// The README's Layout section lists every folder of the repository, at its place in the tree, and no
// folder that does not exist: it is read as a tree (two spaces of indent per level).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../harness/envoy.ts";

function layoutFolders(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const m = /\n## Layout\n[\s\S]*?```\n([\s\S]*?)```/.exec(readme);
  if (m === null) throw new Error("README.md: no ## Layout section with a code block");
  const stack: string[] = [];
  const out: string[] = [];
  for (const line of (m[1] ?? "").split("\n")) {
    const entry = /^( *)([^\s]+)\/(?:\s|$)/.exec(line);
    if (entry === null) continue;
    const depth = (entry[1] ?? "").length / 2;
    stack.length = depth;
    stack.push(entry[2] ?? "");
    out.push(stack.join("/"));
  }
  return out.sort();
}

function repositoryFolders(): string[] {
  // Tracked files and untracked ones git does not ignore: the tree as a clone will have it.
  const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" }).split(
    "\n",
  );
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort();
}

test("the README's layout lists every folder, where it is, and nothing else", () => {
  assert.deepEqual(layoutFolders(), repositoryFolders());
});
