/**
 * Bounds the version data held by reads that no cache entry backs: a version too large for the
 * cache streamed from the archive, or one the budget had no room for streamed from the shared state,
 * each reader with its own copy of every chunk. Without a bound each such stream holds what grpc-js
 * and the HTTP/2 stream queue before backpressure (~14 MiB at 2 MiB chunks), however many readers
 * there are: a hundred actors fetching a large archived version would hold well over a gigabyte.
 *
 * A stream takes room for a chunk before reading it and gives it back once the chunk has been written
 * to the socket. While the room is taken it waits, in arrival order, so every stream keeps moving as
 * the others' clients read. A chunk larger than the whole bound is taken alone (when nothing else is
 * held), so no size of chunk can stall.
 */
export class StreamedReadBuffers {
  #heldBytes = 0;
  readonly #waiting: { readonly bytes: number; readonly grant: () => void }[] = [];

  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
    }
  }

  /** Bytes taken and not yet given back. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Streams waiting for room. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  /** A reader's own account: what it still holds is given back by its close(). */
  open(): StreamedReadAccount {
    return new StreamedReadAccount(this);
  }

  /** Resolves once `bytes` are taken; undefined when they were taken at once (no promise to await). */
  take(bytes: number): Promise<void> | undefined {
    if (this.#waiting.length === 0 && this.#fits(bytes)) {
      this.#heldBytes += bytes;
      return undefined;
    }
    return new Promise((resolve) => {
      this.#waiting.push({
        bytes,
        grant: () => {
          this.#heldBytes += bytes;
          resolve();
        },
      });
    });
  }

  give(bytes: number): void {
    this.#heldBytes -= bytes;
    for (let next = this.#waiting[0]; next !== undefined && this.#fits(next.bytes); next = this.#waiting[0]) {
      this.#waiting.shift();
      next.grant();
    }
  }

  #fits(bytes: number): boolean {
    return this.#heldBytes === 0 || this.#heldBytes + bytes <= this.maxBytes;
  }
}

/** One stream's share of {@link StreamedReadBuffers}. */
export class StreamedReadAccount {
  #heldBytes = 0;
  #closed = false;

  constructor(private readonly buffers: StreamedReadBuffers) {}

  /** Waits for room for `bytes` (see StreamedReadBuffers.take). */
  async take(bytes: number): Promise<void> {
    const waiting = this.buffers.take(bytes);
    if (waiting !== undefined) {
      await waiting;
    }
    if (this.#closed) {
      this.buffers.give(bytes); // the stream was given up while it waited
      return;
    }
    this.#heldBytes += bytes;
  }

  /** A chunk of `bytes` was written to the socket (or dropped): its room goes back. */
  sent(bytes: number): void {
    const given = Math.min(bytes, this.#heldBytes);
    this.#heldBytes -= given;
    this.buffers.give(given);
  }

  /** The stream is over: everything it still holds goes back, and anything it still waits for when granted. */
  close(): void {
    this.#closed = true;
    this.sent(this.#heldBytes);
  }
}
