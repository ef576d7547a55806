/**
 * The version cache: the ONE shared byte account for all version data the registry holds in memory.
 *
 * Every byte of version data in memory is counted here in exactly one of four buckets:
 *
 * - `entryBytes`: data of the cached versions (the entries of the index);
 * - `reservedBytes`: room taken with {@link VersionCache.reserve} by work in progress (an upload being
 *   assembled, a version being loaded from storage) that has not become an entry yet;
 * - `drainingBytes`: data of entries that left the index (evicted, expired, deleted or replaced) while
 *   a reader still held a {@link Lease} on them; the memory stays alive until the last lease is
 *   released, so it stays counted;
 * - `spareBytes` (only with the `spares` option): values of entries that are gone, kept for reuse by
 *   {@link VersionCache.reserveReusing}; the first thing dropped when room is needed.
 *
 * Invariant, at every moment: `usedBytes = entryBytes + reservedBytes + drainingBytes + spareBytes <= maxBytes`.
 * The only ways to add bytes are `reserve()` and `reserveReusing()`, which drop spares, then evict (LRU,
 * passing over entries under lease; unpinned entries first, by batches of `pruneCount`; pinned ones,
 * each model's latest, one at a time) until the request fits or throw RESOURCE_EXHAUSTED;
 * `insert()` only turns reserved bytes into entry bytes, and eviction/deletion only moves entry bytes to
 * draining, to spares or frees them.
 *
 * Complexity: get/acquire/has/insert/delete/release are O(1) (two Map lookups and intrusive doubly
 * linked list moves); eviction is O(1) per evicted entry plus the leased entries it passes over (few:
 * acquiring an entry makes it the most recently used); `sweepExpired` walks entries in insertion
 * order and stops at the first one that is too young (O(expired + old pinned)); `setPinned` re-files
 * the entry in the other LRU list at its recency position, scanning from the most recently used end
 * (O(entries of that list used more recently than it)), which is rare (once per new latest version).
 *
 * Single-threaded (the Node event loop); `onEvict` is called synchronously, after the structural
 * change it reports is complete. It may call back into the cache; it should not throw (if it does, the
 * error propagates from the call that triggered the eviction, the account stays consistent, and the
 * remaining notifications of that batch are dropped).
 */
import { performance } from "node:perf_hooks";

import { resourceExhausted } from "../errors/index.js";
import { SpareValues } from "./spare-values.js";

export type EvictionReason = "size" | "expired";

/**
 * Memory a cached version costs besides its encoded bytes, charged to the budget with each one so
 * that eviction bounds memory for tiny versions too (20,000 versions of 16 bytes would otherwise
 * count 16 bytes each). Measured with bench/version-overhead.ts (node --expose-gc, 50,000 versions
 * of 16 bytes, each read once, Node 24): about 616 bytes of JS heap per version (its VersionRecord,
 * cache entry and index slots, its SharedArrayBuffer and Buffer objects) and about 255 bytes outside
 * it (malloc: the 23 encoded bytes and V8's backing-store bookkeeping): ~850, rounded up.
 */
export const VERSION_OVERHEAD_BYTES = 896;

export interface VersionCacheOptions {
  /** The budget, in bytes: `usedBytes` never exceeds it. */
  maxBytes: number;
  /** Unpinned entries older than this (since insertion, strictly) are gone; 0 = never expire. */
  expirationMs: number;
  /** Evict this many LRU entries at a time when space is needed (>= 1). */
  pruneCount: number;
  /** Monotonic clock in ms; default `performance.now()`. */
  now?: () => number;
  /**
   * Background expiry sweep period; default clamp(expirationMs / 10, 50, 30000). No timer when
   * `expirationMs` is 0 (nothing can expire) or when this is explicitly 0 (expiry stays lazy). The timer
   * is unref'd: it never keeps the process alive.
   */
  sweepIntervalMs?: number;
  /** Called synchronously when an entry leaves because of size pressure or expiry (not delete/replace). */
  onEvict?: (modelId: string, versionNumber: number, reason: EvictionReason) => void;
  /**
   * Keep the values of entries that are gone (and no longer read) as spares for reserveReusing,
   * within the budget, for at most `maxAgeMs` each. Off when absent.
   */
  spares?: { readonly maxAgeMs: number };
  /**
   * Bytes added to every reservation (so to every entry) for the memory a version costs besides its
   * data (see VERSION_OVERHEAD_BYTES); default 0. Reservation.bytes includes it.
   */
  entryOverheadBytes?: number;
}

