/**
 * The byte account of the VersionCache: every byte of version data in memory is counted here in
 * exactly one of four buckets, and the reservations and leases handed out keep it current.
 *
 * - `entryBytes`: data of the entries in the index (of which `leasedEntryBytes` are under lease, and
 *   `pinnedTransientBytes` are models' transient latests under no lease);
 * - `reservedBytes`: reservations not yet released or turned into an entry;
 * - `drainingBytes`: entries gone from the index while still leased;
 * - `spareBytes`: values kept for reuse (the spares' own total, see spare-values.ts).
 *
 * Owns: the counters, the reservations and the leases (their release paths), and which bucket an
 * entry's bytes are in as it is added, leased, removed and released.
 * Invariants: `usedBytes() = entryBytes + reservedBytes + drainingBytes + spareBytes <= maxBytes`
 * (the only way to add bytes, {@link CacheLedger.reserve}, refuses to go over; making room first is
 * the caller's job); `0 <= leasedEntryBytes + pinnedTransientBytes <= entryBytes`; a reservation's bytes leave the account
 * once (release or consume, whichever comes first); a lease's once (its first release); an entry's
 * bytes move entry → draining → (spare or freed) or entry → (spare or freed), and become a spare only
 * if its value may be reused.
 */
import { resourceExhausted } from "../errors/index.js";
import { DEAD, DRAINING, type Entry, LIVE } from "./cache-entry.js";
import type { SpareValues } from "./spare-values.js";

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

export class CacheLedger<V> {
  readonly maxBytes: number;
  entryBytes = 0;
  reservedBytes = 0;
  drainingBytes = 0;
  /** The part of entryBytes whose entries are under lease (evicting them would not free anything). */
  leasedEntryBytes = 0;
  /**
   * The part of entryBytes whose entries are pinned transient versions under no lease (a model's latest
   * whose only copy is this memory): evictable, but only by a request that has nowhere else to go.
   * (`entry.pinned && !entry.archived` is written out where it is tested: a getter for it cost ~10 %
   * of a publish's cache work in bench/micro/version-cache.bench.ts.)
   */
  pinnedTransientBytes = 0;
  /** Where values of dead entries go when they may be reused; undefined = never kept. */
  readonly #spares: SpareValues<V> | undefined;

  constructor(maxBytes: number, spares: SpareValues<V> | undefined) {
    this.maxBytes = maxBytes;
    this.#spares = spares;
  }

  get spareBytes(): number {
    return this.#spares === undefined ? 0 : this.#spares.bytes;
  }

  usedBytes(): number {
    return this.entryBytes + this.reservedBytes + this.drainingBytes + this.spareBytes;
  }

  /** Whether `bytes` more fit now, without evicting or dropping anything. */
  fits(bytes: number): boolean {
    return this.usedBytes() + bytes <= this.maxBytes;
  }

  /**
   * Whether evicting every entry it may evict and dropping every spare would make room: entries under
   * lease would only move to draining, so what cannot be freed is reserved + draining + leased entry
   * bytes, and the unleased pinned transient entries' bytes when `keepPinnedTransient`.
   */
  couldFit(bytes: number, keepPinnedTransient = false): boolean {
    const kept = keepPinnedTransient ? this.pinnedTransientBytes : 0;
    return bytes + this.reservedBytes + this.drainingBytes + this.leasedEntryBytes + kept <= this.maxBytes;
  }

  /** RESOURCE_EXHAUSTED for a reservation of `bytes` that cannot fit, with the account's state. */
  exhausted(bytes: number, keepPinnedTransient = false): Error {
    const kept = keepPinnedTransient ? this.pinnedTransientBytes : 0;
    const evictable = this.entryBytes - this.leasedEntryBytes - kept + this.spareBytes;
    const keptPart = keepPinnedTransient ? `, ${kept} in latest transient versions, which this request may not evict` : "";
    return resourceExhausted(
      `cannot reserve ${bytes} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is ${this.maxBytes} bytes ` +
        `and ${this.usedBytes()} are used, of which only ${evictable} can be evicted ` +
        `(${this.reservedBytes} reserved, ${this.drainingBytes} draining, ${this.leasedEntryBytes} in entries being read${keptPart})`,
    );
  }

