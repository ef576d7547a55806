import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { inlineFileWriter } from "../../src/archive/atomic-write.js";
import { createFsArchiveStore } from "../../src/archive/fs-archive-store.js";
import type { ArchiveStore } from "../../src/archive/archive-store.js";
import { HEADER_BYTES, RECORDS_START, decodeHeader, decodeRecords, encodeHeader, encodeRecord } from "../../src/archive/journal-codec.js";
import { modelInfoPath } from "../../src/archive/layout.js";
import { DEFAULT_JOURNAL_BYTES, JOURNAL_FILE_NAME } from "../../src/archive/model-journal.js";
import { encodeModelInfo } from "../../src/archive/yaml-codec.js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";

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
    try {
      execFileSync("chattr", ["+i", journalPath], { stdio: "ignore" });
    } catch {
      t.skip("chattr +i is not available here (needs root on ext4)");
      return;
    }
    try {
      const outcomes = await Promise.allSettled([store.writeModel({ modelId: "m", userData: { step: "2" } }), store.writeModel({ modelId: "new", userData: {} })]);
      assert.deepEqual(
        outcomes.map((outcome) => (outcome.status === "rejected" ? (outcome.reason as NodeJS.ErrnoException).code : "fulfilled")),
        ["EPERM", "EPERM"],
      );
      assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "1" }));
      assert.deepEqual((await fs.readdir(path.join(root, "new"))).filter((name) => name !== ".cogment-ts-journal"), [], "no temporary file left");
    } finally {
      execFileSync("chattr", ["-i", journalPath], { stdio: "ignore" });
    }
    await store.writeModel({ modelId: "m", userData: { step: "3" } });
    await loseWrite(root, "m", infoText("m", { step: "1" }));
    const reopened = await openStore(root);
    assert.equal(await fs.readFile(modelInfoPath(root, "m"), "utf8"), infoText("m", { step: "3" }));
    assert.deepEqual(await reopened.listModelIds(), ["m"], "the failed model info was never written");
    await reopened.close?.();
  });
});
