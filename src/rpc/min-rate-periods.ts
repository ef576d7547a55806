/** A period of waiting in which fewer bytes than the minimum rate moved (see MinRatePeriods). */
export interface SlowPeriod {
  /** Bytes moved in that period. */
  readonly bytes: number;
  /** The period's rate, bytes per second, rounded down. */
  readonly bytesPerSecond: number;
  /** Bytes moved since the start, that period's included. */
  readonly totalBytes: number;
}

/**
 * The minimum-rate rule of the slow-client watchdogs (uploads and reads): the time spent waiting
 * for the client, cut into periods of `periodMs`; every period after the first (left to connection
 * start-up and TCP slow start) must move at least `minBytesPerSecond`. A rate of 0 checks nothing.
 */
export class MinRatePeriods {
  readonly #minBytesPerSecond: number;
  readonly #periodMs: number;
  #waitedMs = 0;
  #periodBytes = 0;
  #periodsDone = 0;
  #totalBytes = 0;

  constructor(minBytesPerSecond: number, periodMs: number) {
    this.#minBytesPerSecond = minBytesPerSecond;
    this.#periodMs = periodMs;
  }

  get checking(): boolean {
    return this.#minBytesPerSecond > 0;
  }

  get totalBytes(): number {
    return this.#totalBytes;
  }

  /** Waiting time left until the current period ends. */
  get remainingMs(): number {
    return this.#periodMs - this.#waitedMs;
  }

  moved(bytes: number): void {
    this.#periodBytes += bytes;
    this.#totalBytes += bytes;
  }

  /** Adds waiting time; the first period it completes that was too slow, if any (then stop using it). */
  waited(ms: number): SlowPeriod | undefined {
    this.#waitedMs += ms;
    if (this.#minBytesPerSecond <= 0) {
      return undefined;
    }
    const wanted = (this.#minBytesPerSecond * this.#periodMs) / 1000;
    while (this.#waitedMs >= this.#periodMs) {
      if (this.#periodsDone > 0 && this.#periodBytes < wanted) {
        const bytes = this.#periodBytes;
        return { bytes, bytesPerSecond: Math.floor((bytes * 1000) / this.#periodMs), totalBytes: this.#totalBytes };
      }
      this.#periodsDone++;
      this.#waitedMs -= this.#periodMs;
      this.#periodBytes = 0;
    }
    return undefined;
  }
}
