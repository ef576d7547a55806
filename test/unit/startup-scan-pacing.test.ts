import assert from "node:assert/strict";
import { chmod, cp, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type TestContext, describe, test } from "node:test";
import { inlineFileWriter } from "../../src/archive/atomic-write.js";
import { type ConcurrencyLimit, createConcurrencyLimit } from "../../src/archive/concurrency-limit.js";
import { createFsArchiveReads } from "../../src/archive/fs-archive-reads.js";
import { createFsArchiveStore, startupScanConcurrency } from "../../src/archive/fs-archive-store.js";
import { createFsArchiveWrites } from "../../src/archive/fs-archive-writes.js";
import { tempFileName } from "../../src/archive/layout.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";

/**
 * The start-up scan of an archive directory (issue #15, start-up): the listing's stat and info read
 * per model run synchronously in turns of the event loop while the server binds and serves its first
 * calls; the leftover clean-up's directory read per model, in the background after the start, a few
 * at a time, not all at once.
 */

const FIXTURE_MODELS = ["empty_model", "modèle agent:v1", "policy_net", "value-net_2"];

/** A promise and the functions that settle it. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve: () => void = () => {};
  let reject: (error: Error) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets the turns queued so far (and a few more) run. */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** A writable copy of the fixture archive, removed after the test. */
async function fixtureCopy(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-startup-scan-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, "archive");
  await cp(ORIGINAL_ARCHIVE, root, { recursive: true });
  // The fixture may be checked out read-only.
  await chmod(root, 0o755);
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    await chmod(path.join(entry.parentPath, entry.name), entry.isDirectory() ? 0o755 : 0o644);
  }
  return root;
}

/** A limit of `limit` that records how many tasks it ran and the most that ran at once. */
function countingLimit(limit: number): { scans: ConcurrencyLimit; tasks: () => number; mostAtOnce: () => number } {
  const inner = createConcurrencyLimit(limit);
  let tasks = 0;
  let running = 0;
  let most = 0;
  return {
    scans: {
      run: (task) =>
        inner.run(async () => {
          tasks++;
          running++;
          most = Math.max(most, running);
          try {
            return await task();
          } finally {
            running--;
          }
        }),
    },
    tasks: () => tasks,
    mostAtOnce: () => most,
  };
}

describe("createConcurrencyLimit", () => {
  test("runs at most `limit` tasks at once, the others in the order given as slots free up", async () => {
    const limit = createConcurrencyLimit(2);
    const gates = [deferred(), deferred(), deferred(), deferred()];
    const started: number[] = [];
    const results = gates.map((gate, index) =>
      limit.run(async () => {
        started.push(index);
        await gate.promise;
        return index * 10;
      }),
    );
    await settle();
    assert.deepEqual(started, [0, 1]);
    gates[1]?.resolve();
    await settle();
    assert.deepEqual(started, [0, 1, 2]);
    gates[0]?.resolve();
    await settle();
    assert.deepEqual(started, [0, 1, 2, 3]);
    gates[2]?.resolve();
    gates[3]?.resolve();
    assert.deepEqual(await Promise.all(results), [0, 10, 20, 30]);
  });

  test("a failed task rejects with its own error and frees its slot", async () => {
    const limit = createConcurrencyLimit(1);
    const failing = limit.run(async () => {
      throw new Error("EIO: the first task failed");
    });
    const next = limit.run(async () => "second");
    await assert.rejects(failing, { message: "EIO: the first task failed" });
    assert.equal(await next, "second");
  });

  test("refuses a limit that is not a whole number of at least 1", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => createConcurrencyLimit(bad), { name: "RangeError", message: `a concurrency limit is a whole number of at least 1, not ${bad}` });
    }
  });
});

describe("startupScanConcurrency", () => {
  test("a core fewer than the machine has, at least 1, at most libuv's 4 threads", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 8, 64].map((cores) => startupScanConcurrency(cores)),
      [1, 1, 2, 3, 4, 4, 4],
    );
  });
});