/** Bytes counted against the budget for work in progress. */
export interface Reservation {
  readonly bytes: number;
  /** Returns the bytes to the budget; idempotent; a no-op once the reservation was inserted. */
  release(): void;
}

/** A reader's hold on a cached value: its bytes stay counted until released. */
export interface Lease<V> {
  readonly value: V;
  /**
   * Idempotent. `mayStillBeRead`: something the cache does not see (a socket write not yet confirmed)
   * may still read the value's memory; the value is then never reused as a spare.
   */
  release(mayStillBeRead?: boolean): void;
}

export interface VersionCacheStats {
  readonly maxBytes: number;
  /** entryBytes + reservedBytes + drainingBytes. */
  readonly usedBytes: number;
  readonly entryBytes: number;
  readonly reservedBytes: number;
  readonly drainingBytes: number;
  /** Values of gone entries kept for reuse (see the `spares` option). */
  readonly spareBytes: number;
  readonly spares: number;
  /** Reservations served with a spare instead of new memory, since creation. */
  readonly reuses: number;
  readonly entries: number;
  readonly pinnedEntries: number;
  readonly evictions: { readonly size: number; readonly expired: number };
}

const LIVE = 0;
const DRAINING = 1;
const DEAD = 2;
type EntryState = typeof LIVE | typeof DRAINING | typeof DEAD;

const MIN_SWEEP_INTERVAL_MS = 50;
const MAX_SWEEP_INTERVAL_MS = 30_000;

class Entry<V> {
  readonly modelId: string;
  readonly versionNumber: number;
  readonly value: V;
  readonly bytes: number;
  readonly insertedAt: number;
  pinned: boolean;
  /** Recency stamp: larger = used more recently. */
  tick: number;
  leases: number;
  /** False once a lease was released while its memory might still be read (never reuse it). */
  reusable: boolean;
  state: EntryState;
  /** LRU list links (the pinned or the unpinned list); prev = less recently used. */
  prev: Entry<V> | null;
  next: Entry<V> | null;
  /** Insertion-order list links (all live entries), for the expiry sweep. */
  insPrev: Entry<V> | null;
  insNext: Entry<V> | null;

  constructor(
    modelId: string,
    versionNumber: number,
    value: V,
    bytes: number,
    insertedAt: number,
    pinned: boolean,
    tick: number,
  ) {
    this.modelId = modelId;
    this.versionNumber = versionNumber;
    this.value = value;
    this.bytes = bytes;
    this.insertedAt = insertedAt;
    this.pinned = pinned;
    this.tick = tick;
    this.leases = 0;
    this.reusable = true;
    this.state = LIVE;
    this.prev = null;
    this.next = null;
    this.insPrev = null;
    this.insNext = null;
  }
}

/** `from`, or the first entry after it in its LRU list, that no reader holds; null if none. */
function firstUnleased<V>(from: Entry<V> | null): Entry<V> | null {
  let entry = from;
  while (entry !== null && entry.leases > 0) {
    entry = entry.next;
  }
  return entry;
}

/** Intrusive doubly linked list through Entry.prev/next; head = least recently used. */
class LruList<V> {
  head: Entry<V> | null = null;
  tail: Entry<V> | null = null;

  append(entry: Entry<V>): void {
    entry.next = null;
    entry.prev = this.tail;
    if (this.tail === null) {
      this.head = entry;
    } else {
      this.tail.next = entry;
    }
    this.tail = entry;
  }

  remove(entry: Entry<V>): void {
    if (entry.prev === null) {
      this.head = entry.next;
    } else {
      entry.prev.next = entry.next;
    }
    if (entry.next === null) {
      this.tail = entry.prev;
    } else {
      entry.next.prev = entry.prev;
    }
    entry.prev = null;
    entry.next = null;
  }

  moveToBack(entry: Entry<V>): void {
    if (this.tail !== entry) {
      this.remove(entry);
      this.append(entry);
    }
  }

  /** Inserts keeping the list sorted by tick (scans from the most recently used end). */
  insertByTick(entry: Entry<V>): void {
    let after = this.tail;
    while (after !== null && after.tick > entry.tick) {
      after = after.prev;
    }
    if (after === null) {
      entry.prev = null;
      entry.next = this.head;
      if (this.head === null) {
        this.tail = entry;
      } else {
        this.head.prev = entry;
      }
      this.head = entry;
    } else {
      entry.prev = after;
      entry.next = after.next;
      if (after.next === null) {
        this.tail = entry;
      } else {
        after.next.prev = entry;
      }
      after.next = entry;
    }
  }
}

