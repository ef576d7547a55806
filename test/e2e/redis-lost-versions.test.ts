/*
 * Redis shared mode: a Redis that lost its last acknowledged writes (a restart without persistence,
 * a crash of its host with `appendfsync everysec`) no longer has versions the instances announced on
 * VersionUpdate and hold in their caches. Every instance that announced or served such a version
 * ends the model's VersionUpdate streams (UNAVAILABLE: call again) and drops its cached data, and
 * raises Redis's counter to the last version it saw, so that later versions reach the streams under
 * new numbers and every read serves what Redis holds under a number, with its own bytes. Only a
 * commit made before any instance noticed the loss can take a lost number again.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdir, stat, truncate } from "node:fs/promises";
import path from "node:path";
import { type TestContext, after, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { dataChunkKey, modelKeys, versionInfoKey } from "../../src/redis/redis-keys.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { type RegistryClient, rejectsWithStatus } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance, untilServing } from "../support/server-instance.js";
import { killAllServers, logLinesWhen } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { type VersionUpdateFollower, followVersionUpdates } from "../support/version-update-follower.js";

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");
/**
 * The loss warnings that say the counter was raised, from every instance: once the first is in (log
 * lines come through stdout, which may lag behind the streams' end), or after 10 s.
 */
function counterRaises(instances: readonly ServerInstance[]): Promise<Record<string, unknown>[]> {
  const all = { get logLines() { return instances.flatMap((instance) => instance.process.logLines); } };
  return logLinesWhen(all, (line) => line.counterRaisedFrom !== undefined, 1, 10_000);
}
const MODEL = "lost";
const FOLLOW_TIMEOUT_MS = 20_000;

/** The status and message a stream opened before the loss ends with. */
const lostMessage = (lastSeen: number, latest: number | "none"): RegExp =>
  new RegExp(
    `^Redis lost versions of model "${MODEL}" that this server had announced \\(a restart without persistence, a crash with appendfsync everysec, or a failover to a replica without them\\): version ${lastSeen} is no longer there as it was, the latest version is now ${latest}; call VersionUpdate again$`,
  );

async function startInstances(t: TestContext, redisUrl: string, count: number): Promise<ServerInstance[]> {
  const archiveDir = await makeArchiveDir(t);
  const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redisUrl };
  const instances: ServerInstance[] = [];
  for (let i = 0; i < count; i++) {
    const instance = await startServerInstance(t, env);
    await untilServing(instance);
    instances.push(instance);
  }
  return instances;
}

function follow(t: TestContext, client: RegistryClient): VersionUpdateFollower {
  const follower = followVersionUpdates(client, MODEL, FOLLOW_TIMEOUT_MS);
  t.after(() => follower.cancel());
  return follower;
}

/** Waits for a stream opened before the loss to end, and checks what it got and how it ended. */
async function assertEndedByLoss(follower: VersionUpdateFollower, numbers: number[], lastSeen: number, latest: number | "none"): Promise<void> {
  await follower.until(() => follower.error !== undefined, "the stream's end");
  assert.deepEqual(follower.numbers, numbers);
  assert.equal(follower.error?.code, grpc.status.UNAVAILABLE, follower.error?.details);
  assert.match(follower.error?.details ?? "", lostMessage(lastSeen, latest));
}

/** The numbers and hashes RetrieveVersionInfos lists for the model. */
async function listed(client: RegistryClient): Promise<[number, string][]> {
  const { version_infos } = await client.retrieveVersionInfos({ model_id: MODEL });
  return version_infos.map((info) => [info.version_number, info.data_hash]);
}

async function assertServes(instances: readonly ServerInstance[], versionNumber: number, data: Buffer): Promise<void> {
  for (const [index, instance] of instances.entries()) {
    const { version_infos } = await instance.client.retrieveVersionInfos({ model_id: MODEL, version_numbers: [versionNumber] });
    assert.deepEqual(
      version_infos.map((info) => [info.version_number, info.data_hash]),
      [[versionNumber, sha256(data)]],
      `the info of version ${versionNumber} on instance ${index}`,
    );
    assert.equal(sha256(await instance.client.retrieveData(MODEL, versionNumber)), sha256(data), `version ${versionNumber}'s bytes on instance ${index}`);
  }
}

async function assertGone(instances: readonly ServerInstance[], versionNumber: number): Promise<void> {
  for (const instance of instances) {
    await rejectsWithStatus(instance.client.retrieveData(MODEL, versionNumber), grpc.status.NOT_FOUND, new RegExp(`version ${versionNumber}\\b`));
  }
}

