/*
 * Issue #17: a transient version read through from Redis by an instance that has no copy is streamed
 * to its readers as its bytes arrive (the load into the cache goes on meanwhile), once per instance.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { connect } from "node:http2";
import { crc32 } from "node:zlib";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { frameHeaderLength } from "../../src/data/index.js";
import { modelHashTag } from "../../src/redis/index.js";
import { startMonitor } from "../support/redis-monitor.js";
import { type RedisTestServer, killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { type RegistryClient, rejectsWithStatus } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, removeArchiveAfterServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { type ThrottleProxy, startThrottleProxy } from "../support/throttle-proxy.js";
import { openStalledReader, readToEnd } from "../support/stalled-reader.js";
import { exactly } from "../support/exact-text.js";

const MIB = 1024 * 1024;
/** Four 2 MiB chunk keys in Redis, four 2 MiB reply chunks. */
const VERSION_BYTES = 8 * MIB;

type Instance = ServerInstance;

async function tempArchive(t: TestContext): Promise<string> {
  const archiveDir = await makeArchiveDir();
  removeArchiveAfterServers(t, archiveDir);
  return archiveDir;
}

function startInstance(t: TestContext, archiveDir: string, redisUrl: string, env: Record<string, string> = {}): Promise<Instance> {
  return startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redisUrl, ...env });
}

/** One Redis, instance A on it directly, instance B through a throttle proxy (256 KiB every 10 ms). */
async function startThrottledPair(t: TestContext): Promise<{ redis: RedisTestServer; a: Instance; b: Instance; proxy: ThrottleProxy }> {
  const redis = await startRedisServer(t);
  const archiveDir = await tempArchive(t);
  const a = await startInstance(t, archiveDir, redis.url);
  const proxy = await startThrottleProxy(redis.port, 256 * 1024, 10);
  t.after(() => proxy.close());
  const b = await startInstance(t, archiveDir, `redis://127.0.0.1:${proxy.port}`);
  return { redis, a, b, proxy };
}

function inspect(t: TestContext, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  t.after(() => client.disconnect());
  return client;
}

/** One Redis, instances A and B on it (B with `bEnv`), and a plain client of that Redis for the test's own looks and changes. */
async function startPair(t: TestContext, bEnv: Record<string, string> = {}): Promise<{ redis: RedisTestServer; a: Instance; b: Instance; inspector: Redis }> {
  const redis = await startRedisServer(t);
  const archiveDir = await tempArchive(t);
  const a = await startInstance(t, archiveDir, redis.url);
  const b = await startInstance(t, archiveDir, redis.url, bEnv);
  return { redis, a, b, inspector: inspect(t, redis.url) };
}

/**
 * Counts the GETs of a model's data chunk keys that Redis runs from now on (through MONITOR);
 * `count()` first waits for a marker sent after them, so every earlier command is counted.
 */
