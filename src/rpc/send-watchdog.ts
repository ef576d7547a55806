import { MinRatePeriods } from "./min-rate-periods.js";

export interface SendLimits {
  /** Longest time with sent data left unread before the stream is reset; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Fewest bytes per second the reader must take, over time spent waiting for it; 0 disables. */
  readonly minRateBytesPerSecond: number;
  /** The rate is checked over each period of waiting of this length, from the end of the first one. */
  readonly minRatePeriodMs: number;
}

export const NO_SEND_LIMITS: SendLimits = { idleTimeoutMs: 0, minRateBytesPerSecond: 0, minRatePeriodMs: 10_000 };

/**
 * Notices a server stream whose client does not read, or reads too slowly: messages were handed to
 * grpc-js and none of them has left for the socket for `idleTimeoutMs`, or fewer than
 * `minRateBytesPerSecond` left over a period of waiting after the first (left to connection
 * start-up). A reader holds what it reads (a cached version's lease, streamed-read room) for as long
 * as its stream runs: one that takes a chunk just before each idle timeout would otherwise hold it
 * for hours. Counts the writes in flight through the completion callbacks of their writes (see
 * WriteConfirmations); only time with a write pending counts (the server waiting for the client),
 * so a reader the server keeps waiting is never at fault.
 */
export class SendWatchdog {
  readonly #limits: SendLimits;
  readonly #onStalled: (why: string) => void;
  readonly #now: () => number;
  #pending = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  #stopped = false;
  /** When the last write completed or the first was made (the idle clock), while writes are pending. */
  #idleSince = 0;
  /** Up to when the waiting time has been added to the current period. */
  #accountedUntil = 0;
  readonly #rate: MinRatePeriods;

  constructor(limits: SendLimits, onStalled: (why: string) => void, now: () => number = () => performance.now()) {
    this.#limits = limits;
    this.#rate = new MinRatePeriods(limits.minRateBytesPerSecond, limits.minRatePeriodMs);
    this.#onStalled = onStalled;
    this.#now = now;
  }

  /** Wraps the completion callback of one write of `bytes`. */
  track(written: () => void, bytes: number): () => void {
    const { idleTimeoutMs, minRateBytesPerSecond } = this.#limits;
    if ((idleTimeoutMs <= 0 && minRateBytesPerSecond <= 0) || this.#stopped) {
      return written;
    }
    if (this.#pending++ === 0) {
      const now = this.#now();
      this.#idleSince = now;
      this.#accountedUntil = now;
      this.#rearm();
    }
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.#completed(bytes);
      }
      written();
    };
  }

  stop(): void {
    this.#stopped = true;
    this.#disarm();
  }

  #completed(bytes: number): void {
    if (this.#stopped) {
      return;
    }
    const now = this.#now();
    // Counted before the waiting time is: the bytes arrived by the end of the period they end.
    this.#rate.moved(bytes);
    this.#account(now);
    this.#pending--;
    this.#idleSince = now;
    if (this.#pending > 0) {
      this.#rearm();
    } else {
      this.#disarm();
    }
  }

  #rearm(): void {
    this.#disarm();
    if (this.#stopped) {
      return;
    }
    const { idleTimeoutMs } = this.#limits;
    const now = this.#now();
    let delay = Number.POSITIVE_INFINITY;
    if (idleTimeoutMs > 0) {
      delay = idleTimeoutMs - (now - this.#idleSince);
    }
    if (this.#rate.checking) {
      delay = Math.min(delay, this.#rate.remainingMs - (now - this.#accountedUntil));
    }
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, Math.ceil(delay))).unref();
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#stopped || this.#pending === 0) {
      return;
    }
    const now = this.#now();
    const { idleTimeoutMs } = this.#limits;
    if (idleTimeoutMs > 0 && now - this.#idleSince >= idleTimeoutMs) {
      this.#stall("idle");
      return;
    }
    this.#account(now);
    if (!this.#stopped) {
      this.#rearm();
    }
  }

  /** Adds the waiting time up to `now` to the periods, checking the rate of each period it completes. */
  #account(now: number): void {
    const slow = this.#rate.waited(now - this.#accountedUntil);
    this.#accountedUntil = now;
    if (slow !== undefined) {
      const { minRateBytesPerSecond, minRatePeriodMs } = this.#limits;
      this.#stall(
        `the reader took ${slow.bytes} bytes in ${minRatePeriodMs} ms of waiting (${slow.bytesPerSecond} bytes/s), below ${minRateBytesPerSecond} bytes/s, after ${slow.totalBytes} bytes`,
      );
    }
  }

  #stall(why: string): void {
    this.stop();
    this.#onStalled(why);
  }
}