/** Redis 7's AOF of incremental writes (appendonlydir/<name>.incr.aof): the file a crash cuts short. */
async function incrementalAof(directory: string): Promise<string> {
  const dir = path.join(directory, "appendonlydir");
  const files = (await readdir(dir)).filter((name) => name.endsWith(".incr.aof"));
  assert.equal(files.length, 1, `one incremental AOF file in ${dir}: ${files.join(", ")}`);
  return path.join(dir, files[0] ?? "");
}

describe("Redis shared mode: Redis lost versions the instances had announced", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("Redis comes back with an AOF cut after version 1: streams end UNAVAILABLE, versions 2 and 3 are gone everywhere, numbering goes on at 4 (the lost numbers are never handed out again), and the new versions reach the new streams", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: true });
    const [a, b, c] = await startInstances(t, redis.url, 3);
    assert(a !== undefined && b !== undefined && c !== undefined);
    await a.client.createModel(MODEL);
    const data1 = randomBytes(300_000);
    assert.equal((await a.client.publish(MODEL, data1)).version_number, 1);
    const aof = await incrementalAof(redis.directory);
    const cut = (await stat(aof)).size; // everything up to version 1's commit

    const streams = [follow(t, a.client), follow(t, b.client), follow(t, c.client)];
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 1, "version 1 on the stream");
    }
    const lost2 = randomBytes(200_000);
    const lost3 = randomBytes(2_500_000);
    assert.equal((await a.client.publish(MODEL, lost2)).version_number, 2);
    // Archived: its files stay in the archive directory under a number Redis forgets.
    assert.equal((await a.client.publish(MODEL, lost3, { archived: true })).version_number, 3);
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 3, "versions 2 and 3 on the stream");
    }
    // Read through B and C: their caches hold version 3's bytes.
    await assertServes([a, b, c], 3, lost3);

    // A crash of Redis's host with everysec: what was not fsync'd is gone. Cut the AOF after version 1.
    await redis.stop("SIGKILL");
    await truncate(aof, cut);
    await redis.start();

    for (const stream of streams) {
      await assertEndedByLoss(stream, [1, 2, 3], 3, 1);
    }
    for (const instance of [a, b, c]) {
      assert.deepEqual(await listed(instance.client), [[1, sha256(data1)]]);
    }
    await assertGone([a, b, c], 2);
    await assertGone([a, b, c], 3);

    // Redis's counter came back with the AOF at 1; the first instance to notice the loss raised it to 3.
    const raised = await counterRaises([a, b, c]);
    assert.deepEqual(
      raised.map((line) => [line.modelId, line.lastSeen, line.latest, line.counterRaisedFrom]),
      [[MODEL, 3, 1, 1]],
    );
    const again = [follow(t, a.client), follow(t, b.client), follow(t, c.client)];
    for (const stream of again) {
      await stream.until(() => stream.numbers.length === 1, "version 1 on the new stream");
    }
    const new4 = randomBytes(2_500_000); // two chunk keys
    const new5 = randomBytes(2_500_000);
    assert.equal((await c.client.publish(MODEL, new4)).version_number, 4);
    assert.equal((await b.client.publish(MODEL, new5, { archived: true })).version_number, 5);
    for (const stream of again) {
      await stream.until(() => stream.numbers.length === 3, "versions 4 and 5 on the new stream");
      assert.deepEqual(stream.numbers, [1, 4, 5]);
      assert.equal(stream.error, undefined);
    }
    await assertServes([a, b, c], 4, new4);
    await assertServes([a, b, c], 5, new5);
    await assertGone([a, b, c], 2);
    await assertGone([a, b, c], 3);
    for (const instance of [a, b, c]) {
      assert.deepEqual(await listed(instance.client), [
        [1, sha256(data1)],
        [4, sha256(new4)],
        [5, sha256(new5)],
      ]);
    }
  });

  test("Redis rewound in place (no reconnection): the commit before anyone noticed takes a lost number; its notification ends the streams, the counter is raised past the lost ones, and the new versions are served with their own bytes", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const [a, b] = await startInstances(t, redis.url, 2);
    assert(a !== undefined && b !== undefined);
    await a.client.createModel(MODEL);
    const data1 = randomBytes(100_000);
    const lost2 = randomBytes(100_000);
    const lost3 = randomBytes(100_000);
    const onB = follow(t, b.client);
    for (const [index, data] of [data1, lost2, lost3].entries()) {
      assert.equal((await a.client.publish(MODEL, data)).version_number, index + 1);
    }
    await onB.until(() => onB.numbers.includes(3), "version 3 on B's stream");
    await assertServes([a, b], 3, lost3); // in both caches

    // What a Redis that lost the commits of versions 2 and 3 holds: their keys gone, the counter at 1,
    // version 1 the latest again (no TTL), while the connections stay up (no catch-up).
    const raw = new Redis(redis.url);
    t.after(() => raw.disconnect());
    const keys = modelKeys("cmr:", MODEL);
    await raw.del(versionInfoKey(keys, 2), versionInfoKey(keys, 3), dataChunkKey(keys, 2, 0), dataChunkKey(keys, 3, 0));
    await raw.zrem(keys.numbers, "2", "3");
    await raw.set(keys.counter, "1");
    await raw.persist(versionInfoKey(keys, 1));
    await raw.persist(dataChunkKey(keys, 1, 0));

    const new2 = randomBytes(100_000);
    assert.equal((await a.client.publish(MODEL, new2)).version_number, 2);
    await assertEndedByLoss(onB, [1, 2, 3], 3, 2);
    await assertGone([a, b], 3);
    await assertServes([a, b], 2, new2);

    const again = follow(t, b.client);
    await again.until(() => again.numbers.length === 1, "version 2 on B's new stream");
    // Both instances noticed the loss (3 seen, gone): the counter went from 2 to 3, so 3 is not handed out again.
    const raised = await counterRaises([a, b]);
    assert.deepEqual(
      raised.map((line) => [line.lastSeen, line.latest, line.counterRaisedFrom]),
      [[3, 2, 2]],
    );
    const new4 = randomBytes(100_000);
    assert.equal((await a.client.publish(MODEL, new4)).version_number, 4);
    await again.until(() => again.numbers.length === 2, "version 4 on B's new stream");
    assert.deepEqual(again.numbers, [2, 4]);
    await assertServes([a, b], 4, new4);
    await assertGone([a, b], 3);
  });

  test("Redis restarted without persistence: the archive is imported again, the streams of a model that lost versions end UNAVAILABLE (not those of a model that lost none), numbering goes on above the archive's records (no number handed out again)", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const [a, b] = await startInstances(t, redis.url, 2);
    assert(a !== undefined && b !== undefined);
    await a.client.createModel(MODEL);
    const archived1 = randomBytes(100_000);
    const lost2 = randomBytes(100_000);
    assert.equal((await a.client.publish(MODEL, archived1, { archived: true })).version_number, 1);
    assert.equal((await a.client.publish(MODEL, lost2)).version_number, 2);
    const streams = [follow(t, a.client), follow(t, b.client)];
    for (const stream of streams) {
      await stream.until(() => stream.numbers.includes(2), "version 2 on the stream");
    }
    await assertServes([a, b], 2, lost2);
    // A model whose versions are all archived loses nothing: its stream goes on.
    const kept = "kept";
    await a.client.createModel(kept);
    const keptData = randomBytes(1000);
    assert.equal((await a.client.publish(kept, keptData, { archived: true })).version_number, 1);
    const keptOnB = followVersionUpdates(b.client, kept, FOLLOW_TIMEOUT_MS);
    t.after(() => keptOnB.cancel());
    await keptOnB.until(() => keptOnB.numbers.length === 1, "the kept model's version 1 on B");

    await redis.stop("SIGKILL");
    await redis.start(); // empty

    for (const stream of streams) {
      await assertEndedByLoss(stream, [2], 2, 1);
    }
    await assertGone([a, b], 2);
    await assertServes([a, b], 1, archived1);
    const again = follow(t, b.client);
    await again.until(() => again.numbers.length === 1, "version 1 on B's new stream");
    // The first claim wrote the archive's numbering records a block ahead (1 + 1024): the import numbers above them.
    const next = randomBytes(100_000);
    assert.equal((await a.client.publish(MODEL, next)).version_number, 1025);
    await again.until(() => again.numbers.length === 2, "version 1025 on B's new stream");
    assert.deepEqual(again.numbers, [1, 1025]);
    await assertServes([a, b], 1025, next);
    assert.equal((await a.client.publish(kept, randomBytes(1000))).version_number, 1025);
    await keptOnB.until(() => keptOnB.numbers.length === 2, "the kept model's version 1025 on B");
    assert.deepEqual(keptOnB.numbers, [1, 1025]);
    assert.equal(keptOnB.error, undefined);
  });
});
