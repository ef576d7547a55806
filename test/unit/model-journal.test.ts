import { type TestContext, after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { inlineFileWriter } from "../../src/archive/atomic-write.js";
import { createFsArchiveStore } from "../../src/archive/fs-archive-store.js";
import type { ArchiveStore } from "../../src/archive/archive-store.js";
import { HEADER_BYTES, RECORDS_START, decodeHeader, decodeRecords, encodeHeader, encodeRecord, isCleanHeader, mayHoldRecordOf } from "../../src/archive/journal-codec.js";
import { modelInfoPath } from "../../src/archive/layout.js";
import { DEFAULT_JOURNAL_BYTES, JOURNAL_FILE_NAME } from "../../src/archive/model-journal.js";
import { Code, RegistryError } from "../../src/errors/index.js";
import { encodeModelInfo } from "../../src/archive/yaml-codec.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";

/**
 * Runs `body` while `file` is immutable (chattr +i), and makes it writable again whatever happens;
 * false, with the test skipped, where chattr +i is not available (it needs root on ext4).
 */
async function whileImmutable(t: TestContext, file: string, body: () => Promise<void>): Promise<boolean> {
  try {
    execFileSync("chattr", ["+i", file], { stdio: "ignore" });
  } catch {
    t.skip("chattr +i is not available here (needs root on ext4)");
    return false;
  }
  try {
    await body();
  } finally {
    execFileSync("chattr", ["-i", file], { stdio: "ignore" });
  }
  return true;
}

const tempDirs: string[] = [];
after(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

async function makeRoot(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "model-journal-"));
  tempDirs.push(dir);
  return dir;
}

const record = (relativePath: string, text: string): { relativePath: string; content: Uint8Array } => ({
  relativePath,
  content: new Uint8Array(Buffer.from(text, "utf8")),
});

function journalOf(epoch: number, records: readonly Buffer[], tail: Buffer = Buffer.alloc(64)): Buffer {
  return Buffer.concat([encodeHeader(epoch), ...records, tail]);
}

describe("journal codec", () => {
  test("a header gives back its epoch; a torn or foreign one gives undefined", () => {
    const header = encodeHeader(7);
    assert.equal(header.byteLength, HEADER_BYTES);
    assert.equal(decodeHeader(header), 7);
    const torn = Buffer.from(header);
    torn[9] = (torn[9] ?? 0) ^ 1;
    assert.equal(decodeHeader(torn), undefined);
    assert.equal(decodeHeader(Buffer.alloc(HEADER_BYTES)), undefined);
  });

  test("the clean-stop mark: same epoch for a reader of the first 16 bytes, and checked", () => {
    const clean = encodeHeader(9, true);
    assert.equal(decodeHeader(clean), 9);
    assert.deepEqual(clean.subarray(0, 16), encodeHeader(9).subarray(0, 16), "a reader of the old format sees the same header");
    assert.equal(isCleanHeader(clean), true);
    assert.equal(isCleanHeader(encodeHeader(9)), false);
    const torn = Buffer.from(clean);
    torn[20] = (torn[20] ?? 0) ^ 1;
    assert.equal(isCleanHeader(torn), false);
  });

  test("mayHoldRecordOf finds an epoch's bytes anywhere after the header, and only there", () => {
    const a = encodeRecord(5, record("a/a.yaml", "one\n"));
    assert.equal(mayHoldRecordOf(journalOf(6, [a]), 6), false, "the header's own epoch is not counted");
    assert.equal(mayHoldRecordOf(journalOf(6, [a]), 5), true);
    const shifted = Buffer.concat([encodeHeader(6), Buffer.from([1, 2, 3]), encodeRecord(6, record("b/b.yaml", "x"))]);
    assert.equal(mayHoldRecordOf(shifted, 6), true, "at any offset, not only where records begin");
    assert.equal(mayHoldRecordOf(journalOf(6, [], Buffer.alloc(DEFAULT_JOURNAL_BYTES)), 6), false);
  });

  test("records round-trip in order, with their exact bytes", () => {
    const a = encodeRecord(3, record("a/a.yaml", "model_id: a\n"));
    const b = encodeRecord(3, record("b/b.yaml", "model_id: é\n"));
    assert.equal(a.byteLength, 12 + 2 + "a/a.yaml".length + "model_id: a\n".length);
    const { records, end } = decodeRecords(journalOf(3, [a, b]), 3);
    assert.deepEqual(
      records.map((entry) => [entry.relativePath, Buffer.from(entry.content).toString("utf8")]),
      [
        ["a/a.yaml", "model_id: a\n"],
        ["b/b.yaml", "model_id: é\n"],
      ],
    );
    assert.equal(end, RECORDS_START + a.byteLength + b.byteLength);
  });

  test("a torn tail, a wrong checksum or an earlier epoch ends the records", () => {
    const a = encodeRecord(3, record("a/a.yaml", "one\n"));
    const b = encodeRecord(3, record("b/b.yaml", "two\n"));
    const torn = Buffer.concat([encodeHeader(3), a, b.subarray(0, b.byteLength - 1)]);
    assert.deepEqual(decodeRecords(torn, 3).records.map((entry) => entry.relativePath), ["a/a.yaml"]);
    const flipped = Buffer.from(b);
    flipped[flipped.byteLength - 1] = (flipped[flipped.byteLength - 1] ?? 0) ^ 0x20;
    assert.deepEqual(decodeRecords(journalOf(3, [a, flipped]), 3).records.map((entry) => entry.relativePath), ["a/a.yaml"]);
    const stale = encodeRecord(2, record("c/c.yaml", "old\n"));
    assert.deepEqual(decodeRecords(journalOf(3, [a, stale]), 3).records.map((entry) => entry.relativePath), ["a/a.yaml"]);
    assert.deepEqual(decodeRecords(journalOf(3, [a, b]), 4).records, []);
  });
});

