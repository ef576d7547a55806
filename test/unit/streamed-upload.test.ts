import { type TestContext, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ArchiveStore } from "../../src/archive/archive-store.js";
import type { ArchiveFileWriter } from "../../src/archive/archive-file-writer.js";
import { inlineFileWriter } from "../../src/archive/atomic-write.js";
import { createFsArchiveStore } from "../../src/archive/fs-archive-store.js";
import { StreamedVersionUpload } from "../../src/registry/streamed-upload.js";
import { VersionCache } from "../../src/registry/version-cache.js";
import { createHashLanes } from "../../src/worker-pool/index.js";
import { makeArchiveDir } from "../support/test-server.js";

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

describe("archived uploads streamed to disk", () => {
  test("abort() while writes are queued leaves no file, and later appends are refused", async (t) => {
    const writer = slowWriter(30);
    const { store, root } = await storeWithModel(t, writer);
    const stream = await store.beginVersionData("m");
    const first = stream.append([Buffer.alloc(1024, 1)]);
    const second = stream.append([Buffer.alloc(1024, 2)]);
    await sleep(5);
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
        archive: store,
        batchBytes,
        hash: hashLanes.begin(),
        commit: () => Promise.reject(new Error("must not commit")),
        now: () => 0n,
      },
    );
    // One message carrying four batches: append() loops over them.
    const appended = upload.append(Buffer.alloc(4 * batchBytes, 7));
    await sleep(10);
    upload.abort();
    await appended;
    await sleep(100); // let the abort's removal and any stray write finish
    assert.equal(writer.writesStarted, 1);
    assert.deepEqual(await fs.readdir(path.join(root, "m")), ["m.yaml"]);
    assert.equal(cache.stats().reservedBytes, 0);
    assert.equal(await hashLanes.openOnThreads(), 0, "the upload's hash is released on its thread");
    cache.close();
  });
});
