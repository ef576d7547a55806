/**
 * Per-peer-address limits on HTTP/2 streams: a token bucket of new streams and one of cancelled
 * streams per address, shared by all the connections of that address (an IPv6 address counts as its
 * /64, see peerLimitKey). A peer over either limit is
 * banned for a while: its connections are refused and any stream it still opens closes the
 * connection. Pure bookkeeping (the clock is passed in); connection-guard.ts does the I/O.
 *
 * The table is bounded: an address is forgotten once it has no connection, no ban and full buckets
 * (forgetting it then changes nothing), and past `maxPeers` the addresses without a connection are
 * forgotten oldest first, bans included (an attacker with that many addresses gets early releases,
 * not more memory).
 */
import { isIPv6 } from "node:net";
import { TokenBucket } from "./token-bucket.js";

export type PeerLimitName = "new_streams" | "cancelled_streams";

export interface PeerLimits {
  /** New streams one address may open per second, in bursts up to that many; 0: no limit. */
  readonly newStreamsPerSecond: number;
  /** Streams one address may reset (cancel) per second, in bursts up to that many; 0: no limit. */
  readonly cancelledStreamsPerSecond: number;
  /** How long an address over a limit is refused. */
  readonly banMs: number;
  /** Most addresses remembered at once (those with an open connection are never forgotten). */
  readonly maxPeers: number;
}

/** A stream that broke a limit: the caller closes its connection. */
export interface LimitExceeded {
  readonly limit: PeerLimitName;
  readonly perSecond: number;
  /** False when the address was banned already (log and count the ban once). */
  readonly newBan: boolean;
}

class PeerState {
  sessions = 0;
  bannedUntilMs = 0;
  readonly newStreams: TokenBucket | undefined;
  readonly cancelledStreams: TokenBucket | undefined;

  constructor(limits: PeerLimits, nowMs: number) {
    this.newStreams = limits.newStreamsPerSecond > 0 ? new TokenBucket(limits.newStreamsPerSecond, nowMs) : undefined;
    this.cancelledStreams = limits.cancelledStreamsPerSecond > 0 ? new TokenBucket(limits.cancelledStreamsPerSecond, nowMs) : undefined;
  }

  forgettable(nowMs: number): boolean {
    return (
      this.sessions === 0 &&
      this.bannedUntilMs <= nowMs &&
      (this.newStreams?.isFull(nowMs) ?? true) &&
      (this.cancelledStreams?.isFull(nowMs) ?? true)
    );
  }
}

const SWEEP_INTERVAL_MS = 1000;

export class PeerLimiter {
  readonly limits: PeerLimits;
  readonly #now: () => number;
  /** In order of last connection or ban, oldest first. */
  readonly #peers = new Map<string, PeerState>();
  #lastSweepMs = 0;

  constructor(limits: PeerLimits, now: () => number = Date.now) {
    this.limits = limits;
    this.#now = now;
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#peers.size;
  }

  /** Whether a new connection from `peer` is accepted (false while it is banned). */
  admitsConnection(peer: string): boolean {
    const state = this.#peers.get(peer);
    return state === undefined || state.bannedUntilMs <= this.#now();
  }

  sessionOpened(peer: string): void {
    const nowMs = this.#now();
    let state = this.#peers.get(peer);
    if (state === undefined) {
      this.#sweep(nowMs);
      state = new PeerState(this.limits, nowMs);
    } else {
      this.#peers.delete(peer);
    }
    this.#peers.set(peer, state);
    state.sessions++;
    this.#bound();
  }

