import { type TestContext, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ArchiveStore } from "../../src/archive/archive-store.js";
import type { VersionRecord } from "../../src/domain/index.js";
import type { ArchiveFileWriter } from "../../src/archive/archive-file-writer.js";
import { inlineFileWriter } from "../../src/archive/atomic-write.js";
import { createFsArchiveStore } from "../../src/archive/fs-archive-store.js";
import { StreamedVersionUpload } from "../../src/registry/streamed-upload.js";
import { VersionCache } from "../../src/registry/version-cache.js";
import { createHashLanes } from "../../src/worker-pool/index.js";
import { makeArchiveDir } from "../support/test-server.js";
import { Code } from "../../src/errors/index.js";

/** An opened archive store in a temp directory (removed after the test) holding an empty model "m". */
async function storeWithModel(t: TestContext, writer: ArchiveFileWriter): Promise<{ store: ArchiveStore; root: string }> {
  const dir = await makeArchiveDir();
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, "archive");
  const store = createFsArchiveStore({ root, writer });
  await store.open();
  await store.writeModel({ modelId: "m", userData: {} });
  return { store, root };
}

/** The real file writer, each chunk write held back `delayMs` first (a slow disk). */
/** Waits until `check` holds; fails naming `what` after 30 s. */
async function untilTrue(check: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; !check(); await sleep(1)) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
  }
}

function slowWriter(delayMs: number): ArchiveFileWriter & { writesStarted: number } {
  const writer = {
    ...inlineFileWriter,
    writesStarted: 0,
    async writeChunksAt(filePath: string, chunks: readonly Uint8Array[], position: number): Promise<void> {
      writer.writesStarted++;
      await sleep(delayMs);
      await inlineFileWriter.writeChunksAt(filePath, chunks, position);
    },
  };
  return writer;
}

/** The real file writer, each chunk write held until `release()` (a write in flight for as long as a test needs). */
function gatedWriter(): ArchiveFileWriter & { release(): void } {
  let release = (): void => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  return {
    ...inlineFileWriter,
    release,
    async writeChunksAt(filePath: string, chunks: readonly Uint8Array[], position: number): Promise<void> {
      await gate;
      await inlineFileWriter.writeChunksAt(filePath, chunks, position);
    },
  };
}

const versionOf = (dataSize: number): VersionRecord => ({ modelId: "m", versionNumber: 1, creationTimestamp: 0n, archived: true, dataHash: "", dataSize, userData: {} });

const deletedWhileUploading = { code: Code.NOT_FOUND, message: 'model "m" not found (it was deleted while the version was uploading)' };

