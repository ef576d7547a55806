import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

import { Code, RegistryError } from "../../src/errors/index.js";
import { VersionCache } from "../../src/registry/version-cache.js";
import type {
  EvictionReason,
  Lease,
  Reservation,
  VersionCacheOptions,
  VersionCacheStats,
} from "../../src/registry/version-cache.js";

const BUDGET = "the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE)";

interface Harness {
  cache: VersionCache<string>;
  events: string[];
  clock: { t: number };
}

/** A cache with a fake clock, no sweep timer, and onEvict recorded as "model:version:reason". */
function harness(options: Partial<VersionCacheOptions> & { maxBytes: number }): Harness {
  const events: string[] = [];
  const clock = { t: 0 };
  const cache = new VersionCache<string>({
    expirationMs: 0,
    pruneCount: 1,
    sweepIntervalMs: 0,
    now: () => clock.t,
    onEvict: (modelId, versionNumber, reason) => {
      events.push(`${modelId}:${versionNumber}:${reason}`);
    },
    ...options,
  });
  return { cache, events, clock };
}

function put(cache: VersionCache<string>, modelId: string, version: number, bytes: number, pinned = false): void {
  cache.insert(cache.reserve(bytes), modelId, version, `${modelId}@${version}`, { pinned });
}

function stats(
  overrides: Partial<Omit<VersionCacheStats, "evictions">> & { size?: number; expired?: number },
  maxBytes: number,
): VersionCacheStats {
  const entryBytes = overrides.entryBytes ?? 0;
  const reservedBytes = overrides.reservedBytes ?? 0;
  const drainingBytes = overrides.drainingBytes ?? 0;
  const spareBytes = overrides.spareBytes ?? 0;
  return {
    maxBytes,
    usedBytes: entryBytes + reservedBytes + drainingBytes + spareBytes,
    entryBytes,
    reservedBytes,
    drainingBytes,
    spareBytes,
    spares: overrides.spares ?? 0,
    reuses: overrides.reuses ?? 0,
    entries: overrides.entries ?? 0,
    pinnedEntries: overrides.pinnedEntries ?? 0,
    evictions: { size: overrides.size ?? 0, expired: overrides.expired ?? 0 },
  };
}

