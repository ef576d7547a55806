import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { SERVER_ENV, SERVER_NODE_FLAGS, missingServerFlags } from "../../src/runtime-flags.js";
import { spawnServer } from "../support/server-process.js";

const REPO = path.resolve(fileURLToPath(new URL("../../..", import.meta.url)));

test("the Docker image starts the server with the same Node.js flags as npm start and the bin entry (e2e/process.test.ts)", async () => {
  assert.deepEqual(SERVER_NODE_FLAGS, ["--single-threaded-gc", "--max-semi-space-size=8"]);
  assert.deepEqual(SERVER_ENV, { MALLOC_ARENA_MAX: "2" });
  const dockerfile = await readFile(path.join(REPO, "Dockerfile"), "utf8");
  assert.ok(dockerfile.includes(`CMD ["node", ${SERVER_NODE_FLAGS.map((f) => JSON.stringify(f)).join(", ")}, "dist/bundle/main.js"]`));
  assert.ok(dockerfile.includes("    MALLOC_ARENA_MAX=2\n"), "the runtime stage's ENV sets MALLOC_ARENA_MAX=2");
});

test("missingServerFlags names the flags a process lacks", () => {
  assert.deepEqual(missingServerFlags(["--single-threaded-gc", "--max-semi-space-size=8", "--inspect"]), []);
  assert.deepEqual(missingServerFlags(["--single-threaded-gc"]), ["--max-semi-space-size=8"]);
  assert.deepEqual(missingServerFlags([]), ["--single-threaded-gc", "--max-semi-space-size=8"]);
});

test("a server started without the flags says so once, at info level, and serves", async (t) => {
  const archiveDir = await mkdtemp(path.join(tmpdir(), "mr-flags-"));
  const server = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
  t.after(async () => {
    server.child.kill("SIGKILL");
    await server.exited;
    await rm(archiveDir, { recursive: true, force: true });
  });
  const notes = server.logLines.filter((line) => String(line.msg).startsWith("started without the recommended Node.js flags"));
  assert.equal(notes.length, 1);
  assert.deepEqual(notes[0]?.flags, ["--single-threaded-gc", "--max-semi-space-size=8"]);
  assert.equal(notes[0]?.level, 30);
});

/** new_space's size in a Node.js process with `flags` after churning short-lived objects. */
async function youngGenerationBytes(flags: readonly string[]): Promise<number> {
  const churn = `let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i }); if (keep.length > 50000) keep = []; }
    process.stdout.write(String(require("node:v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size));`;
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, "-e", churn]);
  return Number(stdout);
}

test("the server's flags let V8's young generation grow to 16 MiB under churn, and the flag is what bounds it (issue #15: scavenges against resident set)", async () => {
  assert.equal(await youngGenerationBytes(SERVER_NODE_FLAGS), 16 * 1024 * 1024);
  // The semi-space flag sets the bound: a quarter of it, a quarter of the young generation.
  assert.equal(await youngGenerationBytes(["--single-threaded-gc", "--max-semi-space-size=2"]), 4 * 1024 * 1024);
  // The server's flag until 2026-12-06: 2 MiB, scavenges 5-10 % of a small call's CPU.
  assert.equal(await youngGenerationBytes(["--single-threaded-gc", "--max-semi-space-size=1"]), 2 * 1024 * 1024);
});
