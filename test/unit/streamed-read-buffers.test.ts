import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { StreamedReadBuffers } from "../../src/registry/streamed-read-buffers.js";

/** Whether `promise` has settled after the microtasks queued so far have run. */
async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("StreamedReadBuffers: the bound on chunks of reads without a cache entry", () => {
  test("takes at once while the bound has room, then makes streams wait until chunks are sent", async () => {
    const buffers = new StreamedReadBuffers(10);
    const a = buffers.open();
    const b = buffers.open();
    await a.take(4);
    await b.take(4);
    assert.equal(buffers.heldBytes, 8);
    const third = a.take(4);
    assert.equal(await settled(third), false, "8 + 4 > 10: waits");
    assert.equal(buffers.waitingCount, 1);
    b.sent(4);
    assert.equal(await settled(third), true, "room again once b's chunk was sent");
    assert.deepEqual([buffers.heldBytes, buffers.waitingCount], [8, 0]);
  });

  test("serves waiting streams in arrival order: a small chunk does not pass a large one", async () => {
    const buffers = new StreamedReadBuffers(10);
    const holder = buffers.open();
    await holder.take(9);
    const large = buffers.open().take(8);
    const small = buffers.open().take(1);
    assert.deepEqual([await settled(large), await settled(small)], [false, false], "1 byte is free, but the 8-byte chunk came first");
    holder.sent(9);
    assert.deepEqual([await settled(large), await settled(small)], [true, true]);
    assert.equal(buffers.heldBytes, 9);
  });

  test("a chunk larger than the whole bound is taken alone", async () => {
    const buffers = new StreamedReadBuffers(10);
    const first = buffers.open();
    await first.take(25);
    assert.equal(buffers.heldBytes, 25);
    const next = buffers.open().take(1);
    assert.equal(await settled(next), false);
    first.sent(25);
    assert.equal(await settled(next), true);
    assert.equal(buffers.heldBytes, 1);
  });

  test("close() gives back what a stream still holds, and never more than it took", async () => {
    const buffers = new StreamedReadBuffers(10);
    const other = buffers.open();
    await other.take(3);
    const stream = buffers.open();
    await stream.take(4);
    await stream.take(3);
    stream.sent(4);
    stream.sent(4); // a stray extra confirmation gives back only what this stream holds
    assert.equal(buffers.heldBytes, 3);
    await stream.take(5);
    stream.close();
    stream.sent(5);
    assert.equal(buffers.heldBytes, 3, "only the other stream's chunk is left");
  });

  test("a stream closed while it waits gives its room back as soon as it is granted", async () => {
    const buffers = new StreamedReadBuffers(10);
    const holder = buffers.open();
    await holder.take(10);
    const gone = buffers.open();
    const waiting = gone.take(6);
    gone.close();
    const after = buffers.open().take(6);
    holder.sent(10);
    assert.equal(await settled(waiting), true);
    assert.equal(await settled(after), true, "the closed stream's 6 bytes were given back");
    assert.equal(buffers.heldBytes, 6);
  });

  test("refuses a bound that is not a positive integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new StreamedReadBuffers(bad), { name: "RangeError", message: `maxBytes must be a positive integer, got ${bad}` });
    }
  });
});
