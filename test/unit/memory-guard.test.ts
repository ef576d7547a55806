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

/** A guard with a fake resident set, event loop and collector: its decisions, without V8's timing. */
function fakeGuard(limitBytes: number, startResident: number) {
  const calls: string[] = [];
  const state = { resident: startResident, busy: 0, afterCollect: startResident, held: 0 };
  const guard = createMemoryGuard(limitBytes, createLogger("silent"), {
    idleCheckMs: 0,
    residentBytes: () => state.resident,
    busyShare: () => state.busy,
    heldBytes: () => state.held,
    collect: (options) => {
      calls.push(options === undefined ? "major" : `${options.type}${options.flavor === undefined ? "" : ` ${options.flavor}`}`);
      state.resident = state.afterCollect;
    },
  });
  return { guard, calls, state };
}

test("an idle process whose resident set grew past its level at rest gets one memory-reducing collection", () => {
  const { guard, calls, state } = fakeGuard(Number.MAX_SAFE_INTEGER, 120 * MiB);
  assert.equal(guard.checkIdle(), false, "nothing grew");
  state.resident = 400 * MiB;
  state.busy = 0.5;
  assert.equal(guard.checkIdle(), false, "busy: not now");
  state.busy = 0.01;
  state.afterCollect = 130 * MiB;
  assert.equal(guard.checkIdle(), true);
  assert.deepEqual(calls, ["major last-resort"]);
  assert.equal(guard.idleCollections, 1);
  // 130 MiB is the new level at rest: growing by less than 32 MiB does not collect again.
  state.resident = 160 * MiB;
  state.afterCollect = 160 * MiB;
  assert.equal(guard.checkIdle(), false);
  // Nor does a growth that the collection cannot give back (a full cache) repeat it at every check.
  state.resident = 300 * MiB;
  state.afterCollect = 290 * MiB;
  assert.equal(guard.checkIdle(), true);
  assert.equal(guard.checkIdle(), false);
  assert.equal(guard.idleCollections, 2);
  assert.equal(guard.collections, 0);
  guard.close();
});

test("the idle check leaves out what the cache holds: a filling cache is not a burst, its evicted bytes are", () => {
  const { guard, calls, state } = fakeGuard(Number.MAX_SAFE_INTEGER, 120 * MiB);
  // The cache takes 300 MiB of versions: the resident set grows with it, nothing to give back.
  state.resident = 420 * MiB;
  state.held = 300 * MiB;
  assert.equal(guard.checkIdle(), false);
  // It evicts 200 MiB: their memory stays resident until collected, and that is a burst to give back.
  state.held = 100 * MiB;
  state.afterCollect = 225 * MiB;
  assert.equal(guard.checkIdle(), true);
  assert.deepEqual(calls, ["major last-resort"]);
  // The level at rest is now 125 MiB besides the cache: 25 MiB more is not worth another collection.
  state.resident = 250 * MiB;
  assert.equal(guard.checkIdle(), false);
  assert.equal(guard.idleCollections, 1);
  guard.close();
});

test("a small growth of a large process is not worth a collection (20 % and 32 MiB, both)", () => {
  const { guard, state } = fakeGuard(Number.MAX_SAFE_INTEGER, 1024 * MiB);
  state.resident = 1024 * MiB + 64 * MiB;
  assert.equal(guard.checkIdle(), false, "64 MiB over 1 GiB is under 20 %");
  state.resident = 1300 * MiB;
  assert.equal(guard.checkIdle(), true);
  guard.close();
});