/** The byte counters, shared with the reservations and leases handed out. */
class Ledger {
  readonly maxBytes: number;
  entryBytes: number;
  reservedBytes: number;
  drainingBytes: number;
  spareBytes: number;
  /** The part of entryBytes whose entries are under lease (evicting them would not free anything). */
  leasedEntryBytes: number;
  /** Called when an entry's bytes stop being counted as entry or draining bytes. */
  readonly retire: (entry: Entry<never>) => void;

  constructor(maxBytes: number, retire: (entry: Entry<never>) => void) {
    this.maxBytes = maxBytes;
    this.entryBytes = 0;
    this.reservedBytes = 0;
    this.drainingBytes = 0;
    this.spareBytes = 0;
    this.leasedEntryBytes = 0;
    this.retire = retire;
  }

  usedBytes(): number {
    return this.entryBytes + this.reservedBytes + this.drainingBytes + this.spareBytes;
  }

  leaseReleased(entry: Entry<never>, mayStillBeRead: boolean): void {
    entry.leases -= 1;
    if (mayStillBeRead) {
      entry.reusable = false;
    }
    if (entry.leases === 0) {
      if (entry.state === LIVE) {
        this.leasedEntryBytes -= entry.bytes;
      } else if (entry.state === DRAINING) {
        this.drainingBytes -= entry.bytes;
        entry.state = DEAD;
        this.retire(entry);
      }
    }
  }
}

class CacheReservation implements Reservation {
  readonly bytes: number;
  /** null once released or consumed by insert. */
  ledger: Ledger | null;

  constructor(ledger: Ledger, bytes: number) {
    this.bytes = bytes;
    this.ledger = ledger;
  }

  release(): void {
    const ledger = this.ledger;
    if (ledger !== null) {
      this.ledger = null;
      ledger.reservedBytes -= this.bytes;
    }
  }
}

class CacheLease<V> implements Lease<V> {
  readonly value: V;
  private entry: Entry<V> | null;
  private readonly ledger: Ledger;

  constructor(ledger: Ledger, entry: Entry<V>) {
    this.value = entry.value;
    this.entry = entry;
    this.ledger = ledger;
  }

  release(mayStillBeRead = false): void {
    const entry = this.entry;
    if (entry !== null) {
      this.entry = null;
      this.ledger.leaseReleased(entry as Entry<never>, mayStillBeRead);
    }
  }
}

function checkBytes(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
}

export class VersionCache<V> {
  readonly #ledger: Ledger;
  readonly #expirationMs: number;
  readonly #pruneCount: number;
  readonly #now: () => number;
  readonly #onEvict: ((modelId: string, versionNumber: number, reason: EvictionReason) => void) | undefined;
  readonly #index: Map<string, Map<number, Entry<V>>>;
  readonly #unpinned: LruList<V>;
  readonly #pinned: LruList<V>;
  #insHead: Entry<V> | null;
  #insTail: Entry<V> | null;
  #entries: number;
  #pinnedEntries: number;
  #tick: number;
  #sizeEvictions: number;
  #expiredEvictions: number;
  /** Evicted entries whose onEvict notification is pending (parallel arrays). */
  readonly #pendingEntries: Entry<V>[];
  readonly #pendingReasons: EvictionReason[];
  #notifying: boolean;
  #timer: NodeJS.Timeout | undefined;
  readonly #spares: SpareValues<V> | undefined;
  readonly #spareMaxAgeMs: number;
  #spareTimer: NodeJS.Timeout | undefined;
  #reuses: number;
  readonly #overhead: number;

