import assert from "node:assert/strict";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { Code } from "../../src/errors/index.js";
import { Registry, VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { planChunkLayout } from "../../src/data/index.js";
import type { ArchiveStore } from "../../src/archive/index.js";
import { toRegistryError } from "../../src/rpc/to-service-error.js";
import type { VersionRecord } from "../../src/registry/index.js";
import type { RegistryOptions } from "../../src/registry/registry.js";
import { createHashLanes } from "../../src/worker-pool/index.js";
import { VersionSubscription } from "../../src/registry/version-subscription.js";
import { testRegistryOptions } from "../support/registry-options.js";

const sha256Base64 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

async function openRegistry(
  t: { after: (fn: () => Promise<void>) => void },
  cacheMaxBytes = 1 << 20,
  options: Partial<RegistryOptions> = {},
): Promise<Registry> {
  const root = await mkdtemp(path.join(tmpdir(), "mr-reg-"));
  const store = createFsArchiveStore({ root, writer: inlineFileWriter });
  const registry = await Registry.open({
    ...(await testRegistryOptions(store)),
    cacheMaxBytes,
    ...options,
  });
  t.after(async () => {
    registry.close();
    await store.close?.(); // its background work (clean-ups, journal) is over before the directory goes
    await rm(root, { recursive: true, force: true });
  });
  return registry;
}

async function publish(registry: Registry, modelId: string, data: Buffer, archived = false): Promise<VersionRecord> {
  const upload = await registry.beginUpload({ modelId, archived, creationTimestamp: 0n, dataHash: "", dataSize: data.length, userData: {} });
  await upload.append(data);
  return upload.finish();
}

/** An archive whose reads past `openBytes` wait for open(), and that counts the data files opened. */
function gatedArchive(store: ArchiveStore, openBytes: number): { archive: ArchiveStore; opens: () => number; open: () => void } {
  let opened = 0;
  let openGate: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  const archive: ArchiveStore = {
    ...store,
    openVersionData: async (modelId, versionNumber) => {
      opened += 1;
      const reader = await store.openVersionData(modelId, versionNumber);
      return {
        size: reader.size,
        location: reader.location,
        read: async (target, position) => {
          if (position + target.byteLength > openBytes) {
            await gate;
          }
          return reader.read(target, position);
        },
        close: () => reader.close(),
      };
    },
  };
  return { archive, opens: () => opened, open: () => openGate() };
}

/** The data of a stream of reply frames of `chunkSize` data bytes each (the last one shorter): each frame ends with its chunk. */
async function streamedData(frames: Iterable<Buffer> | AsyncIterable<Buffer>, dataSize: number, chunkSize: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let position = 0;
  for await (const frame of frames) {
    const length = Math.min(chunkSize, dataSize - position);
    chunks.push(Buffer.from(frame.subarray(frame.byteLength - length)));
    position += length;
  }
  return Buffer.concat(chunks);
}

function patterned(size: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) data[i] = (i * 131 + 7) & 0xff;
  return data;
}

