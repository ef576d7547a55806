import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { SERVER_NODE_FLAGS, missingServerFlags } from "../../src/runtime-flags.js";
import { spawnServer } from "../support/server-process.js";

const REPO = path.resolve(fileURLToPath(new URL("../../..", import.meta.url)));

test("the Docker image starts the server with the same Node.js flags as npm start and the bin entry (e2e/process.test.ts)", async () => {
  assert.deepEqual(SERVER_NODE_FLAGS, ["--single-threaded-gc"]);
  const dockerfile = await readFile(path.join(REPO, "Dockerfile"), "utf8");
  assert.ok(dockerfile.includes(`CMD ["node", ${SERVER_NODE_FLAGS.map((f) => JSON.stringify(f)).join(", ")}, "dist/bundle/main.js"]`));
});

test("missingServerFlags names the flags a process lacks", () => {
  assert.deepEqual(missingServerFlags(["--single-threaded-gc", "--inspect"]), []);
  assert.deepEqual(missingServerFlags([]), ["--single-threaded-gc"]);
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
  assert.deepEqual(notes[0]?.flags, ["--single-threaded-gc"]);
  assert.equal(notes[0]?.level, 30);
});
