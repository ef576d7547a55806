/*
 * Shared mode (several instances on one Redis) hands out transient version numbers that leave no file
 * in the archive. A server started later in single mode on the same archive continues from the
 * archive's numbering records (version-numbering.ts): shared mode keeps them a block ahead of the
 * numbers it hands out, so single mode never hands out one of them again.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rmdir } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

async function stop(instance: ServerInstance): Promise<void> {
  instance.client.close();
  instance.process.child.kill("SIGTERM");
  assert.equal(await instance.process.exited, 0);
}

const markOf = (archiveDir: string, modelId: string): Promise<string> => readFile(path.join(archiveDir, modelId, ".cogment-ts-next-version"), "utf8");
const recordOf = async (archiveDir: string, modelId: string): Promise<string> =>
  (await readFile(path.join(archiveDir, modelId, ".cogment-ts-version-record"), "utf8")).trim();
const SKIP_LINE = "version numbering continues above the durable mark: numbers in between are skipped, none is reused";

describe("back to single mode after shared mode, on the same archive", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("numbers handed out through Redis (transient ones too) are never handed out again by single mode", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: true });
    const archiveDir = await makeArchiveDir(t);
    const single = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
    const shared = { ...single, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
    const check = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    check.on("error", () => undefined);
    t.after(() => check.disconnect());
    const reservedKey = `cmr:${modelHashTag("m")}:reserved`;

    // A single-mode run first: it stops cleanly, leaving an exact record (next=3) that would win over a mark.
    const first = await startServerInstance(t, single);
    await first.client.createModel("m");
    assert.equal((await first.client.publish("m", Buffer.from("one"), { archived: true })).version_number, 1);
    assert.equal((await first.client.publish("m", Buffer.from("two"))).version_number, 2);
    await stop(first);
    assert.match(await recordOf(archiveDir, "m"), /^next=3 boot=[0-9A-Za-z-]+ state=stopped$/);

    // Shared mode: imports the archive, numbering after the record (version 2, transient, left no
    // file), then numbers through Redis; the first claim records a block ahead.
    const a = await startServerInstance(t, shared);
    const b = await startServerInstance(t, shared);
    assert.equal((await a.client.publish("m", Buffer.from("three"))).version_number, 3);
    assert.equal(await recordOf(archiveDir, "m"), "next=1027 boot=shared-redis state=running");
    assert.equal(await markOf(archiveDir, "m"), "1027");
    assert.equal(await check.get(reservedKey), "1027");
    assert.equal((await b.client.publish("m", Buffer.from("four"))).version_number, 4);
    assert.equal((await a.client.publish("m", Buffer.from("five"), { archived: true })).version_number, 5);
    assert.equal(await markOf(archiveDir, "m"), "1027", "within the block: no archive write");

    // As if 1021 more versions had been committed: the next claim (1027) reaches the end of the block,
    // and whichever instance holds it writes the next one; the other one learns it from Redis.
    await check.set(`cmr:${modelHashTag("m")}:counter`, "1026");
    assert.equal((await b.client.publish("m", Buffer.from("1027"))).version_number, 1027);
    assert.equal(await recordOf(archiveDir, "m"), "next=2051 boot=shared-redis state=running");
    assert.equal(await markOf(archiveDir, "m"), "2051");
    assert.equal(await check.get(reservedKey), "2051");
    assert.equal((await a.client.publish("m", Buffer.from("1028"))).version_number, 1028);
    assert.equal(await markOf(archiveDir, "m"), "2051");
    await stop(a);
    await stop(b);

    // Single mode again on the same archive: above every number Redis handed out, transient or not.
    const again = await startServerInstance(t, single);
    const { version_infos } = await again.client.retrieveVersionInfos({ model_id: "m" });
    assert.deepEqual(
      version_infos.map((v) => [v.version_number, v.archived]),
      [
        [1, true],
        [5, true],
      ],
    );
    assert.equal((await again.client.publish("m", Buffer.from("next"))).version_number, 2051);
    const skipped = again.process.logLines.filter((line) => line.msg === SKIP_LINE);
    assert.deepEqual(
      skipped.map((line) => [line.modelId, line.nextVersion, line.highestOnDisk, line.recordedNext, line.reason]),
      [["m", 2051, 5, 2051, "the last numbers were handed out by instances sharing a Redis (COGMENT_MODEL_REGISTRY_REDIS_URL), which record them a block ahead"]],
    );
  });

  test("a model deleted and created again in shared mode records its numbering again from 1", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: true });
    const archiveDir = await makeArchiveDir(t);
    const shared = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
    const check = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    check.on("error", () => undefined);
    t.after(() => check.disconnect());

    const a = await startServerInstance(t, shared);
    await a.client.createModel("m");
    await check.set(`cmr:${modelHashTag("m")}:counter`, "40");
    // The model keys exist; the counter says 40 were handed out (a test shortcut, as above).
    assert.equal((await a.client.publish("m", Buffer.from("41"))).version_number, 41);
    assert.equal(await markOf(archiveDir, "m"), "1065");
    await a.client.deleteModel("m");
    assert.equal(await check.exists(`cmr:${modelHashTag("m")}:reserved`), 0, "deleted with the model");
    await a.client.createModel("m");
    assert.equal((await a.client.publish("m", Buffer.from("1"))).version_number, 1);
    assert.equal(await markOf(archiveDir, "m"), "1025", "the archive's records went with the model directory: written again");
    assert.equal(await recordOf(archiveDir, "m"), "next=1025 boot=shared-redis state=running");
    await stop(a);

    const single = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
    assert.equal((await single.client.publish("m", Buffer.from("next"))).version_number, 1025);
  });
  test("a record that cannot be written: the commits go on, one warning, and the next claim writes it once it can", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: true });
    const archiveDir = await makeArchiveDir(t);
    const shared = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
    const a = await startServerInstance(t, shared);
    await a.client.createModel("m");
    // A directory where the record file goes: opening it for writing fails (EISDIR), also as root.
    const blocker = path.join(archiveDir, "m", ".cogment-ts-version-record");
    await mkdir(blocker);
    assert.equal((await a.client.publish("m", Buffer.from("one"))).version_number, 1);
    assert.equal((await a.client.publish("m", Buffer.from("two"))).version_number, 2);
    const warnings = a.process.logLines.filter((line) => String(line.msg).startsWith("could not write the archive's version-number record"));
    assert.deepEqual(
      warnings.map((line) => [line.modelId, line.versionNumber, line.msg]),
      [
        [
          "m",
          1,
          "could not write the archive's version-number record: versions are still numbered and served, but a server started later in single mode on this archive may hand out again numbers of transient versions created from now on",
        ],
      ],
    );
    await rmdir(blocker);
    assert.equal((await a.client.publish("m", Buffer.from("three"))).version_number, 3);
    assert.equal(await recordOf(archiveDir, "m"), "next=1027 boot=shared-redis state=running");
    assert.equal(await markOf(archiveDir, "m"), "1027");
    await stop(a);

    const single = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
    assert.equal((await single.client.publish("m", Buffer.from("next"))).version_number, 1027);
  });
});
