/**
 * Values of entries that left the version cache, kept for reuse: a new version of the same size
 * can take one instead of allocating fresh memory (fresh pages cost a page fault each on the first
 * write, and a 16 MiB version is 4096 of them). Oldest first out; only the owner's byte account
 * decides how many are kept (see VersionCache and its ledger, which counts `bytes` as spare bytes),
 * this remembers them, their age, and forgets them when they are too old.
 *
 * Owns: the spares, their total `bytes`, the count of reuses, and the expiry timer.
 * Invariants: `bytes` is the sum of the kept spares' bytes; a spare is kept at most about
 * `maxAgeMs` (+ one timer period) after it was added, and is handed out at most once (take removes
 * it); the timer runs only while there are spares and is unref'd (it never keeps the process
 * alive); after close() nothing is kept until the next add().
 */
export interface SpareValuesOptions {
  /** How long a spare is kept, in ms of `now` (> 0). */
  readonly maxAgeMs: number;
  /** Monotonic clock in ms. */
  readonly now: () => number;
}

export class SpareValues<V> {
  readonly #spares: { readonly bytes: number; readonly value: V; readonly since: number }[] = [];
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #bytes = 0;
  #reuses = 0;
  #timer: NodeJS.Timeout | undefined = undefined;

  constructor(options: SpareValuesOptions) {
    this.#maxAgeMs = options.maxAgeMs;
    this.#now = options.now;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get count(): number {
    return this.#spares.length;
  }

  /** Spares handed out by take(), since creation. */
  get reuses(): number {
    return this.#reuses;
  }

  /** Keeps `value` (of `bytes`) as a spare from now on; starts the expiry timer if it is not running. */
  add(bytes: number, value: V): void {
    this.#spares.push({ bytes, value, since: this.#now() });
    this.#bytes += bytes;
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => {
        this.dropExpired();
      }, this.#maxAgeMs);
      this.#timer.unref();
    }
  }

  /** The most recently added spare of exactly `bytes`, removed from the pool (a reuse). */
  take(bytes: number): V | undefined {
    for (let i = this.#spares.length - 1; i >= 0; i--) {
      const spare = this.#spares[i];
      if (spare !== undefined && spare.bytes === bytes) {
        this.#spares.splice(i, 1);
        this.#bytes -= bytes;
        this.#reuses += 1;
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

  /** Forgets the spares older than `maxAgeMs` (strictly); stops the timer when none is left. */
  dropExpired(): void {
    if (this.#spares.length > 0) {
      const cutoff = this.#now() - this.#maxAgeMs;
      while (this.#spares.length > 0 && (this.#spares[0]?.since ?? cutoff) < cutoff) {
        this.dropOldest();
      }
    }
    if (this.#spares.length === 0) {
      this.#stopTimer();
    }
  }

  /** Forgets every spare and stops the timer (idempotent); returns the bytes dropped. */
  clear(): number {
    const dropped = this.#bytes;
    this.#spares.length = 0;
    this.#bytes = 0;
    this.#stopTimer();
    return dropped;
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