/** A store with the journal, opened. */
async function openStore(root: string, journalBytes?: number): Promise<ArchiveStore> {
  const store = createFsArchiveStore({ root, writer: inlineFileWriter, modelJournal: true, journalBytes });
  await store.open();
  return store;
}

/** What a machine crash may leave of an unflushed write: the file's earlier content. */
async function loseWrite(root: string, modelId: string, earlier: string | undefined): Promise<void> {
  const infoPath = modelInfoPath(root, modelId);
  if (earlier === undefined) {
    await fs.rm(infoPath, { force: true });
  } else {
    await fs.writeFile(infoPath, earlier);
  }
}

const infoText = (modelId: string, userData: Record<string, string>): string => encodeModelInfo({ modelId, userData });

describe("model journal replay", () => {
  test("after a crash that lost the files' writes, open restores every acknowledged content, and again changes nothing", async () => {
    const root = await makeRoot();
    const crashed = await openStore(root);
    await crashed.writeModel({ modelId: "m", userData: { step: "1" } });
    await Promise.all([crashed.writeModel({ modelId: "m", userData: { step: "2" } }), crashed.writeModel({ modelId: "m", userData: { step: "3" } })]);
    await crashed.writeModel({ modelId: "n", userData: {} });
    // The crashed store is abandoned without close(): no checkpoint.
    await loseWrite(root, "m", infoText("m", { step: "1" }));
    await loseWrite(root, "n", undefined);

    const warnings: string[] = [];
    const reopened = createFsArchiveStore({ root, writer: inlineFileWriter, modelJournal: true, onWarning: (message) => warnings.push(message) });
    await reopened.open();
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "3" }));
    assert.equal(await fs.readFile(modelInfoPath(root, "n"), "utf8"), infoText("n", {}));
    assert.deepEqual(await reopened.listModelIds(), ["m", "n"]);
    assert.deepEqual(warnings, ["model files restored from the journal after a crash"]);

    await loseWrite(root, "m", infoText("m", { step: "1" }));
    const again = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "1" }), "the journal was reset by the previous open");
    await again.close?.();
  });

  test("a torn tail of the journal is ignored", async () => {
    const root = await makeRoot();
    const crashed = await openStore(root);
    await crashed.writeModel({ modelId: "m", userData: { step: "1" } });
    const journalPath = path.join(root, JOURNAL_FILE_NAME);
    const bytes = await fs.readFile(journalPath);
    const epoch = decodeHeader(bytes);
    assert.notEqual(epoch, undefined);
    const { end } = decodeRecords(bytes, epoch ?? 0);
    const torn = encodeRecord(epoch ?? 0, record("m/m.yaml", infoText("m", { step: "torn" })));
    const handle = await fs.open(journalPath, "r+");
    await handle.write(torn, 0, torn.byteLength - 3, end);
    await handle.close();
    await loseWrite(root, "m", undefined);

    const reopened = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "1" }));
    await reopened.close?.();
  });

  test("a deleted model is not brought back, and one re-created after its deletion is", async () => {
    const root = await makeRoot();
    const crashed = await openStore(root);
    await crashed.writeModel({ modelId: "gone", userData: { step: "1" } });
    await crashed.deleteModel("gone");
    await crashed.writeModel({ modelId: "again", userData: { step: "1" } });
    await crashed.deleteModel("again");
    await crashed.writeModel({ modelId: "again", userData: { step: "2" } });
    await loseWrite(root, "again", undefined);

    const reopened = await openStore(root);
    assert.deepEqual(await reopened.listModelIds(), ["again"]);
    assert.equal(await fs.readFile(modelInfoPath(root, "again"), "utf8"), infoText("again", { step: "2" }));
    await reopened.close?.();
  });

  test("a journal smaller than the writes checkpoints when full and still restores the last ones", async () => {
    const root = await makeRoot();
    const crashed = await openStore(root, 2048);
    const bigValue = "x".repeat(3000);
    // Larger than the journal: written without it, after a checkpoint (which makes every earlier write durable).
    await crashed.writeModel({ modelId: "big", userData: { value: bigValue } });
    for (let step = 1; step <= 40; step++) {
      await Promise.all(["a", "b", "c"].map((modelId) => crashed.writeModel({ modelId, userData: { step: String(step) } })));
    }
    for (const modelId of ["a", "b", "c"]) {
      await loseWrite(root, modelId, infoText(modelId, { step: "39" }));
    }
    const reopened = await openStore(root, 2048);
    for (const modelId of ["a", "b", "c"]) {
      assert.equal(await fs.readFile(modelInfoPath(root, modelId), "utf8"), infoText(modelId, { step: "40" }));
    }
    assert.equal(await fs.readFile(modelInfoPath(root, "big"), "utf8"), infoText("big", { value: bigValue }));
    await reopened.close?.();
  });

  test("a batch larger than the journal, written without it, is not undone by an older record at the next start", async () => {
    const root = await makeRoot();
    const crashed = await openStore(root, 4096);
    await crashed.writeModel({ modelId: "a", userData: { step: "1" } });
    const big = { step: "2", padding: "x".repeat(8192) };
    await crashed.writeModel({ modelId: "a", userData: big });
    // The process dies before any checkpoint (no close()); its writes are on disk.
    const reopened = await openStore(root, 4096);
    assert.equal(await fs.readFile(modelInfoPath(root, "a"), "utf8"), infoText("a", big));
    await reopened.close?.();
  });

  test("close checkpoints: the journal holds no record afterwards", async () => {
    const root = await makeRoot();
    const store = await openStore(root);
    await store.writeModel({ modelId: "m", userData: {} });
    await store.close?.();
    const bytes = await fs.readFile(path.join(root, JOURNAL_FILE_NAME));
    assert.equal(bytes.byteLength, DEFAULT_JOURNAL_BYTES);
    assert.deepEqual(decodeRecords(bytes, decodeHeader(bytes) ?? -1).records, []);
  });

  test("the journal is not a model: the original's archive lists the same models with it", async () => {
    const root = await makeRoot();
    await fs.cp(ORIGINAL_ARCHIVE, root, { recursive: true });
    const store = await openStore(root);
    const expected = (await fs.readdir(ORIGINAL_ARCHIVE)).sort();
    assert.deepEqual(await store.listModelIds(), expected);
    await store.writeModel({ modelId: "policy_net", userData: { touched: "yes" } });
    await store.close?.();
    const reopened = await openStore(root);
    assert.deepEqual(await reopened.listModelIds(), expected);
    assert.deepEqual((await reopened.readModel("policy_net"))?.userData, { touched: "yes" });
    await reopened.close?.();
  });

  test("a journal that cannot be written fails the batch's callers, leaves their files untouched, and the next batch works", async (t) => {
    const root = await makeRoot();
    const store = await openStore(root);
    await store.writeModel({ modelId: "m", userData: { step: "1" } });
    // The journal is closed two event-loop turns after the last operation.
    for (let turn = 0; turn < 3; turn++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    const journalPath = path.join(root, JOURNAL_FILE_NAME);
    const ran = await whileImmutable(t, journalPath, async () => {
      const outcomes = await Promise.allSettled([store.writeModel({ modelId: "m", userData: { step: "2" } }), store.writeModel({ modelId: "new", userData: {} })]);
      assert.deepEqual(
        outcomes.map((outcome) => (outcome.status === "rejected" ? (outcome.reason as NodeJS.ErrnoException).code : "fulfilled")),
        ["EPERM", "EPERM"],
      );
      assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "1" }));
      assert.deepEqual((await fs.readdir(path.join(root, "new"))).filter((name) => name !== ".cogment-ts-journal"), [], "no temporary file left");
    });
    if (!ran) {
      return;
    }
    await store.writeModel({ modelId: "m", userData: { step: "3" } });
    await loseWrite(root, "m", infoText("m", { step: "1" }));
    const reopened = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "3" }));
    assert.deepEqual(await reopened.listModelIds(), ["m"], "the failed model info was never written");
    await reopened.close?.();
  });
});

