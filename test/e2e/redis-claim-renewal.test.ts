/*
 * Redis shared mode: a transient upload's last chunk may still be on its way into Redis when the
 * upload ends and its version number is claimed (here its SET waits on the instance's chunk
 * connection behind a large read-through, whose replies come slowly but steadily). The claim's lease
 * (5 s) must be renewed until the chunks are stored and the commit is sent, however long that takes.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { modelHashTag } from "../../src/redis/index.js";
import { startMonitor } from "../support/redis-monitor.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startServerInstance, untilServing } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { startThrottleProxy } from "../support/throttle-proxy.js";

const MIB = 1024 * 1024;
/** Redis's answers to A: 16 KiB every 40 ms (400 KiB/s) on each connection. */
const ANSWER_BYTES_PER_TICK = 16 * 1024;
const ANSWER_TICK_MS = 40;

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

describe("Redis shared mode: the claim of a transient version's number", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("is kept while the upload's last chunk waits longer than the lease to be stored, and the version is committed", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const archiveDir = await makeArchiveDir(t);
    const proxy = await startThrottleProxy(redis.port, ANSWER_BYTES_PER_TICK, ANSWER_TICK_MS);
    t.after(() => proxy.close());
    const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
    const a = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    const b = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    await untilServing(a);
    await untilServing(b);
    const large = randomBytes(5 * MIB);
    await b.client.createModel("large");
    await b.client.publish("large", large);
    await a.client.createModel("small");

    // A reads the 5 MiB version through: its chunk GETs are sent at once, their replies take ~13 s.
    const chunkGets = `cmr:${modelHashTag("large")}:d:1:`;
    let sent: () => void = () => undefined;
    const getsSent = new Promise<void>((resolve) => (sent = resolve));
    await startMonitor(t, redis.url, (args) => {
      if (args[0]?.toLowerCase() === "get" && args[1] === `${chunkGets}2`) {
        sent();
      }
    });
    const reading = a.client.retrieveData("large", 1);
    await getsSent;
    // The upload's one chunk goes on the same chunk connection: its SET is answered after those replies.
    const data = randomBytes(100_000);
    const stored = await a.client.publish("small", data);
    assert.deepEqual([stored.version_number, stored.data_hash], [1, sha256(data)]);
    assert.equal(sha256(await reading), sha256(large));
    assert.equal(sha256(await b.client.retrieveData("small", 1)), sha256(data));
  });
});
