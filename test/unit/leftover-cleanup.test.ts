import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Writable } from "node:stream";
import { type ArchiveStore, type LeftoverCleanupOptions, createFsArchiveStore, inlineFileWriter, tempFileName, versionDataPath } from "../../src/archive/index.js";
import { createLogger } from "../../src/logger.js";
import { Registry } from "../../src/registry/index.js";
import { CLOCK_TICK_MARGIN_MS } from "../../src/state/in-process-registry-state.js";
import { testRegistryOptions } from "../support/registry-options.js";

/**
 * The leftover clean-up of the archive directory (issue #15, start-up): it runs in the background
 * after the model listing, and removes only temporary files changed before the state opened, so a
 * temporary file of an upload of this process is never touched.
 */

/** Past the state's margin for the kernel's coarse clock: files written before this wait are older than the cut-off. */
const PAST_THE_MARGIN_MS = CLOCK_TICK_MARGIN_MS + 50;

async function tempRoot(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "mr-leftover-cleanup-"));
  // Registered before the closes that follow (after hooks run in that order): retried while their background writes end.
  t.after(() => rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return root;
}

/** Model "m" (info only) and two leftovers of a crash: a version's temp file and a half-deleted model's directory. */
async function archiveWithLeftovers(root: string): Promise<{ stale: string[] }> {
  await mkdir(path.join(root, "m"));
  await writeFile(path.join(root, "m", "m.yaml"), "model_id: m\nuser_data: {}\n");
  const staleVersion = path.join(root, "m", tempFileName("m-v000001.data"));
  await writeFile(staleVersion, "half a version");
  const staleModel = path.join(root, ".gone.tmp-0123456789abcdef");
  await mkdir(staleModel);
  await writeFile(path.join(staleModel, "gone.yaml"), "model_id: gone\n");
  return { stale: [staleVersion, staleModel] };
}

async function exists(filePath: string): Promise<boolean> {
  return (await readdir(path.dirname(filePath))).includes(path.basename(filePath));
}

