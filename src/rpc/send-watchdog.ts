/**
 * Notices a server stream whose client stopped reading: messages were handed to grpc-js and none of
 * them has left for the socket for `timeoutMs`. Counts the writes in flight through the completion
 * callbacks of their writes (see WriteConfirmations); the clock runs only while some write is
 * pending, and restarts whenever one completes (progress). 0 disables it.
 */
export class SendWatchdog {
  readonly #timeoutMs: number;
  readonly #onStalled: () => void;
  #pending = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  #stopped = false;

  constructor(timeoutMs: number, onStalled: () => void) {
    this.#timeoutMs = timeoutMs;
    this.#onStalled = onStalled;
  }

  /** Wraps one write's completion callback. */
  track(written: () => void): () => void {
    if (this.#timeoutMs <= 0 || this.#stopped) {
      return written;
    }
    this.#pending++;
    if (this.#timer === undefined) {
      this.#arm();
    }
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.#pending--;
        this.#disarm();
        if (this.#pending > 0) {
          this.#arm();
        }
      }
      written();
    };
  }

  stop(): void {
    this.#stopped = true;
    this.#disarm();
  }

  #arm(): void {
    if (this.#stopped) {
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped && this.#pending > 0) {
        this.#stopped = true;
        this.#onStalled();
      }
    }, this.#timeoutMs).unref();
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
