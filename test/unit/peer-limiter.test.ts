import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PeerLimiter, peerAddress, peerLimitKey } from "../../src/rpc/peer-limiter.js";

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

describe("peerLimitKey", () => {
  test("a global or unique-local IPv6 address counts as its /64, however it is written", () => {
    assert.equal(peerLimitKey("2001:db8:1:2::1"), "2001:db8:1:2::/64");
    assert.equal(peerLimitKey("2001:0db8:0001:0002:ffff:0:0:9"), "2001:db8:1:2::/64");
    assert.equal(peerLimitKey("2001:db8::1"), "2001:db8:0:0::/64");
    assert.equal(peerLimitKey("2001:db8:0:0:1::"), "2001:db8:0:0::/64");
    assert.equal(peerLimitKey("fd12:3456:789a:1::42"), "fd12:3456:789a:1::/64");
    assert.equal(peerLimitKey("64:ff9b::192.0.2.33"), "64:ff9b:0:0::/64");
    assert.equal(peerLimitKey("2001:DB8:A:B::1%eth0"), "2001:db8:a:b::/64");
  });

  test("another prefix length counts an IPv6 address as that prefix; 128 as the address alone", () => {
    assert.equal(peerLimitKey("2001:db8:1:2::1", 128), "2001:db8:1:2::1");
    assert.equal(peerLimitKey("2001:db8:1:2:3:4:5:6", 96), "2001:db8:1:2:3:4::/96");
    assert.equal(peerLimitKey("2001:db8:1:2:3:4:5:6", 72), "2001:db8:1:2:0::/72");
    assert.equal(peerLimitKey("2001:db8:1:2:3ff:4:5:6", 72), "2001:db8:1:2:300::/72");
    assert.equal(peerLimitKey("2001:db8:abcd:2::1", 36), "2001:db8:a000::/36");
    assert.equal(peerLimitKey("2001:db8:ffff::1", 48), "2001:db8:ffff::/48");
    assert.equal(peerLimitKey("2001:db8:1:2:3:4:5:1ff", 120), "2001:db8:1:2:3:4:5:100/120");
    assert.equal(peerLimitKey("fe80::1%eth0", 48), "fe80::1%eth0");
    assert.equal(peerLimitKey("203.0.113.7", 48), "203.0.113.7");
  });

  test("IPv4, loopback and link-local addresses count alone", () => {
    assert.equal(peerLimitKey("203.0.113.7"), "203.0.113.7");
    assert.equal(peerLimitKey("::1"), "::1");
    assert.equal(peerLimitKey("0:0:0:0:0:0:0:1"), "0:0:0:0:0:0:0:1");
    assert.equal(peerLimitKey("fe80::1%eth0"), "fe80::1%eth0");
    assert.equal(peerLimitKey("febf::2"), "febf::2");
    assert.equal(peerLimitKey("unknown"), "unknown");
  });

  test("two addresses of one /64 share one budget and one ban; another /64 has its own", () => {
    const { limiter } = limiterAt({ newStreamsPerSecond: 4 });
    const a = peerLimitKey("2001:db8:1:2::a");
    const b = peerLimitKey("2001:db8:1:2::b");
    const other = peerLimitKey("2001:db8:1:3::a");
    for (const key of [a, b, other]) {
      limiter.sessionOpened(key);
    }
    for (let i = 0; i < 2; i++) {
      assert.equal(limiter.streamOpened(a), undefined);
      assert.equal(limiter.streamOpened(b), undefined);
    }
    assert.deepEqual(limiter.streamOpened(b), { limit: "new_streams", perSecond: 4, newBan: true });
    assert.equal(limiter.admitsConnection(peerLimitKey("2001:db8:1:2::c")), false);
    assert.equal(limiter.streamOpened(other), undefined);
    assert.equal(limiter.admitsConnection(other), true);
  });
});
