import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { ChunkBufferPool } from "../../src/redis/chunk-buffer-pool.js";

describe("ChunkBufferPool", () => {
  test("take() allocates a buffer of the chunk size when none is kept, and gives back a kept one otherwise", () => {
    const pool = new ChunkBufferPool(1024, 2);
    const first = pool.take();
    const second = pool.take();
    assert.equal(first.byteLength, 1024);
    assert.notEqual(first, second);
    assert.deepEqual(pool.stats, { allocated: 2, kept: 0 });
    pool.give(first);
    assert.deepEqual(pool.stats, { allocated: 2, kept: 1 });
    assert.equal(pool.take(), first);
    assert.deepEqual(pool.stats, { allocated: 2, kept: 0 });
    pool.clear();
  });

  test("give() keeps only buffers of the chunk size, at most maxKept, each once", () => {
    const pool = new ChunkBufferPool(1024, 2);
    const [a, b, c] = [pool.take(), pool.take(), pool.take()];
    pool.give(Buffer.alloc(512));
    pool.give(a);
    pool.give(a);
    assert.deepEqual(pool.stats, { allocated: 3, kept: 1 });
    pool.give(b);
    pool.give(c);
    assert.deepEqual(pool.stats, { allocated: 3, kept: 2 });
    assert.equal(pool.take(), b);
    assert.equal(pool.take(), a);
    assert.notEqual(pool.take(), c, "c was not kept: a new buffer");
    assert.deepEqual(pool.stats, { allocated: 4, kept: 0 });
    pool.clear();
  });

  test("kept buffers are dropped after idleMs without a give(), and by clear()", async () => {
    const pool = new ChunkBufferPool(1024, 4, 50);
    pool.give(pool.take());
    assert.equal(pool.stats.kept, 1);
    for (const deadline = Date.now() + 10_000; pool.stats.kept > 0 && Date.now() < deadline; ) {
      await sleep(10);
    }
    assert.deepEqual(pool.stats, { allocated: 1, kept: 0 });
    pool.give(pool.take());
    pool.clear();
    assert.deepEqual(pool.stats, { allocated: 2, kept: 0 });
  });

  test("refuses a size or a bound that is not a positive / non-negative integer", () => {
    assert.throws(() => new ChunkBufferPool(0, 1), { name: "RangeError", message: "bufferBytes must be a positive integer, not 0" });
    assert.throws(() => new ChunkBufferPool(1024, -1), { name: "RangeError", message: "maxKept must be a non-negative integer, not -1" });
  });
});
