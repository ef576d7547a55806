import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { Code, RegistryError } from "../../src/errors/index.js";
import { DEAD, DRAINING, Entry, LIVE } from "../../src/registry/cache-entry.js";
import { CacheLedger } from "../../src/registry/cache-ledger.js";
import { SpareValues } from "../../src/registry/spare-values.js";

interface Buckets {
  entry?: number;
  reserved?: number;
  draining?: number;
  spare?: number;
  leased?: number;
}

/** Asserts the buckets, and the invariants: used = their sum <= max, 0 <= leased <= entry. */
function account(ledger: CacheLedger<string>, expected: Buckets): void {
  const actual = {
    entry: ledger.entryBytes,
    reserved: ledger.reservedBytes,
    draining: ledger.drainingBytes,
    spare: ledger.spareBytes,
    leased: ledger.leasedEntryBytes,
  };
  assert.deepEqual(actual, {
    entry: expected.entry ?? 0,
    reserved: expected.reserved ?? 0,
    draining: expected.draining ?? 0,
    spare: expected.spare ?? 0,
    leased: expected.leased ?? 0,
  });
  assert.equal(ledger.usedBytes(), actual.entry + actual.reserved + actual.draining + actual.spare);
  assert.ok(ledger.usedBytes() <= ledger.maxBytes, `used ${ledger.usedBytes()} > max ${ledger.maxBytes}`);
  assert.ok(actual.leased >= 0 && actual.leased <= actual.entry, "0 <= leased <= entry");
}

function entry(name: string, bytes: number): Entry<string> {
  return new Entry("m", Number(name.slice(1)), name, bytes, 0, false, 0);
}

/** A ledger with spares on a fake clock; the spares' timer is cleared in t.after. */
function withSpares(maxBytes: number, after: (fn: () => void) => void): { ledger: CacheLedger<string>; spares: SpareValues<string> } {
  const spares = new SpareValues<string>({ maxAgeMs: 60_000, now: () => 0 });
  after(() => spares.clear());
  return { ledger: new CacheLedger(maxBytes, spares), spares };
}

