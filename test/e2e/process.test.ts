import { SERVER_NODE_FLAGS, serverEnvAssignments } from "../../src/runtime-flags.js";
import assert from "node:assert/strict";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, after, test } from "node:test";
import { RegistryClient } from "../support/registry-client.js";
import {
  MAIN_FILE,
  runFailingServer,
  runServerSignalledAt,
  killAllServers,
  spawnServer,
  spawnServerOnTempArchive,
} from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

after(killAllServers);

describe("the server as a process", () => {
  test("package.json's bin and npm start run the bundled main file", async () => {
    const pkg = JSON.parse(await readFile(path.resolve(import.meta.dirname, "../../../package.json"), "utf8")) as {
      bin: Record<string, string>;
      scripts: Record<string, string>;
    };
    assert.equal(pkg.bin["cogment-model-registry"], "dist/bundle/main.js");
    assert.equal(pkg.scripts.start, `MALLOC_ARENA_MAX=2 node ${SERVER_NODE_FLAGS.join(" ")} dist/bundle/main.js`);
    assert.equal(serverEnvAssignments(), "MALLOC_ARENA_MAX=2");
    assert.equal(path.resolve(import.meta.dirname, "../../..", pkg.bin["cogment-model-registry"] ?? ""), MAIN_FILE);
    const head = (await readFile(MAIN_FILE, "utf8")).split("\n")[0];
    assert.equal(head, `#!/usr/bin/env -S ${serverEnvAssignments()} node ${SERVER_NODE_FLAGS.join(" ")}`);
  });

  test("starts, creates a missing archive dir, serves, and exits 0 on SIGTERM", async (t) => {
    const parent = await makeArchiveDir(t);
    const archiveDir = path.join(parent, "nested", "archive");
    const server = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
    assert.ok((await stat(archiveDir)).isDirectory());
    const start = server.logLines.find((l) => l.msg === "model registry serving");
    assert.equal(start?.archiveDir, archiveDir);
    assert.equal(start?.cacheMaxBytes, 1073741824);
    assert.equal(start?.sentChunkSize, 2097152);
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    try {
      await client.createModel("proc");
      const info = await client.publish("proc", Buffer.from("data"), { archived: true });
      assert.equal(info.version_number, 1);
    } finally {
      client.close();
    }
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
  });

  test("ignored COGMENT_MODEL_REGISTRY_ variables are logged with the reason, and the server serves", async (t) => {
    const server = await spawnServerOnTempArchive(t, {
      COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_ITEMS: "100",
      COGMENT_MODEL_REGISTRY_PROT: "9001",
    });
    t.after(async () => {
      server.child.kill("SIGTERM");
      await server.exited;
    });
    const ignored = server.logLines
      .filter((line) => line.msg === "COGMENT_MODEL_REGISTRY_ variable ignored")
      .map((line) => [line.level, line.variable, line.reason]);
    assert.deepEqual(ignored, [
      [40, "COGMENT_MODEL_REGISTRY_PROT", "unknown variable (a typo?)"],
      [
        40,
        "COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_ITEMS",
        "a later upstream release's cache limit in versions; not supported: the cache is bounded in bytes by COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE",
      ],
    ]);
  });

  test("a malformed variable stops the server at start, naming the variable and the accepted form", async () => {
    const result = await runFailingServer({ COGMENT_MODEL_REGISTRY_SENT_MODEL_VERSION_DATA_CHUNK_SIZE: "0" });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /COGMENT_MODEL_REGISTRY_SENT_MODEL_VERSION_DATA_CHUNK_SIZE="0" is invalid: expected an integer number of bytes from 1 to 67108864/,
    );
    const duration = await runFailingServer({ COGMENT_MODEL_REGISTRY_VERSION_CACHE_EXPIRATION: "10" });
    assert.equal(duration.code, 2);
    assert.match(duration.stderr, /COGMENT_MODEL_REGISTRY_VERSION_CACHE_EXPIRATION="10" is invalid/);
  });

  test("SIGTERM while the archive is opening stops the start cleanly (exit 0)", async (t) => {
    const archiveDir = await makeArchiveDir(t);
    // Models to read at start: opening the archive (and starting the worker threads) takes a while.
    for (let i = 0; i < 2000; i++) {
      await mkdir(path.join(archiveDir, `m${i}`));
      await writeFile(path.join(archiveDir, `m${i}`, `m${i}.yaml`), `model_id: m${i}\nuser_data: {}\n`);
    }
    const { exit, logLines } = await runServerSignalledAt({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir }, "opening the archive", "SIGTERM");
    assert.equal(exit, 0);
    const messages = logLines.map((line) => line.msg);
    assert.deepEqual(
      messages.filter((message) => message !== "started without the recommended Node.js flags (npm start and the Docker image pass them): expect more CPU per GB served and a larger resident set"),
      ["opening the archive", "signal during start-up: stopping the start", "stopped"],
    );
  });

  test("a port already in use fails the start with a clear message", async (t) => {
    const first = await spawnServerOnTempArchive(t);
    t.after(async () => {
      first.child.kill("SIGTERM");
      await first.exited;
    });
    const second = await runFailingServer({
      COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: first.archiveDir,
      COGMENT_MODEL_REGISTRY_PORT: String(first.port),
    });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /failed to start: .*(address already in use|No address added)/i);
  });
});
