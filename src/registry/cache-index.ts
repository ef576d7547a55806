/**
 * The index of the VersionCache: which versions are cached, in which order they were used and
 * inserted, and which go when room is needed or when they expire; with the onEvict notifications.
 *
 * Owns: the (modelId, versionNumber) → entry maps; three recency lists (unpinned, pinned archived,
 * pinned transient; front = least recently used); the insertion-order list (front = oldest, for the
 * expiry sweep); the recency ticks; the eviction counters; the pending onEvict notifications.
 * Invariants: an entry is LIVE exactly while it is in the maps, in the insertion list, and in the
 * recency list of its `pinned` and `archived` flags; each recency list is sorted by `tick`; the insertion list is
 * sorted by `insertedAt` (a monotonic clock); a model has a map only while it has entries. Every
 * removal goes through {@link CacheIndex.remove}, which hands the entry's bytes to the ledger.
 * Notifications are delivered in eviction order, after the structural change is complete, never
 * re-entrantly (a callback that evicts appends to the queue being delivered).
 *
 * Complexity: find/lookup/touch/insert/remove are O(1) (two Map lookups and list moves); an eviction
 * batch is O(evicted + leased entries passed over); the expiry sweep O(expired + old pinned);
 * setPinned O(entries of the target list used more recently than the entry).
 */
import { Entry, insertionLinksOf, recencyLinksOf } from "./cache-entry.js";
import type { CacheLedger } from "./cache-ledger.js";
import { IntrusiveList } from "./intrusive-list.js";

export type EvictionReason = "size" | "expired";

export interface CacheIndexOptions {
  /** Unpinned entries older than this (since insertion, strictly) are gone; 0 = never expire. */
  readonly expirationMs: number;
  /** Monotonic clock in ms. */
  readonly now: () => number;
  readonly onEvict: ((modelId: string, versionNumber: number, reason: EvictionReason) => void) | undefined;
}

/** `from`, or the first entry after it in its recency list, that no reader holds; null if none. */
function firstUnleased<V>(from: Entry<V> | null): Entry<V> | null {
  let entry = from;
  while (entry !== null && entry.leases > 0) {
    entry = entry.recencyNext;
  }
  return entry;
}

export class CacheIndex<V> {
  readonly #ledger: CacheLedger<V>;
  readonly #expirationMs: number;
  readonly #now: () => number;
  readonly #onEvict: CacheIndexOptions["onEvict"];
  readonly #versions: Map<string, Map<number, Entry<V>>> = new Map();
  // An entry's recency list is `pinned ? (archived ? #pinnedArchived : #pinnedTransient) : #unpinned`,
  // written out at each use: a method for it cost ~10 % of a publish's cache work
  // (bench/micro/version-cache.bench.ts).
  readonly #unpinned: IntrusiveList<Entry<V>> = new IntrusiveList(recencyLinksOf<V>());
  /** Pinned entries whose data is also on disk: evicting one only drops the memory copy. */
  readonly #pinnedArchived: IntrusiveList<Entry<V>> = new IntrusiveList(recencyLinksOf<V>());
  /** Pinned entries whose data is only here: evicting one loses the model's latest for good. */
  readonly #pinnedTransient: IntrusiveList<Entry<V>> = new IntrusiveList(recencyLinksOf<V>());
  readonly #byInsertion: IntrusiveList<Entry<V>> = new IntrusiveList(insertionLinksOf<V>());
  #tick = 0;
  #sizeEvictions = 0;
  #expiredEvictions = 0;
  /** Evicted entries whose onEvict notification is pending (parallel arrays). */
  readonly #pendingEntries: Entry<V>[] = [];
  readonly #pendingReasons: EvictionReason[] = [];
  #notifying = false;

  constructor(ledger: CacheLedger<V>, options: CacheIndexOptions) {
    this.#ledger = ledger;
    this.#expirationMs = options.expirationMs;
    this.#now = options.now;
    this.#onEvict = options.onEvict;
  }

  get entries(): number {
    return this.#byInsertion.size;
  }

  get pinnedEntries(): number {
    return this.#pinnedArchived.size + this.#pinnedTransient.size;
  }

  get sizeEvictions(): number {
    return this.#sizeEvictions;
  }

  get expiredEvictions(): number {
    return this.#expiredEvictions;
  }

  /** The entry, expired or not (no eviction, no touch). */
  find(modelId: string, versionNumber: number): Entry<V> | undefined {
    return this.#versions.get(modelId)?.get(versionNumber);
  }

  /** The live entry, or undefined; an expired one is evicted (and reported) on the way. No touch. */
  lookup(modelId: string, versionNumber: number): Entry<V> | undefined {
    const entry = this.#versions.get(modelId)?.get(versionNumber);
    if (entry === undefined) {
      return undefined;
    }
    if (this.#expirationMs > 0 && !entry.pinned && this.#now() - entry.insertedAt > this.#expirationMs) {
      this.evict(entry, "expired");
      this.notify();
      return undefined;
    }
    return entry;
  }