const journalPathOf = (root: string): string => path.join(root, JOURNAL_FILE_NAME);
const exists = (file: string): Promise<boolean> => fs.stat(file).then(
  () => true,
  () => false,
);
const turns = async (count: number): Promise<void> => {
  for (let turn = 0; turn < count; turn++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
};
const codeOf = (outcome: PromiseSettledResult<unknown>): string =>
  outcome.status === "fulfilled" ? "fulfilled" : outcome.reason instanceof RegistryError ? `gRPC ${outcome.reason.code}` : String((outcome.reason as NodeJS.ErrnoException).code);

describe("model journal made after listening, clean stop, shutdown", () => {
  test("a fresh archive opens without the journal; the first model write makes it and goes through it", async () => {
    const root = await makeRoot();
    const store = await openStore(root);
    assert.equal(await exists(journalPathOf(root)), false, "open() made no journal");
    assert.deepEqual(await store.listModelIds(), []);
    await store.writeModel({ modelId: "m", userData: { step: "1" } });
    const bytes = await fs.readFile(journalPathOf(root));
    assert.equal(bytes.byteLength, DEFAULT_JOURNAL_BYTES);
    assert.deepEqual(
      decodeRecords(bytes, decodeHeader(bytes) ?? -1).records.map((entry) => [entry.relativePath, Buffer.from(entry.content).toString("utf8")]),
      [["m/m.yaml", infoText("m", { step: "1" })]],
    );
    await store.close?.();
  });

  test("close() waits for a creation in flight, and nothing is created once it began", async () => {
    const root = await makeRoot();
    const store = await openStore(root);
    store.startDeferred?.();
    await store.close?.();
    const bytes = await fs.readFile(journalPathOf(root));
    assert.equal(bytes.byteLength, DEFAULT_JOURNAL_BYTES, "complete when close() resolved");
    assert.equal(isCleanHeader(bytes.subarray(0, HEADER_BYTES)), true);
    await fs.rm(root, { recursive: true, force: true });
    store.startDeferred?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await exists(root), false, "nothing recreated the removed archive");

    const unstarted = await makeRoot();
    const idle = await openStore(unstarted);
    await idle.close?.();
    idle.startDeferred?.();
    const outcomes = await Promise.allSettled([idle.writeModel({ modelId: "late", userData: {} }), idle.deleteModel("late")]);
    assert.deepEqual(outcomes.map(codeOf), [`gRPC ${Code.UNAVAILABLE}`, `gRPC ${Code.UNAVAILABLE}`]);
    assert.match(String((outcomes[0] as PromiseRejectedResult).reason), /the model registry is stopping/);
    await turns(3);
    assert.deepEqual(await fs.readdir(unstarted), [], "no journal, no model directory after a stop that never needed them");
  });

  test("a batch in flight at close is written; calls queued once close began get UNAVAILABLE, never EBADF", async () => {
    const root = await makeRoot();
    const store = await openStore(root);
    await store.writeModel({ modelId: "m", userData: { step: "1" } });
    const inFlight = store.writeModel({ modelId: "m", userData: { step: "2" } });
    await turns(2); // the group commit took it (on the next turn): its batch is in the journal's queue
    const closing = store.close?.();
    const late = [store.writeModel({ modelId: "m", userData: { step: "3" } }), store.writeModel({ modelId: "n", userData: {} })];
    const outcomes = await Promise.allSettled([inFlight, ...late]);
    await closing;
    assert.deepEqual(outcomes.map(codeOf), ["fulfilled", `gRPC ${Code.UNAVAILABLE}`, `gRPC ${Code.UNAVAILABLE}`]);
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "2" }));
    assert.equal(await exists(path.join(root, "n")), false);
    const bytes = await fs.readFile(journalPathOf(root));
    assert.equal(isCleanHeader(bytes.subarray(0, HEADER_BYTES)), true);
  });

  test("calls queued in the group commit just before close are refused cleanly, and their files untouched", async () => {
    const root = await makeRoot();
    const store = await openStore(root);
    await store.writeModel({ modelId: "m", userData: { step: "1" } });
    const queued = [store.writeModel({ modelId: "m", userData: { step: "2" } }), store.writeModel({ modelId: "o", userData: {} })];
    await store.close?.();
    const outcomes = await Promise.allSettled(queued);
    for (const outcome of outcomes) {
      // Either written before the stop's checkpoint or refused: never a closed file's error.
      assert.ok(codeOf(outcome) === "fulfilled" || codeOf(outcome) === `gRPC ${Code.UNAVAILABLE}`, codeOf(outcome));
    }
    const expected = outcomes[0]?.status === "fulfilled" ? infoText("m", { step: "2" }) : infoText("m", { step: "1" });
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), expected);
  });

  test("after a clean stop the next start writes nothing to the journal, and its records still survive a crash", async () => {
    const root = await makeRoot();
    const first = await openStore(root);
    await first.writeModel({ modelId: "m", userData: { step: "1" } });
    await first.close?.();
    const atStop = await fs.readFile(journalPathOf(root));
    assert.equal(isCleanHeader(atStop.subarray(0, HEADER_BYTES)), true);
    const before = await fs.stat(journalPathOf(root));

    const second = await openStore(root);
    second.startDeferred?.();
    await turns(5);
    assert.deepEqual(await fs.readFile(journalPathOf(root)), atStop, "no reset at a start after a clean stop");
    await second.close?.();
    assert.deepEqual(await fs.readFile(journalPathOf(root)), atStop, "nor at a stop that wrote nothing");
    assert.equal((await fs.stat(journalPathOf(root))).mtimeMs, before.mtimeMs);

    const crashed = await openStore(root);
    await crashed.writeModel({ modelId: "m", userData: { step: "2" } });
    await crashed.writeModel({ modelId: "n", userData: {} });
    // Abandoned without close() (kill -9), the files' writes lost.
    await loseWrite(root, "m", infoText("m", { step: "1" }));
    await loseWrite(root, "n", undefined);
    const reopened = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "2" }));
    assert.equal(await fs.readFile(modelInfoPath(root, "n"), "utf8"), infoText("n", {}));
    const afterReplay = await fs.readFile(journalPathOf(root));
    assert.equal(isCleanHeader(afterReplay.subarray(0, HEADER_BYTES)), false, "replayed records were voided by a reset");
    assert.equal(decodeHeader(afterReplay), (decodeHeader(atStop) ?? 0) + 1);
    await reopened.close?.();
  });

  test("a clean header over a torn first record of its epoch: the epoch is not reused, so a later record of it never lines up", async () => {
    const root = await makeRoot();
    const first = await openStore(root);
    await first.writeModel({ modelId: "a", userData: { v: "0" } });
    await first.writeModel({ modelId: "b", userData: { v: "0" } });
    await first.close?.();
    const clean = await fs.readFile(journalPathOf(root));
    const epoch = decodeHeader(clean) ?? -1;
    // What a kill -9 during the first batch after a clean start may leave: its first record torn, its second whole.
    const torn = encodeRecord(epoch, record("a/a.yaml", infoText("a", { v: "1" })));
    torn[torn.byteLength - 1] = (torn[torn.byteLength - 1] ?? 0) ^ 0x01;
    const stale = encodeRecord(epoch, record("b/b.yaml", infoText("b", { v: "stale" })));
    const crashed = Buffer.from(clean);
    Buffer.concat([torn, stale]).copy(crashed, RECORDS_START);
    await fs.writeFile(journalPathOf(root), crashed);

    const restarted = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "b"), "utf8"), infoText("b", { v: "0" }), "nothing replayed");
    // A record of the same length as the torn one: with the epoch reused, the stale one would follow it.
    await restarted.writeModel({ modelId: "a", userData: { v: "2" } });
    assert.equal(Buffer.byteLength(infoText("a", { v: "2" })), Buffer.byteLength(infoText("a", { v: "1" })));
    // Abandoned (kill -9); restarted again.
    const again = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "a"), "utf8"), infoText("a", { v: "2" }));
    assert.equal(await fs.readFile(modelInfoPath(root, "b"), "utf8"), infoText("b", { v: "0" }), "the unacknowledged stale record was not replayed");
    await again.close?.();
  });

  test("a journal whose header was lost gets an epoch no leftover record carries, so none lines up after new ones", async () => {
    const root = await makeRoot();
    const first = await openStore(root);
    await first.writeModel({ modelId: "a", userData: { v: "0" } });
    await first.writeModel({ modelId: "b", userData: { v: "0" } });
    await first.close?.();
    // Epoch-1 records behind a damaged header: what any first journal life leaves once its header is gone.
    const damaged = Buffer.from(await fs.readFile(journalPathOf(root)));
    damaged.fill(0x55, 0, HEADER_BYTES);
    Buffer.concat([
      encodeRecord(1, record("a/a.yaml", infoText("a", { v: "1" }))),
      encodeRecord(1, record("b/b.yaml", infoText("b", { v: "stale" }))),
    ]).copy(damaged, RECORDS_START);
    await fs.writeFile(journalPathOf(root), damaged);

    const restarted = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "b"), "utf8"), infoText("b", { v: "0" }), "nothing replayed");
    // A record of the same length as the first leftover: with epoch 1 chosen again, the stale one would follow it.
    await restarted.writeModel({ modelId: "a", userData: { v: "2" } });
    assert.notEqual(decodeHeader(await fs.readFile(journalPathOf(root))), 1);
    // Abandoned (kill -9); restarted again.
    const again = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "a"), "utf8"), infoText("a", { v: "2" }));
    assert.equal(await fs.readFile(modelInfoPath(root, "b"), "utf8"), infoText("b", { v: "0" }), "the leftover record was not replayed");
    await again.close?.();
  });

  test("a journal cut short (kill -9 while it was being made) is completed after listening, not before", async () => {
    const root = await makeRoot();
    await fs.writeFile(journalPathOf(root), Buffer.alloc(4096));
    const store = await openStore(root);
    assert.equal((await fs.stat(journalPathOf(root))).size, 4096, "untouched by open()");
    store.startDeferred?.();
    await store.writeModel({ modelId: "m", userData: {} });
    const bytes = await fs.readFile(journalPathOf(root));
    assert.equal(bytes.byteLength, DEFAULT_JOURNAL_BYTES);
    assert.equal(decodeHeader(bytes), 1);
    assert.deepEqual(decodeRecords(bytes, 1).records.map((entry) => entry.relativePath), ["m/m.yaml"]);
    await store.close?.();
  });

  test("a file that can be put in place neither in place nor by the fallback keeps its record until it is whole", async (t) => {
    const root = await makeRoot();
    const store = await openStore(root);
    await store.writeModel({ modelId: "m", userData: { step: "1" } });
    const infoPath = modelInfoPath(root, "m");
    const ran = await whileImmutable(t, infoPath, async () => {
      const outcome = await Promise.allSettled([store.writeModel({ modelId: "m", userData: { step: "2" } })]);
      assert.deepEqual(outcome.map(codeOf), ["EPERM"]);
      // A deletion checkpoints first: it must fail rather than reset the journal past the record.
      await assert.rejects(store.deleteModel("m"), (error: NodeJS.ErrnoException) => error.code === "EPERM");
      const crashedJournal = await fs.readFile(journalPathOf(root));
      const records = decodeRecords(crashedJournal, decodeHeader(crashedJournal) ?? -1).records;
      assert.deepEqual(
        records.map((entry) => Buffer.from(entry.content).toString("utf8")).at(-1),
        infoText("m", { step: "2" }),
        "the checkpoint did not reset the journal past the record",
      );
    });
    if (!ran) {
      return;
    }
    // Abandoned (kill -9); the next start restores the file from the record.
    const reopened = await openStore(root);
    assert.equal(await fs.readFile(infoPath, "utf8"), infoText("m", { step: "2" }));
    await reopened.close?.();
  });

  test("once the file can be written again, the next checkpoint puts it in place and then resets", async (t) => {
    const root = await makeRoot();
    const store = await openStore(root);
    await store.writeModel({ modelId: "m", userData: { step: "1" } });
    const infoPath = modelInfoPath(root, "m");
    const ran = await whileImmutable(t, infoPath, async () => {
      await assert.rejects(store.writeModel({ modelId: "m", userData: { step: "2" } }), (error: NodeJS.ErrnoException) => error.code === "EPERM");
    });
    if (!ran) {
      return;
    }
    await store.close?.();
    assert.equal(await fs.readFile(infoPath, "utf8"), infoText("m", { step: "2" }));
    const bytes = await fs.readFile(journalPathOf(root));
    assert.deepEqual(decodeRecords(bytes, decodeHeader(bytes) ?? -1).records, []);
    assert.equal(isCleanHeader(bytes.subarray(0, HEADER_BYTES)), true);
  });
});