describe("VersionDataOpener: an archived version streamed while it is loaded into the cache", () => {
  const size = 64 * 1024 + 100;
  const chunk = 1024;
  const encoded = planChunkLayout(size, chunk).totalBytes + VERSION_OVERHEAD_BYTES;

  async function archivedVersion(t: { after: (fn: () => Promise<void>) => void }, corrupt: boolean) {
    const root = await mkdtemp(path.join(tmpdir(), "mr-load-"));
    const store = createFsArchiveStore({ root, writer: inlineFileWriter });
    // Registered first, so it runs first (after hooks run in the order registered): the registries
    // and hash lanes registered below are closed, then the store's background work, before the directory goes.
    const closing: (() => unknown)[] = [];
    t.after(async () => {
      for (const step of closing.reverse()) {
        await step();
      }
      await store.close?.();
      await rm(root, { recursive: true, force: true });
    });
    const writer = await Registry.open(await testRegistryOptions(store));
    await writer.createOrUpdateModel({ modelId: "m", userData: {} });
    const data = patterned(size);
    await publish(writer, "m", data, true);
    writer.close();
    const file = path.join(root, "m", "m-v000001.data");
    if (corrupt) {
      const handle = await open(file, "r+");
      await handle.write(Buffer.from([data[40_000] as number ^ 1]), 0, 1, 40_000);
      await handle.close();
    }
    const gated = gatedArchive(store, 4 * chunk);
    const hashLanes = createHashLanes({ threads: 1 });
    closing.push(() => hashLanes.close());
    const registry = await Registry.open({ ...(await testRegistryOptions(gated.archive)), offThreadHash: hashLanes });
    closing.push(() => registry.close());
    return { registry, data, file, gated };
  }

  test("readers that arrive while it loads read the file once; one that leaves early breaks nothing; the bytes stay counted until the last reader is done", async (t) => {
    const { registry, data, gated } = await archivedVersion(t, false);
    const first = await registry.openVersionData("m", 1);
    const second = await registry.openVersionData("m", 1);
    const leaving = await registry.openVersionData("m", 1);
    assert.equal(gated.opens(), 1);
    assert.equal(registry.stats().cache.reservedBytes, encoded);
    assert.equal(registry.stats().cache.entries, 0);

    // One reader takes a frame and goes away (as a cancelled call does).
    const iterator = (leaving.frames as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).done, false);
    await iterator.return?.();
    leaving.release(false);

    gated.open();
    const firstData = await streamedData(first.frames, size, chunk);
    assert.ok(firstData.equals(data));
    // The version is cached; `second` still streams it, under a lease.
    const cached = registry.stats().cache;
    assert.deepEqual([cached.entries, cached.reservedBytes, cached.entryBytes], [1, 0, encoded]);
    first.release(false);
    assert.ok((await streamedData(second.frames, size, chunk)).equals(data));
    second.release(false);

    const later = await registry.openVersionData("m", 1);
    assert.ok((await streamedData(later.frames, size, chunk)).equals(data));
    later.release(false);
    assert.equal(gated.opens(), 1, "the later read came from the cache");
    assert.equal(registry.stats().cache.usedBytes, encoded);
  });

  test("a hash mismatch ends every reader's stream with DATA_LOSS after the bytes, caches nothing, and the next read fails the same way", async (t) => {
    const { registry, data, file, gated } = await archivedVersion(t, true);
    const stored = await readFile(file);
    assert.equal(stored.length, data.length);
    const readers = [await registry.openVersionData("m", 1), await registry.openVersionData("m", 1)];
    gated.open();
    for (const reader of readers) {
      const received: Buffer[] = [];
      const failure = await streamedData(
        (async function* () {
          for await (const frame of reader.frames) {
            received.push(frame);
            yield frame;
          }
        })(),
        size,
        chunk,
      ).then(
        () => assert.fail("expected DATA_LOSS"),
        (error: unknown) => toRegistryError(error),
      );
      assert.equal(failure.code, Code.DATA_LOSS);
      assert.equal(failure.message, `version 1 of model "m" is corrupted on disk: its data's SHA-256 is "${sha256Base64(stored)}", its info says "${sha256Base64(data)}"`);
      assert.ok((await streamedData(received, size, chunk)).equals(stored), "every byte as stored, then the error");
      reader.release(false);
    }
    assert.equal(gated.opens(), 1);
    assert.deepEqual([registry.stats().cache.entries, registry.stats().cache.usedBytes], [0, 0]);

    const again = await registry.openVersionData("m", 1);
    const failure = await streamedData(again.frames, size, chunk).then(
      () => assert.fail("expected DATA_LOSS"),
      (error: unknown) => toRegistryError(error),
    );
    again.release(false);
    assert.equal(failure.code, Code.DATA_LOSS);
    assert.equal(gated.opens(), 2, "read from the file again");
    assert.deepEqual([registry.stats().cache.entries, registry.stats().cache.usedBytes], [0, 0]);
  });
  test("a reader of a model's new version 1 never follows the load of the deleted model's version 1", async (t) => {
    const { registry, data, gated } = await archivedVersion(t, false);
    const old = await registry.openVersionData("m", 1);
    await registry.deleteModel("m");
    await registry.createOrUpdateModel({ modelId: "m", userData: {} });
    // Larger than a quarter of the 1 MiB budget: streamed from the file, never cached.
    const renewed = Buffer.alloc(300 * 1024, 0x5a);
    await publish(registry, "m", renewed, true);
    const fresh = await registry.openVersionData("m", 1);
    gated.open();
    assert.ok((await streamedData(fresh.frames, renewed.length, chunk)).equals(renewed));
    fresh.release(false);
    assert.ok((await streamedData(old.frames, size, chunk)).equals(data));
    old.release(false);
    assert.equal(gated.opens(), 2, "each version read from its own file");
    assert.deepEqual([registry.stats().cache.entries, registry.stats().cache.usedBytes], [0, 0]);
  });
});