  /** Marks the entry most recently used. */
  touch(entry: Entry<V>): void {
    entry.tick = ++this.#tick;
    (entry.pinned ? (entry.archived ? this.#pinnedArchived : this.#pinnedTransient) : this.#unpinned).moveToBack(entry);
  }

  /**
   * Files a new entry, most recently used, whose bytes the caller took out of a reservation; an
   * entry with the same key is removed first (no onEvict; under lease it drains).
   */
  insert(modelId: string, versionNumber: number, value: V, bytes: number, pinned: boolean, archived: boolean): Entry<V> {
    let versions = this.#versions.get(modelId);
    if (versions === undefined) {
      versions = new Map();
      this.#versions.set(modelId, versions);
    } else {
      const previous = versions.get(versionNumber);
      if (previous !== undefined) {
        this.remove(previous);
        // remove drops the model's map when it becomes empty.
        if (versions.size === 0) {
          this.#versions.set(modelId, versions);
        }
      }
    }

    const entry = new Entry(
      modelId,
      versionNumber,
      value,
      bytes,
      this.#expirationMs > 0 ? this.#now() : 0,
      pinned,
      ++this.#tick,
      archived,
    );
    versions.set(versionNumber, entry);
    this.#ledger.entryAdded(entry);
    (pinned ? (archived ? this.#pinnedArchived : this.#pinnedTransient) : this.#unpinned).pushBack(entry);
    this.#byInsertion.pushBack(entry);
    return entry;
  }

  /** Moves the live entry to the other recency list at its recency position. */
  setPinned(entry: Entry<V>, pinned: boolean): void {
    if (entry.pinned === pinned) {
      return;
    }
    const to = pinned ? (entry.archived ? this.#pinnedArchived : this.#pinnedTransient) : this.#unpinned;
    (entry.pinned ? (entry.archived ? this.#pinnedArchived : this.#pinnedTransient) : this.#unpinned).remove(entry);
    // Keep `to` sorted by tick: scan from its most recently used end.
    let after = to.tail;
    while (after !== null && after.tick > entry.tick) {
      after = after.recencyPrev;
    }
    if (after === null) {
      to.pushFront(entry);
    } else {
      to.insertAfter(after, entry);
    }
    this.#ledger.pinChanging(entry, pinned);
    entry.pinned = pinned;
  }

  /** Removes every entry of the model (no onEvict), their values never reused. */
  removeModel(modelId: string): void {
    const versions = this.#versions.get(modelId);
    if (versions !== undefined) {
      for (const entry of [...versions.values()]) {
        entry.reusable = false;
        this.remove(entry);
      }
    }
  }

  /** Takes the entry out of the maps and lists (no onEvict); the ledger drains or retires its bytes. */
  remove(entry: Entry<V>): void {
    const versions = this.#versions.get(entry.modelId);
    if (versions !== undefined) {
      versions.delete(entry.versionNumber);
      if (versions.size === 0) {
        this.#versions.delete(entry.modelId);
      }
    }
    (entry.pinned ? (entry.archived ? this.#pinnedArchived : this.#pinnedTransient) : this.#unpinned).remove(entry);
    this.#byInsertion.remove(entry);
    this.#ledger.entryRemoved(entry);
  }

  /** Removes the entry and counts the eviction; its notification stays pending until notify(). */
  evict(entry: Entry<V>, reason: EvictionReason): void {
    this.remove(entry);
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

  /**
   * Evicts one batch for room (notifications pending): the least recently used entries no reader
   * holds, `pruneCount` of them from the unpinned list, or when no unpinned entry is free, one pinned
   * entry (each model's latest goes only when needed): an archived one (its data stays on disk)
   * before a transient one (lost for good), and never a transient one when `keepPinnedTransient`.
   * A batch never leaves its list. Entries under lease are passed over: evicting one frees nothing
   * (its bytes only drain) and takes a version out of reach while it is being read, the fan-out
   * case. False when no entry may be evicted.
   */
  evictForRoom(pruneCount: number, keepPinnedTransient: boolean): boolean {
    let victim =
      firstUnleased(this.#unpinned.head) ??
      firstUnleased(this.#pinnedArchived.head) ??
      (keepPinnedTransient ? null : firstUnleased(this.#pinnedTransient.head));
    if (victim === null) {
      return false;
    }
    for (let n = victim.pinned ? 1 : pruneCount; n > 0 && victim !== null; n -= 1) {
      const following: Entry<V> | null = firstUnleased(victim.recencyNext);
      this.evict(victim, "size");
      victim = following;
    }
    return true;
  }

  /** Evicts the expired (unpinned) entries, oldest first (notifications pending). */
  evictExpired(now: number): void {
    const limit = this.#expirationMs;
    let entry = this.#byInsertion.head;
    // Insertion order is insertedAt order (monotonic clock): stop at the first entry that is too young.
    while (entry !== null && now - entry.insertedAt > limit) {
      const next = entry.insertionNext;
      if (!entry.pinned) {
        this.evict(entry, "expired");
      }
      entry = next;
    }
  }

  /** Delivers pending onEvict notifications, in eviction order (re-entrant calls append to the queue). */
  notify(): void {
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
}
