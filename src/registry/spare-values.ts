/**
 * Values of entries that left the version cache, kept for reuse: a new version of the same size
 * can take one instead of allocating fresh memory (fresh pages cost a page fault each on the first
 * write, and a 16 MiB version is 4096 of them). Oldest first out; only the owner's byte account
 * decides how many are kept (see VersionCache), this only remembers them and their age.
 */
export class SpareValues<V> {
  readonly #spares: { readonly bytes: number; readonly value: V; readonly since: number }[] = [];
  #bytes = 0;

  get bytes(): number {
    return this.#bytes;
  }

  get count(): number {
    return this.#spares.length;
  }

  add(bytes: number, value: V, now: number): void {
    this.#spares.push({ bytes, value, since: now });
    this.#bytes += bytes;
  }

  /** The most recently added spare of exactly `bytes`, removed from the pool. */
  take(bytes: number): V | undefined {
    for (let i = this.#spares.length - 1; i >= 0; i--) {
      const spare = this.#spares[i];
      if (spare !== undefined && spare.bytes === bytes) {
        this.#spares.splice(i, 1);
        this.#bytes -= bytes;
        return spare.value;
      }
    }
    return undefined;
  }

  /** Forgets the oldest spare; returns its bytes (0 when empty). */
  dropOldest(): number {
    const spare = this.#spares.shift();
    if (spare === undefined) {
      return 0;
    }
    this.#bytes -= spare.bytes;
    return spare.bytes;
  }

  /** Forgets the spares added before `cutoff`; returns the bytes dropped. */
  dropOlderThan(cutoff: number): number {
    let dropped = 0;
    while (this.#spares.length > 0 && (this.#spares[0]?.since ?? cutoff) < cutoff) {
      dropped += this.dropOldest();
    }
    return dropped;
  }

  clear(): number {
    const dropped = this.#bytes;
    this.#spares.length = 0;
    this.#bytes = 0;
    return dropped;
  }
}
