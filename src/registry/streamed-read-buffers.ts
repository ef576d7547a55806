/**
 * Bounds the version data held by reads that no cache entry backs: a version too large for the
 * cache streamed from the archive, or one the budget had no room for streamed from the shared state,
 * each reader with its own copy of every chunk. Without a bound each such stream holds what grpc-js
 * and the HTTP/2 stream queue before backpressure (~14 MiB at 2 MiB chunks), however many readers
 * there are: a hundred actors fetching a large archived version would hold well over a gigabyte.
 *
 * A stream takes room for a chunk before reading it and gives it back once the chunk has been written
 * to the socket, or all of it when the stream is over (closed: its client went away, or it ended).
 * While the room is taken it waits, in arrival order, so every stream keeps moving as the others'
 * clients read. One stream holds at most a quarter of the bound (and always may hold one chunk), so
 * a client that stops reading does not stop the others: its stream waits on its own share until
 * SEND_IDLE_TIMEOUT resets it. A chunk larger than the whole bound is taken alone (when nothing else
 * is held), so no size of chunk can stall.
 */
export class StreamedReadBuffers {
  #heldBytes = 0;
  readonly #waiting: Waiter[] = [];
  readonly #streamShare: number;

  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
    }
    this.#streamShare = Math.floor(maxBytes / STREAM_SHARE_DIVISOR);
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

  /** @internal Queues the account's request; `grant` runs once its bytes are counted. */
  enqueue(waiter: Waiter): void {
    this.#waiting.push(waiter);
    this.#wake();
  }

  /** @internal A waiter whose stream is over leaves the queue (which may let the next ones in). */
  withdraw(waiter: Waiter): void {
    const index = this.#waiting.indexOf(waiter);
    if (index !== -1) {
      this.#waiting.splice(index, 1);
      this.#wake();
    }
  }

  /** @internal */
  give(bytes: number): void {
    this.#heldBytes -= bytes;
    this.#wake();
  }

  /**
   * Grants waiters in arrival order: one over its stream's share is passed over (it waits for its own
   * chunks to be sent), one that does not fit the bound stops the round (those behind it wait too).
   */
  #wake(): void {
    for (let index = 0; index < this.#waiting.length; ) {
      const waiter = this.#waiting[index] as Waiter;
      const streamHeld = waiter.account.heldBytes;
      if (streamHeld > 0 && streamHeld + waiter.bytes > this.#streamShare) {
        index++;
        continue;
      }
      if (this.#heldBytes > 0 && this.#heldBytes + waiter.bytes > this.maxBytes) {
        return;
      }
      this.#waiting.splice(index, 1);
      this.#heldBytes += waiter.bytes;
      waiter.grant();
    }
  }
}

/** One stream holds at most this part of the bound (but always one chunk). */
const STREAM_SHARE_DIVISOR = 4;

/** @internal One stream's request for room. */
interface Waiter {
  readonly account: StreamedReadAccount;
  readonly bytes: number;
  grant(): void;
}

/** The stream was over before its room came: its reads stop there. */
export class StreamedReadClosed extends Error {
  constructor() {
    super("the read was given up while it waited for room (STREAMED_READS_MAX_SIZE)");
    this.name = "StreamedReadClosed";
  }
}

/** One stream's share of {@link StreamedReadBuffers}. */
export class StreamedReadAccount {
  #heldBytes = 0;
  #closed = false;
  #pending: { readonly waiter: Waiter; readonly reject: (error: Error) => void } | undefined = undefined;

  constructor(private readonly buffers: StreamedReadBuffers) {}

  get heldBytes(): number {
    return this.#heldBytes;
  }

  /**
   * Waits for room for `bytes` (one chunk at a time); rejects with StreamedReadClosed if the stream is
   * closed meanwhile or was already.
   */
  take(bytes: number): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new StreamedReadClosed());
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        account: this,
        bytes,
        grant: () => {
          this.#pending = undefined;
          this.#heldBytes += bytes;
          resolve();
        },
      };
      this.#pending = { waiter, reject };
      this.buffers.enqueue(waiter);
    });
  }

  /** A chunk of `bytes` was written to the socket (or dropped): its room goes back. */
  sent(bytes: number): void {
    const given = Math.min(bytes, this.#heldBytes);
    this.#heldBytes -= given;
    this.buffers.give(given);
  }

  /**
   * The stream is over (ended, or its client went away): everything it holds goes back, and a take
   * still waiting rejects. Safe to call more than once.
   */
  close(): void {
    this.#closed = true;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      this.buffers.withdraw(pending.waiter);
      pending.reject(new StreamedReadClosed());
    }
    this.sent(this.#heldBytes);
  }
}
