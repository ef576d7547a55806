import assert from "node:assert/strict";
import { createHash, randomFillSync } from "node:crypto";
import { describe, test } from "node:test";
import { createStreamingHash } from "../../src/registry/streaming-hash.js";
import { createHashLanes } from "../../src/worker-pool/index.js";

const MIB = 1024 * 1024;

function oneShot(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("base64");
}

/** `data` in shared memory, as the read path hands it over. */
function shared(data: Uint8Array): Uint8Array {
  const copy = new Uint8Array(new SharedArrayBuffer(data.byteLength));
  copy.set(data);
  return copy;
}

/** `data` cut at `cuts` (offsets), as consecutive views. */
function cut(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const end of [...cuts, data.byteLength]) {
    pieces.push(data.subarray(start, end));
    start = end;
  }
  return pieces;
}

async function streamed(lanes: ReturnType<typeof createHashLanes>, pieces: readonly Uint8Array[]): Promise<string> {
  const hash = createStreamingHash(lanes);
  for (const piece of pieces) {
    await hash.add(piece);
  }
  return hash.digest();
}

describe("hash lanes: node:crypto SHA-256 of streams on dedicated threads", () => {
  test("digests equal node:crypto's one-shot digest, whatever the pieces", async (t) => {
    const lanes = createHashLanes({ threads: 1 });
    t.after(() => lanes.close());
    const data = randomFillSync(new Uint8Array(9 * MIB + 5));
    const batch = 4 * MIB;
    const patterns: [string, Uint8Array, number[]][] = [
      ["empty", new Uint8Array(0), []],
      ["1 byte", data.subarray(0, 1), []],
      ["1-byte pieces", data.subarray(0, 100), Array.from({ length: 99 }, (_, i) => i + 1)],
      ["empty pieces among others", data.subarray(0, 10), [0, 0, 3, 3, 10]],
      ["one batch exactly", data.subarray(0, batch), []],
      ["one byte over a batch", data.subarray(0, batch + 1), [batch]],
      ["across batch boundaries", data, [1, batch - 1, batch, batch + 1, 2 * batch - 7, 2 * batch + 3]],
      ["1 MiB reply chunks", data, [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => n * MIB)],
    ];
    for (const [name, bytes, cuts] of patterns) {
      assert.equal(await streamed(lanes, cut(shared(bytes), cuts)), oneShot(bytes), `${name}, shared memory`);
      assert.equal(await streamed(lanes, cut(Uint8Array.from(bytes), cuts)), oneShot(bytes), `${name}, copied`);
    }
    assert.equal(await lanes.openOnThreads(), 0);
  });

  test("100 MiB in 1 MiB pieces of shared memory", async (t) => {
    const lanes = createHashLanes({ threads: 1 });
    t.after(() => lanes.close());
    const piece = randomFillSync(new Uint8Array(MIB));
    const whole = createHash("sha256");
    const hash = createStreamingHash(lanes);
    for (let i = 0; i < 100; i++) {
      piece[0] = i; // each piece differs: an order mistake changes the digest
      const view = shared(piece);
      whole.update(view);
      await hash.add(view);
    }
    assert.equal(await hash.digest(), whole.digest("base64"));
  });

  test("a Buffer slice of a larger buffer is hashed as the slice only", async (t) => {
    const lanes = createHashLanes({ threads: 1 });
    t.after(() => lanes.close());
    const backing = Buffer.from("0123456789abcdef");
    const hash = lanes.begin();
    await hash.update([backing.subarray(4, 8), backing.subarray(10, 12)]);
    assert.equal(await hash.digest(), oneShot(Buffer.from("4567ab")));
  });

  test("concurrent streams interleaved on one thread each get their own digest", async (t) => {
    const lanes = createHashLanes({ threads: 1 });
    t.after(() => lanes.close());
    const datas = Array.from({ length: 5 }, (_, i) => randomFillSync(new Uint8Array(3 * MIB + i * 1000)));
    const hashes = datas.map(() => lanes.begin());
    const updates: Promise<void>[] = [];
    for (let offset = 0; offset < 3 * MIB + 4000; offset += 256 * 1024) {
      datas.forEach((data, i) => {
        const piece = data.subarray(offset, offset + 256 * 1024);
        if (piece.byteLength > 0) {
          updates.push((hashes[i] ?? assert.fail()).update([shared(piece)]));
        }
      });
    }
    await Promise.all(updates);
    assert.equal(lanes.threads().length, 1);
    assert.equal(await lanes.openOnThreads(), 5);
    const digests = await Promise.all(hashes.map((hash) => hash.digest()));
    assert.deepEqual(digests, datas.map(oneShot));
    assert.equal(await lanes.openOnThreads(), 0);
  });

  test("streams spread over the lanes, the least busy first", async (t) => {
    const lanes = createHashLanes({ threads: 2 });
    t.after(() => lanes.close());
    const first = lanes.begin();
    const second = lanes.begin();
    await Promise.all([first.update([Buffer.from("a")]), second.update([Buffer.from("b")])]);
    assert.equal(lanes.threads().length, 2);
    assert.deepEqual(await Promise.all([first.digest(), second.digest()]), [oneShot(Buffer.from("a")), oneShot(Buffer.from("b"))]);
  });

  test("a stream given up half way releases its hash on the thread", async (t) => {
    const lanes = createHashLanes({ threads: 1 });
    t.after(() => lanes.close());
    const kept = lanes.begin();
    await kept.update([Buffer.from("kept")]);
    for (let i = 0; i < 50; i++) {
      const hash = createStreamingHash(lanes);
      await hash.add(shared(new Uint8Array(5 * MIB))); // past one batch: posted to the thread
      const pending = hash.add(new Uint8Array(10)); // still in the batch
      assert.equal(pending, undefined);
      hash.abandon();
      hash.abandon(); // twice: nothing more
    }
    // Given up with an update still unanswered: its reply still comes, the hash is still released.
    const midway = lanes.begin();
    const unanswered = midway.update([shared(new Uint8Array(8 * MIB))]);
    midway.abandon();
    await unanswered;
    await assert.rejects(midway.update([Buffer.from("x")]), { message: "update after the hash ended" });
    assert.equal(await lanes.openOnThreads(), 1, "only the stream not given up");
    assert.equal(await kept.digest(), oneShot(Buffer.from("kept")));
    kept.abandon(); // after digest(): nothing
    assert.equal(await lanes.openOnThreads(), 0);
  });

  test("a hash thread that dies fails its streams with a clear error and is replaced", async (t) => {
    const lanes = createHashLanes({ threads: 1 });
    t.after(() => lanes.close());
    const victim = createStreamingHash(lanes);
    await victim.add(shared(new Uint8Array(4 * MIB)));
    const [thread] = lanes.threads();
    assert.ok(thread !== undefined);
    const code = await thread.terminate();
    const expected = { message: `the hash thread stopped (exit code ${code})` };
    await assert.rejects(victim.digest(), expected);
    const afterDeath = createStreamingHash(lanes);
    afterDeath.add(new Uint8Array(1));
    assert.equal(await afterDeath.digest(), oneShot(new Uint8Array(1)), "a new thread serves the next stream");
    assert.equal(lanes.threads().length, 1);
    assert.notEqual(lanes.threads()[0], thread);
  });

  test("an update in flight when the thread dies fails, and add() passes the failure on", async (t) => {
    const lanes = createHashLanes({ threads: 1 });
    t.after(() => lanes.close());
    const hash = lanes.begin();
    const inFlight = hash.update([shared(new Uint8Array(64 * MIB))]);
    const [thread] = lanes.threads();
    assert.ok(thread !== undefined);
    const failed = assert.rejects(inFlight, { message: /^the hash thread stopped \(exit code \d+\)$/ });
    const code = await thread.terminate();
    await failed;
    await assert.rejects(inFlight, { message: `the hash thread stopped (exit code ${code})` });
    await assert.rejects(hash.digest(), { message: `the hash thread stopped (exit code ${code})` });
  });

  test("close() stops the threads and fails what is still hashing; begin() then throws", async () => {
    const lanes = createHashLanes({ threads: 2 });
    lanes.start();
    assert.equal(lanes.threads().length, 1, "start(): the first lane only");
    const hash = lanes.begin();
    const threads = lanes.threads();
    const exits = threads.map((thread) => new Promise((resolve) => thread.once("exit", resolve)));
    const failed = assert.rejects(hash.update([shared(new Uint8Array(64 * MIB))]), { message: "the hash threads are closed" });
    await lanes.close();
    await Promise.all(exits);
    assert.equal(lanes.threads().length, 0);
    await failed;
    assert.throws(() => lanes.begin(), { message: "the hash threads are closed" });
    lanes.start(); // does nothing once closed
    assert.equal(lanes.threads().length, 0);
  });
});
