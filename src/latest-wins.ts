/**
 * Sends only the newest of a series of values to a consumer that may be slower than the series:
 * at most one send is in flight, and while it is, newer values replace each other in a single
 * pending slot. A slow consumer skips intermediate values but always ends up with the latest, and
 * nothing queues without bound. Used by VersionUpdate subscribers and health Watch streams.
 */
export class LatestWins<T> {
  #pending: { readonly value: T } | undefined = undefined;
  #sending = false;
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  /** `send` resolves when the consumer can take more; if it rejects, the sender closes and `onError` is told. */
  constructor(
    private readonly send: (value: T) => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Sends `value` now, or after the send in flight, unless a newer one is offered meanwhile. */
  offer(value: T): void {
    if (this.#closed) {
      return;
    }
    this.#pending = { value };
    if (!this.#sending) {
      void this.#flush();
    }
  }

  /** Resolves once nothing is pending or in flight (at once if closed). */
  idle(): Promise<void> {
    if (this.#closed || (!this.#sending && this.#pending === undefined)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Drops what is pending and sends nothing more. */
  close(): void {
    this.#closed = true;
    this.#pending = undefined;
    this.#wakeIdle();
  }

  async #flush(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#pending !== undefined && !this.#closed) {
        const { value } = this.#pending;
        this.#pending = undefined;
        await this.send(value);
      }
    } catch (error) {
      this.close();
      this.onError(error);
    } finally {
      this.#sending = false;
      this.#wakeIdle();
    }
  }

  #wakeIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) {
      wake();
    }
  }
}
