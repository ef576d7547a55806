import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type TestContext, describe, test } from "node:test";
import { writeFilesAtomic } from "../../src/archive/atomic-write.js";
import { type BatchWriter, type GroupedFile, createGroupCommit } from "../../src/archive/group-commit.js";

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-group-commit-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The real batch writer, with a gate in front of each batch to hold it "in flight", and a log of what each batch carried. */
function gatedWriter(): { writer: BatchWriter; batches: string[][]; release(): void; waiting(): number } {
  const batches: string[][] = [];
  const gates: (() => void)[] = [];
  const writer: BatchWriter = async (files: readonly GroupedFile[]) => {
    batches.push(files.map((file) => `${path.basename(file.path)}=${typeof file.content === "string" ? file.content : "<bytes>"}`));
    await new Promise<void>((resolve) => gates.push(resolve));
    return writeFilesAtomic(files);
  };
  return {
    writer,
    batches,
    release: () => gates.shift()?.(),
    waiting: () => gates.length,
  };
}

/** Turns of the event loop until `condition` holds (a batch starts on the next turn). */
async function until(condition: () => boolean): Promise<void> {
  for (let turn = 0; turn < 1000 && !condition(); turn++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(condition(), "condition never held");
}

describe("writeFilesAtomic", () => {
  test("writes distinct files, several in one directory, and leaves no temporary file", async (t) => {
    const dir = await tempDir(t);
    await mkdir(path.join(dir, "a"));
    await mkdir(path.join(dir, "b"));
    const outcomes = await writeFilesAtomic([
      { path: path.join(dir, "a", "model.yaml"), content: "a\n" },
      { path: path.join(dir, "a", ".meta"), content: [Buffer.from("x"), Buffer.from("y")] },
      { path: path.join(dir, "b", "model.yaml"), content: "b\n" },
    ]);
    assert.deepEqual(outcomes, [undefined, undefined, undefined]);
    assert.equal(await readFile(path.join(dir, "a", "model.yaml"), "utf8"), "a\n");
    assert.equal(await readFile(path.join(dir, "a", ".meta"), "utf8"), "xy");
    assert.equal(await readFile(path.join(dir, "b", "model.yaml"), "utf8"), "b\n");
    assert.deepEqual((await readdir(path.join(dir, "a"))).sort(), [".meta", "model.yaml"]);
    assert.deepEqual(await readdir(path.join(dir, "b")), ["model.yaml"]);
  });

  test("a file that cannot be written fails alone, with its errno code; the others are written", async (t) => {
    const dir = await tempDir(t);
    const outcomes = await writeFilesAtomic([
      { path: path.join(dir, "first"), content: "1" },
      { path: path.join(dir, "missing", "file"), content: "2" },
      { path: path.join(dir, "third"), content: "3" },
    ]);
    assert.equal(outcomes[0], undefined);
    assert.equal((outcomes[1] as NodeJS.ErrnoException | undefined)?.code, "ENOENT");
    assert.equal(outcomes[2], undefined);
    assert.deepEqual((await readdir(dir)).sort(), ["first", "third"]);
  });
});

describe("group commit of small files", () => {
  test("calls made while a batch is in flight go together in the next one; the latest content of a file wins", async (t) => {
    const dir = await tempDir(t);
    const gate = gatedWriter();
    const group = createGroupCommit(gate.writer);
    const a = path.join(dir, "a");
    const b = path.join(dir, "b");
    const answered: string[] = [];
    const call = (file: string, content: string): Promise<void> =>
      group.write(file, content).then(async () => {
        // Answered only once the file holds this content or a later one: never an earlier one.
        answered.push(`${path.basename(file)}=${content} on disk ${await readFile(file, "utf8")}`);
      });

    const first = call(a, "1");
    await until(() => gate.waiting() === 1);
    const queued = [call(a, "2"), call(b, "1"), call(a, "3")];
    gate.release();
    await first;
    assert.deepEqual(answered, ["a=1 on disk 1"]);
    await until(() => gate.waiting() === 1);
    assert.deepEqual(gate.batches, [["a=1"], ["a=3", "b=1"]]);
    // Nobody of the second batch is answered before it is written.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(answered.length, 1);
    gate.release();
    await Promise.all(queued);
    assert.deepEqual(answered.slice(1).sort(), ["a=2 on disk 3", "a=3 on disk 3", "b=1 on disk 1"]);
    assert.equal(await readFile(a, "utf8"), "3");
    assert.deepEqual(group.stats(), { batches: 2, files: 3, calls: 4 });
  });

  test("an earlier content never overwrites a later one, whatever the interleaving", async (t) => {
    const dir = await tempDir(t);
    const group = createGroupCommit(writeFilesAtomic);
    const file = path.join(dir, "model.yaml");
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      writes.push(group.write(file, String(i)));
      if (i % 7 === 0) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await Promise.all(writes);
    assert.equal(await readFile(file, "utf8"), "49");
    assert.ok(group.stats().batches < 50, `${group.stats().batches} batches for 50 calls`);
    assert.deepEqual(await readdir(dir), ["model.yaml"]);
  });

  test("a file's failure reaches only its own callers, all of them", async (t) => {
    const dir = await tempDir(t);
    const gate = gatedWriter();
    const group = createGroupCommit(gate.writer);
    const good = path.join(dir, "good");
    const bad = path.join(dir, "missing", "bad");
    const warmUp = group.write(good, "0");
    await until(() => gate.waiting() === 1);
    const calls = [group.write(bad, "1"), group.write(good, "1"), group.write(bad, "2")];
    gate.release();
    await warmUp;
    await until(() => gate.waiting() === 1);
    gate.release();
    const outcomes = await Promise.allSettled(calls);
    assert.deepEqual(
      outcomes.map((outcome) => (outcome.status === "fulfilled" ? "ok" : (outcome.reason as NodeJS.ErrnoException).code)),
      ["ENOENT", "ok", "ENOENT"],
    );
    assert.equal(await readFile(good, "utf8"), "1");
  });

  test("a batch that fails as a whole fails its callers only; the next batch is written", async (t) => {
    const dir = await tempDir(t);
    let failNext = true;
    const group = createGroupCommit(async (files) => {
      if (failNext) {
        failNext = false;
        throw Object.assign(new Error("the writer is gone"), { code: "EIO" });
      }
      return writeFilesAtomic(files);
    });
    const file = path.join(dir, "f");
    const failed = group.write(file, "1");
    const later = group.write(path.join(dir, "g"), "2");
    await assert.rejects(failed, { message: "the writer is gone", code: "EIO" });
    await assert.rejects(later, { message: "the writer is gone", code: "EIO" }, "same batch: same outcome");
    await group.write(file, "3");
    assert.equal(await readFile(file, "utf8"), "3");
    assert.deepEqual(group.stats(), { batches: 2, files: 3, calls: 3 });
  });

  test("a writer that reports the wrong number of outcomes fails the batch instead of answering wrongly", async (t) => {
    const dir = await tempDir(t);
    const group = createGroupCommit(async () => [undefined]);
    const calls = [group.write(path.join(dir, "x"), "1"), group.write(path.join(dir, "y"), "2")];
    for (const call of calls) {
      await assert.rejects(call, { message: "a batch of 2 files reported 1 outcomes" });
    }
  });
});
