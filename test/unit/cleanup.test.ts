import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const CLEANUP_MODULE = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "../support/cleanup.js")).href;

test("onCleanup runs last in, first out, runs every cleanup when one throws, and fails the test with the first error", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-cleanup-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, "fixture.test.mjs");
  // A test whose cleanups log their order; the second registered throws.
  await writeFile(
    file,
    [
      `import { test } from "node:test";`,
      `import { onCleanup } from ${JSON.stringify(CLEANUP_MODULE)};`,
      `test("fixture", (t) => {`,
      `  onCleanup(t, () => console.log("CLEANUP directory"));`,
      `  onCleanup(t, () => { console.log("CLEANUP redis"); throw new Error("redis would not stop"); });`,
      `  onCleanup(t, async () => console.log("CLEANUP server"));`,
      `});`,
    ].join("\n"),
  );
  // Without NODE_TEST_CONTEXT, which would make the child report to this runner instead of printing.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "NODE_TEST_CONTEXT"));
  const result = spawnSync(process.execPath, ["--test", "--test-reporter=spec", file], { encoding: "utf8", timeout: 60_000, env });
  const output = `${result.stdout}${result.stderr}`;
  assert.deepEqual(
    output.split("\n").filter((line) => line.startsWith("CLEANUP")),
    ["CLEANUP server", "CLEANUP redis", "CLEANUP directory"],
  );
  assert.match(output, /redis would not stop/);
  assert.equal(result.status, 1, "the test fails with the cleanup's error");
});