describe("archived uploads streamed to disk", () => {
  test("abort() while writes are queued leaves no file, and later appends are refused", async (t) => {
    const writer = slowWriter(30);
    const { store, root } = await storeWithModel(t, writer);
    const stream = await store.beginVersionData("m");
    const first = stream.append([Buffer.alloc(1024, 1)]);
    const second = stream.append([Buffer.alloc(1024, 2)]);
    await untilTrue(() => writer.writesStarted === 1, "the first write to start");
    await stream.abort();
    await Promise.all([first, second]);
    assert.equal(writer.writesStarted, 1, "the write queued behind the running one is dropped");
    assert.deepEqual(await fs.readdir(path.join(root, "m")), ["m.yaml"]);
    await assert.rejects(stream.append([Buffer.alloc(1)]), /^Error: streamed version data was aborted$/);
    await sleep(60);
    assert.deepEqual(await fs.readdir(path.join(root, "m")), ["m.yaml"]);
  });

  test("a client cancelling during a large chunk's first batch write leaves no temporary file", async (t) => {
    const writer = slowWriter(30);
    const { store, root } = await storeWithModel(t, writer);
    const cache = new VersionCache<Buffer>({ maxBytes: 1 << 20, expirationMs: 60_000, pruneCount: 1 });
    const batchBytes = 4096;
    const hashLanes = createHashLanes({ threads: 1 });
    t.after(() => hashLanes.close());
    const upload = new StreamedVersionUpload(
      { modelId: "m", archived: true, creationTimestamp: 0n, dataHash: "", dataSize: 16 * batchBytes, userData: {} },
      cache.reserve(batchBytes),
      {
        generation: 0,
        modelDeleted: () => false,
        archive: store,
        batchBytes,
        hash: hashLanes.begin(),
        commit: () => Promise.reject(new Error("must not commit")),
        now: () => 0n,
      },
    );
    // One message carrying four batches: append() loops over them.
    const appended = upload.append(Buffer.alloc(4 * batchBytes, 7));
    await untilTrue(() => writer.writesStarted === 1, "the first batch's write to start");
    upload.abort();
    await appended;
    await sleep(100); // room for a stray write to show
    assert.equal(writer.writesStarted, 1);
    // The abort's removal and the release of the hash run in the background.
    let left = await fs.readdir(path.join(root, "m"));
    for (const deadline = Date.now() + 30_000; left.length > 1 && Date.now() < deadline; left = await fs.readdir(path.join(root, "m"))) {
      await sleep(10);
    }
    for (const deadline = Date.now() + 30_000; (await hashLanes.openOnThreads()) !== 0 && Date.now() < deadline; ) {
      await sleep(10);
    }
    assert.deepEqual(await fs.readdir(path.join(root, "m")), ["m.yaml"]);
    assert.equal(cache.stats().reservedBytes, 0);
    assert.equal(await hashLanes.openOnThreads(), 0, "the upload's hash is released on its thread");
    cache.close();
  });

  test("the model deleted while a write is in flight: that write, the next one and the commit fail with NOT_FOUND (not ENOENT), nothing is left", async (t) => {
    const writer = gatedWriter();
    const { store, root } = await storeWithModel(t, writer);
    const stream = await store.beginVersionData("m");
    const inFlight = stream.append([Buffer.alloc(1024, 1)]);
    await store.deleteModel("m");
    writer.release(); // the write opens its file in the directory the deletion renamed away
    await assert.rejects(inFlight, deletedWhileUploading);
    await assert.rejects(stream.append([Buffer.alloc(1024, 2)]), deletedWhileUploading);
    await assert.rejects(stream.commit(versionOf(2048)), deletedWhileUploading);
    await stream.abort();
    assert.deepEqual(await fs.readdir(root), []);
  });

  test("the model deleted while its stream begins: NOT_FOUND, and its directory is not made again", async (t) => {
    for (const order of ["deletion first", "stream first"] as const) {
      const { store, root } = await storeWithModel(t, inlineFileWriter);
      let begun: Promise<unknown>;
      let deletion: Promise<void>;
      if (order === "deletion first") {
        deletion = store.deleteModel("m");
        begun = store.beginVersionData("m");
      } else {
        begun = store.beginVersionData("m");
        deletion = store.deleteModel("m");
      }
      await assert.rejects(begun, deletedWhileUploading, order);
      await deletion;
      assert.deepEqual(await fs.readdir(root), [], order);
    }
  });

  test("the model deleted after a batch was written: the next batch is refused with NOT_FOUND before anything is written", async (t) => {
    const writer = slowWriter(0);
    const { store, root } = await storeWithModel(t, writer);
    const cache = new VersionCache<Buffer>({ maxBytes: 1 << 20, expirationMs: 60_000, pruneCount: 1 });
    t.after(() => cache.close());
    const batchBytes = 4096;
    const hashLanes = createHashLanes({ threads: 1 });
    t.after(() => hashLanes.close());
    let deleted = false;
    const upload = new StreamedVersionUpload(
      { modelId: "m", archived: true, creationTimestamp: 0n, dataHash: "", dataSize: 4 * batchBytes, userData: {} },
      cache.reserve(batchBytes),
      {
        generation: 0,
        modelDeleted: () => deleted,
        archive: store,
        batchBytes,
        hash: hashLanes.begin(),
        commit: () => Promise.reject(new Error("must not commit")),
        now: () => 0n,
      },
    );
    await upload.append(Buffer.alloc(batchBytes, 1));
    assert.equal(writer.writesStarted, 1);
    deleted = true;
    await assert.rejects(upload.append(Buffer.alloc(batchBytes, 2)), { code: Code.NOT_FOUND, message: deletedWhileUploading.message });
    upload.abort();
    assert.equal(writer.writesStarted, 1, "no batch written once the model is deleted");
    // The abort's removal of the batch written runs in the background.
    let left = await fs.readdir(path.join(root, "m"));
    for (const deadline = Date.now() + 30_000; left.length > 1 && Date.now() < deadline; left = await fs.readdir(path.join(root, "m"))) {
      await sleep(10);
    }
    assert.deepEqual(left, ["m.yaml"]);
  });

  test("the model deleted before the first batch: NOT_FOUND, no stream begun", async (t) => {
    const { store, root } = await storeWithModel(t, inlineFileWriter);
    await store.deleteModel("m");
    const cache = new VersionCache<Buffer>({ maxBytes: 1 << 20, expirationMs: 60_000, pruneCount: 1 });
    t.after(() => cache.close());
    const hashLanes = createHashLanes({ threads: 1 });
    t.after(() => hashLanes.close());
    const upload = new StreamedVersionUpload(
      { modelId: "m", archived: true, creationTimestamp: 0n, dataHash: "", dataSize: 8192, userData: {} },
      cache.reserve(4096),
      {
        generation: 0,
        modelDeleted: () => true,
        archive: store,
        batchBytes: 4096,
        hash: hashLanes.begin(),
        commit: () => Promise.reject(new Error("must not commit")),
        now: () => 0n,
      },
    );
    await assert.rejects(upload.append(Buffer.alloc(4096, 1)), { code: Code.NOT_FOUND, message: deletedWhileUploading.message });
    upload.abort();
    assert.deepEqual(await fs.readdir(root), [], "the deleted model's directory is not made again");
  });
});
