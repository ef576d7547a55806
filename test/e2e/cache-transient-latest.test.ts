/**
 * A model's latest transient version lives only in the cache: evicting it loses it for good, and
 * actors polling -1 then find the model without versions. Archived versions can be read from and
 * written to disk instead, so an archived read or upload never evicts one; a transient upload that
 * must evict a latest (only latests are left) takes an archived one first (its data stays on disk).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { EncodedVersionData } from "../../src/data/index.js";
import { VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import type { RegistryClient } from "../support/registry-client.js";
import { startTestServer } from "../support/test-server.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

function pattern(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 131 + seed * 7) % 251;
  return data;
}

/** What a cached version of `size` data bytes counts in the budget. */
function cached(size: number): number {
  return EncodedVersionData.planTotalBytes(size, CHUNK) + VERSION_OVERHEAD_BYTES;
}

async function cacheState(client: RegistryClient): Promise<Record<string, string>> {
  return (await client.status(["cached_versions", "cache_data_bytes", "cache_evictions_size", "upload_bytes_outside_budget", "cache_reserved_bytes"]))
    .statuses;
}

/** The bytes of the model's latest version, or the error's message. */
async function latest(client: RegistryClient, modelId: string): Promise<string> {
  return client.retrieveData(modelId, -1).then(
    (data) => sha256(data),
    (error: Error) => error.message,
  );
}

