import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { crc32 } from "node:zlib";
import { after, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { HealthClient } from "../support/health-client.js";
import { freeLoopbackPort, killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { RegistryClient, rejectsWithStatus } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, logLinesWhen, spawnServer, removeArchiveAfterServers } from "../support/server-process.js";
import { exactly } from "../support/exact-text.js";
import { makeArchiveDir } from "../support/test-server.js";

async function tempArchive(t: TestContext): Promise<string> {
  const archiveDir = await makeArchiveDir();
  removeArchiveAfterServers(t, archiveDir);
  return archiveDir;
}

async function startInstance(t: TestContext, archiveDir: string, redisUrl: string): Promise<ServerInstance & { health: HealthClient }> {
  const instance = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redisUrl });
  const health = new HealthClient(instance.address);
  t.after(() => health.close());
  return { ...instance, health };
}

const MIB = 1024 * 1024;

describe("Redis faults (COGMENT_MODEL_REGISTRY_REDIS_URL)", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("an instance started while Redis is unreachable serves NOT_SERVING and UNAVAILABLE naming Redis, then finishes its start (archive import) once Redis runs", async (t) => {
    const archiveDir = await tempArchive(t);
    // A single-mode archive, to be imported into the Redis that is not there yet.
    const single = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
    const singleClient = new RegistryClient(`127.0.0.1:${single.port}`);
    await singleClient.createModel("waiting", { origin: "single" });
    await singleClient.publish("waiting", Buffer.from("archived before Redis"), { archived: true });
    singleClient.close();
    single.child.kill("SIGTERM");
    await single.exited;

    const port = await freeLoopbackPort();
    const instance = await startInstance(t, archiveDir, `redis://127.0.0.1:${port}`);
    const unreachable = new RegExp(`^Redis at 127\\.0\\.0\\.1:${port} is unreachable: `);
    assert.equal(await instance.health.check(""), "NOT_SERVING");
    assert.equal(await instance.health.check("cogmentAPI.ModelRegistrySP"), "NOT_SERVING");
    await rejectsWithStatus(instance.client.retrieveModels(), grpc.status.UNAVAILABLE, unreachable);
    await rejectsWithStatus(instance.client.createModel("new"), grpc.status.UNAVAILABLE, unreachable);
    await rejectsWithStatus(instance.client.retrieveVersionInfos({ model_id: "waiting" }), grpc.status.UNAVAILABLE, unreachable);
    await rejectsWithStatus(instance.client.retrieveData("waiting", 1), grpc.status.UNAVAILABLE, unreachable);
    await rejectsWithStatus(instance.client.publish("waiting", Buffer.from("x")), grpc.status.UNAVAILABLE, unreachable);
    const warning = instance.process.logLines.find((line) => String(line.msg).startsWith("Redis is not usable yet"));
    assert.equal(warning?.redis, `127.0.0.1:${port}`);
    assert.equal(instance.process.child.exitCode, null, "the instance stays up");

    await startRedisServer(t, { port, appendOnly: true });
    const deadline = Date.now() + 30_000;
    while ((await instance.health.check("")) !== "SERVING" && Date.now() < deadline) {
      await sleep(50);
    }
    assert.equal(await instance.health.check(""), "SERVING");
    assert.equal(await instance.health.check("cogmentAPI.ModelRegistrySP"), "SERVING");
    // The start went on: the archive was imported into the empty Redis, numbering continues above it.
    assert.deepEqual((await instance.client.retrieveModels()).model_infos, [{ model_id: "waiting", user_data: { origin: "single" } }]);
    assert.equal((await instance.client.retrieveData("waiting", 1)).toString(), "archived before Redis");
    assert.equal((await instance.client.publish("waiting", Buffer.from("after Redis"))).version_number, 2);
    assert.equal((await instance.client.retrieveData("waiting", 2)).toString(), "after Redis");
    assert.equal((await logLinesWhen(instance.process, (line) => line.msg === "archive imported into Redis")).length, 1);
  });

  test("an instance no call reaches says NOT_SERVING once Redis hangs (SIGSTOP), and SERVING again once it answers", async (t) => {
    const redis = await startRedisServer(t);
    t.after(() => redis.resume());
    const instance = await startInstance(t, await tempArchive(t), redis.url);
    const waitFor = async (wanted: string): Promise<string> => {
      let seen = await instance.health.check("");
      for (const deadline = Date.now() + 30_000; seen !== wanted && Date.now() < deadline; seen = await instance.health.check("")) {
        await sleep(50);
      }
      return seen;
    };
    assert.equal(await waitFor("SERVING"), "SERVING");
    redis.pause();
    // No registry call: only the connections' probes can notice (a PING each second, 2 s to answer).
    assert.equal(await waitFor("NOT_SERVING"), "NOT_SERVING");
    assert.equal(instance.process.child.exitCode, null, "the instance stays up");
    redis.resume();
    assert.equal(await waitFor("SERVING"), "SERVING");
    await instance.client.createModel("after");
    assert.deepEqual((await instance.client.retrieveModels()).model_infos, [{ model_id: "after", user_data: {} }]);
  });

  test("a transient version whose chunk was corrupted in Redis ends the read-through with DATA_LOSS and an error line", async (t) => {
    const redis = await startRedisServer(t);
    const archiveDir = await tempArchive(t);
    const a = await startInstance(t, archiveDir, redis.url);
    const b = await startInstance(t, archiveDir, redis.url);
    // Redis was there at the start: no instance said otherwise.
    for (const instance of [a, b]) {
      assert.deepEqual(instance.process.logLines.filter((line) => String(line.msg).startsWith("Redis is not usable yet")), []);
    }
    await a.client.createModel("bitrot");
    const data = randomBytes(5 * 1024 * 1024 + 17); // three 2 MiB chunk keys
    assert.equal((await a.client.publish("bitrot", data)).version_number, 1);

    const inspector = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    inspector.on("error", () => undefined);
    t.after(() => inspector.disconnect());
    const chunkKey = `cmr:${modelHashTag("bitrot")}:d:1:1`;
    const original = await inspector.getrangeBuffer(chunkKey, 1000, 1000);
    // Same length, one byte changed: only a checksum can tell.
    await inspector.setrange(chunkKey, 1000, Buffer.from([(original[0] ?? 0) ^ 0xff]));
    const stored = Buffer.from(data.subarray(2 * MIB, 4 * MIB));
    stored[1000] = (original[0] ?? 0) ^ 0xff;
    const hex = (bytes: Buffer): string => `0x${crc32(bytes).toString(16).padStart(8, "0")}`;
    const detail = `chunk 1 (bytes ${2 * MIB} to ${4 * MIB - 1}) has CRC-32 ${hex(stored)}, its info says ${hex(data.subarray(2 * MIB, 4 * MIB))}`;

    // B has no copy: it reads the version through from Redis.
    await rejectsWithStatus(b.client.retrieveData("bitrot", 1), grpc.status.DATA_LOSS, exactly(`version 1 of model "bitrot" is corrupted in Redis: ${detail}`));
    // The log line comes through B's stdout pipe, which may lag behind the call's status.
    const [errorLine] = await logLinesWhen(b.process, (line) => line.msg === "transient version data in Redis is corrupted");
    assert.equal(errorLine?.level, 50);
    assert.equal(errorLine?.modelId, "bitrot");
    assert.equal(errorLine?.versionNumber, 1);
    assert.equal(errorLine?.detail, detail);
    // Nothing corrupted was kept in B's cache: the next read checks again.
    await rejectsWithStatus(b.client.retrieveData("bitrot", 1), grpc.status.DATA_LOSS, /is corrupted in Redis/);
    // A still serves its own upload's bytes, as received.
    assert.deepEqual(await a.client.retrieveData("bitrot", 1), data);
  });
});