async function countChunkGets(t: TestContext, url: string, modelId: string): Promise<() => Promise<number>> {
  const prefix = `cmr:${modelHashTag(modelId)}:d:`;
  let gets = 0;
  const markers = new Map<string, () => void>();
  await startMonitor(t, url, (args) => {
    const command = args[0]?.toUpperCase();
    if (command === "GET" && args[1]?.startsWith(prefix) === true) {
      gets += 1;
    } else if (command === "ECHO") {
      markers.get(args[1] ?? "")?.();
    }
  });
  const marker = inspect(t, url);
  let sent = 0;
  return async () => {
    const name = `count-${++sent}`;
    const seen = new Promise<void>((resolve) => markers.set(name, resolve));
    await marker.echo(name);
    await seen;
    return gets;
  };
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");
const sha256Base64 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");
const crc32Hex = (data: Buffer): string => `0x${crc32(data).toString(16).padStart(8, "0")}`;

/** A RetrieveVersionData call: its chunks as they come, the first one's arrival, its end. */
function read(client: RegistryClient, modelId: string, versionNumber: number) {
  const fn = client.raw.RetrieveVersionData as (req: object) => grpc.ClientReadableStream<{ data_chunk: Buffer }>;
  const call = fn.call(client.raw, { model_id: modelId, version_number: versionNumber });
  const chunks: Buffer[] = [];
  let onFirst: (() => void) | undefined;
  const firstChunk = new Promise<void>((resolve, reject) => {
    onFirst = resolve;
    call.on("error", reject);
    call.on("end", () => reject(new Error("the call ended without data")));
  });
  firstChunk.catch(() => undefined);
  const end = new Promise<Buffer>((resolve, reject) => {
    call.on("data", (message) => {
      chunks.push(message.data_chunk);
      onFirst?.();
    });
    call.on("error", reject);
    call.on("end", () => resolve(Buffer.concat(chunks)));
  });
  end.catch(() => undefined);
  return { call, chunks, firstChunk, end };
}

describe("a transient version read through from Redis is streamed while it loads (issue #17)", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("its first chunk reaches the readers before the instance has read it all; the readers share one read of Redis; one that cancels leaves the others intact", async (t) => {
    // B's link to Redis: 256 KiB every 10 ms, and held wherever the test says.
    const { redis, a, b, proxy } = await startThrottledPair(t);
    await a.client.createModel("stream");
    const data = randomBytes(VERSION_BYTES);
    assert.equal((await a.client.publish("stream", data)).version_number, 1);

    const chunkGets = await countChunkGets(t, redis.url, "stream");
    // B's chunk connection (its first use) may carry three of the four chunks; then nothing until the
    // readers got their first chunk.
    const forwardedBefore = proxy.forwardedBytes;
    proxy.holdAt(3 * 2 * MIB);
    const readers = [read(b.client, "stream", 1), read(b.client, "stream", 1), read(b.client, "stream", 1)];
    await Promise.all(readers.map((reader) => reader.firstChunk));
    assert.ok(proxy.forwardedBytes - forwardedBefore < VERSION_BYTES, "B cannot have read the whole version yet");
    const [kept, other, cancelled] = readers as [ReturnType<typeof read>, ReturnType<typeof read>, ReturnType<typeof read>];
    cancelled.call.cancel();
    await rejectsWithStatus(cancelled.end, grpc.status.CANCELLED, /Cancelled/);
    proxy.holdAt(undefined);

    for (const reader of [kept, other]) {
      const received = await reader.end;
      assert.equal(received.length, data.length);
      assert.equal(sha256(received), sha256(data));
      assert.deepEqual(
        reader.chunks.map((chunk) => chunk.length),
        [2 * MIB, 2 * MIB, 2 * MIB, 2 * MIB],
      );
    }
    assert.equal(await chunkGets(), 4, "four chunk GETs: one read of the version for three readers");

    // The version went into B's cache: a later read does not touch Redis's data.
    assert.equal(sha256(await b.client.retrieveData("stream", 1)), sha256(data));
    assert.equal(await chunkGets(), 4);
  });

  test("a version deleted while it loads: the readers that asked before get it whole with OK; it is not cached, later reads get NOT_FOUND", async (t) => {
    const { a, b, proxy } = await startThrottledPair(t);
    await a.client.createModel("going");
    const data = randomBytes(VERSION_BYTES);
    await a.client.publish("going", data);

    // B's chunk connection (first used here) stops after three of the four chunks; its other
    // connections (commands, the subscription) are far below the mark and keep going.
    proxy.holdAt(proxy.forwardedBytes + 3 * 2 * MIB);
    const reader = read(b.client, "going", 1);
    await reader.firstChunk;
    await a.client.deleteModel("going");
    // Time for the deletion's event to reach B (it drops the model from B's cache) before the load
    // ends: the order that left the loaded version in the cache before the fix.
    await sleep(300);
    proxy.holdAt(undefined);
    const received = await reader.end;
    assert.equal(sha256(received), sha256(data), "the whole version, as it was when asked for");
    await rejectsWithStatus(b.client.retrieveData("going", 1), grpc.status.NOT_FOUND, /going/);
    assert.equal((await b.client.status(["cached_versions"])).statuses.cached_versions, "0");
  });

  test("a chunk connection lost mid-stream ends the call with UNAVAILABLE naming Redis, after the bytes already sent", async (t) => {
    const { a, b, proxy } = await startThrottledPair(t);
    await a.client.createModel("cut");
    const data = randomBytes(VERSION_BYTES);
    await a.client.publish("cut", data);

    proxy.holdAt(3 * MIB); // B's chunk connection: one chunk and a half
    const reader = read(b.client, "cut", 1);
    await reader.firstChunk;
    await proxy.close(); // every connection of B to Redis is cut
    await rejectsWithStatus(reader.end, grpc.status.UNAVAILABLE, new RegExp(`^Redis at 127\\.0\\.0\\.1:${proxy.port} is unreachable`));
    assert.deepEqual(Buffer.concat(reader.chunks), data.subarray(0, 2 * MIB), "the first chunk, then the status");
  });

  test("a corrupted chunk: the chunks before it are streamed, then DATA_LOSS naming it (none of its bytes); nothing is cached, the next read goes to Redis again", async (t) => {
    const { redis, a, b, inspector } = await startPair(t);
    await a.client.createModel("bitrot");
    const data = randomBytes(VERSION_BYTES);
    await a.client.publish("bitrot", data);
    // The last chunk key: one byte changed, same length (only a checksum can tell).
    const chunkKey = `cmr:${modelHashTag("bitrot")}:d:1:3`;
    await inspector.setrange(chunkKey, 1000, Buffer.from([(data[6 * MIB + 1000] as number) ^ 0xff]));
    const stored = Buffer.from(data);
    stored[6 * MIB + 1000] = (data[6 * MIB + 1000] as number) ^ 0xff;
    const expectedMessage =
      `version 1 of model "bitrot" is corrupted in Redis: chunk 3 (bytes ${6 * MIB} to ${8 * MIB - 1}) ` +
      `has CRC-32 ${crc32Hex(stored.subarray(6 * MIB))}, its info says ${crc32Hex(data.subarray(6 * MIB))}`;

    const chunkGets = await countChunkGets(t, redis.url, "bitrot");
    const readers = [read(b.client, "bitrot", 1), read(b.client, "bitrot", 1)];
    for (const reader of readers) {
      await rejectsWithStatus(reader.end, grpc.status.DATA_LOSS, exactly(expectedMessage));
      assert.equal(sha256(Buffer.concat(reader.chunks)), sha256(data.subarray(0, 6 * MIB)), "the three good chunks, then the status");
    }
    assert.equal(await chunkGets(), 4, "one read for both readers");

    const again = read(b.client, "bitrot", 1);
    await rejectsWithStatus(again.end, grpc.status.DATA_LOSS, /is corrupted in Redis: chunk 3 /);
    assert.equal(await chunkGets(), 8, "nothing was cached: read from Redis again");
    // A still serves its own upload's bytes, as received.
    assert.equal(sha256(await a.client.retrieveData("bitrot", 1)), sha256(data));
  });

  test("a corrupted chunk read by an instance without room in its cache: the chunks before it, then DATA_LOSS naming it", async (t) => {
    // B's budget is smaller than one version: the version is streamed from Redis chunk by chunk, not loaded.
    const { a, b: cramped, inspector } = await startPair(t, { COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(MIB) });
    await a.client.createModel("bitrot");
    const data = randomBytes(VERSION_BYTES);
    await a.client.publish("bitrot", data);
    const chunkKey = `cmr:${modelHashTag("bitrot")}:d:1:1`;
    await inspector.setrange(chunkKey, 5, Buffer.from([(data[2 * MIB + 5] as number) ^ 0x01]));
    const stored = Buffer.from(data.subarray(2 * MIB, 4 * MIB));
    stored[5] = (data[2 * MIB + 5] as number) ^ 0x01;

    const reader = read(cramped.client, "bitrot", 1);
    await rejectsWithStatus(
      reader.end,
      grpc.status.DATA_LOSS,
      exactly(
        `version 1 of model "bitrot" is corrupted in Redis: chunk 1 (bytes ${2 * MIB} to ${4 * MIB - 1}) has CRC-32 ${crc32Hex(stored)}, its info says ${crc32Hex(data.subarray(2 * MIB, 4 * MIB))}`,
      ),
    );
    assert.equal(sha256(Buffer.concat(reader.chunks)), sha256(data.subarray(0, 2 * MIB)), "the first chunk, then the status");
  });

  test("a version committed without chunk checksums (by an earlier build) is checked by its SHA-256: every byte, then DATA_LOSS", async (t) => {
    const { a, b, inspector } = await startPair(t);
    await a.client.createModel("older");
    const data = randomBytes(VERSION_BYTES);
    await a.client.publish("older", data);
    // The info as an earlier build wrote it: no chunkBytes, no chunkCrc32.
    const infoKey = `cmr:${modelHashTag("older")}:v:1`;
    const info = JSON.parse((await inspector.get(infoKey)) ?? "null") as Record<string, unknown>;
    assert.equal(info.chunkBytes, 2 * MIB);
    assert.equal((info.chunkCrc32 as unknown[]).length, 4);
    delete info.chunkBytes;
    delete info.chunkCrc32;
    await inspector.set(infoKey, JSON.stringify(info), "KEEPTTL");

    // Intact, it is served whole.
    assert.equal(sha256(await b.client.retrieveData("older", 1)), sha256(data));

    await a.client.createModel("older-bitrot");
    await a.client.publish("older-bitrot", data);
    const bitrotInfoKey = `cmr:${modelHashTag("older-bitrot")}:v:1`;
    const bitrotInfo = JSON.parse((await inspector.get(bitrotInfoKey)) ?? "null") as Record<string, unknown>;
    delete bitrotInfo.chunkBytes;
    delete bitrotInfo.chunkCrc32;
    await inspector.set(bitrotInfoKey, JSON.stringify(bitrotInfo), "KEEPTTL");
    await inspector.setrange(`cmr:${modelHashTag("older-bitrot")}:d:1:0`, 7, Buffer.from([(data[7] as number) ^ 0x80]));
    const stored = Buffer.from(data);
    stored[7] = (data[7] as number) ^ 0x80;
    const reader = read(b.client, "older-bitrot", 1);
    await rejectsWithStatus(
      reader.end,
      grpc.status.DATA_LOSS,
      exactly(`version 1 of model "older-bitrot" is corrupted in Redis: its data's SHA-256 is "${sha256Base64(stored)}", its info says "${sha256Base64(data)}"`),
    );
    assert.equal(sha256(Buffer.concat(reader.chunks)), sha256(stored), "every byte as stored in Redis, then the status");
  });

  test("an instance keeps its copies of a model's two newest versions: an older copy's memory goes to the next version read through or uploaded", async (t) => {
    const { a, b } = await startPair(t);
    const cacheOf = async (instance: Instance): Promise<{ cached: number; reused: number }> => {
      const { statuses } = await instance.client.status(["cached_versions", "cache_reused_buffers"]);
      return { cached: Number(statuses.cached_versions), reused: Number(statuses.cache_reused_buffers) };
    };
    /** Polls until B's cache holds `cached` versions (the commit's announcement reaches B asynchronously). */
    const bHolds = async (cached: number): Promise<void> => {
      for (let tries = 0; (await cacheOf(b)).cached !== cached; tries++) {
        assert.ok(tries < 200, `B's cache never held ${cached} versions: ${JSON.stringify(await cacheOf(b))}`);
        await sleep(10);
      }
    };
    await a.client.createModel("broadcast");
    const versions = [randomBytes(3 * MIB), randomBytes(3 * MIB), randomBytes(3 * MIB), randomBytes(3 * MIB)];
    const readOnB = async (versionNumber: number): Promise<void> =>
      assert.equal(sha256(await b.client.retrieveData("broadcast", versionNumber)), sha256(versions[versionNumber - 1] as Buffer), `version ${versionNumber}`);

    await a.client.publish("broadcast", versions[0] as Buffer);
    await readOnB(1);
    await a.client.publish("broadcast", versions[1] as Buffer);
    await readOnB(2);
    assert.deepEqual(await cacheOf(b), { cached: 2, reused: 0 });
    await a.client.publish("broadcast", versions[2] as Buffer);
    await bHolds(1); // version 1's copy retired at version 3's commit: version 2's stays
    await readOnB(3);
    assert.deepEqual(await cacheOf(b), { cached: 2, reused: 1 }, "version 3 read into version 1's memory");
    await a.client.publish("broadcast", versions[3] as Buffer);
    await bHolds(1);
    await readOnB(4);
    assert.deepEqual(await cacheOf(b), { cached: 2, reused: 2 });
    // A, which uploaded them: version 4's upload took version 1's memory (retired at version 3's commit).
    assert.deepEqual(await cacheOf(a), { cached: 2, reused: 1 });
    // A retired copy is read through again, intact.
    await readOnB(1);
    assert.equal(sha256(await a.client.retrieveData("broadcast", 2)), sha256(versions[1] as Buffer));
  });

  test("an empty transient version is read through too: one empty chunk and OK, with room in the cache and without", async (t) => {
    const redis = await startRedisServer(t);
    const archiveDir = await tempArchive(t);
    const a = await startInstance(t, archiveDir, redis.url);
    const roomy = await startInstance(t, archiveDir, redis.url);
    // A budget smaller than one version's overhead: nothing can be loaded into it.
    const cramped = await startInstance(t, archiveDir, redis.url, { COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: "1" });
    await a.client.createModel("empty");
    const info = await a.client.publish("empty", Buffer.alloc(0));
    assert.deepEqual([info.version_number, info.data_size], [1, "0"]);
    for (const instance of [roomy, cramped]) {
      const reader = read(instance.client, "empty", 1);
      assert.equal((await reader.end).length, 0);
      assert.deepEqual(
        reader.chunks.map((chunk) => chunk.length),
        [0],
        "one reply chunk without data, as for an empty version in the cache",
      );
    }
  });

  test("a version larger than the cache budget is still served, each reader reading it from Redis", async (t) => {
    const redis = await startRedisServer(t);
    const archiveDir = await tempArchive(t);
    const a = await startInstance(t, archiveDir, redis.url);
    const b = await startInstance(t, archiveDir, redis.url, { COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(4 * MIB) });
    await a.client.createModel("large");
    const data = randomBytes(VERSION_BYTES);
    await a.client.publish("large", data);

    const chunkGets = await countChunkGets(t, redis.url, "large");
    const received = await Promise.all([read(b.client, "large", 1).end, read(b.client, "large", 1).end]);
    for (const bytes of received) {
      assert.equal(sha256(bytes), sha256(data));
    }
    assert.equal(await chunkGets(), 8, "no room in the cache: one read of Redis per reader");
  });

  test("readers of such a version that stop reading hold at most STREAMED_READS_MAX_SIZE between them, then finish byte-exact", async (t) => {
    const redis = await startRedisServer(t);
    const archiveDir = await tempArchive(t);
    const a = await startInstance(t, archiveDir, redis.url);
    const frameBytes = frameHeaderLength(2 * MIB) + 2 * MIB;
    const b = await startInstance(t, archiveDir, redis.url, {
      COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(4 * MIB),
      COGMENT_MODEL_REGISTRY_STREAMED_READS_MAX_SIZE: String(2 * frameBytes),
    });
    await a.client.createModel("large");
    const data = randomBytes(VERSION_BYTES);
    await a.client.publish("large", data);

    const session = connect(`http://127.0.0.1:${b.process.port}`);
    t.after(() => session.destroy());
    const readers = Array.from({ length: 3 }, () => openStalledReader(session, "large", 1));
    const held = async (): Promise<string[]> => {
      const { statuses } = await b.client.status(["streamed_read_bytes", "streamed_reads_waiting"]);
      return [statuses.streamed_read_bytes ?? "", statuses.streamed_reads_waiting ?? ""];
    };
    let seen = await held();
    for (let waited = 0; seen[1] !== "3" && waited < 30_000; waited += 20) {
      await sleep(20);
      seen = await held();
    }
    assert.deepEqual(seen, [String(2 * frameBytes), "3"], "two reply chunks held, every reader waiting for room");
    for (const outcome of await Promise.all(readers.map(readToEnd))) {
      assert.deepEqual([outcome.grpcStatus, sha256(outcome.data)], ["0", sha256(data)]);
    }
    assert.deepEqual(await held(), ["0", "0"]);
  });
});