  sessionClosed(peer: string): void {
    const state = this.#peers.get(peer);
    if (state !== undefined && state.sessions > 0) {
      state.sessions--;
      if (state.forgettable(this.#now())) {
        this.#peers.delete(peer);
      }
    }
  }

  /** Counts a stream `peer` opened; says which limit it broke, if any. */
  streamOpened(peer: string): LimitExceeded | undefined {
    return this.#take(peer, "new_streams");
  }

  /** Counts a stream `peer` reset; says which limit it broke, if any. */
  streamCancelled(peer: string): LimitExceeded | undefined {
    return this.#take(peer, "cancelled_streams");
  }

  #take(peer: string, limit: PeerLimitName): LimitExceeded | undefined {
    const state = this.#peers.get(peer);
    if (state === undefined) {
      return undefined; // not a tracked connection
    }
    const nowMs = this.#now();
    const bucket = limit === "new_streams" ? state.newStreams : state.cancelledStreams;
    if (state.bannedUntilMs > nowMs) {
      return { limit, perSecond: bucket?.ratePerSecond ?? 0, newBan: false };
    }
    if (bucket === undefined || bucket.take(nowMs)) {
      return undefined;
    }
    state.bannedUntilMs = nowMs + this.limits.banMs;
    this.#peers.delete(peer);
    this.#peers.set(peer, state);
    return { limit, perSecond: bucket.ratePerSecond, newBan: true };
  }

  /** Forgets the addresses whose state is the default again (at most once a second). */
  #sweep(nowMs: number): void {
    if (nowMs - this.#lastSweepMs < SWEEP_INTERVAL_MS) {
      return;
    }
    this.#lastSweepMs = nowMs;
    for (const [peer, state] of this.#peers) {
      if (state.forgettable(nowMs)) {
        this.#peers.delete(peer);
      }
    }
  }

  /** Past maxPeers, forgets the oldest addresses that have no connection. */
  #bound(): void {
    if (this.#peers.size <= this.limits.maxPeers) {
      return;
    }
    for (const [peer, state] of this.#peers) {
      if (this.#peers.size <= this.limits.maxPeers) {
        return;
      }
      if (state.sessions === 0) {
        this.#peers.delete(peer);
      }
    }
  }
}

/** The address a limit applies to: an IPv4 peer of a dual-stack socket ("::ffff:10.0.0.1") as plain IPv4. */
export function peerAddress(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) {
    return "unknown";
  }
  return remoteAddress.startsWith("::ffff:") && remoteAddress.includes(".") ? remoteAddress.slice(7) : remoteAddress;
}

/** The IPv6 prefix a client counts as by default: a host is normally given a whole /64. */
export const DEFAULT_IPV6_PREFIX_BITS = 64;

/**
 * What the limits count an address as. An IPv6 host is normally given a whole /64 and can pick a new
 * address in it for every connection, so a global or unique-local IPv6 address counts as its prefix
 * of `ipv6PrefixBits` (64: "2001:db8:1:2::/64"; 128: the address alone, for pod networks that put
 * many clients in one /64); loopback and link-local addresses (fe80::/10, where every neighbour
 * shares one prefix) count alone, as IPv4 addresses do.
 */
export function peerLimitKey(address: string, ipv6PrefixBits = DEFAULT_IPV6_PREFIX_BITS): string {
  const zoneless = address.split("%", 1)[0] ?? address;
  if (ipv6PrefixBits >= 128 || !isIPv6(zoneless)) {
    return address;
  }
  const groups = ipv6Groups(zoneless);
  const first = groups[0] ?? 0;
  const isLoopback = groups.slice(0, 7).every((group) => group === 0) && groups[7] === 1;
  if (isLoopback || (first & 0xffc0) === 0xfe80) {
    return address;
  }
  const keptGroups = Math.ceil(ipv6PrefixBits / 16);
  const kept = groups.slice(0, keptGroups).map((group, index) => {
    const bitsInGroup = Math.min(16, ipv6PrefixBits - index * 16);
    return group & ((0xffff << (16 - bitsInGroup)) & 0xffff);
  });
  return `${kept.map((group) => group.toString(16)).join(":")}${keptGroups < 8 ? "::" : ""}/${ipv6PrefixBits}`;
}

/** The eight 16-bit groups of a valid IPv6 address (an embedded IPv4 tail is two groups). */
function ipv6Groups(address: string): number[] {
  const parse = (part: string): number[] => {
    if (part === "") {
      return [];
    }
    return part.split(":").flatMap((group) => {
      if (group.includes(".")) {
        const [a = 0, b = 0, c = 0, d = 0] = group.split(".").map(Number);
        return [(a << 8) | b, (c << 8) | d];
      }
      return [parseInt(group, 16)];
    });
  };
  const gap = address.indexOf("::");
  if (gap < 0) {
    return parse(address);
  }
  const head = parse(address.slice(0, gap));
  const tail = parse(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}
