// Version numbering across restarts, with the boot id given: a crash of the machine (another boot
// id) cannot be caused in a test, but what the registry then does with the files on disk can.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import { type ArchiveStore, createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { createLogger } from "../../src/logger.js";
import { Registry } from "../../src/registry/index.js";
import { testRegistryOptions } from "../support/registry-options.js";

interface Opened {
  readonly registry: Registry;
  readonly logLines: Record<string, unknown>[];
}

async function tempRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "mr-numbering-"));
  // Registered before the closes that follow (after hooks run in that order): retried while their background writes end.
  t.after(() => rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return root;
}

/** Opens a registry on `archive` as if the machine's current boot were `bootId`. */
async function open(t: TestContext, archive: ArchiveStore, bootId: string): Promise<Opened> {
  const logLines: Record<string, unknown>[] = [];
  const log = createLogger("info", { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  const registry = await Registry.open({ ...(await testRegistryOptions(archive)), log, bootId });
  t.after(() => registry.close());
  return { registry, logLines };
}

async function publish(registry: Registry, modelId: string, count: number): Promise<number[]> {
  const numbers: number[] = [];
  for (let i = 0; i < count; i++) {
    const data = Buffer.from(`${modelId} ${i}`);
    const upload = await registry.beginUpload({ modelId, archived: false, creationTimestamp: 0n, dataHash: "", dataSize: data.length, userData: {} });
    await upload.append(data);
    numbers.push((await upload.finish()).versionNumber);
  }
  return numbers;
}

const store = (root: string): ArchiveStore => createFsArchiveStore({ root, writer: inlineFileWriter });
const recordFile = (root: string, modelId: string): string => path.join(root, modelId, ".cogment-ts-version-record");
const skipLines = (logLines: readonly Record<string, unknown>[]) =>
  logLines.filter((line) => line.msg === "version numbering continues above the durable mark: numbers in between are skipped, none is reused");

describe("version numbering across restarts", () => {
  test("a crash of the process (same boot): exact; of the machine (another boot): above the durable mark, never a reuse", async (t) => {
    const root = await tempRoot(t);
    const first = await open(t, store(root), "boot-a");
    await first.registry.createOrUpdateModel({ modelId: "m", userData: {} });
    assert.deepEqual(await publish(first.registry, "m", 3), [1, 2, 3]);
    // No recordStop: the process died.
    assert.equal((await readFile(recordFile(root, "m"), "utf8")).trim(), "next=4 boot=boot-a state=running");
    assert.equal(await readFile(path.join(root, "m", ".cogment-ts-next-version"), "utf8"), "1025");

    const sameBoot = await open(t, store(root), "boot-a");
    assert.deepEqual(await publish(sameBoot.registry, "m", 1), [4]);
    assert.deepEqual(skipLines(sameBoot.logLines), []);

    const rebooted = await open(t, store(root), "boot-b");
    assert.deepEqual(await publish(rebooted.registry, "m", 1), [1025]);
    assert.deepEqual(
      skipLines(rebooted.logLines).map((line) => [line.modelId, line.nextVersion, line.highestOnDisk, line.recordedNext, line.reason]),
      [["m", 1025, 0, 5, "the machine restarted since the last number was recorded, and the server had not stopped cleanly"]],
    );
  });

  test("a graceful stop is exact even after a reboot", async (t) => {
    const root = await tempRoot(t);
    const first = await open(t, store(root), "boot-a");
    await first.registry.createOrUpdateModel({ modelId: "m", userData: {} });
    await first.registry.createOrUpdateModel({ modelId: "untouched", userData: {} });
    assert.deepEqual(await publish(first.registry, "m", 3), [1, 2, 3]);
    first.registry.close();
    await first.registry.recordStop();
    assert.equal((await readFile(recordFile(root, "m"), "utf8")).trim(), "next=4 boot=boot-a state=stopped");
    await assert.rejects(readFile(recordFile(root, "untouched")), { code: "ENOENT" }, "a model never loaded is left as it was");

    const rebooted = await open(t, store(root), "boot-b");
    assert.deepEqual(await publish(rebooted.registry, "m", 2), [4, 5]);
    assert.deepEqual(await publish(rebooted.registry, "untouched", 1), [1]);
    assert.deepEqual(skipLines(rebooted.logLines), []);
  });

  test("after a clean stop, the first record of the next run is flushed to disk, the following ones are not", async (t) => {
    const root = await tempRoot(t);
    const inner = store(root);
    const writes: [string, boolean][] = [];
    const spied: ArchiveStore = {
      ...inner,
      overwriteMeta: (modelId, key, value, options) => {
        writes.push([value, options.durable]);
        return inner.overwriteMeta(modelId, key, value, options);
      },
    };
    const first = await open(t, spied, "boot-a");
    await first.registry.createOrUpdateModel({ modelId: "m", userData: {} });
    await publish(first.registry, "m", 2);
    await first.registry.recordStop();
    await first.registry.recordStop(); // nothing changed: not written again
    const second = await open(t, spied, "boot-a");
    await publish(second.registry, "m", 2);
    // A "running" record left only in the page cache would let a crash of the machine keep the
    // older "stopped" one on disk, which is trusted: so the first of a run goes to the disk.
    assert.deepEqual(writes, [
      ["next=2 boot=boot-a state=running", true],
      ["next=3 boot=boot-a state=running", false],
      ["next=3 boot=boot-a state=stopped", true],
      ["next=4 boot=boot-a state=running", true],
      ["next=5 boot=boot-a state=running", false],
    ]);
  });

  test("a mark write that throws (rather than rejects) is the same warning, once; versions are still numbered", async (t) => {
    const root = await tempRoot(t);
    const inner = store(root);
    const throwing: ArchiveStore = {
      ...inner,
      writeMeta: (modelId, key, value) => {
        if (key === "next-version") {
          throw Object.assign(new Error("EROFS: read-only file system"), { code: "EROFS" });
        }
        return inner.writeMeta(modelId, key, value);
      },
    };
    const { registry, logLines } = await open(t, throwing, "boot-a");
    await registry.createOrUpdateModel({ modelId: "m", userData: {} });
    assert.deepEqual(await publish(registry, "m", 3), [1, 2, 3]);
    const warnings = logLines.filter((line) => String(line.msg).startsWith("could not write the version-number mark"));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.errno, "EROFS");
    assert.equal(warnings[0]?.file, ".cogment-ts-next-version");
  });

  test("an archive of an earlier version (mark only) or with an unreadable record continues above the mark", async (t) => {
    const root = await tempRoot(t);
    const first = await open(t, store(root), "boot-a");
    await first.registry.createOrUpdateModel({ modelId: "legacy", userData: {} });
    await first.registry.createOrUpdateModel({ modelId: "garbled", userData: {} });
    await publish(first.registry, "legacy", 1);
    await publish(first.registry, "garbled", 1);
    await first.registry.recordStop();
    await rm(recordFile(root, "legacy"));
    await writeFile(recordFile(root, "garbled"), "next=2 boot=boot-a state=sto");

    const second = await open(t, store(root), "boot-a");
    assert.deepEqual(await publish(second.registry, "legacy", 1), [1025]);
    assert.deepEqual(await publish(second.registry, "garbled", 1), [1025]);
    assert.deepEqual(
      second.logLines.filter((line) => line.level === 40).map((line) => [line.modelId, line.msg, line.value]),
      [["garbled", "ignoring an unreadable version-number record", "next=2 boot=boot-a state=sto"]],
    );
    assert.deepEqual(
      skipLines(second.logLines).map((line) => [line.modelId, line.reason]).sort(),
      [
        ["garbled", "no exact record of the last number (an archive of an earlier version of this server, or it could not be written)"],
        ["legacy", "no exact record of the last number (an archive of an earlier version of this server, or it could not be written)"],
      ],
    );
  });

  test("the record is one fixed-size line, overwritten in place", async (t) => {
    const root = await tempRoot(t);
    const first = await open(t, store(root), "boot-a");
    await first.registry.createOrUpdateModel({ modelId: "m", userData: {} });
    await publish(first.registry, "m", 9);
    const nine = await readFile(recordFile(root, "m"), "utf8");
    await publish(first.registry, "m", 1);
    const ten = await readFile(recordFile(root, "m"), "utf8");
    assert.equal(nine.length, 128);
    assert.equal(ten.length, 128);
    assert.equal(nine, `${"next=10 boot=boot-a state=running".padEnd(127)}\n`);
    assert.equal(ten, `${"next=11 boot=boot-a state=running".padEnd(127)}\n`);
  });

  test("a remote store's records (S3): after the run's first, commits do not wait for them, one in flight and the newest next; a crash continues above the mark, a clean stop is exact", { timeout: 60_000 }, async (t) => {
    const root = await tempRoot(t);
    const inner = store(root);
    const records: string[] = [];
    let stalled = false;
    // A store whose record writes hang (a stalled S3 PUT) while `stalled`; `release` lets the held one go on.
    let release = (): void => {};
    const stalling: ArchiveStore = {
      ...inner,
      remoteMeta: true,
      overwriteMeta: (modelId, key, value, options) => {
        records.push(`${value.split(" ")[0]} (${options.durable ? "durable" : "background"})`);
        if (!stalled) {
          return inner.overwriteMeta(modelId, key, value, options);
        }
        return new Promise<void>((resolve) => (release = resolve)).then(() => inner.overwriteMeta(modelId, key, value, options));
      },
    };
    const first = await open(t, stalling, "boot-a");
    await first.registry.createOrUpdateModel({ modelId: "m", userData: {} });
    assert.deepEqual(await publish(first.registry, "m", 1), [1]); // the run's first record, awaited
    stalled = true;
    assert.deepEqual(await publish(first.registry, "m", 3), [2, 3, 4], "committed while the record write hangs");
    assert.deepEqual(records, ["next=2 (durable)", "next=3 (background)"], "one write in flight");
    stalled = false;
    release();
    while (records.length < 3) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(records.slice(2), ["next=5 (background)"], "then the newest value only");
    stalled = true;
    assert.deepEqual(await publish(first.registry, "m", 1), [5]);
    // The process dies now: the record in the store (next=5, running) lags behind what was handed out.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await readFile(recordFile(root, "m"), "utf8")).trim(), "next=5 boot=boot-a state=running");

    const remote: ArchiveStore = { ...store(root), remoteMeta: true };
    const restarted = await open(t, remote, "boot-a");
    assert.deepEqual(await publish(restarted.registry, "m", 1), [1025], "never 5 again");
    assert.deepEqual(
      skipLines(restarted.logLines).map((line) => [line.nextVersion, line.recordedNext, line.reason]),
      [[1025, 5, "the server had not stopped cleanly, and the record in the object store is written in the background: it may lag"]],
    );
    assert.deepEqual(await publish(restarted.registry, "m", 2), [1026, 1027]);
    restarted.registry.close();
    await restarted.registry.recordStop(); // after the background records
    assert.equal((await readFile(recordFile(root, "m"), "utf8")).trim(), "next=1028 boot=boot-a state=stopped");
    const again = await open(t, { ...store(root), remoteMeta: true }, "boot-b");
    assert.deepEqual(await publish(again.registry, "m", 1), [1028]);
    assert.deepEqual(skipLines(again.logLines), []);
  });
});
