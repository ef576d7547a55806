import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { describe, test } from "node:test";

const SRC = path.resolve(import.meta.dirname, "../../../src");

/** Relative specifiers of `import`/`export … from` statements (`import type` included) and `import("…")`. */
const IMPORT_PATTERN = /(?:^|[\s;])(?:import|export)\s[^;]*?\sfrom\s+["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

async function sourceFiles(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .filter((file) => !file.includes(`${path.sep}gen${path.sep}`));
}

/** File (relative to src/) → the files it imports (relative to src/). */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles(SRC)) {
    const text = await readFile(file, "utf8");
    const targets: string[] = [];
    for (const match of text.matchAll(IMPORT_PATTERN)) {
      const specifier = match[1] ?? match[2] ?? "";
      const target = path.resolve(path.dirname(file), specifier.replace(/\.js$/, ".ts"));
      targets.push(path.relative(SRC, target));
    }
    graph.set(path.relative(SRC, file), targets);
  }
  return graph;
}

/** Every cycle found by a depth-first search, each as the path of files that closes it. */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, "visiting");
    stack.push(file);
    for (const target of graph.get(file) ?? []) {
      if (state.get(target) === "visiting") {
        cycles.push([...stack.slice(stack.indexOf(target)), target]);
      } else if (!state.has(target) && graph.has(target)) {
        visit(target);
      }
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of [...graph.keys()].sort()) {
    if (!state.has(file)) {
      visit(file);
    }
  }
  return cycles;
}

describe("import graph of src/", () => {
  test("the parser sees the imports of a known file, `import type` included", async () => {
    const graph = await importGraph();
    const imports = graph.get(path.join("registry", "registry.ts")) ?? [];
    assert.ok(imports.includes(path.join("archive", "index.ts")), `registry.ts imports archive/index.ts (type only): ${imports.join(", ")}`);
    assert.ok(graph.size > 50, `found ${graph.size} files`);
  });

  test("has no import cycle", async () => {
    const cycles = findCycles(await importGraph());
    assert.deepEqual(
      cycles.map((cycle) => cycle.join(" → ")),
      [],
    );
  });

  test("the backends (archive/, state/) import neither registry/ nor rpc/; archive/ not state/ either", async () => {
    const graph = await importGraph();
    const forbidden: Record<string, readonly string[]> = {
      archive: ["registry", "rpc", "state"],
      state: ["registry", "rpc"],
    };
    const offending = [...graph].flatMap(([file, targets]) => {
      const banned = forbidden[file.split(path.sep)[0] ?? ""] ?? [];
      return targets.filter((target) => banned.includes(target.split(path.sep)[0] ?? "")).map((target) => `${file} → ${target}`);
    });
    assert.deepEqual(offending, []);
  });
});
