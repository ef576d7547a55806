/*
 * findLostVersion (src/state/lost-versions.ts) against a real redis-server: what counts as a version
 * Redis lost (gone with nothing above it, another version under its number) and what does not (still
 * there as it was, expired once later versions came, the model deleted meanwhile).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { type TestContext, after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { RedisRegistryStore } from "../../src/redis/index.js";
import { modelKeys, versionInfoKey } from "../../src/redis/redis-keys.js";
import type { VersionRecord } from "../../src/domain/index.js";
import { findLostVersion, sameVersion } from "../../src/state/lost-versions.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { commitTransientVersion } from "../support/redis-store-versions.js";

after(killAllRedisServers);

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

async function setup(t: TestContext): Promise<{ store: RedisRegistryStore; raw: Redis }> {
  const server = await startRedisServer(t, { appendOnly: false });
  const store = RedisRegistryStore.create(server.url, { expirationMs: 0, commandTimeoutMs: 2000 });
  t.after(() => store.close());
  await store.connection.waitUntilHealthy(30_000);
  const raw = new Redis(server.url);
  t.after(() => raw.disconnect());
  return { store, raw };
}

/** Commits `count` transient versions of `modelId` (created if needed); their records in order. */
async function commit(store: RedisRegistryStore, modelId: string, count: number): Promise<VersionRecord[]> {
  const records: VersionRecord[] = [];
  for (let i = 0; i < count; i++) {
    records.push((await commitTransientVersion(store, modelId, randomBytes(1000))).record);
  }
  return records;
}

/** What Redis holds after losing the commits above `keep`: their infos and numbers gone, the counter back. */
async function loseAbove(raw: Redis, modelId: string, keep: number, upTo: number): Promise<void> {
  const keys = modelKeys("cmr:", modelId);
  for (let n = keep + 1; n <= upTo; n++) {
    await raw.del(versionInfoKey(keys, n));
    await raw.zrem(keys.numbers, String(n));
  }
  await raw.set(keys.counter, String(keep));
}

describe("findLostVersion", () => {
  test("a version still held as it was is not lost; gone with nothing above it, or another version under its number, is", async (t) => {
    const { store, raw } = await setup(t);
    const [v1, , v3] = await commit(store, "m", 3);
    assert(v1 !== undefined && v3 !== undefined);
    assert.equal(await findLostVersion(store, "m", v3, 0), undefined);

    await loseAbove(raw, "m", 1, 3);
    assert.deepEqual(await findLostVersion(store, "m", v3, 0), { last: v3, latest: v1 });

    // Numbers 2 and 3 handed out again, to other bytes.
    const [again2, again3] = await commit(store, "m", 2);
    assert.equal(again3?.versionNumber, 3);
    assert.deepEqual(await findLostVersion(store, "m", v3, 0), { last: v3, latest: again3 });
    assert.equal(await findLostVersion(store, "m", again3 as VersionRecord, 0), undefined);
    assert.equal(again2?.versionNumber, 2);

    // Every version gone (a model created in the lost second would be gone too: see the next test).
    await loseAbove(raw, "m", 0, 3);
    assert.deepEqual(await findLostVersion(store, "m", v3, 0), { last: v3, latest: undefined });
  });

  test("a version that expired once later versions came is not lost", async (t) => {
    const { store, raw } = await setup(t);
    const [, v2] = await commit(store, "m", 3);
    assert(v2 !== undefined);
    await raw.del(versionInfoKey(modelKeys("cmr:", "m"), 2)); // what its TTL does
    assert.equal(await findLostVersion(store, "m", v2, 0), undefined);
  });

  test("a model deleted meanwhile is not a loss: its deletion is announced by its own path", async (t) => {
    const { store } = await setup(t);
    const [v1] = await commit(store, "m", 1);
    assert(v1 !== undefined);
    assert.equal(await store.deleteModel("m"), true);
    assert.equal(await findLostVersion(store, "m", v1, 0), undefined, "its generation moved past the known one");
    assert.equal(await findLostVersion(store, "m", v1, undefined), undefined, "the generation unknown: no such model");
    // Created again, with a version 1 of other bytes.
    const { generation } = await store.putModel({ modelId: "m", userData: {} });
    assert.equal(generation, 1);
    const data = randomBytes(1000);
    const writer = store.beginVersionData("m", data.byteLength);
    await writer.append(data);
    const newVersion = { modelId: "m", creationTimestamp: 1n, archived: false, dataHash: sha256(data), dataSize: data.byteLength, userData: {} };
    const again = (await store.commitVersion(newVersion, generation, await writer.finish())).record;
    assert.equal(again.versionNumber, 1);
    assert.notEqual(again.dataHash, v1.dataHash);
    assert.equal(await findLostVersion(store, "m", v1, 0), undefined, "the model's life the version was of ended");
  });

  test("sameVersion tells commits apart by content, not by number", () => {
    const base: VersionRecord = { modelId: "m", versionNumber: 2, creationTimestamp: 5n, archived: false, dataHash: "h", dataSize: 3, userData: {} };
    assert.equal(sameVersion(base, { ...base }), true);
    assert.equal(sameVersion(base, { ...base, dataHash: "other" }), false);
    assert.equal(sameVersion(base, { ...base, dataSize: 4 }), false);
    assert.equal(sameVersion(base, { ...base, creationTimestamp: 6n }), false);
    assert.equal(sameVersion(base, { ...base, archived: true }), false);
    assert.equal(sameVersion(base, { ...base, versionNumber: 3 }), false);
  });
});
