// The in-process registry state's claims and commits: the version-number record is written before a
// version is listed or announced, whether the archive writes it at once (the directory's page-cache
// write) or takes a promise; failures are logged once and numbering goes on; every claim answers
// with a promise, never a synchronous throw.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import { type ArchiveStore, META_WRITTEN, createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import type { VersionRecord } from "../../src/domain/index.js";
import { Code, RegistryError } from "../../src/errors/index.js";
import { createLogger } from "../../src/logger.js";
import { type RegistryState, createInProcessRegistryState } from "../../src/state/index.js";

const RECORD_WARNING =
  "could not record the next version number: versions are still numbered and served, but after a restart the server may hand out again numbers of transient versions created from now on (archived versions keep theirs)";

interface Opened {
  readonly state: RegistryState;
  readonly root: string;
  readonly logLines: Record<string, unknown>[];
  /** What happened, in order: "record next=N (durable|page cache)", "announced N". */
  readonly events: string[];
}

async function tempRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "mr-claims-"));
  // Registered before the closes that follow (after hooks run in that order): retried while their background writes end.
  t.after(() => rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return root;
}

/** A state on a directory archive whose overwriteMeta is `overwrite` (the store's own by default). */
async function openState(
  t: TestContext,
  root: string,
  overwrite?: (inner: ArchiveStore, ...args: Parameters<ArchiveStore["overwriteMeta"]>) => Promise<void>,
): Promise<Opened> {
  const inner = createFsArchiveStore({ root, writer: inlineFileWriter });
  const events: string[] = [];
  const archive: ArchiveStore = {
    ...inner,
    overwriteMeta: (modelId, key, value, options) => {
      events.push(`record ${value.split(" ")[0]} (${options.durable ? "durable" : "page cache"})`);
      return overwrite === undefined ? inner.overwriteMeta(modelId, key, value, options) : overwrite(inner, modelId, key, value, options);
    },
  };
  const logLines: Record<string, unknown>[] = [];
  const log = createLogger("info", { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  const state = createInProcessRegistryState({ archive, log, bootId: "boot-a" });
  await state.open();
  state.onVersionCommitted((version) => events.push(`announced ${version.versionNumber}`));
  t.after(() => state.close());
  return { state, root, logLines, events };
}

const version = (modelId: string, versionNumber: number): VersionRecord => ({
  modelId,
  versionNumber,
  creationTimestamp: 1n,
  archived: false,
  dataHash: "",
  dataSize: 0,
  userData: {},
});

/** Claims and commits `count` versions one after the other (as the model's actor does); their numbers. */
async function commit(state: RegistryState, modelId: string, count: number): Promise<number[]> {
  const numbers: number[] = [];
  for (let i = 0; i < count; i++) {
    const claim = await state.claimVersionNumber(modelId);
    assert.ok(claim !== undefined);
    await claim.commit(version(modelId, claim.versionNumber));
    numbers.push(claim.versionNumber);
  }
  return numbers;
}

const recordOnDisk = (root: string, modelId: string): string =>
  readFileSync(path.join(root, modelId, ".cogment-ts-version-record"), "utf8").trim();

describe("in-process state: claims and commits", () => {
  test("the directory archive writes a page-cache record at once (META_WRITTEN); a durable one or a failure takes a promise", async (t) => {
    const root = await tempRoot(t);
    const store = createFsArchiveStore({ root, writer: inlineFileWriter });
    await store.open();
    await store.writeModel({ modelId: "m", userData: {} });
    const written = store.overwriteMeta("m", "version-record", "next=2", { durable: false });
    assert.equal(written, META_WRITTEN);
    assert.equal(recordOnDisk(root, "m"), "next=2", "on disk when the call returns");
    const durable = store.overwriteMeta("m", "version-record", "next=3", { durable: true });
    assert.notEqual(durable, META_WRITTEN);
    await durable;
    assert.equal(recordOnDisk(root, "m"), "next=3");
    const tooLong = store.overwriteMeta("m", "version-record", "x".repeat(128), { durable: false });
    assert.notEqual(tooLong, META_WRITTEN);
    await assert.rejects(tooLong, { message: "metadata record of 128 bytes: at most 127 fit" });
    assert.equal(recordOnDisk(root, "m"), "next=3", "a failed write leaves the previous record");
  });

  test("each number is recorded before its version is listed or announced, written at once or awaited", async (t) => {
    for (const mode of ["at once", "awaited"] as const) {
      const root = await tempRoot(t);
      let live: readonly VersionRecord[] = []; // the state's own array of the model's versions
      const listedAtWrite: string[] = [];
      let writtenAtOnce = 0;
      const opened = await openState(t, root, (inner, modelId, key, value, options) => {
        listedAtWrite.push(live.map((v) => v.versionNumber).join(","));
        const written = inner.overwriteMeta(modelId, key, value, options);
        const done = (): void => void opened.events.push(`written ${value.split(" ")[0]}`);
        if (written === META_WRITTEN && mode === "at once") {
          writtenAtOnce++;
          done();
          return written;
        }
        return written.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(done);
      });
      const { state, events } = opened;
      await state.putModel({ modelId: "m", userData: {} });
      live = await state.listVersions("m");
      assert.deepEqual(await commit(state, "m", 3), [1, 2, 3], mode);
      assert.deepEqual(listedAtWrite, ["", "1", "1,2"], `${mode}: no version was listed before its record was written`);
      assert.equal(writtenAtOnce, mode === "at once" ? 2 : 0, "the first record of a run is durable: a promise");
      assert.deepEqual(
        events,
        [
          "record next=2 (durable)",
          "written next=2",
          "announced 1",
          "record next=3 (page cache)",
          "written next=3",
          "announced 2",
          "record next=4 (page cache)",
          "written next=4",
          "announced 3",
        ],
        mode,
      );
      assert.equal(recordOnDisk(root, "m"), "next=4 boot=boot-a state=running", mode);
    }
  });

  test("the record is in the file by the time each version is announced (the directory's own write)", async (t) => {
    const root = await tempRoot(t);
    const { state } = await openState(t, root);
    const seen: string[] = [];
    state.onVersionCommitted((committed) => seen.push(`${committed.versionNumber}: ${recordOnDisk(root, committed.modelId)}`));
    await state.putModel({ modelId: "m", userData: {} });
    await commit(state, "m", 3);
    assert.deepEqual(seen, [
      "1: next=2 boot=boot-a state=running",
      "2: next=3 boot=boot-a state=running",
      "3: next=4 boot=boot-a state=running",
    ]);
  });

  test("a record write that throws, rejects at once or rejects later is logged once; versions are still numbered and served", async (t) => {
    const failures = {
      thrown: (): Promise<void> => {
        throw Object.assign(new Error("thrown"), { code: "EIO" });
      },
      "rejected at once": () => Promise.reject(Object.assign(new Error("rejected at once"), { code: "ENOSPC" })),
      "rejected later": async () => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        throw Object.assign(new Error("rejected later"), { code: "EROFS" });
      },
    };
    for (const [name, fail] of Object.entries(failures)) {
      const root = await tempRoot(t);
      const { state, logLines, events } = await openState(t, root, (inner, modelId, key, value, options) =>
        key === "version-record" ? fail() : inner.overwriteMeta(modelId, key, value, options),
      );
      await state.putModel({ modelId: "m", userData: {} });
      assert.deepEqual(await commit(state, "m", 3), [1, 2, 3], name);
      assert.deepEqual(
        (await state.listVersions("m")).map((v) => v.versionNumber),
        [1, 2, 3],
        name,
      );
      assert.deepEqual(
        logLines.filter((line) => line.level === 40).map((line) => [line.msg, line.file, line.error]),
        [[RECORD_WARNING, ".cogment-ts-version-record", name]],
        name,
      );
      // Never recorded: the first record of the run is still owed to the disk.
      assert.deepEqual(events.filter((event) => event.startsWith("record")), [
        "record next=2 (durable)",
        "record next=3 (durable)",
        "record next=4 (durable)",
      ]);
    }
  });

  test("a claim abandoned leaves no gap; a claim of an unknown or deleted model is undefined", async (t) => {
    const root = await tempRoot(t);
    const { state, events } = await openState(t, root);
    await state.putModel({ modelId: "m", userData: {} });
    const abandoned = await state.claimVersionNumber("m");
    assert.equal(abandoned?.versionNumber, 1);
    abandoned?.abandon();
    assert.deepEqual(await commit(state, "m", 2), [1, 2]);
    assert.deepEqual(
      events.filter((event) => event.startsWith("record")),
      ["record next=2 (durable)", "record next=3 (page cache)"],
      "the abandoned claim wrote nothing",
    );
    assert.equal(await state.claimVersionNumber("unknown"), undefined);
    await state.deleteModel("m");
    assert.equal(await state.claimVersionNumber("m"), undefined);
  });

  test("a claim abandoned with its number spent (the store may hold its objects): the next claim gets the number after it", async (t) => {
    const root = await tempRoot(t);
    const { state, events } = await openState(t, root);
    await state.putModel({ modelId: "m", userData: {} });
    const spent = await state.claimVersionNumber("m");
    assert.equal(spent?.versionNumber, 1);
    spent?.abandon(true);
    const kept = await state.claimVersionNumber("m");
    assert.equal(kept?.versionNumber, 2);
    kept?.abandon(false);
    assert.deepEqual(await commit(state, "m", 2), [2, 3]);
    assert.deepEqual(events.filter((event) => event.startsWith("record")), ["record next=3 (durable)", "record next=4 (page cache)"]);
    assert.deepEqual((await state.listVersions("m")).map((v) => v.versionNumber), [2, 3]);
  });

  test("a model deletion that fails part way: the model stays, listing what the archive still holds, numbering goes on", async (t) => {
    const root = await tempRoot(t);
    const inner = createFsArchiveStore({ root, writer: inlineFileWriter });
    let lost: readonly number[] = [];
    let modelGone = false;
    const archive: ArchiveStore = {
      ...inner,
      async deleteModel(modelId) {
        // What an object store's deletion leaves when it fails after some version infos went.
        for (const n of lost) {
          await inner.deleteVersion(modelId, n);
        }
        if (modelGone) {
          await inner.deleteModel(modelId);
        }
        throw new RegistryError(Code.UNAVAILABLE, "the store went away");
      },
    };
    const log = createLogger("info", { write: () => {} });
    const state = createInProcessRegistryState({ archive, log, bootId: "boot-a" });
    await state.open();
    t.after(() => state.close());
    await state.putModel({ modelId: "m", userData: {} });
    for (let n = 1; n <= 3; n++) {
      const claim = await state.claimVersionNumber("m");
      assert.equal(claim?.versionNumber, n);
      const record = { ...version("m", n), archived: n !== 2, dataSize: 1 };
      if (record.archived) {
        await inner.putVersion(record, [Buffer.from("x")]);
      }
      await claim.commit(record);
    }
    lost = [1];
    await assert.rejects(state.deleteModel("m"), { message: "the store went away" });
    assert.deepEqual((await state.listVersions("m")).map((v) => v.versionNumber), [2, 3], "v1's info is gone; the transient v2 stays");
    assert.deepEqual(await state.listModelIds(), ["m"]);
    lost = [3];
    await assert.rejects(state.deleteModel("m"), { message: "the store went away" });
    assert.deepEqual((await state.listVersions("m")).map((v) => v.versionNumber), [2]);
    assert.deepEqual(await commit(state, "m", 1), [4]);
    // A failure once the model itself went (its info): the deletion is complete after all.
    modelGone = true;
    const deleted: string[] = [];
    state.onModelDeleted((modelId) => deleted.push(modelId));
    assert.equal(await state.deleteModel("m"), true);
    assert.deepEqual(deleted, ["m"]);
    assert.deepEqual(await state.listModelIds(), []);
  });

  test("every claim answers with a promise: before the listing and the model's versions are read, and when every number is used", async (t) => {
    const root = await tempRoot(t);
    await mkdir(path.join(root, "full"));
    await mkdir(path.join(root, "m"));
    const seed = createFsArchiveStore({ root, writer: inlineFileWriter });
    await seed.open();
    await seed.writeModel({ modelId: "full", userData: {} });
    await seed.writeModel({ modelId: "m", userData: {} });
    await writeFile(path.join(root, "full", ".cogment-ts-version-record"), "next=4294967296 boot=boot-a state=stopped");
    await writeFile(path.join(root, "m", ".cogment-ts-version-record"), "next=7 boot=boot-a state=stopped");

    const archive = createFsArchiveStore({ root, writer: inlineFileWriter });
    const state = createInProcessRegistryState({ archive, log: createLogger("silent"), bootId: "boot-a" });
    t.after(() => state.close());
    assert.ok(state.openServing !== undefined);
    const { listed } = await state.openServing();
    // Right after opening (the listing may still run) and before the model's versions are read: the claim waits for both.
    const early = state.claimVersionNumber("m");
    await listed;
    assert.equal((await early)?.versionNumber, 7);

    let exhausted: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      exhausted = state.claimVersionNumber("full");
    });
    await assert.rejects(exhausted as Promise<unknown>, (error: unknown) => {
      assert.ok(error instanceof RegistryError);
      assert.equal(error.code, Code.RESOURCE_EXHAUSTED);
      assert.equal(error.message, 'model "full" has used every version number up to 4294967295');
      return true;
    });
    // Loaded now: the same answer on the path that takes no turn.
    await assert.rejects(state.claimVersionNumber("full"), { code: Code.RESOURCE_EXHAUSTED });
  });
});
