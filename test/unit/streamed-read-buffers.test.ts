import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { StreamedReadBuffers, StreamedReadClosed } from "../../src/registry/streamed-read-buffers.js";

/** Whether `promise` has settled (either way) once the tasks queued so far have run. */
async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("StreamedReadBuffers: the bound on chunks of reads without a cache entry", () => {
  test("streams take room while the bound has some, then wait until chunks are sent", async () => {
    const buffers = new StreamedReadBuffers(12);
    const streams = Array.from({ length: 5 }, () => buffers.open());
    for (const stream of streams.slice(0, 4)) {
      await stream.take(3);
    }
    assert.equal(buffers.heldBytes, 12);
    const fifth = (streams[4] as (typeof streams)[number]).take(3);
    assert.equal(await settled(fifth), false, "12 + 3 > 12: waits");
    assert.equal(buffers.waitingCount, 1);
    streams[1]?.sent(3);
    assert.equal(await settled(fifth), true, "room again once a chunk was sent");
    assert.deepEqual([buffers.heldBytes, buffers.waitingCount], [12, 0]);
  });

  test("one stream holds at most a quarter of the bound (always one chunk): the others pass it", async () => {
    const buffers = new StreamedReadBuffers(12);
    const greedy = buffers.open();
    await greedy.take(3);
    const second = greedy.take(3);
    assert.equal(await settled(second), false, "3 + 3 is over its share of 3");
    const other = buffers.open().take(3);
    assert.equal(await settled(other), true, "another stream is not held up behind it");
    const big = buffers.open().take(5);
    assert.equal(await settled(big), true, "a chunk over the share is taken by a stream that holds nothing");
    greedy.sent(3);
    assert.equal(await settled(second), true);
    assert.equal(buffers.heldBytes, 11);
  });

  test("room of the bound goes in arrival order: a small chunk does not pass a large one", async () => {
    const buffers = new StreamedReadBuffers(8);
    const holders = Array.from({ length: 3 }, () => buffers.open());
    for (const holder of holders) {
      await holder.take(2);
    }
    const large = buffers.open().take(4);
    const small = buffers.open().take(1);
    assert.deepEqual([await settled(large), await settled(small)], [false, false], "2 bytes are free, the 4-byte chunk came first");
    holders[0]?.sent(2);
    assert.deepEqual([await settled(large), await settled(small)], [true, false]);
    assert.equal(buffers.heldBytes, 8);
  });

  test("a chunk larger than the whole bound is taken alone", async () => {
    const buffers = new StreamedReadBuffers(10);
    const first = buffers.open();
    await first.take(25);
    const next = buffers.open().take(1);
    assert.equal(await settled(next), false);
    first.sent(25);
    assert.equal(await settled(next), true);
    assert.equal(buffers.heldBytes, 1);
  });

  test("close() gives back what a stream holds, never more than it took, and is safe twice", async () => {
    const buffers = new StreamedReadBuffers(40);
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
    stream.close();
    stream.sent(5);
    assert.equal(buffers.heldBytes, 3, "only the other stream's chunk is left");
  });

  test("a stream closed while it waits stops waiting (StreamedReadClosed), gives its room back and lets the next in", async () => {
    const buffers = new StreamedReadBuffers(8);
    const holder = buffers.open();
    await holder.take(2);
    const parked = holder.take(2); // over its share of 2: waits for its own chunk to be sent, which never comes
    const others = [buffers.open(), buffers.open(), buffers.open()];
    for (const other of others.slice(0, 2)) {
      await other.take(2);
    }
    const last = (others[2] as (typeof others)[number]).take(4);
    assert.deepEqual([buffers.heldBytes, buffers.waitingCount], [6, 2]);
    holder.close();
    await assert.rejects(parked, StreamedReadClosed);
    assert.equal(await settled(last), true, "the closed stream's 2 bytes let the 4-byte chunk in");
    assert.deepEqual([buffers.heldBytes, buffers.waitingCount], [8, 0]);
    await assert.rejects(holder.take(1), { name: "StreamedReadClosed", message: "the read was given up while it waited for room (STREAMED_READS_MAX_SIZE)" });
  });

  test("refuses a bound that is not a positive integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new StreamedReadBuffers(bad), { name: "RangeError", message: `maxBytes must be a positive integer, got ${bad}` });
    }
  });
});
