import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { createSha256 } from "../../src/data/index.js";
import { Code } from "../../src/errors/index.js";
import { createLogger } from "../../src/logger.js";
import { Registry, VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { planChunkLayout } from "../../src/data/index.js";
import type { ArchiveStore } from "../../src/archive/index.js";
import { toRegistryError } from "../../src/rpc/to-service-error.js";
import type { VersionRecord } from "../../src/registry/index.js";
import type { RegistryOptions } from "../../src/registry/registry.js";
import { createHashLanes } from "../../src/worker-pool/index.js";
import { VersionSubscription } from "../../src/registry/version-subscription.js";

async function baseOptions(archive: ArchiveStore): Promise<RegistryOptions> {
  const sha = await createSha256("node-crypto");
  return {
    archive,
    cacheMaxBytes: 1 << 20,
    cacheExpirationMs: 0,
    cachePruneCount: 1,
    chunkSize: 1024,
    hash: async (segments) => sha(segments),
    log: createLogger("silent"),
  };
}

async function openRegistry(
  t: { after: (fn: () => Promise<void>) => void },
  cacheMaxBytes = 1 << 20,
  options: Partial<RegistryOptions> = {},
): Promise<Registry> {
  const root = await mkdtemp(path.join(tmpdir(), "mr-reg-"));
  const registry = await Registry.open({
    ...(await baseOptions(createFsArchiveStore({ root, writer: inlineFileWriter }))),
    cacheMaxBytes,
    ...options,
  });
  t.after(async () => {
    registry.close();
    await rm(root, { recursive: true, force: true });
  });
  return registry;
}

async function publish(registry: Registry, modelId: string, data: Buffer, archived = false): Promise<VersionRecord> {
  const upload = await registry.beginUpload({ modelId, archived, creationTimestamp: 0n, dataHash: "", dataSize: data.length, userData: {} });
  await upload.append(data);
  return upload.finish();
}

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
    await new Promise((resolve) => setTimeout(resolve, 400));
    const page = await registry.listVersions("ckpt", [], 0, "");
    assert.deepEqual(
      page.versions.map((version) => version.versionNumber),
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
    const registry = await Registry.open(await baseOptions(archive));
    t.after(async () => {
      registry.close();
      await rm(root, { recursive: true, force: true });
    });
    await registry.createOrUpdateModel({ modelId: "locked", userData: {} });
    await publish(registry, "locked", Buffer.from("archived bytes"), true);
    registry.close();
    const reopened = await Registry.open(await baseOptions(archive));
    t.after(() => reopened.close());
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