  /** Counts `bytes` as reserved; they must fit (see fits). */
  reserve(bytes: number): Reservation {
    if (!this.fits(bytes)) {
      throw new Error(`internal: a reservation of ${bytes} bytes would exceed the version cache budget`);
    }
    this.reservedBytes += bytes;
    return new CacheReservation(this, bytes);
  }

  /**
   * Ends an active reservation of this ledger for insertion (its bytes leave reserved; the caller
   * counts them again with entryAdded); returns its bytes. Throws Error if it is released, already
   * consumed or another ledger's.
   */
  consume(reservation: Reservation): number {
    if (!(reservation instanceof CacheReservation) || reservation.ledger !== this) {
      throw new Error("insert needs an active reservation of this version cache (released, inserted or foreign)");
    }
    reservation.ledger = null;
    this.reservedBytes -= reservation.bytes;
    return reservation.bytes;
  }

  /** A new entry (under no lease yet) entered the index. */
  entryAdded(entry: Entry<V>): void {
    this.entryBytes += entry.bytes;
    if ((entry.pinned && !entry.archived)) {
      this.pinnedTransientBytes += entry.bytes;
    }
  }

  /** The live entry is about to be pinned or unpinned (its `pinned` flag still the old one). */
  pinChanging(entry: Entry<V>, pinned: boolean): void {
    if (!entry.archived && entry.leases === 0 && entry.pinned !== pinned) {
      this.pinnedTransientBytes += pinned ? entry.bytes : -entry.bytes;
    }
  }

  /** The entry left the index: its bytes drain while leased, else it is dead (a spare, or freed). */
  entryRemoved(entry: Entry<V>): void {
    this.entryBytes -= entry.bytes;
    if ((entry.pinned && !entry.archived) && entry.leases === 0) {
      this.pinnedTransientBytes -= entry.bytes;
    }
    if (entry.leases > 0) {
      this.leasedEntryBytes -= entry.bytes;
      this.drainingBytes += entry.bytes;
      entry.state = DRAINING;
    } else {
      entry.state = DEAD;
      this.#retire(entry);
    }
  }

  /** A lease on a live entry. */
  lease(entry: Entry<V>): Lease<V> {
    entry.leases += 1;
    if (entry.leases === 1) {
      this.leasedEntryBytes += entry.bytes;
      if ((entry.pinned && !entry.archived)) {
        this.pinnedTransientBytes -= entry.bytes;
      }
    }
    return new CacheLease(this, entry);
  }

  leaseReleased(entry: Entry<V>, mayStillBeRead: boolean): void {
    entry.leases -= 1;
    if (mayStillBeRead) {
      entry.reusable = false;
    }
    if (entry.leases === 0) {
      if (entry.state === LIVE) {
        this.leasedEntryBytes -= entry.bytes;
        if ((entry.pinned && !entry.archived)) {
          this.pinnedTransientBytes += entry.bytes;
        }
      } else if (entry.state === DRAINING) {
        this.drainingBytes -= entry.bytes;
        entry.state = DEAD;
        this.#retire(entry);
      }
    }
  }

  /** A dead entry's bytes left the entry/draining buckets: keep its value as a spare if it may be reused. */
  #retire(entry: Entry<V>): void {
    if (this.#spares !== undefined && entry.reusable) {
      this.#spares.add(entry.bytes, entry.value);
    }
  }
}

class CacheReservation<V> implements Reservation {
  readonly bytes: number;
  /** null once released or consumed by insert. */
  ledger: CacheLedger<V> | null;

  constructor(ledger: CacheLedger<V>, bytes: number) {
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
  private readonly ledger: CacheLedger<V>;

  constructor(ledger: CacheLedger<V>, entry: Entry<V>) {
    this.value = entry.value;
    this.entry = entry;
    this.ledger = ledger;
  }

  release(mayStillBeRead = false): void {
    const entry = this.entry;
    if (entry !== null) {
      this.entry = null;
      this.ledger.leaseReleased(entry, mayStillBeRead);
    }
  }
}