function exhausted(message: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${String(err)}`);
    assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
    assert.equal(err.message, message);
    return true;
  };
}

function cannotReserve(bytes: number, max: number, used: number, evictable: number, r: number, d: number, l: number) {
  return exhausted(
    `cannot reserve ${bytes} bytes: ${BUDGET} is ${max} bytes and ${used} are used, of which only ${evictable} can be evicted ` +
      `(${r} reserved, ${d} draining, ${l} in entries being read)`,
  );
}

describe("VersionCache LRU eviction", () => {
  test("prune count 1 evicts one least recently used entry at a time, until the request fits", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    for (let v = 1; v <= 4; v += 1) put(cache, "a", v, 25);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, entries: 4 }, 100));

    const r1 = cache.reserve(10);
    assert.deepEqual(events, ["a:1:size"]);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 75, reservedBytes: 10, entries: 3, size: 1 }, 100));

    const r2 = cache.reserve(41); // 85 + 41 > 100 -> a:2 (101 > 100) -> a:3 (76)
    assert.deepEqual(events, ["a:1:size", "a:2:size", "a:3:size"]);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 25, reservedBytes: 51, entries: 1, size: 3 }, 100));
    assert.equal(cache.get("a", 4), "a@4");
    assert.equal(cache.get("a", 1), undefined);
    r1.release();
    r2.release();
    assert.deepEqual(cache.stats(), stats({ entryBytes: 25, entries: 1, size: 3 }, 100));
  });

  test("prune count 3 evicts three entries at once even if one would suffice (like the original)", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 3 });
    for (let v = 1; v <= 4; v += 1) put(cache, "a", v, 25);
    cache.reserve(10);
    assert.deepEqual(events, ["a:1:size", "a:2:size", "a:3:size"]);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 25, reservedBytes: 10, entries: 1, size: 3 }, 100));
    assert.equal(cache.has("a", 4), true);
  });

  test("prune count 2: batches are repeated until the request fits", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 2 });
    for (let v = 1; v <= 4; v += 1) put(cache, "a", v, 25);
    cache.reserve(60); // batch a1,a2 -> 50 + 60 > 100 -> batch a3,a4
    assert.deepEqual(events, ["a:1:size", "a:2:size", "a:3:size", "a:4:size"]);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 60, size: 4 }, 100));
  });

  test("no eviction while the request fits; a zero-byte reserve never evicts", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 3 });
    put(cache, "a", 1, 60);
    const r = cache.reserve(40);
    assert.deepEqual(events, []);
    const zero = cache.reserve(0);
    assert.equal(zero.bytes, 0);
    assert.deepEqual(events, []);
    cache.insert(zero, "empty", 1, "");
    assert.equal(cache.get("empty", 1), "");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 60, reservedBytes: 40, entries: 2 }, 100));
    r.release();
  });

  test("get() refreshes recency, has() does not", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    for (let v = 1; v <= 4; v += 1) put(cache, "a", v, 25);
    assert.equal(cache.get("a", 1), "a@1"); // order: 2 3 4 1
    assert.equal(cache.has("a", 2), true); // no touch
    cache.reserve(25);
    assert.deepEqual(events, ["a:2:size"]);
    const lease = cache.acquire("a", 3); // acquire touches too: order 4 1 3
    assert.ok(lease);
    lease.release();
    cache.reserve(25);
    assert.deepEqual(events, ["a:2:size", "a:4:size"]);
    cache.reserve(25);
    assert.deepEqual(events, ["a:2:size", "a:4:size", "a:1:size"]);
  });

  test("insert makes an entry most recently used; replacing a key does not call onEvict", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    put(cache, "a", 1, 30);
    put(cache, "a", 2, 30);
    cache.insert(cache.reserve(40), "a", 1, "a@1 bis"); // replaces a:1 (30 -> 40), now MRU
    assert.deepEqual(events, []);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 70, entries: 2 }, 100));
    assert.equal(cache.get("a", 1), "a@1 bis");
    cache.reserve(40);
    assert.deepEqual(events, ["a:2:size"]);
  });

  test("keys do not collide across model ids", () => {
    const { cache } = harness({ maxBytes: 100 });
    put(cache, "m", 12, 1);
    put(cache, "m1", 2, 2);
    assert.equal(cache.get("m", 12), "m@12");
    assert.equal(cache.get("m1", 2), "m1@2");
    assert.equal(cache.get("m1", 12), undefined);
    assert.equal(cache.get("m", 2), undefined);
  });

  test("acquire with an identity finds only the entry inserted with that identity", () => {
    const { cache } = harness({ maxBytes: 100 });
    cache.insert(cache.reserve(4), "m", 1, "old", { identity: "t1 hashA" });
    assert.equal(cache.acquire("m", 1, "t2 hashB"), undefined, "another version under the same key");
    const lease = cache.acquire("m", 1, "t1 hashA");
    assert.equal(lease?.value, "old");
    lease?.release(false);
    assert.equal(cache.acquire("m", 1)?.value, "old", "no identity asked: any entry under the key");
    cache.insert(cache.reserve(4), "m", 1, "new", { identity: "t2 hashB" });
    assert.equal(cache.acquire("m", 1, "t2 hashB")?.value, "new");
    assert.equal(cache.acquire("m", 1, "t1 hashA"), undefined);
  });
});

describe("VersionCache pinned entries", () => {
  test("pinned entries are skipped while unpinned ones exist, then evicted LRU first", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    put(cache, "p", 1, 25, true);
    put(cache, "a", 1, 25);
    put(cache, "q", 1, 25, true);
    put(cache, "a", 2, 25);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, entries: 4, pinnedEntries: 2 }, 100));

    const r1 = cache.reserve(30); // a:1 (105) -> a:2 (80)
    assert.deepEqual(events, ["a:1:size", "a:2:size"]);
    assert.equal(cache.get("q", 1), "q@1"); // pinned recency: p, q
    assert.equal(cache.get("p", 1), "p@1"); // pinned recency: q, p
    const r2 = cache.reserve(25); // only pinned left: q (55 + 25 fits)
    assert.deepEqual(events, ["a:1:size", "a:2:size", "q:1:size"]);
    assert.deepEqual(
      cache.stats(),
      stats({ entryBytes: 25, reservedBytes: 55, entries: 1, pinnedEntries: 1, size: 3 }, 100),
    );
    r1.release();
    r2.release();
  });

  test("a batch never mixes unpinned and pinned entries; pinned ones go one at a time", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 3 });
    put(cache, "p", 1, 20, true);
    put(cache, "p", 2, 20, true);
    put(cache, "p", 3, 20, true);
    put(cache, "p", 4, 20, true);
    put(cache, "u", 1, 20);
    // Batch 1: u:1 (80 + 50 > 100). Then the pinned (latest) entries one at a time, only as many as
    // needed: p:1 (60 + 50 > 100), p:2 (40 + 50 fits), although the prune count is 3.
    cache.reserve(50);
    assert.deepEqual(events, ["u:1:size", "p:1:size", "p:2:size"]);
    assert.deepEqual(
      cache.stats(),
      stats({ entryBytes: 40, reservedBytes: 50, entries: 2, pinnedEntries: 2, size: 3 }, 100),
    );
  });

  test("setPinned toggles the exemption and keeps the entry's recency", () => {
    const { cache, events } = harness({ maxBytes: 90, pruneCount: 1 });
    put(cache, "x", 1, 30);
    put(cache, "x", 2, 30);
    put(cache, "x", 3, 30);
    cache.setPinned("x", 1, true);
    cache.setPinned("x", 1, true); // idempotent
    cache.setPinned("nope", 1, true); // absent: no-op
    assert.deepEqual(cache.stats(), stats({ entryBytes: 90, entries: 3, pinnedEntries: 1 }, 90));

    const r = cache.reserve(30); // x:1 pinned -> x:2
    assert.deepEqual(events, ["x:2:size"]);
    r.release();
    put(cache, "x", 4, 30); // recency: x1 (oldest), x3, x4
    cache.setPinned("x", 1, false); // back among the unpinned, still the least recently used
    assert.deepEqual(cache.stats(), stats({ entryBytes: 90, entries: 3, size: 1 }, 90));
    cache.reserve(30);
    assert.deepEqual(events, ["x:2:size", "x:1:size"]);

    cache.setPinned("x", 3, true);
    cache.setPinned("x", 4, true);
    cache.setPinned("x", 3, false); // alone among the unpinned
    cache.setPinned("x", 3, true);
    assert.deepEqual(
      cache.stats(),
      stats({ entryBytes: 60, reservedBytes: 30, entries: 2, pinnedEntries: 2, size: 2 }, 90),
    );
    cache.reserve(30); // pinned LRU: x3 (its recency survived the toggles)
    assert.deepEqual(events, ["x:2:size", "x:1:size", "x:3:size"]);
  });

  test("setPinned re-files the entry between more and less recent ones", () => {
    const { cache, events } = harness({ maxBytes: 50, pruneCount: 1 });
    for (let v = 1; v <= 5; v += 1) put(cache, "m", v, 10);
    cache.setPinned("m", 3, true);
    cache.setPinned("m", 1, true);
    cache.setPinned("m", 5, true);
    cache.setPinned("m", 3, false); // unpinned recency: 2, 3, 4
    cache.setPinned("m", 1, false); // unpinned recency: 1, 2, 3, 4
    for (let i = 0; i < 5; i += 1) cache.reserve(10);
    assert.deepEqual(events, ["m:1:size", "m:2:size", "m:3:size", "m:4:size", "m:5:size"]);
  });
});

/** A model's latest: pinned, its data also on disk when `archived`. */
function putLatest(cache: VersionCache<string>, modelId: string, version: number, bytes: number, archived: boolean): void {
  cache.insert(cache.reserve(bytes), modelId, version, `${modelId}@${version}`, { pinned: true, archived });
}

function cannotReserveKeeping(bytes: number, max: number, used: number, evictable: number, r: number, d: number, l: number, kept: number) {
  return exhausted(
    `cannot reserve ${bytes} bytes: ${BUDGET} is ${max} bytes and ${used} are used, of which only ${evictable} can be evicted ` +
      `(${r} reserved, ${d} draining, ${l} in entries being read, ${kept} in latest transient versions, which this request may not evict)`,
  );
}

describe("VersionCache pinned transient entries (a model's latest held only in memory)", () => {
  const keep = { keepPinnedTransient: true } as const;

  test("a pinned archived entry is evicted before a pinned transient one, whatever their recency", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 3 });
    putLatest(cache, "t", 1, 25, false); // the least recently used of all
    putLatest(cache, "a", 1, 25, true);
    put(cache, "u", 1, 25);
    putLatest(cache, "b", 1, 25, true);
    assert.equal(cache.get("a", 1), "a@1"); // pinned archived recency: b, a
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, entries: 4, pinnedEntries: 3 }, 100));

    const r1 = cache.reserve(70); // u (75 + 70), then b (50 + 70), then a (25 + 70 fits); t stays
    assert.deepEqual(events, ["u:1:size", "b:1:size", "a:1:size"]);
    assert.equal(cache.get("t", 1), "t@1");
    const r2 = cache.reserve(30); // only a transient latest is left: it goes (the documented last resort)
    assert.deepEqual(events, ["u:1:size", "b:1:size", "a:1:size", "t:1:size"]);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100, size: 4 }, 100));
    r1.release();
    r2.release();
  });

  test("keepPinnedTransient evicts unpinned and archived pinned entries, never a transient latest; it fails, evicting nothing, when only those could make room", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    put(cache, "u", 1, 20);
    putLatest(cache, "a", 1, 20, true);
    putLatest(cache, "t", 1, 30, false);
    putLatest(cache, "s", 1, 30, false);
    const before = cache.stats();
    assert.throws(() => cache.reserve(41, keep), cannotReserveKeeping(41, 100, 100, 40, 0, 0, 0, 60));
    assert.deepEqual(events, []);
    assert.deepEqual(cache.stats(), before);

    const r = cache.reserve(40, keep); // u, then a: exactly enough
    assert.deepEqual(events, ["u:1:size", "a:1:size"]);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 60, reservedBytes: 40, entries: 2, pinnedEntries: 2, size: 2 }, 100));
    assert.throws(() => cache.reserve(1, keep), cannotReserveKeeping(1, 100, 100, 0, 40, 0, 0, 60));
    assert.deepEqual(events, ["u:1:size", "a:1:size"]);
    cache.reserve(1); // without the option, a transient latest goes (t, the least recently used)
    assert.deepEqual(events, ["u:1:size", "a:1:size", "t:1:size"]);
    r.release();
  });

  test("keepPinnedTransient follows leases, pin changes and removals of transient latests", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    putLatest(cache, "m", 1, 50, false);
    put(cache, "m", 2, 50);
    assert.throws(() => cache.reserve(60, keep), cannotReserveKeeping(60, 100, 100, 50, 0, 0, 0, 50));

    const lease = cache.acquire("m", 1); // being read: counted as such, not twice
    assert.ok(lease !== undefined);
    assert.throws(() => cache.reserve(60, keep), cannotReserveKeeping(60, 100, 100, 50, 0, 0, 50, 0));
    cache.setPinned("m", 1, false); // unpinned while leased: evictable once released
    cache.setPinned("m", 2, true); // the new latest, transient, unleased: kept
    assert.throws(() => cache.reserve(1, keep), cannotReserveKeeping(1, 100, 100, 0, 0, 0, 50, 50));
    lease.release();
    assert.throws(() => cache.reserve(51, keep), cannotReserveKeeping(51, 100, 100, 50, 0, 0, 0, 50));
    const r1 = cache.reserve(50, keep);
    assert.deepEqual(events, ["m:1:size"]);

    const again = cache.acquire("m", 2);
    assert.ok(again !== undefined);
    cache.delete("m", 2); // drains while read; then nothing is kept any more
    assert.throws(() => cache.reserve(1, keep), cannotReserveKeeping(1, 100, 100, 0, 50, 50, 0, 0));
    again.release();
    const r2 = cache.reserve(50, keep);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100, size: 1 }, 100));
    r1.release();
    r2.release();

    putLatest(cache, "x", 1, 40, false);
    cache.setPinned("x", 1, false);
    cache.setPinned("x", 1, true);
    cache.setPinned("x", 1, false); // unpinned: evictable by anyone
    cache.reserve(70, keep);
    assert.deepEqual(events, ["m:1:size", "x:1:size"]);
  });

  test("reserveReusing with keepPinnedTransient reuses evicted values but never a transient latest's", () => {
    const { cache, events } = harness({ maxBytes: 200, pruneCount: 1, spares: { maxAgeMs: 1000 } });
    putLatest(cache, "t", 1, 100, false);
    put(cache, "u", 1, 100);
    const first = cache.reserveReusing(100, keep);
    assert.equal(first.reused, "u@1");
    assert.throws(() => cache.reserveReusing(100, keep), cannotReserveKeeping(100, 200, 200, 0, 100, 0, 0, 100));
    assert.deepEqual(events, ["u:1:size"]);
    const second = cache.reserveReusing(100); // a transient upload: the last resort
    assert.equal(second.reused, "t@1");
    assert.deepEqual(events, ["u:1:size", "t:1:size"]);
    first.reservation.release();
    second.reservation.release();
  });
});

describe("VersionCache expiry", () => {
  test("unpinned entries expire strictly after expirationMs since insertion; pinned ones never do", () => {
    const { cache, events, clock } = harness({ maxBytes: 1000, expirationMs: 1000 });
    put(cache, "a", 1, 10);
    put(cache, "a", 2, 20, true);
    clock.t = 500;
    put(cache, "a", 3, 30);
    clock.t = 1000;
    assert.equal(cache.get("a", 1), "a@1"); // exactly expirationMs old: still there; get does not renew
    clock.t = 1001;
    assert.equal(cache.has("a", 1), false);
    assert.deepEqual(events, ["a:1:expired"]);
    assert.equal(cache.get("a", 1), undefined);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 50, entries: 2, pinnedEntries: 1, expired: 1 }, 1000));

    clock.t = 1500;
    cache.sweepExpired();
    assert.deepEqual(events, ["a:1:expired"]);
    clock.t = 1501;
    cache.sweepExpired();
    assert.deepEqual(events, ["a:1:expired", "a:3:expired"]);
    clock.t = 1_000_000;
    cache.sweepExpired();
    assert.equal(cache.get("a", 2), "a@2");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 20, entries: 1, pinnedEntries: 1, expired: 2 }, 1000));

    cache.setPinned("a", 2, false); // age counts from insertion: gone at the next look
    assert.equal(cache.acquire("a", 2), undefined);
    assert.deepEqual(events, ["a:1:expired", "a:3:expired", "a:2:expired"]);
    assert.deepEqual(cache.stats(), stats({ expired: 3 }, 1000));
  });

  test("sweepExpired reports in insertion order, regardless of recency; pinning stops expiry", () => {
    const { cache, events, clock } = harness({ maxBytes: 1000, expirationMs: 100 });
    put(cache, "b", 1, 1);
    clock.t = 1;
    put(cache, "b", 2, 2, true);
    clock.t = 2;
    put(cache, "b", 3, 3);
    put(cache, "c", 1, 4);
    clock.t = 50;
    cache.get("b", 1);
    cache.setPinned("c", 1, true);
    clock.t = 200;
    cache.sweepExpired();
    assert.deepEqual(events, ["b:1:expired", "b:3:expired"]);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 6, entries: 2, pinnedEntries: 2, expired: 2 }, 1000));
    cache.setPinned("c", 1, true);
    cache.setPinned("b", 7, true);
    assert.equal(cache.has("c", 1), true);
  });

  test("setPinned on an expired entry evicts it instead of resurrecting it", () => {
    const { cache, events, clock } = harness({ maxBytes: 1000, expirationMs: 10 });
    put(cache, "a", 1, 5);
    clock.t = 11;
    cache.setPinned("a", 1, true);
    assert.deepEqual(events, ["a:1:expired"]);
    assert.deepEqual(cache.stats(), stats({ expired: 1 }, 1000));
  });

  test("reserve drops expired entries before evicting live ones by size", () => {
    const { cache, events, clock } = harness({ maxBytes: 50, expirationMs: 1000, pruneCount: 1 });
    put(cache, "a", 1, 25); // t = 0
    clock.t = 600;
    put(cache, "a", 2, 25);
    clock.t = 700;
    cache.get("a", 1); // LRU order: a2, a1
    clock.t = 1100; // a1 expired, a2 not
    cache.reserve(25);
    assert.deepEqual(events, ["a:1:expired"]);
    assert.equal(cache.get("a", 2), "a@2");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 25, reservedBytes: 25, entries: 1, expired: 1 }, 50));
  });

  test("expirationMs 0 means never expire", () => {
    const { cache, events, clock } = harness({ maxBytes: 10, expirationMs: 0 });
    put(cache, "a", 1, 1);
    clock.t = Number.MAX_SAFE_INTEGER;
    cache.sweepExpired();
    assert.equal(cache.get("a", 1), "a@1");
    assert.deepEqual(events, []);
  });

  test("the real sweep timer expires entries without any call, and close() stops it", async () => {
    const events: string[] = [];
    const cache = new VersionCache<string>({
      maxBytes: 100,
      expirationMs: 20,
      pruneCount: 1,
      sweepIntervalMs: 5,
      onEvict: (modelId, versionNumber, reason) => events.push(`${modelId}:${versionNumber}:${reason}`),
    });
    try {
      put(cache, "t", 1, 10);
      const deadline = Date.now() + 30_000;
      while (events.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.deepEqual(events, ["t:1:expired"]);
      assert.deepEqual(cache.stats(), stats({ expired: 1 }, 100));

      cache.close();
      cache.close(); // idempotent
      put(cache, "t", 2, 10);
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.deepEqual(events, ["t:1:expired"]); // no sweep any more (stats() does not sweep)
      assert.deepEqual(cache.stats(), stats({ entryBytes: 10, entries: 1, expired: 1 }, 100));
      assert.equal(cache.has("t", 2), false); // lazy expiry still works
      assert.deepEqual(events, ["t:1:expired", "t:2:expired"]);
    } finally {
      cache.close();
    }
  });

  test("the sweep timer is unref'd: a process with an unclosed cache exits", async () => {
    const moduleUrl = new URL("../../src/registry/version-cache.js", import.meta.url).href;
    const script =
      `import { VersionCache } from ${JSON.stringify(moduleUrl)};\n` +
      `const cache = new VersionCache({ maxBytes: 10, expirationMs: 60000, pruneCount: 1 });\n` +
      `const withDefault = new VersionCache({ maxBytes: 10, expirationMs: 1, pruneCount: 1 });\n` +
      `cache.insert(cache.reserve(1), "m", 1, "v");\n` +
      `withDefault.insert(withDefault.reserve(1), "m", 1, "v");\n` +
      `console.log("started");\n`;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["--input-type=module", "-e", script],
        { timeout: 10_000, cwd: fileURLToPath(new URL(".", import.meta.url)) },
        (error, out) => (error === null ? resolve(out) : reject(error)),
      );
    });
    assert.equal(stdout, "started\n");
  });
});

describe("VersionCache reservations", () => {
  test("reservations count against the budget; release returns the bytes, once", () => {
    const { cache } = harness({ maxBytes: 100 });
    const r1 = cache.reserve(60);
    const r2 = cache.reserve(40);
    assert.equal(r1.bytes, 60);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100 }, 100));
    assert.throws(() => cache.reserve(1), cannotReserve(1, 100, 100, 0, 100, 0, 0));
    r1.release();
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 40 }, 100));
    r1.release();
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 40 }, 100));
    const r3 = cache.reserve(60);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100 }, 100));
    r2.release();
    r3.release();
    r3.release();
    assert.deepEqual(cache.stats(), stats({}, 100));
  });

  test("more than the budget fails at once, without evicting", () => {
    const { cache, events } = harness({ maxBytes: 1000 });
    put(cache, "a", 1, 500);
    assert.throws(() => cache.reserve(2000), exhausted(`cannot hold 2000 bytes: ${BUDGET} is 1000 bytes`));
    assert.throws(() => cache.reserve(1001), exhausted(`cannot hold 1001 bytes: ${BUDGET} is 1000 bytes`));
    assert.deepEqual(events, []);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 500, entries: 1 }, 1000));
    cache.reserve(1000); // exactly the budget: evicts everything
    assert.deepEqual(events, ["a:1:size"]);
  });

  test("a reserve that cannot fit because of reservations fails without evicting anything", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    put(cache, "a", 1, 30);
    put(cache, "a", 2, 20, true);
    const r = cache.reserve(50);
    const before = cache.stats();
    assert.throws(() => cache.reserve(51), cannotReserve(51, 100, 100, 50, 50, 0, 0));
    assert.deepEqual(events, []);
    assert.deepEqual(cache.stats(), before);
    assert.equal(cache.has("a", 1), true);
    cache.reserve(50); // evicting everything makes exactly enough room
    assert.deepEqual(events, ["a:1:size", "a:2:size"]);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100, size: 2 }, 100));
    assert.throws(() => cache.reserve(1), cannotReserve(1, 100, 100, 0, 100, 0, 0));
    r.release();
  });

  test("insert consumes the reservation: releasing it afterwards is a no-op, reusing it throws", () => {
    const { cache } = harness({ maxBytes: 100 });
    const other = harness({ maxBytes: 100 }).cache;
    const r = cache.reserve(30);
    cache.insert(r, "a", 1, "v");
    r.release();
    assert.deepEqual(cache.stats(), stats({ entryBytes: 30, entries: 1 }, 100));
    assert.throws(() => cache.insert(r, "a", 2, "v"), /active reservation/);
    const released = cache.reserve(10);
    released.release();
    assert.throws(() => cache.insert(released, "a", 2, "v"), /active reservation/);
    const foreign = other.reserve(10);
    assert.throws(() => cache.insert(foreign, "a", 2, "v"), /active reservation/);
    const fake: Reservation = { bytes: 0, release: () => undefined };
    assert.throws(() => cache.insert(fake, "a", 2, "v"), /active reservation/);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 30, entries: 1 }, 100));
    assert.deepEqual(other.stats(), stats({ reservedBytes: 10 }, 100));
  });

  test("sizes must be non-negative safe integers; options are validated", () => {
    const { cache } = harness({ maxBytes: 100 });
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => cache.reserve(bad), RangeError);
    }
    assert.deepEqual(cache.stats(), stats({}, 100));
    const ok = { maxBytes: 10, expirationMs: 0, pruneCount: 1 };
    assert.throws(() => new VersionCache({ ...ok, maxBytes: -1 }), RangeError);
    assert.throws(() => new VersionCache({ ...ok, maxBytes: 0.5 }), RangeError);
    assert.throws(() => new VersionCache({ ...ok, expirationMs: -1 }), RangeError);
    assert.throws(() => new VersionCache({ ...ok, pruneCount: 0 }), RangeError);
    assert.throws(() => new VersionCache({ ...ok, sweepIntervalMs: -5 }), RangeError);
    const empty = new VersionCache<string>({ ...ok, maxBytes: 0 });
    empty.insert(empty.reserve(0), "m", 1, "");
    assert.equal(empty.get("m", 1), "");
    assert.throws(() => empty.reserve(1), exhausted(`cannot hold 1 bytes: ${BUDGET} is 0 bytes`));
  });
});

describe("VersionCache leases", () => {
  test("deleting a leased entry moves its bytes to draining until the lease is released", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    put(cache, "a", 1, 40);
    put(cache, "a", 2, 40);
    const lease = cache.acquire("a", 1);
    assert.ok(lease);
    assert.equal(lease.value, "a@1");
    cache.delete("a", 1);
    assert.equal(cache.get("a", 1), undefined);
    assert.equal(cache.has("a", 1), false);
    assert.equal(cache.acquire("a", 1), undefined);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 40, drainingBytes: 40, entries: 1 }, 100));

    const r = cache.reserve(30); // 80 + 30 > 100: a:2 goes; the draining bytes cannot be used
    assert.deepEqual(events, ["a:2:size"]);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 30, drainingBytes: 40, size: 1 }, 100));
    assert.throws(() => cache.reserve(31), cannotReserve(31, 100, 70, 0, 30, 40, 0));

    lease.release();
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 30, size: 1 }, 100));
    lease.release(); // harmless
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 30, size: 1 }, 100));
    cache.reserve(70);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100, size: 1 }, 100));
    r.release();
  });

  test("a size-evicted leased entry leaves the index at once and drains", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    put(cache, "a", 1, 50);
    put(cache, "a", 2, 50);
    const lease = cache.acquire("a", 1); // a:1 becomes MRU
    assert.ok(lease);
    cache.reserve(50);
    assert.deepEqual(events, ["a:2:size"]);
    cache.get("a", 1);
    const lease2 = cache.acquire("a", 1);
    assert.ok(lease2);
    // Only the leased entry is left: evicting it would free nothing, so the reserve fails untouched.
    assert.throws(() => cache.reserve(1), cannotReserve(1, 100, 100, 0, 50, 0, 50));
    assert.deepEqual(cache.stats(), stats({ entryBytes: 50, reservedBytes: 50, entries: 1, size: 1 }, 100));
    lease.release();
    assert.throws(() => cache.reserve(1), cannotReserve(1, 100, 100, 0, 50, 0, 50));
    lease2.release();
    cache.reserve(1); // now evictable
    assert.deepEqual(events, ["a:2:size", "a:1:size"]);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 51, size: 2 }, 100));
  });

  test("eviction passes over leased entries: evicting one would free nothing", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 1 });
    put(cache, "a", 1, 50);
    put(cache, "a", 2, 50);
    const lease = cache.acquire("a", 1);
    assert.ok(lease);
    cache.get("a", 2); // a:1 is the LRU again
    cache.reserve(50); // a:1 is being read: a:2 goes instead
    assert.deepEqual(events, ["a:2:size"]);
    assert.equal(cache.get("a", 1), "a@1");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 50, reservedBytes: 50, entries: 1, size: 1 }, 100));
    lease.release();
    assert.deepEqual(cache.stats(), stats({ entryBytes: 50, reservedBytes: 50, entries: 1, size: 1 }, 100));
  });

  test("a prune batch skips leased entries; a model's latest being read is not evicted for nothing", () => {
    const { cache, events } = harness({ maxBytes: 100, pruneCount: 2 });
    put(cache, "u", 1, 30);
    put(cache, "u", 2, 30);
    put(cache, "u", 3, 30);
    const lease = cache.acquire("u", 1);
    assert.ok(lease);
    cache.get("u", 2); // recency, least recent first: u:3, u:1, u:2
    cache.reserve(40); // 90 + 40 > 100: a batch of two unleased, u:3 and u:2
    assert.deepEqual(events, ["u:3:size", "u:2:size"]);
    lease.release();

    // The fan-out case: A's latest is being read, B's is not; room for one more is needed.
    const fanOut = harness({ maxBytes: 100, pruneCount: 5 });
    put(fanOut.cache, "A", 1, 50, true);
    const reading = fanOut.cache.acquire("A", 1);
    assert.ok(reading);
    put(fanOut.cache, "B", 1, 50, true); // A:1 is the least recently used
    fanOut.cache.reserve(50);
    assert.deepEqual(fanOut.events, ["B:1:size"]);
    assert.equal(fanOut.cache.get("A", 1), "A@1");
    reading.release();
  });

  test("several leases: the bytes drain until the last one is released; replace and expiry drain too", () => {
    const { cache, events, clock } = harness({ maxBytes: 100, expirationMs: 10 });
    put(cache, "a", 1, 10);
    const l1 = cache.acquire("a", 1);
    const l2 = cache.acquire("a", 1);
    assert.ok(l1 && l2);
    put(cache, "a", 1, 20); // replace
    assert.equal(cache.get("a", 1), "a@1");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 20, drainingBytes: 10, entries: 1 }, 100));
    l1.release();
    l1.release();
    assert.deepEqual(cache.stats(), stats({ entryBytes: 20, drainingBytes: 10, entries: 1 }, 100));
    l2.release();
    assert.deepEqual(cache.stats(), stats({ entryBytes: 20, entries: 1 }, 100));

    const l3: Lease<string> | undefined = cache.acquire("a", 1);
    assert.ok(l3);
    clock.t = 11;
    cache.sweepExpired();
    assert.deepEqual(events, ["a:1:expired"]);
    assert.deepEqual(cache.stats(), stats({ drainingBytes: 20, expired: 1 }, 100));
    assert.equal(l3.value, "a@1");
    l3.release();
    assert.deepEqual(cache.stats(), stats({ expired: 1 }, 100));
  });

  test("a lease released while its entry is live returns nothing but makes the entry evictable", () => {
    const { cache } = harness({ maxBytes: 100 });
    put(cache, "a", 1, 60);
    const lease = cache.acquire("a", 1);
    assert.ok(lease);
    assert.throws(() => cache.reserve(50), cannotReserve(50, 100, 60, 0, 0, 0, 60));
    lease.release();
    assert.deepEqual(cache.stats(), stats({ entryBytes: 60, entries: 1 }, 100));
    cache.delete("a", 1);
    lease.release();
    assert.deepEqual(cache.stats(), stats({}, 100));
  });
});

describe("VersionCache deletion", () => {
  test("delete and deleteModel remove without onEvict; deleteModel only touches that model", () => {
    const { cache, events } = harness({ maxBytes: 100 });
    put(cache, "a", 1, 1);
    put(cache, "a", 2, 2, true);
    put(cache, "a", 3, 4);
    put(cache, "b", 1, 8);
    put(cache, "ab", 1, 16);
    cache.delete("a", 3);
    cache.delete("a", 3);
    cache.delete("zz", 1);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 27, entries: 4, pinnedEntries: 1 }, 100));
    cache.deleteModel("a");
    cache.deleteModel("a");
    cache.deleteModel("nope");
    assert.equal(cache.has("a", 1), false);
    assert.equal(cache.has("a", 2), false);
    assert.equal(cache.get("b", 1), "b@1");
    assert.equal(cache.get("ab", 1), "ab@1");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 24, entries: 2 }, 100));
    assert.deepEqual(events, []);
    put(cache, "a", 1, 3); // the model can come back
    assert.equal(cache.get("a", 1), "a@1");
  });
});

describe("VersionCache onEvict callbacks", () => {
  test("onEvict may call back into the cache: nested evictions are reported after, in order", () => {
    const clock = { t: 0 };
    const events: string[] = [];
    const seen: boolean[] = [];
    const cache: VersionCache<string> = new VersionCache<string>({
      maxBytes: 100,
      expirationMs: 10,
      pruneCount: 1,
      sweepIntervalMs: 0,
      now: () => clock.t,
      onEvict: (modelId, versionNumber, reason) => {
        events.push(`${modelId}:${versionNumber}:${reason}`);
        if (versionNumber === 1) seen.push(cache.has("a", 2));
      },
    });
    put(cache, "a", 1, 10);
    put(cache, "a", 2, 20);
    clock.t = 11;
    assert.equal(cache.get("a", 1), undefined);
    assert.deepEqual(seen, [false]);
    assert.deepEqual(events, ["a:1:expired", "a:2:expired"]);
    assert.deepEqual(cache.stats(), stats({ expired: 2 }, 100));
  });

  test("a reserve made from onEvict during eviction is accounted for before the outer one", () => {
    const events: string[] = [];
    const inner: Reservation[] = [];
    const cache: VersionCache<string> = new VersionCache<string>({
      maxBytes: 100,
      expirationMs: 0,
      pruneCount: 1,
      onEvict: (modelId, versionNumber, reason) => {
        events.push(`${modelId}:${versionNumber}:${reason}`);
        if (inner.length === 0) inner.push(cache.reserve(30));
      },
    });
    put(cache, "a", 1, 50);
    put(cache, "a", 2, 50);
    const outer = cache.reserve(50); // a:1 goes, the callback takes 30, so a:2 must go too
    assert.deepEqual(events, ["a:1:size", "a:2:size"]);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 80, size: 2 }, 100));
    outer.release();
    inner[0]?.release();
    assert.deepEqual(cache.stats(), stats({ size: 2 }, 100));
  });

  test("an onEvict that throws leaves the account consistent and the reserve not counted", () => {
    const cache = new VersionCache<string>({
      maxBytes: 100,
      expirationMs: 0,
      pruneCount: 1,
      onEvict: () => {
        throw new Error("boom");
      },
    });
    put(cache, "a", 1, 60);
    assert.throws(() => cache.reserve(50), /boom/);
    assert.deepEqual(cache.stats(), stats({ size: 1 }, 100));
    cache.reserve(100);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100, size: 1 }, 100));
  });
});

// ---------------------------------------------------------------------------------------------------
// Randomized differential test against a naive reference model.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ModelEntry {
  modelId: string;
  version: number;
  value: string;
  bytes: number;
  pinned: boolean;
  archived: boolean;
  insertedAt: number;
  seq: number;
  tick: number;
  leases: number;
}

interface ModelReservation {
  handle: Reservation;
  bytes: number;
  active: boolean;
}

interface ModelLease {
  handle: Lease<string>;
  entry: ModelEntry;
  released: boolean;
}

/** The obvious, slow implementation of the rules: arrays and sorts, no linked lists. */
class Reference {
  readonly entries = new Map<string, ModelEntry>();
  readonly draining = new Set<ModelEntry>();
  readonly reservations: ModelReservation[] = [];
  readonly leases: ModelLease[] = [];
  readonly events: string[] = [];
  evictions = { size: 0, expired: 0 };
  tick = 0;
  seq = 0;

  constructor(
    readonly maxBytes: number,
    readonly expirationMs: number,
    readonly pruneCount: number,
    readonly clock: { t: number },
  ) {}

  static key(modelId: string, version: number): string {
    return `${modelId}\u0000${version}`;
  }

  entryBytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.bytes;
    return sum;
  }
  reservedBytes(): number {
    return this.reservations.filter((r) => r.active).reduce((sum, r) => sum + r.bytes, 0);
  }
  drainingBytes(): number {
    let sum = 0;
    for (const e of this.draining) sum += e.bytes;
    return sum;
  }
  leasedEntryBytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) if (e.leases > 0) sum += e.bytes;
    return sum;
  }
  usedBytes(): number {
    return this.entryBytes() + this.reservedBytes() + this.drainingBytes();
  }
  pinnedTransientBytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) if (e.pinned && !e.archived && e.leases === 0) sum += e.bytes;
    return sum;
  }

  remove(e: ModelEntry): void {
    this.entries.delete(Reference.key(e.modelId, e.version));
    if (e.leases > 0) this.draining.add(e);
  }
  evict(e: ModelEntry, reason: EvictionReason): void {
    this.remove(e);
    this.evictions[reason] += 1;
    this.events.push(`${e.modelId}:${e.version}:${reason}`);
  }
  expired(e: ModelEntry): boolean {
    return this.expirationMs > 0 && !e.pinned && this.clock.t - e.insertedAt > this.expirationMs;
  }
  sweep(): void {
    const expired = [...this.entries.values()].filter((e) => this.expired(e)).sort((x, y) => x.seq - y.seq);
    for (const e of expired) this.evict(e, "expired");
  }
  lookup(modelId: string, version: number): ModelEntry | undefined {
    const e = this.entries.get(Reference.key(modelId, version));
    if (e !== undefined && this.expired(e)) {
      this.evict(e, "expired");
      return undefined;
    }
    return e;
  }

  /** Returns the expected outcome: "ok", "too-big" or "exhausted". */
  reserve(bytes: number, keepPinnedTransient: boolean): "ok" | "too-big" | "exhausted" {
    if (bytes > this.maxBytes) return "too-big";
    if (this.usedBytes() + bytes > this.maxBytes) {
      const kept = keepPinnedTransient ? this.pinnedTransientBytes() : 0;
      if (bytes + this.reservedBytes() + this.drainingBytes() + this.leasedEntryBytes() + kept > this.maxBytes) {
        return "exhausted";
      }
      this.sweep();
      while (this.usedBytes() + bytes > this.maxBytes) {
        // Leased entries are passed over; unpinned ones go by prune-count batches, pinned ones singly,
        // archived before transient, and transient ones not at all when kept.
        const unleased = [...this.entries.values()].filter((e) => e.leases === 0).sort((x, y) => x.tick - y.tick);
        const unpinned = unleased.filter((e) => !e.pinned);
        const pinnedArchived = unleased.filter((e) => e.pinned && e.archived);
        const pinnedTransient = keepPinnedTransient ? [] : unleased.filter((e) => e.pinned && !e.archived);
        const pool = unpinned.length > 0 ? unpinned : pinnedArchived.length > 0 ? pinnedArchived : pinnedTransient;
        assert.ok(pool.length > 0, "reference: nothing left to evict");
        for (const e of pool.slice(0, unpinned.length > 0 ? this.pruneCount : 1)) this.evict(e, "size");
      }
    }
    return "ok";
  }
}

function runRandomized(seed: number, maxBytes: number, expirationMs: number, pruneCount: number, steps: number): void {
  const random = mulberry32(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const clock = { t: 0 };
  const ref = new Reference(maxBytes, expirationMs, pruneCount, clock);
  const actualEvents: string[] = [];
  const cache = new VersionCache<string>({
    maxBytes,
    expirationMs,
    pruneCount,
    sweepIntervalMs: 0,
    now: () => clock.t,
    onEvict: (modelId, versionNumber, reason) => actualEvents.push(`${modelId}:${versionNumber}:${reason}`),
  });
  const models = ["m0", "m1", "m2", "m3"];
  const randomKey = (): [string, number] => [models[int(models.length)] ?? "m0", int(6)];
  let values = 0;
  let peak = 0;
  let drainingSteps = 0;
  const counts = new Map<string, number>();

  for (let step = 0; step < steps; step += 1) {
    const roll = int(100);
    let op: string;
    if (roll < 22) {
      op = "reserve";
      const size = int(20);
      const bytes =
        size === 0
          ? maxBytes + 1 + int(10) // more than the budget
          : size < 15
            ? int(Math.ceil(maxBytes * 0.06) + 1) // small: many entries fit
            : int(Math.floor(maxBytes * 0.4) + 1); // large: pressure
      // Every other reservation keeps the transient latests (an archived read or upload).
      const keepPinnedTransient = step % 2 === 0;
      const expected = ref.reserve(bytes, keepPinnedTransient);
      let handle: Reservation | undefined;
      let error: unknown;
      try {
        handle = cache.reserve(bytes, { keepPinnedTransient });
      } catch (err) {
        error = err;
      }
      if (expected === "ok") {
        assert.ok(handle !== undefined, `step ${step}: reserve(${bytes}) failed: ${String(error)}`);
        assert.equal(handle.bytes, bytes);
        ref.reservations.push({ handle, bytes, active: true });
      } else {
        assert.ok(error instanceof RegistryError, `step ${step}: reserve(${bytes}) should fail (${expected})`);
        assert.equal(error.code, Code.RESOURCE_EXHAUSTED);
        op = `reserve-${expected}`;
      }
    } else if (roll < 40) {
      op = "insert";
      const active = ref.reservations.filter((r) => r.active);
      const candidate = int(10) === 0 || active.length === 0 ? ref.reservations[int(ref.reservations.length)] : active[int(active.length)];
      if (candidate === undefined) continue;
      const [modelId, version] = randomKey();
      const pinned = int(5) === 0;
      const value = `v${(values += 1)}`;
      const archived = values % 2 === 0;
      if (!candidate.active) {
        assert.throws(() => cache.insert(candidate.handle, modelId, version, value, { pinned, archived }));
        op = "insert-inactive";
      } else {
        cache.insert(candidate.handle, modelId, version, value, { pinned, archived });
        candidate.active = false;
        if (int(4) !== 0) ref.reservations.splice(ref.reservations.indexOf(candidate), 1);
        const old = ref.entries.get(Reference.key(modelId, version));
        if (old !== undefined) ref.remove(old);
        ref.entries.set(Reference.key(modelId, version), {
          modelId,
          version,
          value,
          bytes: candidate.bytes,
          pinned,
          archived,
          insertedAt: clock.t,
          seq: (ref.seq += 1),
          tick: (ref.tick += 1),
          leases: 0,
        });
      }
    } else if (roll < 48) {
      op = "release-reservation";
      const active = ref.reservations.filter((r) => r.active);
      const r = int(4) === 0 || active.length === 0 ? ref.reservations[int(ref.reservations.length)] : active[int(active.length)];
      if (r === undefined) continue;
      r.handle.release();
      r.active = false;
      if (int(3) === 0) ref.reservations.splice(ref.reservations.indexOf(r), 1);
    } else if (roll < 60) {
      op = "get";
      const [modelId, version] = randomKey();
      const e = ref.lookup(modelId, version);
      if (e !== undefined) e.tick = ref.tick += 1;
      assert.equal(cache.get(modelId, version), e?.value, `step ${step}: get`);
    } else if (roll < 64) {
      op = "has";
      const [modelId, version] = randomKey();
      assert.equal(cache.has(modelId, version), ref.lookup(modelId, version) !== undefined, `step ${step}: has`);
    } else if (roll < 72) {
      op = "acquire";
      const [modelId, version] = randomKey();
      const e = ref.lookup(modelId, version);
      const lease = cache.acquire(modelId, version);
      assert.equal(lease?.value, e?.value, `step ${step}: acquire`);
      if (e !== undefined && lease !== undefined) {
        e.tick = ref.tick += 1;
        e.leases += 1;
        ref.leases.push({ handle: lease, entry: e, released: false });
      }
    } else if (roll < 80) {
      op = "release-lease";
      const l = ref.leases[int(ref.leases.length)];
      if (l === undefined) continue;
      l.handle.release();
      if (!l.released) {
        l.released = true;
        l.entry.leases -= 1;
        if (l.entry.leases === 0) ref.draining.delete(l.entry);
      }
      if (int(2) === 0) ref.leases.splice(ref.leases.indexOf(l), 1);
    } else if (roll < 86) {
      op = "pin";
      const [modelId, version] = randomKey();
      const pinned = int(2) === 0;
      const e = ref.lookup(modelId, version);
      if (e !== undefined) e.pinned = pinned;
      cache.setPinned(modelId, version, pinned);
    } else if (roll < 91) {
      op = "delete";
      const [modelId, version] = randomKey();
      const e = ref.entries.get(Reference.key(modelId, version));
      if (e !== undefined) ref.remove(e);
      cache.delete(modelId, version);
    } else if (roll < 92) {
      op = "delete-model";
      const modelId = models[int(models.length)] ?? "m0";
      for (const e of [...ref.entries.values()]) if (e.modelId === modelId) ref.remove(e);
      cache.deleteModel(modelId);
    } else if (roll < 94) {
      op = "sweep";
      if (expirationMs > 0) ref.sweep();
      cache.sweepExpired();
    } else {
      op = "clock";
      clock.t += int(expirationMs > 0 ? expirationMs : 1000);
    }
    counts.set(op, (counts.get(op) ?? 0) + 1);

    const s = cache.stats();
    const where = `seed ${seed}, step ${step} (${op})`;
    assert.ok(s.usedBytes <= maxBytes, `${where}: used ${s.usedBytes} > max ${maxBytes}`);
    assert.equal(s.usedBytes, s.entryBytes + s.reservedBytes + s.drainingBytes, where);
    assert.equal(s.usedBytes, ref.usedBytes(), `${where}: usedBytes`);
    assert.equal(s.entryBytes, ref.entryBytes(), `${where}: entryBytes`);
    assert.equal(s.reservedBytes, ref.reservedBytes(), `${where}: reservedBytes`);
    assert.equal(s.drainingBytes, ref.drainingBytes(), `${where}: drainingBytes`);
    assert.equal(s.entries, ref.entries.size, `${where}: entries`);
    assert.equal(s.pinnedEntries, [...ref.entries.values()].filter((e) => e.pinned).length, `${where}: pinned`);
    assert.deepEqual(s.evictions, ref.evictions, `${where}: evictions`);
    assert.deepEqual(actualEvents, ref.events, `${where}: onEvict`);
    peak = Math.max(peak, s.usedBytes);
    if (s.drainingBytes > 0) drainingSteps += 1;
  }

  // The run must actually have exercised pressure, eviction, failure, draining and expiry.
  const final = cache.stats();
  assert.ok(final.evictions.size > 100, `seed ${seed}: only ${final.evictions.size} size evictions`);
  if (expirationMs > 0) assert.ok(final.evictions.expired > 100, `seed ${seed}: too few expirations`);
  assert.ok((counts.get("reserve-exhausted") ?? 0) > 10, `seed ${seed}: too few exhausted reserves`);
  assert.ok((counts.get("reserve-too-big") ?? 0) > 10, `seed ${seed}: too few oversized reserves`);
  assert.ok((counts.get("insert-inactive") ?? 0) > 10, `seed ${seed}: too few inactive inserts`);
  assert.ok(peak > maxBytes * 0.9, `seed ${seed}: peak ${peak} never neared ${maxBytes}`);
  assert.ok(drainingSteps > 100, `seed ${seed}: draining only during ${drainingSteps} steps`);

  // Releasing everything outstanding brings the account back to exactly the entries.
  for (const l of ref.leases) l.handle.release();
  for (const r of ref.reservations) r.handle.release();
  const drained = cache.stats();
  assert.equal(drained.drainingBytes, 0);
  assert.equal(drained.reservedBytes, 0);
  assert.equal(drained.usedBytes, drained.entryBytes);
  cache.close();
}

describe("VersionCache spares (memory of gone entries, reused by reserveReusing)", () => {
  /** A harness with spares kept for 1000 ms of the fake clock. */
  function withSpares(maxBytes: number, pruneCount = 1): Harness {
    return harness({ maxBytes, pruneCount, spares: { maxAgeMs: 1000 } });
  }

  test("an evicted entry's value serves the next reservation of the same size; the account does not move", () => {
    const { cache } = withSpares(300);
    put(cache, "m", 1, 100);
    put(cache, "m", 2, 100);
    put(cache, "m", 3, 100);
    const { reservation, reused } = cache.reserveReusing(100);
    assert.equal(reused, "m@1", "the least recently used entry was evicted and its value handed over");
    assert.equal(reservation.bytes, 100);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 200, reservedBytes: 100, entries: 2, size: 1, reuses: 1 }, 300));
    cache.insert(reservation, "m", 4, "m@4 in m@1's memory");
    assert.equal(cache.get("m", 4), "m@4 in m@1's memory");
    assert.equal(cache.get("m", 1), undefined);
  });

  test("a prune batch leaves the other evicted values as spares, counted, for the next uploads", () => {
    const { cache } = withSpares(400, 3);
    for (let v = 1; v <= 4; v++) put(cache, "m", v, 100);
    const first = cache.reserveReusing(100);
    assert.equal(first.reused, "m@3", "the most recent spare first");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, reservedBytes: 100, spareBytes: 200, spares: 2, entries: 1, size: 3, reuses: 1 }, 400));
    assert.equal(cache.reserveReusing(100).reused, "m@2");
    assert.equal(cache.reserveReusing(100).reused, "m@1");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, reservedBytes: 300, entries: 1, size: 3, reuses: 3 }, 400));
  });

  test("retire: an unpinned entry leaves at once without onEvict, and its value serves the next reservation of its size with room to spare", () => {
    const { cache, events } = withSpares(1000);
    put(cache, "m", 1, 100);
    put(cache, "m", 2, 100, true);
    cache.retire("m", 1);
    cache.retire("m", 2); // pinned: stays
    cache.retire("m", 9); // absent: nothing
    assert.equal(cache.has("m", 1), false);
    assert.equal(cache.get("m", 2), "m@2");
    assert.deepEqual(events, []);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, spareBytes: 100, spares: 1, entries: 1, pinnedEntries: 1 }, 1000));
    const { reservation, reused } = cache.reserveReusing(100);
    assert.equal(reused, "m@1");
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, reservedBytes: 100, entries: 1, pinnedEntries: 1, reuses: 1 }, 1000));
    reservation.release();
  });

  test("retire: an entry a reader holds drains, and becomes a spare only if released as no longer read", () => {
    const { cache } = withSpares(1000);
    put(cache, "m", 1, 100);
    put(cache, "m", 2, 100);
    const done = cache.acquire("m", 1);
    const stillRead = cache.acquire("m", 2);
    cache.retire("m", 1);
    cache.retire("m", 2);
    assert.deepEqual(cache.stats(), stats({ drainingBytes: 200 }, 1000));
    done?.release(false);
    stillRead?.release(true);
    assert.deepEqual(cache.stats(), stats({ spareBytes: 100, spares: 1 }, 1000));
    assert.equal(cache.reserveReusing(100).reused, "m@1");
    assert.equal(cache.reserveReusing(100).reused, undefined, "m@2's memory may still be read: never reused");
  });

  test("with room to spare, nothing is evicted and nothing reused; another size is never reused", () => {
    const { cache } = withSpares(1000);
    put(cache, "m", 1, 100);
    assert.equal(cache.reserveReusing(100).reused, undefined);
    const { cache: full } = withSpares(200);
    put(full, "m", 1, 100);
    put(full, "m", 2, 100);
    const other = full.reserveReusing(150);
    assert.equal(other.reused, undefined, "m@1 and m@2 are 100 bytes");
    assert.deepEqual(full.stats(), stats({ reservedBytes: 150, size: 2 }, 200), "spares of another size were dropped for room");
  });

  test("spares go first when room is needed: a live entry is not evicted while a spare can be dropped", () => {
    const { cache } = withSpares(300);
    put(cache, "m", 1, 100);
    put(cache, "m", 2, 100);
    put(cache, "m", 3, 100);
    cache.insert(cache.reserveReusing(100).reservation, "m", 4, "m@4"); // m@1 evicted and reused
    put(cache, "x", 1, 100); // evicts m@2: a 100-byte spare, dropped for this plain reserve
    assert.deepEqual(cache.stats(), stats({ entryBytes: 300, entries: 3, size: 2, reuses: 1 }, 300));
    assert.equal(cache.has("m", 3), true);
  });

  /** m@1 and m@2 of 100 bytes, m@1 leased and still the least recently used. */
  function olderEntryLeased(maxBytes: number): { cache: VersionCache<string>; lease: Lease<string> } {
    const { cache } = withSpares(maxBytes);
    put(cache, "m", 1, 100);
    put(cache, "m", 2, 100);
    const lease = cache.acquire("m", 1);
    assert.ok(lease !== undefined);
    cache.get("m", 2);
    return { cache, lease };
  }

  test("a value whose lease was released while it might still be read is never reused", () => {
    const { cache, lease } = olderEntryLeased(200);
    lease.release(true);
    assert.equal(cache.reserveReusing(100).reused, undefined);
    assert.deepEqual(cache.stats(), stats({ entryBytes: 100, reservedBytes: 100, entries: 1, size: 1 }, 200));
  });

  test("a leased value becomes a spare only when its last lease is released", () => {
    // Size eviction passes over leased entries; expiry does not.
    const { cache, clock } = harness({ maxBytes: 300, pruneCount: 1, expirationMs: 1000, spares: { maxAgeMs: 5000 } });
    put(cache, "m", 1, 100);
    const lease = cache.acquire("m", 1);
    assert.ok(lease !== undefined);
    clock.t += 1001;
    assert.equal(cache.get("m", 1), undefined); // expired: it leaves the index and drains
    const other = cache.reserve(150);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 150, drainingBytes: 100, expired: 1 }, 300));
    lease.release();
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 150, spareBytes: 100, spares: 1, expired: 1 }, 300));
    other.release();
    assert.equal(cache.reserveReusing(100).reused, "m@1", "a spare is used even when there is room");
  });

  test("deleted data is freed, not kept as a spare", () => {
    const { cache } = withSpares(300);
    put(cache, "m", 1, 100);
    put(cache, "n", 1, 100);
    cache.delete("m", 1);
    cache.deleteModel("n");
    assert.deepEqual(cache.stats(), stats({}, 300));
  });

  test("spares are forgotten after maxAgeMs, and by close()", () => {
    const { cache, clock } = withSpares(200, 2);
    put(cache, "m", 1, 100);
    put(cache, "m", 2, 100);
    cache.reserveReusing(100).reservation.release(); // evicts both, reuses m@2, m@1 stays a spare
    assert.equal(cache.stats().spareBytes, 100);
    clock.t += 1001;
    assert.equal(cache.reserveReusing(100).reused, undefined, "m@1's memory is too old to keep");
    assert.equal(cache.stats().spareBytes, 0);

    const other = withSpares(200, 2);
    put(other.cache, "m", 1, 100);
    put(other.cache, "m", 2, 100);
    other.cache.reserveReusing(100).reservation.release();
    other.cache.close();
    assert.equal(other.cache.stats().spareBytes, 0);
  });

  test("RESOURCE_EXHAUSTED counts spares as evictable", () => {
    const { cache } = withSpares(200, 2);
    put(cache, "m", 1, 100);
    put(cache, "m", 2, 100);
    const held = cache.reserveReusing(100); // m@1 and m@2 evicted; m@2 reused, m@1 a spare
    assert.equal(held.reused, "m@2");
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 100, spareBytes: 100, spares: 1, size: 2, reuses: 1 }, 200));
    assert.throws(
      () => cache.reserve(150),
      exhausted(`cannot reserve 150 bytes: ${BUDGET} is 200 bytes and 200 are used, of which only 100 can be evicted (100 reserved, 0 draining, 0 in entries being read)`),
    );
    const reserved = cache.reserve(100);
    assert.deepEqual(cache.stats(), stats({ reservedBytes: 200, size: 2, reuses: 1 }, 200), "the spare was dropped for room");
    reserved.release();
  });
});

/**
 * The safety property of spares, under random load: a value handed out by reserveReusing is never
 * one that is still cached, still leased, was deleted, or whose lease said it might still be read.
 */
function runRandomizedReuse(seed: number, steps: number): void {
  const random = mulberry32(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const clock = { t: 0 };
  const maxBytes = 1000;
  const cache = new VersionCache<string>({
    maxBytes,
    expirationMs: 400,
    pruneCount: 1 + int(3),
    sweepIntervalMs: 0,
    now: () => clock.t,
    spares: { maxAgeMs: 300 },
  });
  const sizes = [100, 150, 250];
  const leases: { lease: Lease<string>; value: string }[] = [];
  const reservations: { reservation: Reservation }[] = [];
  const neverReuse = new Set<string>();
  let values = 0;
  let reuses = 0;
  for (let step = 0; step < steps; step++) {
    const roll = int(100);
    const key = `m${int(3)}:${int(4)}`;
    const [modelId = "m0", version = "0"] = key.split(":");
    if (roll < 35) {
      try {
        const { reservation, reused } = cache.reserveReusing(sizes[int(sizes.length)] ?? 100);
        if (reused !== undefined) {
          reuses++;
          const where = `seed ${seed}, step ${step}: ${reused}`;
          for (let m = 0; m < 3; m++) {
            for (let v = 0; v < 4; v++) {
              assert.notEqual(cache.get(`m${m}`, v), reused, `${where} is still cached`);
            }
          }
          assert.ok(!leases.some((l) => l.value === reused), `${where} is still leased`);
          assert.ok(!neverReuse.has(reused), `${where} was deleted or may still be read`);
        }
        if (int(5) === 0) {
          reservation.release();
        } else {
          const value = `v${++values}`;
          cache.insert(reservation, modelId, Number(version), value, { pinned: int(6) === 0 });
        }
      } catch (error) {
        assert.ok(error instanceof RegistryError && error.code === Code.RESOURCE_EXHAUSTED, String(error));
      }
    } else if (roll < 50) {
      const lease = cache.acquire(modelId, Number(version));
      if (lease !== undefined) leases.push({ lease, value: lease.value });
    } else if (roll < 70) {
      const held = leases.splice(int(Math.max(1, leases.length)), 1)[0];
      if (held !== undefined) {
        const mayStillBeRead = int(3) === 0;
        if (mayStillBeRead) neverReuse.add(held.value);
        held.lease.release(mayStillBeRead);
      }
    } else if (roll < 78) {
      const value = cache.get(modelId, Number(version));
      if (value !== undefined) {
        neverReuse.add(value);
        cache.delete(modelId, Number(version));
      }
    } else if (roll < 85) {
      if (reservations.length > 2) {
        reservations.shift()?.reservation.release();
      }
      try {
        reservations.push({ reservation: cache.reserve(int(2) === 0 ? 50 : 120) });
      } catch (error) {
        assert.ok(error instanceof RegistryError && error.code === Code.RESOURCE_EXHAUSTED, String(error));
      }
    } else if (roll < 92) {
      reservations.splice(int(Math.max(1, reservations.length)), 1)[0]?.reservation.release();
    } else {
      clock.t += int(200);
    }
    const s = cache.stats();
    assert.ok(s.usedBytes <= maxBytes, `seed ${seed}, step ${step}: used ${s.usedBytes}`);
    assert.equal(s.usedBytes, s.entryBytes + s.reservedBytes + s.drainingBytes + s.spareBytes);
  }
  assert.ok(reuses > steps / 20, `seed ${seed}: only ${reuses} reuses: the test does not exercise reuse`);
}

describe("VersionCache randomized reuse", () => {
  for (const seed of [11, 12, 13]) {
    test(`20,000 random operations never reuse memory that is cached, leased, deleted or maybe still read (seed ${seed})`, () => {
      runRandomizedReuse(seed, 20_000);
    });
  }
});

describe("VersionCache randomized accounting", () => {
  const configs: [seed: number, maxBytes: number, expirationMs: number, pruneCount: number][] = [
    [1, 1000, 0, 1],
    [2, 1000, 500, 3],
    [3, 257, 100, 2],
    [4, 64, 50, 1],
  ];
  for (const [seed, maxBytes, expirationMs, pruneCount] of configs) {
    test(`20,000 random operations (seed ${seed}, max ${maxBytes}, expiration ${expirationMs}, prune ${pruneCount})`, () => {
      runRandomized(seed, maxBytes, expirationMs, pruneCount, 20_000);
    });
  }
});