describe("removeLeftovers({ changedBefore })", () => {
  test("the cut-off is taken to the file system's clock: with this process's clock 500 ms ahead of it (a network file system's server behind), a fresh upload's file is kept", async (t) => {
    const root = await tempRoot(t);
    const { stale } = await archiveWithLeftovers(root);
    await sleep(PAST_THE_MARGIN_MS);
    const realNow = Date.now;
    const ahead = (): number => realNow() + 500;
    const changedBefore = ahead() - CLOCK_TICK_MARGIN_MS; // as the state takes it, in this process's (fast) clock
    const store = createFsArchiveStore({ root, writer: inlineFileWriter, onWarning: () => undefined });
    t.after(async () => store.close?.());
    await store.open();
    const upload = await store.beginVersionData("m");
    await upload.append([Buffer.from("fresh")]);
    const uploadTemp = (await readdir(path.join(root, "m"))).filter((name) => name.startsWith(".m-upload.data.tmp-"));
    assert.equal(uploadTemp.length, 1);
    Date.now = ahead;
    try {
      await store.removeLeftovers?.({ changedBefore });
    } finally {
      Date.now = realNow;
    }
    assert.equal(await exists(path.join(root, "m", uploadTemp[0] as string)), true, "the upload's temporary file is kept");
    for (const leftover of stale) {
      assert.equal(await exists(leftover), false, leftover);
    }
    assert.deepEqual((await readdir(root)).filter((name) => name.includes("clock-probe")), [], "the probe file is gone");
    await upload.abort();
  });

  test("removes the temporary files changed before the cut-off and keeps an upload in progress and a deletion made after it", async (t) => {
    const root = await tempRoot(t);
    const { stale } = await archiveWithLeftovers(root);
    await sleep(PAST_THE_MARGIN_MS);
    const changedBefore = Date.now() - CLOCK_TICK_MARGIN_MS; // as the state takes it
    const warnings: { message: string; details: Record<string, unknown> }[] = [];
    const store = createFsArchiveStore({ root, writer: inlineFileWriter, onWarning: (message, details) => warnings.push({ message, details }) });
    t.after(async () => store.close?.());
    await store.open();
    // An upload in progress: its data streamed into a temporary file of the model's directory.
    const upload = await store.beginVersionData("m");
    await upload.append([Buffer.from("fresh ")]);
    const uploadTemp = (await readdir(path.join(root, "m"))).filter((name) => name.startsWith(".m-upload.data.tmp-"));
    assert.equal(uploadTemp.length, 1, "the upload's temporary file is there");
    // A model directory moved aside by a deletion of this process (its own mtime is old, its ctime new).
    await mkdir(path.join(root, "old"));
    await writeFile(path.join(root, "old", "old.yaml"), "model_id: old\n");
    await sleep(PAST_THE_MARGIN_MS);
    const doomed = path.join(root, tempFileName("old"));
    await rename(path.join(root, "old"), doomed);

    await store.removeLeftovers?.({ changedBefore });

    for (const leftover of stale) {
      assert.equal(await exists(leftover), false, leftover);
    }
    assert.equal(await exists(path.join(root, "m", uploadTemp[0] as string)), true, "the upload's temporary file is kept");
    assert.equal(await exists(doomed), true, "the directory of a deletion in progress is kept");
    assert.deepEqual(
      warnings.map((w) => [w.message, w.details.path]).sort(),
      stale.map((p) => ["removed leftover temporary file of an interrupted write", p]).sort(),
    );
    await upload.append([Buffer.from("data")]);
    await upload.commit({ modelId: "m", versionNumber: 1, creationTimestamp: 0n, archived: true, dataHash: "h", dataSize: 10, userData: {} });
    assert.equal(await readFile(versionDataPath(root, "m", 1), "utf8"), "fresh data");
  });

  test("a thread pool busy when the clock probe is written (fsyncs of uploads) does not move the cut-off past an upload made after it", async (t) => {
    const root = await tempRoot(t);
    await mkdir(path.join(root, "m"));
    await writeFile(path.join(root, "m", "m.yaml"), "model_id: m\nuser_data: {}\n");
    const store = createFsArchiveStore({ root, writer: inlineFileWriter });
    t.after(async () => store.close?.());
    // As the state does: the cut-off taken when it opens, before anything of this process writes.
    const changedBefore = Date.now() - CLOCK_TICK_MARGIN_MS;
    await store.open();
    await sleep(PAST_THE_MARGIN_MS);
    const upload = await store.beginVersionData("m");
    await upload.append([Buffer.from("first batch")]);
    const temps = (await readdir(path.join(root, "m"))).filter((name) => name.startsWith(".m-upload.data.tmp-"));
    assert.equal(temps.length, 1);

    // Every thread of libuv's pool (4 by default) blocked on opening a FIFO for 300 ms, as by fsyncs.
    const fifoDir = await tempRoot(t);
    const fifo = path.join(fifoDir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const blocked = [0, 1, 2, 3].map(() => open(fifo, "r"));
    let cleanup: Promise<void> | undefined;
    try {
      await sleep(20);
      cleanup = store.removeLeftovers?.({ changedBefore });
      await sleep(300);
    } finally {
      // A writer unblocks the readers' opens: opened synchronously ("r+" does not block on a FIFO),
      // since the pool it would otherwise wait for is the one blocked.
      const writer = openSync(fifo, "r+");
      await Promise.all(blocked.map(async (handle) => (await handle).close()));
      closeSync(writer);
    }
    await cleanup;
    const after = (await readdir(path.join(root, "m"))).filter((name) => name.startsWith(".m-upload.data.tmp-"));
    assert.deepEqual(after, temps, "the upload's temporary file is kept");
    await upload.append([Buffer.from(" second batch")]);
    await upload.commit({ modelId: "m", versionNumber: 1, creationTimestamp: 0n, archived: true, dataHash: "h", dataSize: 24, userData: {} });
    assert.equal(await readFile(versionDataPath(root, "m", 1), "utf8"), "first batch second batch");
  });

  test("after close(), removes nothing", async (t) => {
    const root = await tempRoot(t);
    const { stale } = await archiveWithLeftovers(root);
    const store = createFsArchiveStore({ root, writer: inlineFileWriter });
    await store.open();
    await store.close?.();
    await store.removeLeftovers?.();
    for (const leftover of stale) {
      assert.equal(await exists(leftover), true, leftover);
    }
  });
});

describe("the in-process state's leftover clean-up", () => {
  /** The archive at `root` whose clean-up waits for `release`, recording when it was asked and with what. */
  function heldCleanup(t: { after: (fn: () => Promise<void>) => void }, root: string, failure?: Error) {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const store = createFsArchiveStore({ root, writer: inlineFileWriter });
    t.after(async () => store.close?.());
    const events: string[] = [];
    // An object around the clean-up's promise: a promise resolved with a promise would take its outcome.
    let asked: (cleanup: { readonly done: Promise<void> }) => void = () => {};
    const cleanup = new Promise<{ readonly done: Promise<void> }>((resolve) => {
      asked = resolve;
    });
    const archive: ArchiveStore = {
      ...store,
      listModelIds: async () => {
        events.push("listing");
        return store.listModelIds();
      },
      removeLeftovers: (options?: LeftoverCleanupOptions) => {
        events.push("clean-up");
        const done = (async () => {
          await gate;
          if (failure !== undefined) {
            throw failure;
          }
          await store.removeLeftovers?.(options);
        })();
        asked({ done });
        return done;
      },
    };
    return { archive, store, events, release: () => release(), cleanup };
  }

  test("runs after the listing, in the background; an upload made during it survives; stale leftovers are removed", async (t) => {
    const root = await tempRoot(t);
    const { stale } = await archiveWithLeftovers(root);
    await sleep(PAST_THE_MARGIN_MS);
    const held = heldCleanup(t, root);
    const registry = await Registry.open({ ...(await testRegistryOptions(held.archive)), listModelsLater: true });
    t.after(() => registry.close());
    await registry.whenListed();
    assert.deepEqual(held.events, ["listing"], "the start does not wait for the clean-up");
    for (const leftover of stale) {
      assert.equal(await exists(leftover), true, `${leftover} is still there when the start is done`);
    }
    const { done: cleanup } = await held.cleanup;
    assert.deepEqual(held.events, ["listing", "clean-up"]);

    // While the clean-up runs: a streamed upload in progress and a whole published version.
    const streamed = await held.store.beginVersionData("m");
    await streamed.append([Buffer.from("streamed ")]);
    const upload = await registry.beginUpload({ modelId: "m", archived: true, creationTimestamp: 0n, dataHash: "", dataSize: 9, userData: {} });
    await upload.append(Buffer.from("published"));
    held.release();
    await cleanup;
    const published = await upload.finish();

    for (const leftover of stale) {
      assert.equal(await exists(leftover), false, leftover);
    }
    await streamed.append([Buffer.from("data")]);
    await streamed.commit({ modelId: "m", versionNumber: 7, creationTimestamp: 0n, archived: true, dataHash: "h", dataSize: 13, userData: {} });
    assert.equal(await readFile(versionDataPath(root, "m", 7), "utf8"), "streamed data");
    assert.equal(published.versionNumber, 1);
    assert.equal(await readFile(versionDataPath(root, "m", 1), "utf8"), "published");
    const page = await registry.listVersions("m", [], 0, "");
    assert.deepEqual(
      page.versions.map((version) => version.versionNumber),
      [1],
    );
  });

  test("a failed clean-up is logged and the registry goes on", async (t) => {
    const root = await tempRoot(t);
    await archiveWithLeftovers(root);
    const held = heldCleanup(t, root, new Error("EACCES: permission denied, scandir"));
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const registry = await Registry.open({ ...(await testRegistryOptions(held.archive)), log: createLogger("warn", destination) });
    t.after(() => registry.close());
    const { done: cleanup } = await held.cleanup;
    held.release();
    await assert.rejects(cleanup, /EACCES/);
    await new Promise<void>((resolve) => setImmediate(resolve));
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      logged.map((entry) => [entry.msg, entry.module, entry.error]),
      [["leftover clean-up failed", "archive", "EACCES: permission denied, scandir"]],
    );
    assert.deepEqual(
      (await registry.listModels([], 0, "")).models.map((model) => model.modelId),
      ["m"],
    );
  });
});