test("over the limit, a major collection that cannot bring the resident set under it is not repeated until it grew 32 MiB more", async () => {
  const { guard, calls, state } = fakeGuard(100 * MiB, 90 * MiB);
  guard.beforeAllocate();
  assert.equal(guard.collections, 0, "under the limit");
  state.resident = 130 * MiB;
  state.afterCollect = 125 * MiB; // the runtime alone is over this small a limit
  guard.beforeAllocate();
  assert.equal(guard.collections, 1);
  await sleep(300); // past the minimum interval
  state.resident = 150 * MiB;
  guard.beforeAllocate();
  assert.equal(guard.collections, 1, "150 MiB: under the 125 MiB floor + 32 MiB");
  state.resident = 160 * MiB;
  state.afterCollect = 60 * MiB; // this time the collection frees enough
  guard.beforeAllocate();
  assert.equal(guard.collections, 2);
  await sleep(300);
  state.resident = 101 * MiB;
  guard.beforeAllocate();
  assert.equal(guard.collections, 3, "back under the limit after a useful collection: the limit applies again");
  assert.deepEqual(calls, ["major", "major", "major"]);
  guard.close();
});

test("the idle check gives back the pages of a fragmented heap (V8's last-resort collection)", () => {
  let resident = 100 * MiB; // at rest when created, then grown: the check must collect (with V8's real gc)
  const guard = createMemoryGuard(Number.MAX_SAFE_INTEGER, createLogger("silent"), {
    idleCheckMs: 0,
    busyShare: () => 0,
    residentBytes: () => resident,
  });
  resident = 1024 * MiB;
  // Many objects, a few of them kept: after a regular collection most pages hold a survivor.
  const kept: object[] = [];
  for (let round = 0; round < 60; round++) {
    for (let i = 0; i < 20_000; i++) {
      const item = { round, i, text: `item ${i}` };
      if (i % 50 === 0) kept.push(item);
    }
  }
  const before = process.memoryUsage().heapTotal;
  assert.equal(guard.checkIdle(), true);
  const after = process.memoryUsage().heapTotal;
  assert.ok(after < before / 2, `heap ${Math.round(before / MiB)} -> ${Math.round(after / MiB)} MiB`);
  assert.equal(guard.idleCollections, 1);
  assert.ok(kept.length === 24_000);
  guard.close();
});

test("the idle check runs on its timer until closed", async () => {
  const { guard, state } = fakeGuard(Number.MAX_SAFE_INTEGER, 100 * MiB);
  guard.close(); // the fake guard has no timer: make one that runs every 20 ms
  let collected = 0;
  const timed = createMemoryGuard(Number.MAX_SAFE_INTEGER, createLogger("silent"), {
    idleCheckMs: 20,
    residentBytes: () => state.resident,
    busyShare: () => 0,
    collect: () => {
      collected++;
      state.resident = 100 * MiB; // given back: the level at rest again
    },
  });
  state.resident = 300 * MiB;
  for (const deadline = Date.now() + 30_000; collected === 0 && Date.now() < deadline; ) {
    await sleep(10); // the timer's first ticks (late on a loaded machine)
  }
  await sleep(150); // more ticks, at rest
  assert.equal(collected, 1, "collected once, then at rest");
  assert.equal(timed.idleCollections, 1);
  timed.close();
  state.resident = 300 * MiB;
  await sleep(100);
  assert.equal(collected, 1, "no check after close()");
});

test("far from the limit (64 MiB or more under it), a reading stands 100 ms; closer, 10 ms", () => {
  let clock = 1_000;
  let resident = 100 * MiB;
  const guard = createMemoryGuard(200 * MiB, createLogger("silent"), {
    idleCheckMs: 0,
    now: () => clock,
    residentBytes: () => resident,
    busyShare: () => 0,
    collect: () => {},
  });
  guard.beforeAllocate(2048);
  assert.equal(guard.residentReads, 1);
  clock += 99;
  guard.beforeAllocate(2048);
  assert.equal(guard.residentReads, 1, "100 MiB under the limit, 99 ms old: stands");
  clock += 1;
  guard.beforeAllocate(2048);
  assert.equal(guard.residentReads, 2, "100 ms old: read again");
  guard.beforeAllocate(1024 * 1024 - 4096);
  assert.equal(guard.residentReads, 2, "1 MiB since the reading: stands");
  guard.beforeAllocate(4096);
  assert.equal(guard.residentReads, 3, "over 1 MiB since the reading: read again, far or not");

  resident = 137 * MiB; // 63 MiB under the limit: no longer far
  clock += 100;
  guard.beforeAllocate(1);
  assert.equal(guard.residentReads, 4, "the new reading: 137 MiB");
  clock += 9;
  guard.beforeAllocate(1);
  assert.equal(guard.residentReads, 4, "9 ms old: stands");
  clock += 1;
  guard.beforeAllocate(1);
  assert.equal(guard.residentReads, 5, "less than 64 MiB under the limit, 10 ms old: read again");
  guard.close();
});

