import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { createLogger } from "../../src/logger.js";
import { createMemoryGuard } from "../../src/memory-guard.js";

const MiB = 1024 * 1024;

test("every 4 MiB of received data collects the young generation, which frees dead buffers outside the heap", async () => {
  const guard = createMemoryGuard(Number.MAX_SAFE_INTEGER, createLogger("silent"));
  guard.dataReceived(3 * MiB);
  assert.equal(guard.youngCollections, 0);
  guard.dataReceived(1 * MiB);
  assert.equal(guard.youngCollections, 1);
  guard.dataReceived(4 * MiB - 1);
  assert.equal(guard.youngCollections, 1);

  // Dead 1 MiB buffers, as grpc-js leaves behind for every message it reassembles: fewer than the
  // 64 MiB of outside-heap growth that makes V8 start a collection by itself.
  let sink = 0;
  for (let i = 0; i < 32; i++) {
    const buffer = Buffer.allocUnsafe(MiB);
    buffer[0] = i;
    sink += buffer[0];
  }
  assert.ok(sink > 0);
  await sleep(50);
  const before = process.memoryUsage().arrayBuffers;
  assert.ok(before >= 32 * MiB, `V8 left the ${Math.round(before / MiB)} MiB of dead buffers alone`);
  guard.dataReceived(1);
  assert.equal(guard.youngCollections, 2);
  await sleep(50); // array buffer memory may be swept just after the collection
  const freed = before - process.memoryUsage().arrayBuffers;
  assert.ok(freed >= 24 * MiB, `the young collection freed ${Math.round(freed / MiB)} MiB of dead buffers`);
  assert.equal(guard.collections, 0, "no major collection under the limit");
});