describe("a model's latest transient version is kept when archived data can go to or come from disk", () => {
  test("reading an archived version the cache does not hold streams it from disk rather than evict another model's transient latest", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 3 * MiB, cachePruneCount: 1, sentChunkSize: CHUNK });
    t.after(() => server.close());
    const { client } = server;
    for (const model of ["a", "t1", "t2"]) await client.createModel(model);
    const archived = pattern(700 * KiB, 1);
    const t1 = pattern(1400 * KiB, 2);
    const t2 = pattern(1400 * KiB, 3);
    await client.publish("a", archived, { archived: true });
    await client.publish("t1", t1);
    await client.publish("t2", t2); // only latests in the cache: a's (archived, on disk) goes
    const held = { cached_versions: "2", cache_data_bytes: String(cached(t1.length) + cached(t2.length)), upload_bytes_outside_budget: "0", cache_reserved_bytes: "0" };
    assert.deepEqual(await cacheState(client), { ...held, cache_evictions_size: "1" });

    const back = await client.retrieveData("a", 1);
    assert.equal(sha256(back), sha256(archived));
    assert.equal(back.length, archived.length);
    assert.equal(await latest(client, "t1"), sha256(t1));
    assert.equal(await latest(client, "t2"), sha256(t2));
    // Read from disk, not cached: the transient latests stayed, nothing more was evicted.
    assert.deepEqual(await cacheState(client), { ...held, cache_evictions_size: "1" });
    // A second read streams from disk again, with the same bytes.
    assert.equal(sha256(await client.retrieveData("a", -1)), sha256(archived));
  });

  test("an archived upload that fits a share of the budget streams to disk rather than evict a transient latest", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 3 * MiB, cachePruneCount: 1, sentChunkSize: CHUNK });
    t.after(() => server.close());
    const { client } = server;
    for (const model of ["a", "t1", "t2"]) await client.createModel(model);
    const t1 = pattern(1400 * KiB, 4);
    const t2 = pattern(1400 * KiB, 5);
    const archived = pattern(700 * KiB, 6);
    await client.publish("t1", t1);
    await client.publish("t2", t2);
    const info = await client.publish("a", archived, { archived: true, data_hash: sha256(archived), chunkBytes: 100 * KiB });
    assert.equal(info.data_hash, sha256(archived));
    assert.equal(info.data_size, String(archived.length));
    assert.equal(info.archived, true);
    assert.equal(await latest(client, "t1"), sha256(t1));
    assert.equal(await latest(client, "t2"), sha256(t2));
    const held = { cached_versions: "2", cache_data_bytes: String(cached(t1.length) + cached(t2.length)), cache_evictions_size: "0" };
    assert.deepEqual(await cacheState(client), { ...held, upload_bytes_outside_budget: "0", cache_reserved_bytes: "0" });
    // Written to disk whole: read back from there, byte for byte.
    assert.equal(sha256(await client.retrieveData("a", 1)), sha256(archived));
    assert.deepEqual(await cacheState(client), { ...held, upload_bytes_outside_budget: "0", cache_reserved_bytes: "0" });
  });

  test("the batch of an archived upload too large for the cache is held beside the budget rather than evict a transient latest", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 3 * MiB, cachePruneCount: 1, sentChunkSize: CHUNK });
    t.after(() => server.close());
    const { client } = server;
    for (const model of ["a", "t1", "t2"]) await client.createModel(model);
    const t1 = pattern(1400 * KiB, 12);
    const t2 = pattern(1400 * KiB, 13);
    const archived = pattern(MiB, 14); // over a quarter of the budget: streamed to disk in one 1 MiB batch
    await client.publish("t1", t1);
    await client.publish("t2", t2);
    const info = await client.publish("a", archived, { archived: true, data_hash: sha256(archived), chunkBytes: 128 * KiB });
    assert.equal(info.data_hash, sha256(archived));
    assert.equal(await latest(client, "t1"), sha256(t1));
    assert.equal(await latest(client, "t2"), sha256(t2));
    const held = { cached_versions: "2", cache_data_bytes: String(cached(t1.length) + cached(t2.length)), cache_evictions_size: "0" };
    assert.deepEqual(await cacheState(client), { ...held, upload_bytes_outside_budget: "0", cache_reserved_bytes: "0" });
    assert.equal(sha256(await client.retrieveData("a", 1)), sha256(archived));
  });

  test("an archived upload does not evict its own model's transient latest either (until it commits, that is the latest)", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 3 * MiB, cachePruneCount: 1, sentChunkSize: CHUNK });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("m");
    const transient = pattern(2500 * KiB, 10);
    const archived = pattern(700 * KiB, 11);
    await client.publish("m", transient);
    const info = await client.publish("m", archived, { archived: true, data_hash: sha256(archived) });
    assert.equal(info.version_number, 2);
    const infos = await client.retrieveVersionInfos({ model_id: "m" });
    assert.deepEqual(
      infos.version_infos.map((v) => [v.version_number, v.archived]),
      [
        [1, false],
        [2, true],
      ],
    );
    assert.equal(sha256(await client.retrieveData("m", 1)), sha256(transient));
    // Version 1 is no longer the latest: reading version 2 may now evict it, as any older version.
    assert.equal(sha256(await client.retrieveData("m", 2)), sha256(archived));
  });

  test("a transient upload that must evict a latest evicts an archived one before a transient one", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 3 * MiB, cachePruneCount: 1, sentChunkSize: CHUNK });
    t.after(() => server.close());
    const { client } = server;
    for (const model of ["a", "t1", "t2"]) await client.createModel(model);
    const t1 = pattern(MiB, 7);
    const archived = pattern(700 * KiB, 8); // within the archived share of the budget: cached
    const t2 = pattern(1400 * KiB, 9);
    await client.publish("t1", t1); // the least recently used latest
    await client.publish("a", archived, { archived: true });
    assert.equal((await cacheState(client)).cached_versions, "2");
    await client.publish("t2", t2); // room for it: one latest must go, a's (on disk)
    assert.deepEqual(await cacheState(client), {
      cached_versions: "2",
      cache_data_bytes: String(cached(t1.length) + cached(t2.length)),
      cache_evictions_size: "1",
      upload_bytes_outside_budget: "0",
      cache_reserved_bytes: "0",
    });
    assert.equal(await latest(client, "t1"), sha256(t1));
    assert.equal(await latest(client, "t2"), sha256(t2));
    assert.equal(await latest(client, "a"), sha256(archived));
  });
});
