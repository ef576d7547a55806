/*
 * The chunk buffers of the uploads streamed into Redis, shared by the uploads of one process.
 *
 * An upload fills one chunk buffer while its earlier chunks are written (version-data.ts), so it
 * goes through (1 + maxChunksInFlight) buffers of the chunk size. Allocated afresh for each upload,
 * these 2 MiB buffers were most of the memory outside the V8 heap that the uploading instance
 * churned (the version's cache entry and its received messages aside), and they lived long enough
 * to need a major collection to go: measured on the uploading instance of the cluster bench, 41–42
 * mark-compacts per 10 s (40–90 ms of main thread each) against 5 with the buffers kept from one
 * upload to the next (docs/redis-mode.md). Kept here, they are allocated once.
 */

/** How long buffers nobody took stay kept: a server that stopped uploading gives them back. */
export const CHUNK_BUFFER_IDLE_MS = 30_000;

export interface ChunkBufferPoolStats {
  /** Buffers allocated so far (each of `bufferBytes`). */
  readonly allocated: number;
  /** Buffers kept now, ready for the next chunk. */
  readonly kept: number;
}

export class ChunkBufferPool {
  readonly #kept: Buffer[] = [];
  #allocated = 0;
  #idleTimer: NodeJS.Timeout | undefined = undefined;

  /**
   * @param bufferBytes the chunk size: only buffers of exactly this size are kept
   * @param maxKept the buffers kept at most (the rest given back are left to the collector)
   * @param idleMs kept buffers are dropped after this long without a give()
   */
  constructor(
    readonly bufferBytes: number,
    readonly maxKept: number,
    private readonly idleMs = CHUNK_BUFFER_IDLE_MS,
  ) {
    if (!Number.isSafeInteger(bufferBytes) || bufferBytes <= 0) {
      throw new RangeError(`bufferBytes must be a positive integer, not ${bufferBytes}`);
    }
    if (!Number.isSafeInteger(maxKept) || maxKept < 0) {
      throw new RangeError(`maxKept must be a non-negative integer, not ${maxKept}`);
    }
  }

  /** A buffer of `bufferBytes` (its content is whatever it held before). */
  take(): Buffer {
    const kept = this.#kept.pop();
    if (kept !== undefined) {
      return kept;
    }
    this.#allocated++;
    return Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  /**
   * A buffer taken here that nothing reads or writes any more (its chunk's write acknowledged): kept
   * for the next take() while there is room.
   */
  give(buffer: Buffer): void {
    if (buffer.byteLength !== this.bufferBytes || this.#kept.length >= this.maxKept || this.#kept.includes(buffer)) {
      return;
    }
    this.#kept.push(buffer);
    if (this.#idleTimer === undefined) {
      this.#idleTimer = setTimeout(() => this.clear(), this.idleMs);
      this.#idleTimer.unref();
    } else {
      this.#idleTimer.refresh();
    }
  }

  get stats(): ChunkBufferPoolStats {
    return { allocated: this.#allocated, kept: this.#kept.length };
  }

  /** Drops the kept buffers (at close, and after idleMs without a give). */
  clear(): void {
    this.#kept.length = 0;
    if (this.#idleTimer !== undefined) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
  }
}
