/*
 * After its Redis subscription came back, an instance catches up on every model it follows (several
 * at a time, src/state/catch-up.ts): versions committed meanwhile reach its VersionUpdate streams, in
 * order, and one log line gives the count and the time.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startServerInstance } from "../support/server-instance.js";
import { killAllServers, logLinesWhen } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { followVersionUpdates } from "../support/version-update-follower.js";

const MODELS = 40;
const CAUGHT_UP = "caught up on the followed models' changes after the Redis subscription came back";

describe("catch-up after the Redis subscription came back", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test(`${MODELS} followed models: the versions committed while A's subscriber was down reach A's streams, and one line counts the models`, async (t) => {
    const redis = await startRedisServer(t, { appendOnly: true });
    const archiveDir = await makeArchiveDir(t);
    const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
    const a = await startServerInstance(t, env);
    const b = await startServerInstance(t, env);
    const ids = Array.from({ length: MODELS }, (_, i) => `m${i}`);
    for (const id of ids) {
      await a.client.createModel(id);
      assert.equal((await a.client.publish(id, Buffer.from(`${id} one`))).version_number, 1);
    }
    const streams = ids.map((id) => followVersionUpdates(a.client, id, 30_000));
    t.after(() => streams.forEach((stream) => stream.cancel()));
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 1, "version 1 on A's stream");
    }

    // A's subscriber (and B's) goes away as B commits a version of every model: what A's subscriber
    // missed while it reconnected, A reads by its catch-up.
    const admin = new Redis(redis.url);
    t.after(() => admin.disconnect());
    await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
    for (const id of ids) {
      assert.equal((await b.client.publish(id, Buffer.from(`${id} two`))).version_number, 2);
    }
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 2, "version 2 on A's stream");
      assert.deepEqual(stream.numbers, [1, 2]);
      assert.equal(stream.error, undefined);
    }
    const lines = await logLinesWhen(a.process, (line) => line.msg === CAUGHT_UP);
    assert.deepEqual([lines.at(-1)?.models, lines.at(-1)?.complete], [MODELS, true]);
    assert.equal(typeof lines.at(-1)?.ms, "number");
  });
});
