/**
 * One cached version of the VersionCache, shared by its parts: the index files it (src/registry/
 * cache-index.ts), the ledger counts its bytes and leases (cache-ledger.ts), the spares may keep its
 * value once it is gone (spare-values.ts).
 *
 * Owns: nothing but its fields. Invariants: `state` moves LIVE → DRAINING → DEAD or LIVE → DEAD, never
 * back; LIVE = in the index (and in exactly one recency list and the insertion list); DRAINING = out of
 * the index while `leases > 0`; DEAD = out of everything, its bytes no longer counted as entry or
 * draining bytes. `reusable` only goes from true to false. The link fields belong to the lists
 * (through {@link recencyLinksOf} and {@link insertionLinksOf}); nothing else writes them.
 */
import type { ListLinks } from "./intrusive-list.js";

export const LIVE = 0;
export const DRAINING = 1;
export const DEAD = 2;
export type EntryState = typeof LIVE | typeof DRAINING | typeof DEAD;

export class Entry<V> {
  readonly modelId: string;
  readonly versionNumber: number;
  readonly value: V;
  readonly bytes: number;
  readonly insertedAt: number;
  /** The version is archived: its data is also on disk, so evicting the entry loses nothing. */
  readonly archived: boolean;
  pinned: boolean;
  /** Recency stamp: larger = used more recently. */
  tick: number;
  leases: number;
  /** False once a lease was released while its memory might still be read, or once deleted (never reuse it). */
  reusable: boolean;
  /** Which version the value holds, beyond its key (the registry gives its SHA-256: a model deleted and created again reuses numbers); "" when untold. */
  identity = "";
  state: EntryState;
  /** Recency list links (the pinned or the unpinned list); prev = less recently used. */
  recencyPrev: Entry<V> | null;
  recencyNext: Entry<V> | null;
  /** Insertion-order list links (all live entries), for the expiry sweep. */
  insertionPrev: Entry<V> | null;
  insertionNext: Entry<V> | null;

  constructor(
    modelId: string,
    versionNumber: number,
    value: V,
    bytes: number,
    insertedAt: number,
    pinned: boolean,
    tick: number,
    archived = false,
  ) {
    this.modelId = modelId;
    this.versionNumber = versionNumber;
    this.value = value;
    this.bytes = bytes;
    this.insertedAt = insertedAt;
    this.archived = archived;
    this.pinned = pinned;
    this.tick = tick;
    this.leases = 0;
    this.reusable = true;
    this.state = LIVE;
    this.recencyPrev = null;
    this.recencyNext = null;
    this.insertionPrev = null;
    this.insertionNext = null;
  }
}

class RecencyLinks implements ListLinks<Entry<unknown>> {
  prev(entry: Entry<unknown>): Entry<unknown> | null {
    return entry.recencyPrev;
  }
  next(entry: Entry<unknown>): Entry<unknown> | null {
    return entry.recencyNext;
  }
  setPrev(entry: Entry<unknown>, prev: Entry<unknown> | null): void {
    entry.recencyPrev = prev;
  }
  setNext(entry: Entry<unknown>, next: Entry<unknown> | null): void {
    entry.recencyNext = next;
  }
}

class InsertionLinks implements ListLinks<Entry<unknown>> {
  prev(entry: Entry<unknown>): Entry<unknown> | null {
    return entry.insertionPrev;
  }
  next(entry: Entry<unknown>): Entry<unknown> | null {
    return entry.insertionNext;
  }
  setPrev(entry: Entry<unknown>, prev: Entry<unknown> | null): void {
    entry.insertionPrev = prev;
  }
  setNext(entry: Entry<unknown>, next: Entry<unknown> | null): void {
    entry.insertionNext = next;
  }
}

const recencyLinks = new RecencyLinks();
const insertionLinks = new InsertionLinks();

/** The links of the recency (LRU) lists: front = least recently used. */
export function recencyLinksOf<V>(): ListLinks<Entry<V>> {
  return recencyLinks as ListLinks<Entry<V>>;
}

/** The links of the insertion-order list: front = inserted first. */
export function insertionLinksOf<V>(): ListLinks<Entry<V>> {
  return insertionLinks as ListLinks<Entry<V>>;
}