describe("CacheLedger", () => {
  test("reserve counts reserved bytes; release returns them once; fits says what more fits", () => {
    const ledger = new CacheLedger<string>(100, undefined);
    account(ledger, {});
    const r1 = ledger.reserve(60);
    assert.equal(r1.bytes, 60);
    assert.equal(ledger.fits(40), true);
    assert.equal(ledger.fits(41), false);
    const r2 = ledger.reserve(40);
    account(ledger, { reserved: 100 });
    r1.release();
    r1.release(); // idempotent
    account(ledger, { reserved: 40 });
    r2.release();
    account(ledger, {});
  });

  test("reserve refuses to go over the budget, and changes nothing then", () => {
    const ledger = new CacheLedger<string>(100, undefined);
    ledger.reserve(70);
    assert.throws(() => ledger.reserve(31), {
      name: "Error",
      message: "internal: a reservation of 31 bytes would exceed the version cache budget",
    });
    account(ledger, { reserved: 70 });
  });

  test("consume ends a reservation once: released, consumed or foreign ones are refused", () => {
    const ledger = new CacheLedger<string>(100, undefined);
    const other = new CacheLedger<string>(100, undefined);
    const refused = { name: "Error", message: "insert needs an active reservation of this version cache (released, inserted or foreign)" };
    const reservation = ledger.reserve(30);
    assert.throws(() => other.consume(reservation), refused);
    assert.throws(() => ledger.consume({ bytes: 30, release: () => undefined }), refused);
    account(ledger, { reserved: 30 });
    assert.equal(ledger.consume(reservation), 30);
    account(ledger, {});
    assert.throws(() => ledger.consume(reservation), refused);
    reservation.release(); // a no-op once consumed
    account(ledger, {});
    const released = ledger.reserve(10);
    released.release();
    assert.throws(() => ledger.consume(released), refused);
    account(ledger, {});
  });

  test("an entry's bytes: reserved → entry → freed when removed unleased (no spares)", () => {
    const ledger = new CacheLedger<string>(100, undefined);
    const e1 = entry("v1", 40);
    ledger.consume(ledger.reserve(40));
    ledger.entryAdded(e1);
    account(ledger, { entry: 40 });
    ledger.entryRemoved(e1);
    assert.equal(e1.state, DEAD);
    account(ledger, {});
  });

  test("leases: the first counts the entry as leased, the last releases it; release is idempotent", () => {
    const ledger = new CacheLedger<string>(100, undefined);
    const e1 = entry("v1", 40);
    ledger.consume(ledger.reserve(40));
    ledger.entryAdded(e1);
    const l1 = ledger.lease(e1);
    const l2 = ledger.lease(e1);
    assert.equal(l1.value, "v1");
    assert.equal(e1.leases, 2);
    account(ledger, { entry: 40, leased: 40 });
    l1.release();
    l1.release(); // idempotent: e1 is still held by l2
    assert.equal(e1.leases, 1);
    account(ledger, { entry: 40, leased: 40 });
    l2.release();
    assert.equal(e1.leases, 0);
    assert.equal(e1.state, LIVE);
    account(ledger, { entry: 40 });
  });

  test("drain: an entry removed under lease stays counted until its last lease is released", () => {
    const ledger = new CacheLedger<string>(100, undefined);
    const e1 = entry("v1", 40);
    ledger.consume(ledger.reserve(40));
    ledger.entryAdded(e1);
    const l1 = ledger.lease(e1);
    const l2 = ledger.lease(e1);
    ledger.entryRemoved(e1);
    assert.equal(e1.state, DRAINING);
    account(ledger, { draining: 40 });
    assert.equal(ledger.couldFit(60), true);
    assert.equal(ledger.couldFit(61), false, "draining bytes cannot be freed by evicting");
    l1.release();
    account(ledger, { draining: 40 });
    l2.release();
    assert.equal(e1.state, DEAD);
    account(ledger, {});
    l2.release();
    account(ledger, {});
  });

  test("with spares: a dead reusable entry's bytes become spare bytes; mayStillBeRead frees them instead", (t) => {
    const { ledger, spares } = withSpares(100, (fn) => t.after(fn));
    const e1 = entry("v1", 30);
    const e2 = entry("v2", 20);
    const e3 = entry("v3", 10);
    for (const e of [e1, e2, e3]) {
      ledger.consume(ledger.reserve(e.bytes));
      ledger.entryAdded(e);
    }
    account(ledger, { entry: 60 });

    ledger.entryRemoved(e1); // unleased: straight to spares
    account(ledger, { entry: 30, spare: 30 });

    const lease2 = ledger.lease(e2);
    ledger.entryRemoved(e2);
    account(ledger, { entry: 10, draining: 20, spare: 30 });
    lease2.release(); // last lease of a drained entry: a spare
    account(ledger, { entry: 10, spare: 50 });

    const lease3 = ledger.lease(e3);
    ledger.entryRemoved(e3);
    lease3.release(true); // its memory may still be read: never reused
    assert.equal(e3.reusable, false);
    account(ledger, { spare: 50 });
    assert.equal(spares.count, 2);
    assert.equal(spares.take(10), undefined);

    // A spare taken for a reservation moves from spare to reserved: used does not change.
    assert.equal(spares.take(30), "v1");
    ledger.reserve(30);
    account(ledger, { reserved: 30, spare: 20 });
  });

  test("an entry marked not reusable (deleted) is freed, not kept as a spare", (t) => {
    const { ledger, spares } = withSpares(100, (fn) => t.after(fn));
    const e1 = entry("v1", 30);
    ledger.consume(ledger.reserve(30));
    ledger.entryAdded(e1);
    e1.reusable = false;
    ledger.entryRemoved(e1);
    account(ledger, {});
    assert.equal(spares.count, 0);
  });

  test("couldFit counts entries and spares as evictable, reserved, draining and leased bytes as not", (t) => {
    const { ledger } = withSpares(100, (fn) => t.after(fn));
    const e1 = entry("v1", 20);
    const e2 = entry("v2", 20);
    for (const e of [e1, e2]) {
      ledger.consume(ledger.reserve(e.bytes));
      ledger.entryAdded(e);
    }
    ledger.entryRemoved(e2); // a 20-byte spare
    ledger.reserve(10);
    ledger.lease(e1);
    account(ledger, { entry: 20, leased: 20, reserved: 10, spare: 20 });
    assert.equal(ledger.fits(50), true);
    assert.equal(ledger.fits(51), false);
    assert.equal(ledger.couldFit(70), true);
    assert.equal(ledger.couldFit(71), false);

    const err = ledger.exhausted(71);
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
    assert.equal(
      err.message,
      "cannot reserve 71 bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is 100 bytes " +
        "and 50 are used, of which only 20 can be evicted (10 reserved, 0 draining, 20 in entries being read)",
    );
  });
});
