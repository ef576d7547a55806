// Each single-mode run that changes something marks the archive (`.cogment-ts-single-mode-run`), so
// that instances sharing a Redis later see that single mode ran (docs/redis-mode.md, "Numbering and
// the archive"). The mark is durable before the run's first change; a start and reads write nothing;
// a mark that cannot be written is one warning and the run goes on.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import { type ArchiveStore, createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { createLogger } from "../../src/logger.js";
import { createInProcessRegistryState } from "../../src/state/index.js";

const MARK_PATTERN = /^started=\d{4}-\d\d-\d\dT\S+Z run=[0-9a-f-]{36}\n$/;

async function tempRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "mr-single-run-"));
  t.after(() => rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return root;
}

/** An archive whose run-mark write waits for `release`, logging what is written in order. */
function gatedArchive(root: string, events: string[]): { archive: ArchiveStore; release: (failure?: Error) => void } {
  const inner = createFsArchiveStore({ root, writer: inlineFileWriter });
  let release: (failure?: Error) => void = () => {};
  const gate = new Promise<Error | undefined>((resolve) => (release = resolve));
  const archive: ArchiveStore = {
    ...inner,
    async writeArchiveMeta(key, value) {
      const failure = await gate;
      if (failure !== undefined) {
        events.push(`mark ${key} failed`);
        throw failure;
      }
      await inner.writeArchiveMeta(key, value);
      events.push(`mark ${key}`);
    },
    async writeModel(model) {
      events.push(`model ${model.modelId}`);
      await inner.writeModel(model);
    },
  };
  return { archive, release };
}

describe("single mode marks its runs in the archive", () => {
  test("a run's first change writes a new mark and waits for it; a start and reads write nothing", async (t) => {
    const root = await tempRoot(t);
    const events: string[] = [];
    const seed = createFsArchiveStore({ root, writer: inlineFileWriter });
    await seed.open();
    await seed.writeModel({ modelId: "m", userData: {} });
    const { archive, release } = gatedArchive(root, events);
    const state = createInProcessRegistryState({ archive, log: createLogger("silent"), bootId: "boot-a" });
    t.after(() => state.close());
    await state.open();

    assert.deepEqual(await state.listModelIds(), ["m"]);
    assert.deepEqual(await state.listVersions("m"), []);
    assert.equal(await state.findVersion("m", -1), undefined);
    await assert.rejects(readFile(path.join(root, ".cogment-ts-single-mode-run")), { code: "ENOENT" });
    const settled: string[] = [];
    const claimed = state.claimVersionNumber("m").then((claim) => (settled.push("claim"), claim));
    const created = state.putModel({ modelId: "n", userData: {} }).then((done) => (settled.push("model"), done));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual([events, settled], [[], []], "no change before the mark");
    release();
    assert.equal((await claimed)?.versionNumber, 1);
    assert.equal(await created, true);
    assert.deepEqual(events, ["mark single-mode-run", "model n"], "one mark for the run");
    const first = await readFile(path.join(root, ".cogment-ts-single-mode-run"), "utf8");
    assert.match(first, MARK_PATTERN);

    const again = createInProcessRegistryState({ archive: createFsArchiveStore({ root, writer: inlineFileWriter }), log: createLogger("silent"), bootId: "boot-a" });
    t.after(() => again.close());
    await again.open();
    await again.listVersions("n");
    assert.equal(await readFile(path.join(root, ".cogment-ts-single-mode-run"), "utf8"), first, "a run that reads only leaves the mark as it is");
    assert.equal(await again.deleteModel("n"), true);
    const second = await readFile(path.join(root, ".cogment-ts-single-mode-run"), "utf8");
    assert.match(second, MARK_PATTERN);
    assert.notEqual(second, first);
  });

  test("a mark that cannot be written: one warning naming the file, and the run's changes go on", async (t) => {
    const root = await tempRoot(t);
    const events: string[] = [];
    const { archive, release } = gatedArchive(root, events);
    const lines: Record<string, unknown>[] = [];
    const log = createLogger("info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const state = createInProcessRegistryState({ archive, log, bootId: "boot-a" });
    t.after(() => state.close());
    await state.open();
    release(Object.assign(new Error("EROFS: read-only file system"), { code: "EROFS" }));
    assert.equal(await state.putModel({ modelId: "m", userData: {} }), true);
    assert.equal(await state.deleteModel("m"), true);
    assert.deepEqual(events, ["mark single-mode-run failed", "model m"]);
    const warnings = lines.filter((line) => line.level === 40);
    assert.deepEqual(
      warnings.map((line) => [line.file, line.errno, line.error, line.msg]),
      [
        [
          ".cogment-ts-single-mode-run",
          "EROFS",
          "EROFS: read-only file system",
          "could not record this single-mode run in the archive: instances sharing a Redis (COGMENT_MODEL_REGISTRY_REDIS_URL) started on this archive later will not see the models, versions and deletions of this run, and may hand out again its version numbers",
        ],
      ],
    );
  });
});
