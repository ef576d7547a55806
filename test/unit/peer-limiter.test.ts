import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PeerLimiter, peerAddress } from "../../src/rpc/peer-limiter.js";

function limiterAt(limits: Partial<ConstructorParameters<typeof PeerLimiter>[0]> = {}): { limiter: PeerLimiter; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const limiter = new PeerLimiter(
    { newStreamsPerSecond: 10, cancelledStreamsPerSecond: 5, banMs: 30_000, maxPeers: 100, ...limits },
    () => clock.now,
  );
  return { limiter, clock };
}

describe("PeerLimiter", () => {
  test("a burst of one second's worth passes; the next stream breaks the limit and bans the address once", () => {
    const { limiter, clock } = limiterAt();
    limiter.sessionOpened("10.0.0.1");
    for (let i = 0; i < 10; i++) assert.equal(limiter.streamOpened("10.0.0.1"), undefined, `stream ${i}`);
    assert.deepEqual(limiter.streamOpened("10.0.0.1"), { limit: "new_streams", perSecond: 10, newBan: true });
    assert.deepEqual(limiter.streamOpened("10.0.0.1"), { limit: "new_streams", perSecond: 10, newBan: false });
    assert.equal(limiter.admitsConnection("10.0.0.1"), false);
    assert.equal(limiter.admitsConnection("10.0.0.2"), true, "another address");
    clock.now += 29_999;
    assert.equal(limiter.admitsConnection("10.0.0.1"), false);
    clock.now += 1;
    assert.equal(limiter.admitsConnection("10.0.0.1"), true, "the ban is over");
    assert.equal(limiter.streamOpened("10.0.0.1"), undefined, "the bucket refilled");
  });

  test("streams at the sustained rate never break it; the connections of one address share the budget", () => {
    const { limiter, clock } = limiterAt();
    limiter.sessionOpened("10.0.0.1");
    limiter.sessionOpened("10.0.0.1");
    for (let i = 0; i < 1000; i++) {
      clock.now += 100;
      assert.equal(limiter.streamOpened("10.0.0.1"), undefined);
    }
    for (let i = 0; i < 5; i++) assert.equal(limiter.streamCancelled("10.0.0.1"), undefined);
    assert.equal(limiter.streamCancelled("10.0.0.1")?.limit, "cancelled_streams");
  });

  test("0 is no limit", () => {
    const { limiter } = limiterAt({ newStreamsPerSecond: 0, cancelledStreamsPerSecond: 0 });
    limiter.sessionOpened("10.0.0.1");
    for (let i = 0; i < 10_000; i++) {
      assert.equal(limiter.streamOpened("10.0.0.1"), undefined);
      assert.equal(limiter.streamCancelled("10.0.0.1"), undefined);
    }
  });

  test("an address is remembered across reconnections until its buckets are full again", () => {
    const { limiter, clock } = limiterAt();
    limiter.sessionOpened("10.0.0.1");
    for (let i = 0; i < 5; i++) limiter.streamCancelled("10.0.0.1");
    limiter.sessionClosed("10.0.0.1");
    assert.equal(limiter.size, 1, "kept: its cancel budget is spent");
    limiter.sessionOpened("10.0.0.1");
    assert.equal(limiter.streamCancelled("10.0.0.1")?.newBan, true, "reconnecting does not refill the budget");
    limiter.sessionClosed("10.0.0.1");
    clock.now += 30_000 + 1000;
    limiter.sessionOpened("10.0.0.2"); // sweeps
    assert.equal(limiter.size, 1, "the first address is forgotten once its ban ended and its buckets refilled");
    limiter.sessionClosed("10.0.0.2");
    assert.equal(limiter.size, 0, "an address with full buckets is forgotten at its last close");
  });

  test("the table is bounded: past maxPeers the oldest addresses without a connection go, bans included", () => {
    const { limiter } = limiterAt({ maxPeers: 3 });
    limiter.sessionOpened("10.0.0.1"); // stays connected
    for (const peer of ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]) {
      limiter.sessionOpened(peer);
      for (let i = 0; i < 6; i++) limiter.streamCancelled(peer); // banned
      limiter.sessionClosed(peer);
    }
    assert.equal(limiter.size, 3);
    assert.equal(limiter.admitsConnection("10.0.0.2"), true, "the oldest ban was dropped");
    assert.equal(limiter.admitsConnection("10.0.0.3"), true);
    assert.equal(limiter.admitsConnection("10.0.0.4"), false);
    assert.equal(limiter.admitsConnection("10.0.0.5"), false);
    assert.equal(limiter.streamOpened("10.0.0.1"), undefined, "the connected address is still tracked");
  });
});

describe("peerAddress", () => {
  test("IPv4-mapped IPv6 addresses are plain IPv4; others are kept", () => {
    assert.equal(peerAddress("::ffff:127.0.0.2"), "127.0.0.2");
    assert.equal(peerAddress("127.0.0.2"), "127.0.0.2");
    assert.equal(peerAddress("::1"), "::1");
    assert.equal(peerAddress("2001:db8::1"), "2001:db8::1");
    assert.equal(peerAddress(undefined), "unknown");
  });
});
