/**
 * A token bucket: `ratePerSecond` tokens a second, holding at most one second's worth (so a
 * burst of `ratePerSecond` passes at once). Refilled lazily from the clock passed in.
 */
export class TokenBucket {
  readonly ratePerSecond: number;
  #tokens: number;
  #updatedAtMs: number;

  constructor(ratePerSecond: number, nowMs: number) {
    this.ratePerSecond = ratePerSecond;
    this.#tokens = ratePerSecond;
    this.#updatedAtMs = nowMs;
  }

  /** Takes one token; false if the bucket is empty. */
  take(nowMs: number): boolean {
    this.#refill(nowMs);
    if (this.#tokens < 1) {
      return false;
    }
    this.#tokens -= 1;
    return true;
  }

  /** Whether the bucket is full again (forgetting it then changes nothing). */
  isFull(nowMs: number): boolean {
    this.#refill(nowMs);
    return this.#tokens >= this.ratePerSecond;
  }

  #refill(nowMs: number): void {
    const elapsedMs = nowMs - this.#updatedAtMs;
    if (elapsedMs > 0) {
      this.#tokens = Math.min(this.ratePerSecond, this.#tokens + (elapsedMs * this.ratePerSecond) / 1000);
      this.#updatedAtMs = nowMs;
    }
  }
}
