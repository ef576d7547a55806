/*
 * Redis shared mode: an instance announces its own commit when the commit script's reply comes back on
 * its command connection, and another instance's deletion of the model on its subscriber connection:
 * two connections, in no set order. A commit reply that comes after the deletion's notification is of
 * the deleted model; it must not count as announced for the model created again, whose first versions
 * must still reach the instance's VersionUpdate streams.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type TestContext, after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { startDelayProxy } from "../support/delay-proxy.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startServerInstance, untilServing } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { followVersionUpdates } from "../support/version-update-follower.js";

/** How late A gets its command replies from Redis (its change feed comes on time). */
const REPLY_DELAY_MS = 300;

describe("Redis shared mode: an instance's own commit answered after the model's deletion", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  /** `race`: B deletes the model before A has the reply of its commit of version 3 (the control waits for it). */
  const scenario = async (t: TestContext, race: boolean): Promise<void> => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const archiveDir = await makeArchiveDir(t);
    const proxy = await startDelayProxy(redis.port, REPLY_DELAY_MS, { subscribersOnTime: true });
    t.after(() => proxy.close());
    const a = await startServerInstance(t, {
      COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
      COGMENT_MODEL_REGISTRY_REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
    });
    const b = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    await untilServing(a);
    await untilServing(b);
    const modelId = "flicker";
    await b.client.createModel(modelId);
    await b.client.createModel("marker");
    await b.client.publish("marker", randomBytes(10));
    await a.client.publish(modelId, randomBytes(100));
    await a.client.publish(modelId, randomBytes(100));

    // A commits version 3; the moment its commit is published, B deletes the model.
    const events = new Redis(redis.url);
    events.on("error", () => undefined);
    t.after(() => events.disconnect());
    await events.subscribe("cmr:events");
    const version3Published = new Promise<void>((resolve) =>
      events.on("message", (_channel: string, message: string) => {
        const change = JSON.parse(message) as { type: string; version?: { versionNumber: number; modelId: string } };
        if (change.type === "version" && change.version?.modelId === modelId && change.version.versionNumber === 3) {
          resolve();
        }
      }),
    );
    const third = a.client.publish(modelId, randomBytes(100));
    await version3Published;
    if (!race) {
      await third;
    }
    await b.client.deleteModel(modelId);
    assert.equal((await third).version_number, 3); // committed just before the deletion

    // The model is created again and followed on A (the marker's stream, opened after it, is open
    // once it has the marker's version 1); B publishes its versions 1 and 2, then the marker's 2.
    await b.client.createModel(modelId);
    const onA = followVersionUpdates(a.client, modelId, 10_000);
    t.after(() => onA.cancel());
    const markerOnA = followVersionUpdates(a.client, "marker", 10_000);
    t.after(() => markerOnA.cancel());
    await markerOnA.until(() => markerOnA.numbers.includes(1), "the marker's version 1 on A");
    assert.equal((await b.client.publish(modelId, randomBytes(100))).version_number, 1);
    assert.equal((await b.client.publish(modelId, randomBytes(100))).version_number, 2);
    await b.client.publish("marker", randomBytes(10));
    // A's change feed delivered the marker's version 2 after the model's versions 1 and 2.
    await markerOnA.until(() => markerOnA.numbers.includes(2), "the marker's version 2 on A");
    await onA.until(() => onA.numbers.length >= 2, "versions 1 and 2 of the re-created model on A", 2_000);
    assert.deepEqual(onA.numbers, [1, 2]);
  };

  test("control: A's commit answered before the deletion: A's stream of the re-created model gets its versions", (t) => scenario(t, false));
  test("A's commit answered after the deletion's notification: A's stream of the re-created model still gets its versions", (t) =>
    scenario(t, true));
});
