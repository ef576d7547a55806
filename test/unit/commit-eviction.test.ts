import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { type ArchiveStore, createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { Code } from "../../src/errors/index.js";
import { Registry } from "../../src/registry/index.js";
import { toRegistryError } from "../../src/rpc/to-service-error.js";
import { testRegistryOptions } from "../support/registry-options.js";

/**
 * A transient version's data is in the cache before its number is recorded (a reader told of it must
 * find it), and the version is listed only once the record is written. The first commit of a model
 * after it is loaded writes that record durably (an fsync; every commit with the S3 archive): another
 * model's upload needing room meanwhile must not evict the data, or the version is listed, the latest
 * even, with nothing behind it (its eviction found nothing listed to forget).
 */
test("a transient version's data is not evicted while its number is recorded: the version is listed and readable", async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), "mr-commit-eviction-"));
  const store = createFsArchiveStore({ root, writer: inlineFileWriter });
  let openGate: () => void = () => {};
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  let reachedGate: () => void = () => {};
  const recording = new Promise<void>((resolve) => (reachedGate = resolve));
  // The durable record write of model "a" held until the other upload has tried to make room.
  const archive: ArchiveStore = {
    ...store,
    overwriteMeta(modelId, key, value, options) {
      if (options.durable && modelId === "a") {
        reachedGate();
        return gate.then(() => store.overwriteMeta(modelId, key, value, options));
      }
      return store.overwriteMeta(modelId, key, value, options);
    },
  };
  const registry = await Registry.open({ ...(await testRegistryOptions(archive)), cacheMaxBytes: 60_000 });
  t.after(async () => {
    openGate();
    registry.close();
    await rm(root, { recursive: true, force: true });
  });
  await registry.createOrUpdateModel({ modelId: "a", userData: {} });
  await registry.createOrUpdateModel({ modelId: "b", userData: {} });
  const data = Buffer.alloc(40_000, 7);
  const upload = (modelId: string) =>
    registry.beginUpload({ modelId, archived: false, creationTimestamp: 0n, dataHash: "", dataSize: data.length, userData: {} });

  const uploadA = await upload("a");
  await uploadA.append(data);
  const committedA = uploadA.finish();
  await recording;

  // B needs 40,000 bytes of a 60,000 budget that A's data holds: refused, A's data kept.
  await assert.rejects(upload("b"), (error: unknown) => {
    const registryError = toRegistryError(error);
    assert.equal(registryError.code, Code.RESOURCE_EXHAUSTED);
    return true;
  });
  openGate();
  const versionA = await committedA;
  assert.equal(versionA.versionNumber, 1);

  const listed = await registry.listVersions("a", [], 0, "");
  assert.deepEqual(
    listed.versions.map((version) => version.versionNumber),
    [1],
  );
  // Readable (before the fix: NOT_FOUND "the transient version was evicted"); its frames are the
  // reply messages, each carrying a piece of the data.
  const source = await registry.openVersionData("a", 1);
  let framedBytes = 0;
  for await (const frame of source.frames) {
    framedBytes += frame.length;
  }
  source.release(false);
  assert.equal(source.version.dataSize, data.length);
  assert.ok(framedBytes > data.length, `${framedBytes} bytes framed`);

  // Once listed, the data may be evicted like any latest version's (the budget cannot hold both):
  // B's upload now makes room and A's version is forgotten, not left listed without data.
  const uploadB = await upload("b");
  await uploadB.append(data);
  await uploadB.finish();
  const after = await registry.listVersions("a", [], 0, "");
  assert.deepEqual(after.versions, []);
});