describe("Registry and its model actors", () => {
  test("no actor is left behind once deleted models are idle", async (t) => {
    const registry = await openRegistry(t);
    for (let i = 0; i < 20; i++) {
      await registry.createOrUpdateModel({ modelId: `m${i}`, userData: {} });
      await publish(registry, `m${i}`, Buffer.from(`data ${i}`), i % 2 === 0);
    }
    assert.equal(registry.actorCount, 20);
    await Promise.all(Array.from({ length: 20 }, (_, i) => registry.deleteModel(`m${i}`)));
    assert.equal(registry.actorCount, 0);
    assert.equal(registry.stats().cache.usedBytes, 0);
  });

  test("a version streamed to disk unpins the previous latest, which can then expire", async (t) => {
    const hashLanes = createHashLanes({ threads: 1 });
    t.after(() => hashLanes.close());
    const registry = await openRegistry(t, 64 * 1024, { cacheExpirationMs: 100, offThreadHash: hashLanes });
    await registry.createOrUpdateModel({ modelId: "ckpt", userData: {} });
    await publish(registry, "ckpt", Buffer.alloc(1000, 1));
    assert.equal(registry.stats().cache.pinnedEntries, 1);
    // Larger than a quarter of the budget: streamed to disk, never cached.
    const archived = await publish(registry, "ckpt", Buffer.alloc(32 * 1024, 2), true);
    assert.equal(archived.versionNumber, 2);
    assert.equal(registry.stats().cache.pinnedEntries, 0);
    await publish(registry, "ckpt", Buffer.alloc(1000, 3));
    assert.equal(registry.stats().cache.pinnedEntries, 1);
    // Expiry runs on the cache's timer: wait (bounded) for v1 to go.
    const listed = async (): Promise<number[]> => (await registry.listVersions("ckpt", [], 0, "")).versions.map((version) => version.versionNumber);
    let numbers = await listed();
    for (const deadline = Date.now() + 30_000; numbers.includes(1) && Date.now() < deadline; numbers = await listed()) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(
      numbers,
      [2, 3],
      "v1 expired; v2 is archived; v3, the latest, is kept",
    );
  });

  test("a file system error reading an archived version keeps its errno for the RPC edge", async (t) => {
    const root = await mkdtemp(path.join(tmpdir(), "mr-reg-"));
    const store = createFsArchiveStore({ root, writer: inlineFileWriter });
    // Root can read any file, so the permission error is injected where the real store opens the data.
    let denied = false;
    const archive: ArchiveStore = {
      ...store,
      openVersionData: (modelId, versionNumber) =>
        denied
          ? Promise.reject(Object.assign(new Error(`EACCES: permission denied, open '${modelId}'`), { code: "EACCES" }))
          : store.openVersionData(modelId, versionNumber),
    };
    const registry = await Registry.open(await testRegistryOptions(archive));
    const opened = [registry];
    t.after(async () => {
      for (const each of opened) {
        each.close();
      }
      await store.close?.();
      await rm(root, { recursive: true, force: true });
    });
    await registry.createOrUpdateModel({ modelId: "locked", userData: {} });
    await publish(registry, "locked", Buffer.from("archived bytes"), true);
    registry.close();
    const reopened = await Registry.open(await testRegistryOptions(archive));
    opened.push(reopened);
    denied = true;
    const failure = await reopened.openVersionData("locked", 1).then(
      () => assert.fail("expected the read to fail"),
      (error: unknown) => toRegistryError(error),
    );
    assert.equal(failure.code, Code.PERMISSION_DENIED);
    assert.equal(failure.message, "permission denied in the archive directory: EACCES: permission denied, open 'locked'");
    assert.equal(reopened.stats().cache.reservedBytes, 0);
  });

  test("the budget counts each cached version's data plus VERSION_OVERHEAD_BYTES", async (t) => {
    const stored = planChunkLayout(16, 1024).totalBytes; // 16 bytes, framed: 23
    assert.equal(stored, 23);
    const registry = await openRegistry(t, 10 * (stored + VERSION_OVERHEAD_BYTES));
    await registry.createOrUpdateModel({ modelId: "tiny", userData: {} });
    await publish(registry, "tiny", Buffer.alloc(16, 1));
    assert.equal(registry.stats().cache.entryBytes, stored + VERSION_OVERHEAD_BYTES);
    assert.equal(registry.stats().cache.usedBytes, stored + VERSION_OVERHEAD_BYTES);
    for (let i = 0; i < 100; i++) {
      await publish(registry, "tiny", Buffer.alloc(16, i));
    }
    // Ten fit the budget; the rest were evicted (and, transient, are gone).
    const { cache } = registry.stats();
    assert.equal(cache.entries, 10);
    assert.equal(cache.usedBytes, 10 * (stored + VERSION_OVERHEAD_BYTES));
    const page = await registry.listVersions("tiny", [], 1000, "");
    assert.deepEqual(
      page.versions.map((v) => v.versionNumber),
      Array.from({ length: 10 }, (_, i) => 92 + i),
    );
    assert.ok(VERSION_OVERHEAD_BYTES >= 256 && VERSION_OVERHEAD_BYTES <= 2048, "hundreds of bytes, measured (bench/memory/version-overhead.ts)");
  });

  test("a page of versions is a copy: later commits and evictions leave it as it was", async (t) => {
    const stored = planChunkLayout(16, 1024).totalBytes;
    const registry = await openRegistry(t, 4 * (stored + VERSION_OVERHEAD_BYTES));
    await registry.createOrUpdateModel({ modelId: "m", userData: {} });
    for (let i = 0; i < 4; i++) {
      await publish(registry, "m", Buffer.alloc(16, i));
    }
    const page = await registry.listVersions("m", [], 0, "");
    assert.deepEqual(page.versions.map((v) => v.versionNumber), [1, 2, 3, 4]);
    for (let i = 0; i < 3; i++) {
      await publish(registry, "m", Buffer.alloc(16, i)); // each evicts the oldest
    }
    assert.deepEqual(page.versions.map((v) => v.versionNumber), [1, 2, 3, 4]);
    const now = await registry.listVersions("m", [], 0, "");
    assert.deepEqual(now.versions.map((v) => v.versionNumber), [4, 5, 6, 7]);
    assert.equal((await registry.listVersions("m", [6], 0, "")).versions[0]?.versionNumber, 6);
  });

  test("a failed operation does not poison the model's queue", async (t) => {
    const registry = await openRegistry(t);
    await registry.createOrUpdateModel({ modelId: "q", userData: {} });
    const bad = await registry.beginUpload({ modelId: "q", archived: false, creationTimestamp: 0n, dataHash: "x", dataSize: 1, userData: {} });
    bad.append(Buffer.from("a"));
    await assert.rejects(bad.finish(), { code: Code.INVALID_ARGUMENT });
    const good = await publish(registry, "q", Buffer.from("b"));
    assert.equal(good.versionNumber, 1);
    assert.equal(registry.stats().cache.reservedBytes, 0);
  });

  test("an upload begun before its model was deleted and re-created does not land in the new model", async (t) => {
    const registry = await openRegistry(t);
    await registry.createOrUpdateModel({ modelId: "gen", userData: {} });
    const upload = await registry.beginUpload({ modelId: "gen", archived: false, creationTimestamp: 0n, dataHash: "", dataSize: 1, userData: {} });
    upload.append(Buffer.from("z"));
    await registry.deleteModel("gen");
    await registry.createOrUpdateModel({ modelId: "gen", userData: {} });
    await assert.rejects(upload.finish(), {
      code: Code.NOT_FOUND,
      message: 'model "gen" not found (it was deleted while the version was uploading)',
    });
    assert.equal(registry.stats().cache.usedBytes, 0);
    const page = await registry.listVersions("gen", [], 0, "");
    assert.deepEqual(page.versions, []);
  });
});

describe("VersionSubscription", () => {
  test("a slow subscriber skips intermediate versions but always ends with the latest", async () => {
    const sent: number[] = [];
    let release: (() => void) | undefined;
    const subscription = new VersionSubscription(
      {
        send: (version) => {
          sent.push(version.versionNumber);
          return new Promise<void>((resolve) => (release = resolve));
        },
        end: () => {},
      },
      () => {},
    );
    const version = (n: number): VersionRecord => ({
      modelId: "m",
      versionNumber: n,
      creationTimestamp: 0n,
      archived: false,
      dataHash: "",
      dataSize: 0,
      userData: {},
    });
    subscription.publish(version(1));
    for (let n = 2; n <= 50; n++) subscription.publish(version(n));
    subscription.publish(version(3)); // older than pending: ignored
    release?.();
    await new Promise((resolve) => setImmediate(resolve));
    release?.();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent, [1, 50]);
  });
});
