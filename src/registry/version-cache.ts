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
 * each model's latest, one at a time, archived ones before transient ones, and transient ones not at
 * all for a request with `keepPinnedTransient`) until the request fits or throw RESOURCE_EXHAUSTED;
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
 *
 * This class is the facade and the room-making policy (what to drop or evict, in which order, and when
 * to give up); each concern has one owner behind it: the byte account, reservations and leases
 * (cache-ledger.ts), the spares and their expiry timer (spare-values.ts), the index with its recency
 * and insertion lists, eviction and notifications (cache-index.ts, on intrusive-list.ts), and the
 * entry they share (cache-entry.ts).
 */
import { performance } from "node:perf_hooks";

import { resourceExhausted } from "../errors/index.js";
import { CacheIndex, type EvictionReason } from "./cache-index.js";
import { CacheLedger, type Lease, type Reservation } from "./cache-ledger.js";
import { SpareValues } from "./spare-values.js";

export type { EvictionReason } from "./cache-index.js";
export type { Lease, Reservation } from "./cache-ledger.js";

/**
 * Memory a cached version costs besides its encoded bytes, charged to the budget with each one so
 * that eviction bounds memory for tiny versions too (20,000 versions of 16 bytes would otherwise
 * count 16 bytes each). Measured with bench/memory/version-overhead.ts (node --expose-gc, 50,000 versions
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

/** How a reservation may make room. */
export interface ReserveOptions {
  /**
   * Never evict a pinned transient entry (a model's latest whose only copy is in memory: evicting it
   * loses it for good): for a request that has somewhere else to put its bytes when there is no room
   * without them (an archived version read from or written to disk). Default false: a transient
   * upload, which has nowhere else, evicts them last.
   */
  readonly keepPinnedTransient?: boolean;
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

const MIN_SWEEP_INTERVAL_MS = 50;
const MAX_SWEEP_INTERVAL_MS = 30_000;

function checkBytes(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
}

export class VersionCache<V> {
  readonly #ledger: CacheLedger<V>;
  readonly #index: CacheIndex<V>;
  readonly #spares: SpareValues<V> | undefined;
  readonly #expirationMs: number;
  readonly #pruneCount: number;
  readonly #now: () => number;
  readonly #overhead: number;
  #timer: NodeJS.Timeout | undefined;

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
    this.#expirationMs = options.expirationMs;
    this.#pruneCount = options.pruneCount;
    this.#now = options.now ?? performance.now.bind(performance);
    this.#spares = spareMaxAge === undefined ? undefined : new SpareValues<V>({ maxAgeMs: spareMaxAge, now: this.#now });
    this.#ledger = new CacheLedger(options.maxBytes, this.#spares);
    this.#index = new CacheIndex(this.#ledger, {
      expirationMs: options.expirationMs,
      now: this.#now,
      onEvict: options.onEvict,
    });
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
   * `pruneCount` least recently used unpinned entries, then (when no unpinned entry is left) pinned
   * entries one at a time, archived ones first, then transient ones (unless `keepPinnedTransient`),
   * until the request fits.
   *
   * Throws RESOURCE_EXHAUSTED when `bytes > maxBytes`, or when even evicting every entry it may evict
   * could not make room (the rest is reservations, draining bytes, entries under lease and, with
   * `keepPinnedTransient`, pinned transient entries). That is decided BEFORE
   * evicting anything: a failed reserve leaves the account and the entries exactly as they were (the
   * one exception: an onEvict callback that itself reserves or acquires during this reserve's evictions
   * can make it fail afterwards; the evictions already done then stay done).
   * Throws RangeError when `bytes` is not a non-negative safe integer.
   */
  reserve(dataBytes: number, options?: ReserveOptions): Reservation {
    checkBytes(dataBytes, "bytes");
    const bytes = dataBytes + this.#overhead;
    const ledger = this.#ledger;
    if (bytes > ledger.maxBytes) {
      throw resourceExhausted(
        `cannot hold ${bytes} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is ${ledger.maxBytes} bytes`,
      );
    }
    if (!ledger.fits(bytes)) {
      this.#makeRoom(bytes, false, options?.keepPinnedTransient === true);
    }
    return ledger.reserve(bytes);
  }

  /**
   * Like reserve, and hands over a spare value of exactly `bytes` when there is one (before or after
   * the evictions that make room), so that the caller can reuse its memory instead of allocating.
   * The spare's bytes become the reservation's: the account does not change.
   */
  reserveReusing(
    dataBytes: number,
    options?: ReserveOptions,
  ): { readonly reservation: Reservation; readonly reused: V | undefined } {
    checkBytes(dataBytes, "bytes");
    const spares = this.#spares;
    const ledger = this.#ledger;
    if (spares === undefined) {
      return { reservation: this.reserve(dataBytes, options), reused: undefined };
    }
    const bytes = dataBytes + this.#overhead;
    spares.dropExpired();
    let reused = spares.take(bytes);
    if (reused === undefined && bytes <= ledger.maxBytes && !ledger.fits(bytes)) {
      // Evicting for room may retire an entry of this very size: take it rather than drop it.
      reused = this.#makeRoom(bytes, true, options?.keepPinnedTransient === true);
    }
    if (reused === undefined) {
      return { reservation: this.reserve(dataBytes, options), reused: undefined };
    }
    return { reservation: ledger.reserve(bytes), reused };
  }

  /**
   * Turns the reservation into the entry (modelId, versionNumber) of `reservation.bytes` bytes, most
   * recently used; the reservation is consumed (releasing it afterwards is a no-op). `archived`: the
   * version's data is also on disk (a pinned archived entry is evicted before a transient one). An existing entry
   * with the same key is replaced (no onEvict; under lease it drains). Throws Error if the reservation
   * is not an active reservation of this cache.
   */
  insert(
    reservation: Reservation,
    modelId: string,
    versionNumber: number,
    value: V,
    options?: { pinned?: boolean; identity?: string; archived?: boolean },
  ): void {
    const bytes = this.#ledger.consume(reservation);
    const entry = this.#index.insert(modelId, versionNumber, value, bytes, options?.pinned === true, options?.archived === true);
    entry.identity = options?.identity ?? "";
  }

  /** The cached value, marked most recently used; undefined if absent or expired (then evicted). */
  get(modelId: string, versionNumber: number): V | undefined {
    const entry = this.#index.lookup(modelId, versionNumber);
    if (entry === undefined) {
      return undefined;
    }
    this.#index.touch(entry);
    return entry.value;
  }

  /**
   * Like get, and holds the value: until the lease is released, the entry's bytes stay counted, as
   * drainingBytes once the entry has left the index. With `identity`, an entry inserted with another
   * identity (an older version under the same key) counts as absent.
   */
  acquire(modelId: string, versionNumber: number, identity?: string): Lease<V> | undefined {
    const entry = this.#index.lookup(modelId, versionNumber);
    if (entry === undefined || (identity !== undefined && entry.identity !== identity)) {
      return undefined;
    }
    this.#index.touch(entry);
    return this.#ledger.lease(entry);
  }

  /** Whether the entry is cached (no LRU touch; an expired entry is evicted and reported absent). */
  has(modelId: string, versionNumber: number): boolean {
    return this.#index.lookup(modelId, versionNumber) !== undefined;
  }

  /**
   * Pins (exempt from expiry, evicted only when no unpinned entry is left) or unpins the entry, keeping
   * its recency. No-op if absent (an expired entry is evicted first, so it is absent).
   */
  setPinned(modelId: string, versionNumber: number, pinned: boolean): void {
    const entry = this.#index.lookup(modelId, versionNumber);
    if (entry !== undefined) {
      this.#index.setPinned(entry, pinned);
    }
  }

  /**
   * Removes an unpinned entry whose copy is no longer wanted (no onEvict; no-op when absent or pinned):
   * unlike delete, its value becomes a spare for reserveReusing once no reader holds it, so that the
   * next version of its size takes its memory instead of fresh pages.
   */
  retire(modelId: string, versionNumber: number): void {
    const entry = this.#index.find(modelId, versionNumber);
    if (entry !== undefined && !entry.pinned) {
      this.#index.remove(entry);
    }
  }

  /** Removes the entry (no onEvict); under lease its bytes drain. Deleted data is freed, never kept as a spare. */
  delete(modelId: string, versionNumber: number): void {
    const entry = this.#index.find(modelId, versionNumber);
    if (entry !== undefined) {
      entry.reusable = false;
      this.#index.remove(entry);
    }
  }

  /** Removes all entries of the model (no onEvict); like delete, frees their data. */
  deleteModel(modelId: string): void {
    this.#index.removeModel(modelId);
  }

  /** Evicts every expired (unpinned) entry, oldest first, with onEvict(..., "expired"). */
  sweepExpired(): void {
    if (this.#expirationMs > 0) {
      this.#index.evictExpired(this.#now());
      this.#index.notify();
    }
  }

  stats(): VersionCacheStats {
    const ledger = this.#ledger;
    const index = this.#index;
    return {
      maxBytes: ledger.maxBytes,
      usedBytes: ledger.usedBytes(),
      entryBytes: ledger.entryBytes,
      reservedBytes: ledger.reservedBytes,
      drainingBytes: ledger.drainingBytes,
      spareBytes: ledger.spareBytes,
      spares: this.#spares?.count ?? 0,
      reuses: this.#spares?.reuses ?? 0,
      entries: index.entries,
      pinnedEntries: index.pinnedEntries,
      evictions: { size: index.sizeEvictions, expired: index.expiredEvictions },
    };
  }

  /** Stops the timers and forgets the spares (idempotent); the cache stays usable, with lazy expiry only. */
  close(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    this.#spares?.clear();
  }

  /**
   * Drops spares, then evicts (never a pinned transient entry with `keepPinnedTransient`), until
   * `bytes` more fit. With `reuse`, a spare of exactly `bytes` is looked for first at every step
   * (evictions may have just made one) and returned, ending the work.
   */
  #makeRoom(bytes: number, reuse: boolean, keepPinnedTransient: boolean): V | undefined {
    const ledger = this.#ledger;
    const index = this.#index;
    const spares = this.#spares;
    if (!ledger.couldFit(bytes, keepPinnedTransient)) {
      throw ledger.exhausted(bytes, keepPinnedTransient);
    }
    if (this.#expirationMs > 0) {
      index.evictExpired(this.#now());
      index.notify();
    }
    while (!ledger.fits(bytes)) {
      if (reuse && spares !== undefined) {
        const spare = spares.take(bytes);
        if (spare !== undefined) {
          return spare;
        }
      }
      // Checked again because onEvict may have called back into the cache.
      if (!ledger.couldFit(bytes, keepPinnedTransient)) {
        throw ledger.exhausted(bytes, keepPinnedTransient);
      }
      if (spares !== undefined && spares.bytes > 0) {
        spares.dropOldest();
        continue;
      }
      if (!index.evictForRoom(this.#pruneCount, keepPinnedTransient)) {
        // Unreachable: couldFit counts as evictable only the entries evictForRoom may evict.
        throw ledger.exhausted(bytes, keepPinnedTransient);
      }
      index.notify();
    }
    return undefined;
  }
}