  constructor(options: VersionCacheOptions) {
    checkBytes(options.maxBytes, "maxBytes");
    if (!Number.isFinite(options.expirationMs) || options.expirationMs < 0) {
      throw new RangeError(`expirationMs must be a non-negative finite number, got ${String(options.expirationMs)}`);
    }
    if (!Number.isSafeInteger(options.pruneCount) || options.pruneCount < 1) {
      throw new RangeError(`pruneCount must be a positive integer, got ${String(options.pruneCount)}`);
    }
    const sweep = options.sweepIntervalMs;
    if (sweep !== undefined && (!Number.isFinite(sweep) || sweep < 0)) {
      throw new RangeError(`sweepIntervalMs must be a non-negative finite number, got ${String(sweep)}`);
    }
    const spareMaxAge = options.spares?.maxAgeMs;
    if (spareMaxAge !== undefined && (!Number.isFinite(spareMaxAge) || spareMaxAge <= 0)) {
      throw new RangeError(`spares.maxAgeMs must be a positive finite number, got ${String(spareMaxAge)}`);
    }
    const overhead = options.entryOverheadBytes ?? 0;
    checkBytes(overhead, "entryOverheadBytes");
    this.#overhead = overhead;
    this.#ledger = new Ledger(options.maxBytes, (entry) => this.#retire(entry as Entry<V>));
    this.#spares = spareMaxAge === undefined ? undefined : new SpareValues<V>();
    this.#spareMaxAgeMs = spareMaxAge ?? 0;
    this.#spareTimer = undefined;
    this.#reuses = 0;
    this.#expirationMs = options.expirationMs;
    this.#pruneCount = options.pruneCount;
    this.#now = options.now ?? performance.now.bind(performance);
    this.#onEvict = options.onEvict;
    this.#index = new Map();
    this.#unpinned = new LruList();
    this.#pinned = new LruList();
    this.#insHead = null;
    this.#insTail = null;
    this.#entries = 0;
    this.#pinnedEntries = 0;
    this.#tick = 0;
    this.#sizeEvictions = 0;
    this.#expiredEvictions = 0;
    this.#pendingEntries = [];
    this.#pendingReasons = [];
    this.#notifying = false;
    this.#timer = undefined;

    if (options.expirationMs > 0) {
      const interval =
        sweep ?? Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(MIN_SWEEP_INTERVAL_MS, options.expirationMs / 10));
      if (interval > 0) {
        this.#timer = setInterval(() => {
          this.sweepExpired();
        }, interval);
        this.#timer.unref();
      }
    }
  }

  /**
   * Counts `dataBytes` plus the entry overhead (`bytes` below) against the budget now, evicting if needed: first expired entries, then batches of
   * `pruneCount` least recently used unpinned entries, then (when no unpinned entry is left) batches of
   * pinned entries, until the request fits.
   *
   * Throws RESOURCE_EXHAUSTED when `bytes > maxBytes`, or when even evicting every entry could not make
   * room (the rest is reservations, draining bytes and entries under lease). That is decided BEFORE
   * evicting anything: a failed reserve leaves the account and the entries exactly as they were (the
   * one exception: an onEvict callback that itself reserves or acquires during this reserve's evictions
   * can make it fail afterwards; the evictions already done then stay done).
   * Throws RangeError when `bytes` is not a non-negative safe integer.
   */
  reserve(dataBytes: number): Reservation {
    checkBytes(dataBytes, "bytes");
    const bytes = dataBytes + this.#overhead;
    const ledger = this.#ledger;
    if (bytes > ledger.maxBytes) {
      throw resourceExhausted(
        `cannot hold ${bytes} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is ${ledger.maxBytes} bytes`,
      );
    }
    if (ledger.usedBytes() + bytes > ledger.maxBytes) {
      this.#makeRoom(bytes);
    }
    ledger.reservedBytes += bytes;
    return new CacheReservation(ledger, bytes);
  }

  /**
   * Like reserve, and hands over a spare value of exactly `bytes` when there is one (before or after
   * the evictions that make room), so that the caller can reuse its memory instead of allocating.
   * The spare's bytes become the reservation's: the account does not change.
   */
  reserveReusing(dataBytes: number): { readonly reservation: Reservation; readonly reused: V | undefined } {
    checkBytes(dataBytes, "bytes");
    const spares = this.#spares;
    const ledger = this.#ledger;
    if (spares === undefined) {
      return { reservation: this.reserve(dataBytes), reused: undefined };
    }
    const bytes = dataBytes + this.#overhead;
    this.#dropOldSpares();
    let reused = spares.take(bytes);
    if (reused === undefined && bytes <= ledger.maxBytes && ledger.usedBytes() + bytes > ledger.maxBytes) {
      // Evicting for room may retire an entry of this very size: take it rather than drop it.
      this.#makeRoom(bytes, () => {
        reused = spares.take(bytes);
        return reused !== undefined;
      });
    }
    if (reused === undefined) {
      return { reservation: this.reserve(dataBytes), reused: undefined };
    }
    ledger.spareBytes -= bytes;
    ledger.reservedBytes += bytes;
    this.#reuses += 1;
    return { reservation: new CacheReservation(ledger, bytes), reused };
  }

  /**
   * Turns the reservation into the entry (modelId, versionNumber) of `reservation.bytes` bytes, most
   * recently used; the reservation is consumed (releasing it afterwards is a no-op). An existing entry
   * with the same key is replaced (no onEvict; under lease it drains). Throws Error if the reservation
   * is not an active reservation of this cache.
   */
  insert(
    reservation: Reservation,
    modelId: string,
    versionNumber: number,
    value: V,
    options?: { pinned?: boolean },
  ): void {
    const ledger = this.#ledger;
    if (!(reservation instanceof CacheReservation) || reservation.ledger !== ledger) {
      throw new Error("insert needs an active reservation of this version cache (released, inserted or foreign)");
    }
    reservation.ledger = null;
    ledger.reservedBytes -= reservation.bytes;

    let versions = this.#index.get(modelId);
    if (versions === undefined) {
      versions = new Map();
      this.#index.set(modelId, versions);
    } else {
      const previous = versions.get(versionNumber);
      if (previous !== undefined) {
        this.#remove(previous);
        // #remove drops the model's map when it becomes empty.
        if (versions.size === 0) {
          this.#index.set(modelId, versions);
        }
      }
    }

    const pinned = options?.pinned === true;
    const entry = new Entry(
      modelId,
      versionNumber,
      value,
      reservation.bytes,
      this.#expirationMs > 0 ? this.#now() : 0,
      pinned,
      ++this.#tick,
    );
    versions.set(versionNumber, entry);
    ledger.entryBytes += entry.bytes;
    this.#entries += 1;
    if (pinned) {
      this.#pinnedEntries += 1;
      this.#pinned.append(entry);
    } else {
      this.#unpinned.append(entry);
    }
    entry.insPrev = this.#insTail;
    if (this.#insTail === null) {
      this.#insHead = entry;
    } else {
      this.#insTail.insNext = entry;
    }
    this.#insTail = entry;
  }

  /** The cached value, marked most recently used; undefined if absent or expired (then evicted). */
  get(modelId: string, versionNumber: number): V | undefined {
    const entry = this.#lookup(modelId, versionNumber);
    if (entry === undefined) {
      return undefined;
    }
    this.#touch(entry);
    return entry.value;
  }

  /**
   * Like get, and holds the value: until the lease is released, the entry's bytes stay counted, as
   * drainingBytes once the entry has left the index.
   */
  acquire(modelId: string, versionNumber: number): Lease<V> | undefined {
    const entry = this.#lookup(modelId, versionNumber);
    if (entry === undefined) {
      return undefined;
    }
    this.#touch(entry);
    entry.leases += 1;
    if (entry.leases === 1) {
      this.#ledger.leasedEntryBytes += entry.bytes;
    }
    return new CacheLease(this.#ledger, entry);
  }

  /** Whether the entry is cached (no LRU touch; an expired entry is evicted and reported absent). */
  has(modelId: string, versionNumber: number): boolean {
    return this.#lookup(modelId, versionNumber) !== undefined;
  }

  /**
   * Pins (exempt from expiry, evicted only when no unpinned entry is left) or unpins the entry, keeping
   * its recency. No-op if absent (an expired entry is evicted first, so it is absent).
   */
  setPinned(modelId: string, versionNumber: number, pinned: boolean): void {
    const entry = this.#lookup(modelId, versionNumber);
    if (entry === undefined || entry.pinned === pinned) {
      return;
    }
    if (pinned) {
      this.#unpinned.remove(entry);
      this.#pinned.insertByTick(entry);
      this.#pinnedEntries += 1;
    } else {
      this.#pinned.remove(entry);
      this.#unpinned.insertByTick(entry);
      this.#pinnedEntries -= 1;
    }
    entry.pinned = pinned;
  }

  /** Removes the entry (no onEvict); under lease its bytes drain. Deleted data is freed, never kept as a spare. */
  delete(modelId: string, versionNumber: number): void {
    const entry = this.#index.get(modelId)?.get(versionNumber);
    if (entry !== undefined) {
      entry.reusable = false;
      this.#remove(entry);
    }
  }

  /** Removes all entries of the model (no onEvict); like delete, frees their data. */
  deleteModel(modelId: string): void {
    const versions = this.#index.get(modelId);
    if (versions !== undefined) {
      for (const entry of [...versions.values()]) {
        entry.reusable = false;
        this.#remove(entry);
      }
    }
  }

  /** Evicts every expired (unpinned) entry, oldest first, with onEvict(..., "expired"). */
  sweepExpired(): void {
    if (this.#expirationMs > 0) {
      this.#collectExpired(this.#now());
      this.#notify();
    }
  }

  stats(): VersionCacheStats {
    const ledger = this.#ledger;
    return {
      maxBytes: ledger.maxBytes,
      usedBytes: ledger.usedBytes(),
      entryBytes: ledger.entryBytes,
      reservedBytes: ledger.reservedBytes,
      drainingBytes: ledger.drainingBytes,
      spareBytes: ledger.spareBytes,
      spares: this.#spares?.count ?? 0,
      reuses: this.#reuses,
      entries: this.#entries,
      pinnedEntries: this.#pinnedEntries,
      evictions: { size: this.#sizeEvictions, expired: this.#expiredEvictions },
    };
  }

  /** Stops the timers and forgets the spares (idempotent); the cache stays usable, with lazy expiry only. */
  close(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    if (this.#spares !== undefined) {
      this.#ledger.spareBytes -= this.#spares.clear();
    }
    this.#stopSpareTimer();
  }

  /** An entry's bytes left the entry/draining buckets: keep its value as a spare if it may be reused. */
  #retire(entry: Entry<V>): void {
    const spares = this.#spares;
    if (spares === undefined || !entry.reusable) {
      return;
    }
    spares.add(entry.bytes, entry.value, this.#now());
    this.#ledger.spareBytes += entry.bytes;
    if (this.#spareTimer === undefined) {
      this.#spareTimer = setInterval(() => this.#dropOldSpares(), this.#spareMaxAgeMs);
      this.#spareTimer.unref();
    }
  }

  #dropOldSpares(): void {
    const spares = this.#spares;
    if (spares !== undefined && spares.count > 0) {
      this.#ledger.spareBytes -= spares.dropOlderThan(this.#now() - this.#spareMaxAgeMs);
    }
    if (spares === undefined || spares.count === 0) {
      this.#stopSpareTimer();
    }
  }

  #stopSpareTimer(): void {
    if (this.#spareTimer !== undefined) {
      clearInterval(this.#spareTimer);
      this.#spareTimer = undefined;
    }
  }

  /** The live entry, or undefined; an expired one is evicted (and reported) on the way. */
  #lookup(modelId: string, versionNumber: number): Entry<V> | undefined {
    const entry = this.#index.get(modelId)?.get(versionNumber);
    if (entry === undefined) {
      return undefined;
    }
    if (this.#expirationMs > 0 && !entry.pinned && this.#now() - entry.insertedAt > this.#expirationMs) {
      this.#evict(entry, "expired");
      this.#notify();
      return undefined;
    }
    return entry;
  }

  #touch(entry: Entry<V>): void {
    entry.tick = ++this.#tick;
    (entry.pinned ? this.#pinned : this.#unpinned).moveToBack(entry);
  }

  /**
   * Drops spares, then evicts, until `bytes` more fit; `tookSpare` (reserveReusing) is asked first at
   * every step and ends the work when it took a spare of the right size.
   */
  #makeRoom(bytes: number, tookSpare?: () => boolean): void {
    const ledger = this.#ledger;
    if (!this.#canFit(bytes)) {
      throw this.#exhausted(bytes);
    }
    if (this.#expirationMs > 0) {
      this.#collectExpired(this.#now());
      this.#notify();
    }
    while (ledger.usedBytes() + bytes > ledger.maxBytes) {
      if (tookSpare?.() === true) {
        return;
      }
      // Checked again because onEvict may have called back into the cache.
      if (!this.#canFit(bytes)) {
        throw this.#exhausted(bytes);
      }
      if (ledger.spareBytes > 0 && this.#spares !== undefined) {
        ledger.spareBytes -= this.#spares.dropOldest();
        continue;
      }
      // Entries under lease are passed over: evicting one frees nothing (its bytes only drain) and
      // takes a version out of reach while it is being read, the fan-out case.
      let victim = firstUnleased(this.#unpinned.head) ?? firstUnleased(this.#pinned.head);
      if (victim === null) {
        throw this.#exhausted(bytes); // unreachable: #canFit counts only unleased entries as evictable
      }
      // Other versions go by batches of the prune count; the latest versions (pinned) one at a time,
      // only as many as needed. A batch never leaves its list.
      for (let n = victim.pinned ? 1 : this.#pruneCount; n > 0 && victim !== null; n -= 1) {
        const following: Entry<V> | null = firstUnleased(victim.next);
        this.#evict(victim, "size");
        victim = following;
      }
      this.#notify();
    }
  }

  /**
   * Whether evicting every entry would make room: entries under lease would only move to draining, so
   * what cannot be freed is reserved + draining + leased entry bytes.
   */
  #canFit(bytes: number): boolean {
    const ledger = this.#ledger;
    return bytes + ledger.reservedBytes + ledger.drainingBytes + ledger.leasedEntryBytes <= ledger.maxBytes;
  }

  #exhausted(bytes: number): Error {
    const ledger = this.#ledger;
    const used = ledger.usedBytes();
    const evictable = ledger.entryBytes - ledger.leasedEntryBytes + ledger.spareBytes;
    return resourceExhausted(
      `cannot reserve ${bytes} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is ${ledger.maxBytes} bytes ` +
        `and ${used} are used, of which only ${evictable} can be evicted ` +
        `(${ledger.reservedBytes} reserved, ${ledger.drainingBytes} draining, ${ledger.leasedEntryBytes} in entries being read)`,
    );
  }

  /** Evicts expired entries (structure and counters only; notifications stay pending). */
  #collectExpired(now: number): void {
    const limit = this.#expirationMs;
    let entry = this.#insHead;
    // Insertion order is insertedAt order (monotonic clock): stop at the first entry that is too young.
    while (entry !== null && now - entry.insertedAt > limit) {
      const next = entry.insNext;
      if (!entry.pinned) {
        this.#evict(entry, "expired");
      }
      entry = next;
    }
  }

  #evict(entry: Entry<V>, reason: EvictionReason): void {
    this.#remove(entry);
    if (reason === "size") {
      this.#sizeEvictions += 1;
    } else {
      this.#expiredEvictions += 1;
    }
    if (this.#onEvict !== undefined) {
      this.#pendingEntries.push(entry);
      this.#pendingReasons.push(reason);
    }
  }

  /** Delivers pending onEvict notifications, in eviction order (re-entrant calls append to the queue). */
  #notify(): void {
    const onEvict = this.#onEvict;
    if (onEvict === undefined || this.#notifying) {
      return;
    }
    const entries = this.#pendingEntries;
    const reasons = this.#pendingReasons;
    this.#notifying = true;
    try {
      for (let i = 0; i < entries.length; i += 1) {
        const entry = entries[i];
        const reason = reasons[i];
        if (entry !== undefined && reason !== undefined) {
          onEvict(entry.modelId, entry.versionNumber, reason);
        }
      }
    } finally {
      entries.length = 0;
      reasons.length = 0;
      this.#notifying = false;
    }
  }

  /** Takes the entry out of the index and lists; its bytes are freed, or drain while leased. */
  #remove(entry: Entry<V>): void {
    const versions = this.#index.get(entry.modelId);
    if (versions !== undefined) {
      versions.delete(entry.versionNumber);
      if (versions.size === 0) {
        this.#index.delete(entry.modelId);
      }
    }
    if (entry.pinned) {
      this.#pinned.remove(entry);
      this.#pinnedEntries -= 1;
    } else {
      this.#unpinned.remove(entry);
    }
    if (entry.insPrev === null) {
      this.#insHead = entry.insNext;
    } else {
      entry.insPrev.insNext = entry.insNext;
    }
    if (entry.insNext === null) {
      this.#insTail = entry.insPrev;
    } else {
      entry.insNext.insPrev = entry.insPrev;
    }
    entry.insPrev = null;
    entry.insNext = null;
    this.#entries -= 1;

    const ledger = this.#ledger;
    ledger.entryBytes -= entry.bytes;
    if (entry.leases > 0) {
      ledger.leasedEntryBytes -= entry.bytes;
      ledger.drainingBytes += entry.bytes;
      entry.state = DRAINING;
    } else {
      entry.state = DEAD;
      this.#retire(entry);
    }
  }
}