describe("the archive directory's start-up scan, paced", () => {
  // Changed in startup-4: the listing reads synchronously in turns of the event loop (fs-archive-reads.ts,
  // LISTING_TURN_MS) instead of through the limit, which now paces the leftover clean-up alone.
  test("listModelIds and readModels read in turns of the event loop, with readModel's records, in the order asked", async (t) => {
    const root = await fixtureCopy(t);
    const warnings: string[] = [];
    // A turn of 0 ms: the event loop gets a turn before every model.
    const reads = createFsArchiveReads(root, (message) => warnings.push(message), { listingTurnMs: 0 });
    let turns = 0;
    let counting = true;
    const countTurns = (): void => {
      if (counting) {
        turns++;
        setImmediate(countTurns);
      }
    };
    setImmediate(countTurns);
    const ids = await reads.listModelIds();
    const turnsOfListing = turns;
    assert.deepEqual(ids, FIXTURE_MODELS);
    assert.ok(turnsOfListing >= FIXTURE_MODELS.length - 1, `the loop turned ${turnsOfListing} times while ${FIXTURE_MODELS.length} models were stat'ed`);
    const models = await reads.readModels?.([...ids, "missing"]);
    counting = false;
    assert.ok(turns - turnsOfListing >= FIXTURE_MODELS.length, `the loop turned ${turns - turnsOfListing} times while ${FIXTURE_MODELS.length + 1} infos were read`);
    assert.deepEqual(
      models?.map((model) => model?.modelId),
      [...FIXTURE_MODELS, undefined],
    );
    assert.deepEqual(models, await Promise.all([...ids, "missing"].map((id) => reads.readModel(id))), "the same records as readModel, in the order asked");
    assert.deepEqual(warnings, []);
  });

  test("readModels keeps readModel's warnings for an unreadable info, one model skipped, the others read", async (t) => {
    const root = await fixtureCopy(t);
    await writeFile(path.join(root, "value-net_2/value-net_2.yaml"), "model_id: [\n");
    const warnings: string[] = [];
    const store = createFsArchiveStore({ root, writer: inlineFileWriter, onWarning: (message, details) => warnings.push(`${message}: ${path.relative(root, String(details["path"]))}`), startupScanConcurrency: 1 });
    const models = await store.readModels?.(await store.listModelIds());
    assert.deepEqual(
      models?.map((model) => model?.modelId),
      ["empty_model", "modèle agent:v1", "policy_net", undefined],
    );
    assert.deepEqual(warnings, ["model skipped: unreadable model info: value-net_2/value-net_2.yaml"]);
  });

  test("removeLeftovers goes through the limit, a task per model directory and per leftover in the root, and removes every leftover", async (t) => {
    const root = await fixtureCopy(t);
    const leftovers = [
      path.join(root, "policy_net", tempFileName("policy_net-v000005.data")),
      path.join(root, "value-net_2", tempFileName("value-net_2.yaml")),
      path.join(root, tempFileName("old_model")),
    ];
    for (const leftover of leftovers) {
      await writeFile(leftover, "partial");
    }
    const counted = countingLimit(2);
    const removed: string[] = [];
    const writes = createFsArchiveWrites(root, inlineFileWriter, (_message, details) => removed.push(String(details["path"])), { startupScans: counted.scans });
    await writes.removeLeftovers?.();
    assert.deepEqual(removed.sort(), [...leftovers].sort());
    assert.equal(counted.tasks(), FIXTURE_MODELS.length + 1, "a task per model directory and per leftover in the root");
    assert.equal(counted.mostAtOnce(), 2);
    assert.deepEqual((await readdir(root)).sort(), [...FIXTURE_MODELS].sort());
    assert.deepEqual((await readdir(path.join(root, "policy_net"))).filter((name) => name.includes(".tmp-")), []);
  });
});
