/*
 * RedisRegistryStore against a real redis-server (test/support/redis-server.ts): several store
 * instances, each with its own connections, stand for several registry instances.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { compareCodePoints } from "../../src/code-point-order.js";
import { Code, RegistryError } from "../../src/errors/index.js";
import { type NewVersion, type RedisRegistryStoreOptions, RedisRegistryStore, type RegistryChange, type StoredVersion, modelHashTag } from "../../src/redis/index.js";
import { type RedisTestServer, killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startMonitor } from "../support/redis-monitor.js";

after(killAllRedisServers);

const MIB = 1024 * 1024;
const UPLOAD_CHILD = fileURLToPath(new URL("../support/redis-upload-child.js", import.meta.url));

function openStore(t: TestContext, server: RedisTestServer, options: Partial<RedisRegistryStoreOptions> = {}): RedisRegistryStore {
  const store = RedisRegistryStore.create(server.url, { expirationMs: 0, commandTimeoutMs: 1000, ...options });
  t.after(() => store.close());
  return store;
}

async function openReadyStore(t: TestContext, server: RedisTestServer, options: Partial<RedisRegistryStoreOptions> = {}): Promise<RedisRegistryStore> {
  const store = openStore(t, server, options);
  await store.connection.waitUntilHealthy(30_000);
  return store;
}

function newVersion(modelId: string, data: Buffer, userData: Record<string, string> = {}): NewVersion {
  return {
    modelId,
    creationTimestamp: 1_700_000_000_123_456_789n,
    archived: false,
    dataHash: `hash-of-${data.byteLength}`,
    dataSize: data.byteLength,
    userData,
  };
}

async function commitWithData(store: RedisRegistryStore, modelId: string, data: Buffer, generation = 0): Promise<StoredVersion> {
  const writer = store.beginVersionData(modelId, data.byteLength);
  // In uneven pieces, as gRPC messages arrive.
  for (let offset = 0; offset < data.byteLength; offset += 300_001) {
    await writer.append(data.subarray(offset, offset + 300_001));
  }
  return store.commitVersion(newVersion(modelId, data), generation, await writer.finish());
}

async function readAll(store: RedisRegistryStore, version: StoredVersion): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of store.readVersionData(version)) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function rawClient(t: TestContext, server: RedisTestServer): Redis {
  const client = new Redis(server.url);
  t.after(() => client.disconnect());
  return client;
}

async function rejectsWith(promise: Promise<unknown>, code: Code, message: RegExp): Promise<RegistryError> {
  const error = await promise.then(
    () => assert.fail("expected a rejection"),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof RegistryError, `not a RegistryError: ${String(error)}`);
  assert.equal(error.code, code, error.message);
  assert.match(error.message, message);
  return error;
}

describe("RedisRegistryStore", () => {
  test("numbers are unique and gap-free across three instances committing at once", async (t) => {
    const server = await startRedisServer(t);
    const stores = await Promise.all([0, 1, 2].map(() => openReadyStore(t, server)));
    await stores[0]?.putModel({ modelId: "m", userData: {} });
    const perStore = 15;
    const committed = await Promise.all(
      stores.map((store, s) =>
        Promise.all(Array.from({ length: perStore }, (_, i) => commitWithData(store, "m", Buffer.from(`store ${s} version ${i}`)))),
      ),
    );
    const numbers = committed.flat().map((v) => v.record.versionNumber).sort((a, b) => a - b);
    assert.deepEqual(numbers, Array.from({ length: 3 * perStore }, (_, i) => i + 1));
    const listed = await stores[2]?.listVersions("m", 0, 0);
    assert.deepEqual(listed?.map((v) => v.record.versionNumber), numbers);
    const latest = await stores[1]?.latestVersion("m");
    assert.equal(latest?.record.versionNumber, 3 * perStore);
  });

  test("what one instance wrote, another reads at once: model, version info and data", async (t) => {
    const server = await startRedisServer(t);
    const [a, b] = [await openReadyStore(t, server), await openReadyStore(t, server)];
    assert.deepEqual(await a.putModel({ modelId: "shared", userData: { k: "v" } }), { created: true, generation: 0 });
    assert.deepEqual(await b.getModel("shared"), { modelId: "shared", userData: { k: "v" } });
    assert.deepEqual(await b.putModel({ modelId: "shared", userData: {} }), { created: false, generation: 0 });
    assert.deepEqual(await a.getModel("shared"), { modelId: "shared", userData: {} });

    const data = randomBytes(3 * MIB + 17);
    const committed = await commitWithData(a, "shared", data);
    assert.equal(committed.record.versionNumber, 1);
    const seen = await b.getVersion("shared", 1);
    assert.deepEqual(seen?.record, {
      modelId: "shared",
      versionNumber: 1,
      creationTimestamp: 1_700_000_000_123_456_789n,
      archived: false,
      dataHash: `hash-of-${data.byteLength}`,
      dataSize: data.byteLength,
      userData: {},
    });
    assert.equal(seen?.chunkCount, 2);
    assert.ok((await readAll(b, seen as StoredVersion)).equals(data));

    assert.equal(await a.deleteModel("shared"), true);
    assert.equal(await b.getModel("shared"), undefined);
    assert.deepEqual((await b.listModels(0, 0)).models, []);
    await rejectsWith(b.listVersions("shared", 0, 0), Code.NOT_FOUND, /^the model does not exist$/);
    assert.equal(await b.deleteModel("shared"), false);
    // Data and infos are gone, the generation stays.
    assert.deepEqual(await rawClient(t, server).keys("*"), [`cmr:${modelHashTag("shared")}:generation`]);
  });

  test("a deletion is never cut short into a model that exists unlisted: the model goes first, then its index entry", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server);
    const raw = rawClient(t, server);
    await store.putModel({ modelId: "gone", userData: {} });
    // Watch the commands of the deletion: the script that removes the model runs before the ZREM.
    const commands: string[] = [];
    await startMonitor(t, server.url, (args) => commands.push(args.slice(0, 2).join(" ").toLowerCase()));
    assert.equal(await store.deleteModel("gone"), true);
    while (!commands.includes("zrem cmr:models")) {
      await sleep(5); // MONITOR lines come on their own connection
    }
    const script = commands.findIndex((command) => command.startsWith("evalsha ") || command.startsWith("eval "));
    assert.ok(script !== -1 && script < commands.indexOf("zrem cmr:models"), commands.join(", "));
    assert.equal(await raw.zscore("cmr:models", "gone"), null);
    // Cut short after the script (the state such a failure leaves): listings skip and remove the entry.
    await raw.zadd("cmr:models", 0, "gone");
    assert.deepEqual((await store.listModels(0, 0)).models, []);
    assert.equal(await raw.zscore("cmr:models", "gone"), null);
  });

  test("a create is never cut short into a model that exists unlisted: its index entry goes first, and again after", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server);
    const commands: string[] = [];
    await startMonitor(t, server.url, (args) => commands.push(args.slice(0, 2).join(" ").toLowerCase()));
    await store.putModel({ modelId: "made", userData: {} });
    while (commands.filter((command) => command === "zadd cmr:models").length < 2) {
      await sleep(5); // MONITOR lines come on their own connection
    }
    const script = commands.findIndex((command) => command.startsWith("evalsha ") || command.startsWith("eval "));
    const first = commands.indexOf("zadd cmr:models");
    assert.ok(first !== -1 && first < script && commands.lastIndexOf("zadd cmr:models") > script, commands.join(", "));
    // What a create cut short after its first step leaves: an entry without a model, skipped and removed.
    const raw = rawClient(t, server);
    await raw.zadd("cmr:models", 0, "never-made");
    assert.deepEqual((await store.listModels(0, 0)).models.map((m) => m.modelId), ["made"]);
    assert.equal(await raw.zscore("cmr:models", "never-made"), null);
  });

  test("models list in UTF-8 byte order, paged by offset, whatever characters the ids hold", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server);
    const ids = ["b", "a{x}b", "}{", "\u{1F600}", "\uE000", "a", "A", "é"];
    for (const id of ids) {
      await store.putModel({ modelId: id, userData: { id } });
    }
    const expected = [...ids].sort(compareCodePoints);
    const seen: string[] = [];
    let offset = 0;
    for (;;) {
      const page = await store.listModels(offset, 3);
      seen.push(...page.models.map((m) => m.modelId));
      if (page.models.length === 0) break;
      offset = page.nextOffset;
    }
    assert.deepEqual(seen, expected);
    // A page of ids alone, with the index's size, read without the other ids.
    assert.deepEqual(await store.listModelIdPage(0, 3), { ids: expected.slice(0, 3), total: 8 });
    assert.deepEqual(await store.listModelIdPage(6, 3), { ids: expected.slice(6), total: 8 });
    assert.deepEqual(await store.listModelIdPage(8, 3), { ids: [], total: 8 });
    assert.deepEqual(await store.listModelIdPage(2, 0), { ids: expected.slice(2), total: 8 });
    // Every key of a model carries its tag as the first {...}, so they share one slot on Redis Cluster.
    const keys = await rawClient(t, server).keys("cmr:{*");
    for (const id of ids) {
      const tag = modelHashTag(id);
      assert.match(tag, /^\{[A-Za-z0-9_-]+\}$/);
      assert.ok(keys.some((key) => key.startsWith(`cmr:${tag}:`)), `no key with tag ${tag}`);
    }
    for (const key of keys) {
      assert.equal(/\{([^}]*)\}/.exec(key)?.[0], key.slice(4, key.indexOf("}") + 1));
    }
  });

  test("commits and deletions reach another instance's feed in order", async (t) => {
    const server = await startRedisServer(t);
    const [a, b] = [await openReadyStore(t, server), await openReadyStore(t, server)];
    await b.feed.start();
    const changes: RegistryChange[] = [];
    const gotDeletion = new Promise<void>((resolve) =>
      b.feed.follow("followed", (change) => {
        changes.push(change);
        if (change.type === "deleted") resolve();
      }),
    );
    const everything: string[] = [];
    b.feed.followAll((change) => everything.push(`${change.type}:${change.modelId}`));
    await a.putModel({ modelId: "followed", userData: {} });
    await a.putModel({ modelId: "other", userData: {} });
    for (let i = 0; i < 20; i++) {
      await commitWithData(a, "followed", Buffer.from([i]));
    }
    await a.deleteModel("followed");
    await gotDeletion;
    assert.deepEqual(
      changes.map((c) => (c.type === "version" ? c.version.record.versionNumber : c.type)),
      ["model", ...Array.from({ length: 20 }, (_, i) => i + 1), "deleted"],
    );
    const last = changes[20];
    assert.equal(last?.type === "version" && last.version.record.dataSize, 1);
    assert.deepEqual(changes[21], { type: "deleted", modelId: "followed", generation: 1 });
    assert.deepEqual(everything.slice(0, 2), ["model:followed", "model:other"]);
  });

  test("the latest version has no TTL; earlier transient versions expire, data and info together", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { expirationMs: 400, chunkBytes: 1024 });
    const raw = rawClient(t, server);
    await store.putModel({ modelId: "m", userData: {} });
    const base = `cmr:${modelHashTag("m")}:`;
    await commitWithData(store, "m", randomBytes(2048));
    assert.deepEqual(await Promise.all([`${base}v:1`, `${base}d:1:0`, `${base}d:1:1`].map((k) => raw.pttl(k))), [-1, -1, -1]);
    await commitWithData(store, "m", randomBytes(10));
    for (const key of [`${base}v:1`, `${base}d:1:0`, `${base}d:1:1`]) {
      const ttl = await raw.pttl(key);
      assert.ok(ttl === -2 || (ttl > 0 && ttl <= 400), `${key}: ${ttl}`);
    }
    assert.deepEqual(await Promise.all([`${base}v:2`, `${base}d:2:0`].map((k) => raw.pttl(k))), [-1, -1]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual((await store.listVersions("m", 0, 0)).map((v) => v.record.versionNumber), [2]);
    assert.equal(await store.getVersion("m", 1), undefined);
    assert.deepEqual(await raw.zrange(`${base}numbers`, 0, -1), ["2"]);
    // Archived versions never expire, even once they are not the latest.
    await store.commitVersion({ ...newVersion("m", Buffer.alloc(0)), archived: true }, 0);
    await commitWithData(store, "m", randomBytes(10));
    assert.equal(await raw.pttl(`${base}v:3`), -1);
  });

  test("with expiration off, earlier versions only become evictable (a TTL of a century)", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { expirationMs: 0 });
    const raw = rawClient(t, server);
    await store.putModel({ modelId: "m", userData: {} });
    await commitWithData(store, "m", randomBytes(10));
    await commitWithData(store, "m", randomBytes(10));
    const base = `cmr:${modelHashTag("m")}:`;
    assert.ok((await raw.pttl(`${base}v:1`)) > 3_000_000_000_000);
    assert.equal(await raw.pttl(`${base}v:2`), -1);
  });

  test("a 20 MiB version is stored in 4 MiB chunk keys and read back byte-exact", async (t) => {
    const server = await startRedisServer(t);
    const [a, b] = [await openReadyStore(t, server, { chunkBytes: 4 * MIB }), await openReadyStore(t, server)];
    await a.putModel({ modelId: "big", userData: {} });
    const data = randomBytes(20 * MIB + 5);
    const version = await commitWithData(a, "big", data);
    assert.equal(version.chunkCount, 6);
    const raw = rawClient(t, server);
    const base = `cmr:${modelHashTag("big")}:`;
    assert.deepEqual(
      await Promise.all(Array.from({ length: 6 }, (_, i) => raw.strlen(`${base}d:1:${i}`))),
      [4 * MIB, 4 * MIB, 4 * MIB, 4 * MIB, 4 * MIB, 5],
    );
    assert.deepEqual(await raw.keys(`${base}p:*`), []);
    const read: Buffer[] = [];
    for await (const chunk of b.readVersionData(version)) {
      assert.ok(chunk.byteLength <= 4 * MIB);
      read.push(chunk);
    }
    assert.ok(Buffer.concat(read).equals(data));
  });

  test("a version that left Redis while being read ends the read with NOT_FOUND", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { chunkBytes: 1024 });
    await store.putModel({ modelId: "m", userData: {} });
    const version = await commitWithData(store, "m", randomBytes(4096));
    const reader = store.readVersionData(version);
    assert.equal((await reader.next()).value?.byteLength, 1024);
    await rawClient(t, server).del(`cmr:${modelHashTag("m")}:d:1:2`);
    assert.equal((await reader.next()).value?.byteLength, 1024);
    await rejectsWith(reader.next(), Code.NOT_FOUND, /^the data of version 1 of model "m" left Redis while it was read/);
  });

  test("copyVersionData hands over every chunk in order, pieces of any size, byte-exact (reused write buffers)", async (t) => {
    const server = await startRedisServer(t);
    // 13 chunks with 2 in flight: the writer fills its chunk buffers again several times.
    const store = await openReadyStore(t, server, { chunkBytes: 64 * 1024 });
    await store.putModel({ modelId: "m", userData: {} });
    const data = randomBytes(12 * 64 * 1024 + 7);
    const version = await commitWithData(store, "m", data);
    assert.equal(version.chunkCount, 13);
    const copy = Buffer.alloc(data.byteLength);
    let position = 0;
    await store.copyVersionData(version, (piece) => {
      copy.set(piece, position);
      position += piece.byteLength;
    });
    assert.equal(position, data.byteLength);
    assert.ok(copy.equals(data));
  });

  test("uploads one after the other fill the same chunk buffers: 1 + maxChunksInFlight allocated in all, every version byte-exact", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { chunkBytes: 64 * 1024, maxChunksInFlight: 2 });
    await store.putModel({ modelId: "m", userData: {} });
    const datas = [randomBytes(12 * 64 * 1024 + 7), randomBytes(13 * 64 * 1024), randomBytes(5 * 64 * 1024 + 1)];
    const versions = [];
    for (const data of datas) {
      versions.push(await commitWithData(store, "m", data));
    }
    // Without the pool each upload allocated its own 3 buffers (9 here).
    assert.deepEqual(store.chunkBufferStats(), { allocated: 3, kept: 3 });
    for (const [index, version] of versions.entries()) {
      assert.ok((await readAll(store, version)).equals(datas[index] as Buffer), `version ${version.record.versionNumber} reads back exactly`);
    }
    // A version smaller than a chunk takes a buffer of its own size, not a pooled one.
    await commitWithData(store, "m", Buffer.from("small"));
    assert.deepEqual(store.chunkBufferStats(), { allocated: 3, kept: 3 });
  });

  test("uploads at once each fill their own buffers, and the chunks of one never show another's bytes", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { chunkBytes: 64 * 1024, maxChunksInFlight: 2 });
    await store.putModel({ modelId: "m", userData: {} });
    const datas = Array.from({ length: 4 }, () => randomBytes(9 * 64 * 1024 + 3));
    const versions = await Promise.all(datas.map((data) => commitWithData(store, "m", data)));
    const read = await Promise.all(versions.map((version) => readAll(store, version)));
    for (const [index, data] of datas.entries()) {
      assert.ok(read[index]?.equals(data), `upload ${index} reads back exactly`);
    }
    const { allocated, kept } = store.chunkBufferStats();
    // Each upload goes through its own 1 + maxChunksInFlight buffers, as without the pool.
    assert.ok(allocated <= 4 * 3, `at most 3 buffers per upload: ${allocated}`);
    assert.equal(kept, 6, "kept up to 2 × (1 + maxChunksInFlight)");
    await commitWithData(store, "m", randomBytes(9 * 64 * 1024));
    assert.deepEqual(store.chunkBufferStats(), { allocated, kept: 6 }, "the next upload allocates nothing");
  });

  test("a chunk gone from Redis fails copyVersionData with NOT_FOUND, and the sink gets nothing after that", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { chunkBytes: 1024 });
    await store.putModel({ modelId: "m", userData: {} });
    const version = await commitWithData(store, "m", randomBytes(10 * 1024));
    await rawClient(t, server).del(`cmr:${modelHashTag("m")}:d:1:3`);
    let received = 0;
    let settled = false;
    await rejectsWith(
      store
        .copyVersionData(version, (piece) => {
          assert.equal(settled, false, "a piece after copyVersionData settled");
          received += piece.byteLength;
        })
        .finally(() => (settled = true)),
      Code.NOT_FOUND,
      /^the data of version 1 of model "m" left Redis while it was read/,
    );
    assert.equal(received, 3 * 1024);
    // The GETs sent ahead of the failure are answered meanwhile; the channel still serves.
    assert.equal((await readAll(store, { ...version, chunkCount: 3 })).byteLength, 3 * 1024);
  });

  test("a writer killed with kill -9 mid-upload leaves no version, and its chunks expire", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server);
    await store.putModel({ modelId: "m", userData: {} });
    const child = spawn(process.execPath, [UPLOAD_CHILD, server.url, "m", String(8 * 1024), "1024"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    t.after(() => child.kill("SIGKILL"));
    const lines = createInterface({ input: child.stdout });
    const [line] = (await once(lines, "line")) as [string];
    assert.equal(line, "half");
    child.kill("SIGKILL");
    await once(child, "exit");
    const raw = rawClient(t, server);
    const pending = await raw.keys(`cmr:${modelHashTag("m")}:p:*`);
    assert.ok(pending.length >= 3, `pending keys: ${pending.join(", ")}`);
    for (const key of pending) {
      assert.ok((await raw.pttl(key)) > 0, `${key} has no TTL`);
    }
    assert.deepEqual(await store.listVersions("m", 0, 0), []);
    assert.equal(await store.latestVersion("m"), undefined);
    // The number was not taken: the next commit is 1.
    assert.equal((await commitWithData(store, "m", Buffer.from("x"))).record.versionNumber, 1);
  });

  test("an abort while an append is writing chunks leaves no chunk key behind (none written after its UNLINK)", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { chunkBytes: 4, maxChunksInFlight: 1 });
    await store.putModel({ modelId: "m", userData: {} });
    const writer = store.beginVersionData("m", 4000);
    // 1000 chunks, at most one SET in flight: the append waits on SETs until the abort lands.
    const appending = writer.append(Buffer.alloc(4000, 7)).then(
      () => "appended",
      (error: Error) => error.message,
    );
    const redis = rawClient(t, server);
    while ((await redis.keys(`cmr:${modelHashTag("m")}:p:*`)).length < 3) {
      await sleep(1);
    }
    await writer.abort();
    assert.equal(await appending, "the upload was aborted");
    await sleep(100); // a SET issued after the abort would have landed by now
    assert.deepEqual(await redis.keys(`cmr:${modelHashTag("m")}:p:*`), []);
  });

  test("a commit whose pending chunks are gone is refused and takes no number", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { chunkBytes: 4 });
    await store.putModel({ modelId: "m", userData: {} });
    const writer = store.beginVersionData("m", 8);
    await writer.append(Buffer.from("abcdefgh"));
    const uploaded = await writer.finish();
    await rawClient(t, server).del(`cmr:${modelHashTag("m")}:p:${uploaded.uploadId}:1`);
    await rejectsWith(
      store.commitVersion(newVersion("m", Buffer.from("abcdefgh")), 0, uploaded),
      Code.RESOURCE_EXHAUSTED,
      /^chunk 1 of the upload left Redis before its commit/,
    );
    assert.equal((await commitWithData(store, "m", Buffer.from("y"))).record.versionNumber, 1);
  });

  test("an upload begun before its model was deleted and re-created does not land in the new model", async (t) => {
    const server = await startRedisServer(t);
    const [a, b] = [await openReadyStore(t, server), await openReadyStore(t, server)];
    const { generation } = await a.putModel({ modelId: "m", userData: {} });
    const writer = a.beginVersionData("m", 3);
    await writer.append(Buffer.from("abc"));
    await b.deleteModel("m");
    assert.deepEqual(await b.putModel({ modelId: "m", userData: {} }), { created: true, generation: 1 });
    await rejectsWith(
      a.commitVersion(newVersion("m", Buffer.from("abc")), generation, await writer.finish()),
      Code.NOT_FOUND,
      /^the model was deleted while the version was uploading$/,
    );
    await rejectsWith(a.commitVersion(newVersion("nobody", Buffer.alloc(0)), 0), Code.NOT_FOUND, /^the model does not exist$/);
    assert.equal((await commitWithData(b, "m", Buffer.from("new"), 1)).record.versionNumber, 1);
  });

  test("Redis stopped: calls fail fast with UNAVAILABLE naming Redis; the store recovers when it is back", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { commandTimeoutMs: 1000 });
    await store.putModel({ modelId: "m", userData: {} });
    await commitWithData(store, "m", Buffer.from("before"));
    const health: boolean[] = [];
    store.connection.on("health", (healthy) => health.push(healthy));
    const resubscribed = once(store.connection, "resubscribed");
    const lost = once(store.connection, "health");
    await server.stop("SIGKILL");
    await lost;
    assert.equal(store.healthy, false);
    const started = Date.now();
    const address = `127\\.0\\.0\\.1:${server.port}`;
    await rejectsWith(store.getModel("m"), Code.UNAVAILABLE, new RegExp(`^Redis at ${address} is unreachable: `));
    await rejectsWith(commitWithData(store, "m", Buffer.from("during")), Code.UNAVAILABLE, new RegExp(`^Redis at ${address} is unreachable: `));
    const reader = store.readVersionData({ record: { ...newVersion("m", Buffer.from("before")), versionNumber: 1 }, chunkCount: 1, storedAtMs: 0 });
    await rejectsWith(reader.next(), Code.UNAVAILABLE, /is unreachable/);
    // Not a speed check: a bound that says the calls did not wait for Redis to come back.
    assert.ok(Date.now() - started < 10_000);

    await server.start();
    await store.connection.waitUntilHealthy(30_000);
    await resubscribed;
    assert.deepEqual(health, [false, true]);
    // No persistence: the data is gone, the store works again.
    assert.equal(await store.getModel("m"), undefined);
    await store.putModel({ modelId: "m", userData: {} });
    assert.equal((await commitWithData(store, "m", Buffer.from("after"))).record.versionNumber, 1);
  });

  test("a hung Redis (SIGSTOP) fails calls after the command timeout with UNAVAILABLE", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { commandTimeoutMs: 500 });
    t.after(() => server.resume());
    const health: boolean[] = [];
    store.connection.on("health", (healthy) => health.push(healthy));
    server.pause();
    await rejectsWith(store.getModel("m"), Code.UNAVAILABLE, new RegExp(`^Redis at 127\\.0\\.0\\.1:${server.port} is unreachable: Command timed out`));
    // The timeout dropped the connection: unhealthy, and the next calls fail at once naming the cause.
    assert.equal(store.connection.healthy, false);
    assert.deepEqual(health, [false]);
    await rejectsWith(store.getModel("m"), Code.UNAVAILABLE, /is unreachable: /);
    server.resume();
    await store.connection.waitUntilHealthy(30_000);
    assert.deepEqual(health, [false, true]);
    assert.equal(await store.getModel("m"), undefined);
  });

  test("a hung Redis is noticed without any call: both connections are probed, health turns false, then true again", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server, { commandTimeoutMs: 300, probeIntervalMs: 100 });
    t.after(() => server.resume());
    const health: boolean[] = [];
    const changed = (): Promise<boolean> => new Promise((resolve) => store.connection.once("health", resolve));
    store.connection.on("health", (healthy) => health.push(healthy));
    const lost = changed();
    server.pause();
    assert.equal(await lost, false);
    assert.match(store.connection.lastFailure, /^no reply (to a PING )?within 300 ms$/);
    await rejectsWith(store.getModel("m"), Code.UNAVAILABLE, new RegExp(`^Redis at 127\\.0\\.0\\.1:${server.port} is unreachable: `));
    server.resume();
    await store.connection.waitUntilHealthy(30_000);
    assert.deepEqual(health, [false, true]);
    assert.equal(await store.getModel("m"), undefined);
  });

  test("a store started while Redis is down reports UNAVAILABLE until it comes up", async (t) => {
    const server = await startRedisServer(t);
    await server.stop("SIGKILL");
    const store = openStore(t, server);
    await rejectsWith(store.connection.waitUntilHealthy(300), Code.UNAVAILABLE, new RegExp(`^Redis at 127\\.0\\.0\\.1:${server.port} is unreachable: `));
    await rejectsWith(store.getModel("m"), Code.UNAVAILABLE, /is unreachable/);
    await server.start();
    await store.connection.waitUntilHealthy(30_000);
    assert.equal(await store.getModel("m"), undefined);
  });

  test("with AOF (appendfsync always), a Redis killed and restarted has every acknowledged write", async (t) => {
    const server = await startRedisServer(t, { appendOnly: true });
    const store = await openReadyStore(t, server);
    await store.putModel({ modelId: "m", userData: { a: "1" } });
    const data = randomBytes(5000);
    for (let i = 0; i < 5; i++) {
      await commitWithData(store, "m", data);
    }
    await server.stop("SIGKILL");
    await server.start();
    const restarted = await openReadyStore(t, server);
    assert.deepEqual(await restarted.getModel("m"), { modelId: "m", userData: { a: "1" } });
    const versions = await restarted.listVersions("m", 0, 0);
    assert.deepEqual(versions.map((v) => v.record.versionNumber), [1, 2, 3, 4, 5]);
    assert.ok((await readAll(restarted, versions[4] as StoredVersion)).equals(data));
    assert.equal((await commitWithData(restarted, "m", data)).record.versionNumber, 6);
  });

  test("after a loss, the counter is raised to the last number seen, only in the generation it was seen in", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server);
    assert.equal(await store.raiseCounterInGeneration("m", 5, 0), undefined, "no model");
    await store.putModel({ modelId: "m", userData: {} });
    assert.equal((await commitWithData(store, "m", Buffer.from("x"))).record.versionNumber, 1);
    assert.equal(await store.raiseCounterInGeneration("m", 3, 1), undefined, "another generation: unchanged");
    assert.equal(await store.raiseCounterInGeneration("m", 3, 0), 1, "raised from 1");
    assert.equal(await store.raiseCounterInGeneration("m", 3, 0), undefined, "not lower any more");
    assert.equal(await store.raiseCounterInGeneration("m", 2, 0), undefined);
    assert.equal((await commitWithData(store, "m", Buffer.from("y"))).record.versionNumber, 4);
  });

  test("numbering stays above the archive's floor; importing the archive creates only what is missing", async (t) => {
    const server = await startRedisServer(t);
    const store = await openReadyStore(t, server);
    await rejectsWith(store.raiseCounter("m", 5), Code.NOT_FOUND, /^the model does not exist$/);
    await store.putModel({ modelId: "m", userData: {} });
    assert.equal(await store.raiseCounter("m", 41), 41);
    assert.equal(await store.raiseCounter("m", 3), 41);
    assert.equal((await commitWithData(store, "m", Buffer.from("x"))).record.versionNumber, 42);

    assert.equal(await store.archiveImported(), false);
    const archived = (n: number): StoredVersion["record"] => ({ ...newVersion("old", Buffer.from("abc"), { n: String(n) }), archived: true, versionNumber: n });
    assert.equal(await store.importArchivedModel({ modelId: "old", userData: { from: "archive" } }, [archived(3), archived(7)]), 7);
    await store.markArchiveImported();
    assert.equal(await store.archiveImported(), true);
    assert.deepEqual((await store.listModels(0, 0)).models, [
      { modelId: "m", userData: {} },
      { modelId: "old", userData: { from: "archive" } },
    ]);
    const versions = await store.listVersions("old", 0, 0);
    assert.deepEqual(versions.map((v) => v.record), [archived(3), archived(7)]);
    assert.equal((await store.commitVersion({ ...newVersion("old", Buffer.from("n")), archived: true }, 0)).record.versionNumber, 8);
    // A second import (another instance starting) changes nothing.
    assert.equal(await store.importArchivedModel({ modelId: "old", userData: { other: "x" } }, [archived(3), archived(7)]), 8);
    assert.deepEqual(await store.getModel("old"), { modelId: "old", userData: { from: "archive" } });
    assert.deepEqual((await store.listVersions("old", 4, 1)).map((v) => v.record.versionNumber), [7]);
    assert.equal((await store.latestVersion("old"))?.record.versionNumber, 8);
    assert.deepEqual((await store.catchUp("old", 3)).map((v) => v.record.versionNumber), [7, 8]);
  });

  test("an import that comes after a deletion of the model in this Redis imports nothing of it, even once the model is created again", async (t) => {
    const server = await startRedisServer(t, { appendOnly: false });
    const importer = await openReadyStore(t, server);
    const other = await openReadyStore(t, server);
    const archived = (n: number): StoredVersion["record"] => ({ ...newVersion("gone", Buffer.from("abc"), { n: String(n) }), archived: true, versionNumber: n });
    const model = { modelId: "gone", userData: { from: "archive" } };
    // Two instances import the archive into an empty Redis; the faster one serves, and the model is deleted through it.
    assert.equal(await other.importArchivedModel(model, [archived(1), archived(2)]), 2);
    assert.equal(await other.deleteModel("gone"), true);
    // The slower one read the archive before the deletion removed the model's files.
    assert.equal(await importer.importArchivedModel(model, [archived(1), archived(2)]), undefined);
    assert.equal(await importer.getModel("gone"), undefined);
    assert.deepEqual((await importer.listModels(0, 0)).models, []);

    await other.putModel({ modelId: "gone", userData: { life: "2" } });
    assert.equal((await commitWithData(other, "gone", Buffer.from("new"), 1)).record.versionNumber, 1);
    assert.equal(await importer.importArchivedModel(model, [archived(1), archived(2), archived(3)]), undefined);
    assert.deepEqual(await importer.getModel("gone"), { modelId: "gone", userData: { life: "2" } });
    const versions = await importer.listVersions("gone", 0, 0);
    assert.deepEqual(
      versions.map((v) => [v.record.versionNumber, v.record.archived]),
      [[1, false]],
    );
    assert.equal((await commitWithData(other, "gone", Buffer.from("next"), 1)).record.versionNumber, 2);
  });
});