test("an allocation of known size relies on a reading under 10 ms old while it and those since cannot cross the limit", () => {
  let clock = 1_000;
  let reads = 0;
  let resident = 90 * MiB;
  const collected: string[] = [];
  const guard = createMemoryGuard(100 * MiB, createLogger("silent"), {
    idleCheckMs: 0,
    now: () => clock,
    residentBytes: () => {
      reads++;
      return resident;
    },
    busyShare: () => 0,
    collect: () => {
      collected.push("major");
      resident = 50 * MiB;
    },
  });
  const created = reads; // the level at rest, read at creation
  guard.beforeAllocate(2048);
  assert.equal(reads - created, 1, "no reading yet: read");
  for (let i = 0; i < 100; i++) {
    guard.beforeAllocate(2048);
  }
  assert.equal(reads - created, 1, "100 allocations of 2 KiB within the same ms: the reading stands");
  assert.equal(guard.residentReads, 1);

  clock += 9;
  guard.beforeAllocate(2048);
  assert.equal(guard.residentReads, 1, "9 ms old: still stands");
  clock += 1;
  guard.beforeAllocate(2048);
  assert.equal(guard.residentReads, 2, "10 ms old: read again");

  guard.beforeAllocate(1024 * 1024 - 2048);
  assert.equal(guard.residentReads, 2, "1 MiB since the reading (the 2 KiB allocated right after it included): stands");
  guard.beforeAllocate(1);
  assert.equal(guard.residentReads, 3, "over 1 MiB since the reading: read again");

  // Near the limit: an allocation that could take the last reading over it reads again.
  resident = 99.5 * MiB;
  guard.beforeAllocate(1);
  assert.equal(guard.residentReads, 3, "the 90 MiB reading is fresh and far from the limit");
  clock += 10;
  guard.beforeAllocate(1);
  assert.equal(guard.residentReads, 4, "the new reading: 99.5 MiB");
  guard.beforeAllocate(256 * 1024);
  assert.equal(guard.residentReads, 4, "99.5 MiB + 256 KiB is under the 100 MiB limit");
  resident = 101 * MiB;
  guard.beforeAllocate(256 * 1024);
  assert.equal(guard.residentReads, 5, "99.5 MiB + 512 KiB could be over the limit: read, not assumed");
  assert.deepEqual(collected, ["major"], "and it is over: collected, as without the sampling");
  assert.equal(guard.collections, 1);
  assert.equal(guard.residentReads, 5, "the level after the collection is read apart");

  // A size not given (the archived read path): always read.
  clock += 300;
  const before = guard.residentReads;
  guard.beforeAllocate();
  guard.beforeAllocate();
  assert.equal(guard.residentReads, before + 2);
  guard.close();
});

test("a size-less allocation over the limit collects at once, as before the sampling", () => {
  let resident = 90 * MiB;
  let clock = 0;
  const guard = createMemoryGuard(100 * MiB, createLogger("silent"), {
    idleCheckMs: 0,
    now: () => clock,
    residentBytes: () => resident,
    busyShare: () => 0,
    collect: () => {
      resident = 60 * MiB;
    },
  });
  guard.beforeAllocate(4096); // a reading of 90 MiB, now relied upon by allocations of known size
  resident = 200 * MiB; // grown by something else than version data
  clock += 1;
  guard.beforeAllocate();
  assert.equal(guard.collections, 1, "not fooled by the recent reading");
  guard.close();
});
