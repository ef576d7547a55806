import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { type ArchiveStore, createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { Registry, type VersionRecord } from "../../src/registry/index.js";
import type { RegistryOptions } from "../../src/registry/registry.js";
import { testRegistryOptions } from "../support/registry-options.js";

/**
 * Registry.open with `listModelsLater` (issue #15, start-up): the server listens while the model
 * listing goes on; every call that needs the listing waits for it, and a failed listing is reported.
 */

async function options(archive: ArchiveStore, listModelsLater: boolean): Promise<RegistryOptions> {
  return { ...(await testRegistryOptions(archive)), listModelsLater };
}

async function publish(registry: Registry, modelId: string, data: Buffer): Promise<VersionRecord> {
  const upload = await registry.beginUpload({ modelId, archived: true, creationTimestamp: 0n, dataHash: "", dataSize: data.length, userData: {} });
  await upload.append(data);
  return upload.finish();
}

/** An archive directory holding model "m" with archived versions 1 and 2, and model "n" with none. */
async function writtenArchive(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "mr-list-later-"));
  // Registered before the closes that follow (after hooks run in that order): retried while their background writes end.
  t.after(() => rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  const store = createFsArchiveStore({ root, writer: inlineFileWriter });
  const writer = await Registry.open(await options(store, false));
  await writer.createOrUpdateModel({ modelId: "m", userData: {} });
  await writer.createOrUpdateModel({ modelId: "n", userData: {} });
  await publish(writer, "m", Buffer.from("one"));
  await publish(writer, "m", Buffer.from("two"));
  await writer.recordStop();
  writer.close();
  await store.close?.();
  return root;
}

/** The archive at `root`, with its model listing held until `release` (or failing with `failure` then); closed after the test. */
function heldListing(t: { after: (fn: () => Promise<void>) => void }, root: string, failure?: Error): { archive: ArchiveStore; release: () => void; listingAsked: () => boolean } {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let asked = false;
  const store = createFsArchiveStore({ root, writer: inlineFileWriter });
  t.after(async () => store.close?.());
  const archive: ArchiveStore = {
    ...store,
    listModelIds: async () => {
      asked = true;
      await gate;
      if (failure !== undefined) {
        throw failure;
      }
      return store.listModelIds();
    },
  };
  return { archive, release: () => release(), listingAsked: () => asked };
}

/** Whether `promise` is still pending after the turns queued so far (and a few more) have run. */
async function stillPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let turn = 0; turn < 5; turn++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return !settled;
}

describe("Registry.open with listModelsLater: the model listing after open()", () => {
  test("open() resolves while the listing is held; calls made meanwhile wait for it, then see the archive and number above it", async (t) => {
    const root = await writtenArchive(t);
    const held = heldListing(t, root);
    // Were open() to wait for the listing, the gate would open only on this fallback, after it.
    let openResolvedFirst: boolean | undefined;
    const fallback = setTimeout(() => {
      openResolvedFirst ??= false;
      held.release();
    }, 10_000);
    t.after(() => clearTimeout(fallback));
    const registry = await Registry.open(await options(held.archive, true));
    openResolvedFirst ??= true;
    t.after(async () => registry.close());
    assert.equal(openResolvedFirst, true, "open() resolved before the listing ended");
    assert.equal(held.listingAsked(), true, "the listing was started by open()");

    const models = registry.listModels([], 0, "");
    const versions = registry.listVersions("m", [], 0, "");
    const model = registry.listModels(["n"], 0, "");
    const published = publish(registry, "m", Buffer.from("three"));
    const listed = registry.whenListed();
    assert.equal(await stillPending(Promise.all([models, versions, model, published, listed])), true, "the calls wait for the listing");

    held.release();
    assert.deepEqual(
      (await models).models.map((record) => record.modelId),
      ["m", "n"],
    );
    assert.deepEqual(
      (await versions).versions.map((version) => [version.versionNumber, version.archived, version.dataSize]),
      [
        [1, true, 3],
        [2, true, 3],
      ],
    );
    assert.deepEqual((await model).models.map((record) => record.modelId), ["n"]);
    assert.equal((await published).versionNumber, 3, "numbering continues above the archive's highest number");
    await listed;
    assert.equal(registry.stats().models, 2);
  });

  test("a failed listing: open() resolves, then whenListed() and the calls that need the listing reject with its error", async (t) => {
    const root = await writtenArchive(t);
    const held = heldListing(t, root, new Error("EIO: listing the archive failed"));
    const registry = await Registry.open(await options(held.archive, true));
    t.after(async () => registry.close());
    const models = registry.listModels([], 0, "");
    held.release();
    await assert.rejects(registry.whenListed(), { message: "EIO: listing the archive failed" });
    await assert.rejects(models, { message: "EIO: listing the archive failed" });
  });

  test("without listModelsLater, open() waits for the listing and fails with it", async (t) => {
    const root = await writtenArchive(t);
    const failing = heldListing(t, root, new Error("EIO: listing the archive failed"));
    failing.release();
    await assert.rejects(Registry.open(await options(failing.archive, false)), { message: "EIO: listing the archive failed" });

    const held = heldListing(t, root);
    const opening = Registry.open(await options(held.archive, false));
    assert.equal(await stillPending(opening), true, "open() waits for the held listing");
    held.release();
    const registry = await opening;
    t.after(async () => registry.close());
    assert.equal(registry.stats().models, 2, "listed when open() resolved");
  });
});
