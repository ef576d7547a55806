import { Code, RegistryError } from "../errors/index.js";
import { MinRatePeriods } from "./min-rate-periods.js";

export interface UploadLimits {
  /** Longest wait without a byte from the client; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Fewest request bytes per second of waiting for the client (as they arrive: see UploadWatchdog); 0 disables. */
  readonly minRateBytesPerSecond: number;
  /** The rate is checked over each period of waiting of this length, from the end of the first one. */
  readonly minRatePeriodMs: number;
}

export const NO_UPLOAD_LIMITS: UploadLimits = { idleTimeoutMs: 0, minRateBytesPerSecond: 0, minRatePeriodMs: 10_000 };

const IDLE_VARIABLE = "COGMENT_MODEL_REGISTRY_UPLOAD_IDLE_TIMEOUT";
const RATE_VARIABLE = "COGMENT_MODEL_REGISTRY_UPLOAD_MIN_RATE";

/**
 * Gives up on a CreateVersion whose client is too slow: silent for `idleTimeoutMs`, or sending fewer
 * than `minRateBytesPerSecond` over a period after the first (the first is left to connection
 * start-up and TCP slow start). Only time spent waiting for the client counts: while the server
 * itself is busy with a message (a streamed upload's disk write and hash, say), the clock stops, so
 * a slow server never fails its clients. An upload holds its memory reservation for as long as it
 * runs, so a client that sends a large header and then trickles would otherwise hold it for ever.
 *
 * Progress is the request's bytes as they arrive (arrived()), when its source reports them: a body
 * message of many megabytes takes many seconds to arrive on a slow link, and a client sending it
 * steadily is neither idle nor slow meanwhile. A source that cannot report them (grpc-js internals
 * changed) is judged on whole messages (received()), as before. The figures in the messages count
 * the data of whole messages received.
 *
 * DEADLINE_EXCEEDED, the status grpc-js itself answers when a call's deadline passes on the server:
 * the server's time limit for the operation ran out.
 */
export class UploadWatchdog {
  readonly #limits: UploadLimits;
  readonly #onExpired: (error: RegistryError) => void;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined = undefined;
  /** When the current wait for the client began; undefined while the server is busy with a message. */
  #waitStart: number | undefined = undefined;
  /** Up to when the waiting time has been added to the current period. */
  #accountedUntil = 0;
  /** When the client was last heard from during the current wait (its start, or bytes arriving). */
  #lastHeard = 0;
  readonly #rate: MinRatePeriods;
  /** Whether arrived() reports the request's bytes: then they, not whole messages, are the rate's bytes. */
  #hearsBytes = false;
  /** Version data of the whole messages received. */
  #dataBytes = 0;
  #done = false;

  constructor(limits: UploadLimits, onExpired: (error: RegistryError) => void, now: () => number = () => performance.now()) {
    this.#limits = limits;
    this.#rate = new MinRatePeriods(limits.minRateBytesPerSecond, limits.minRatePeriodMs);
    this.#onExpired = onExpired;
    this.#now = now;
  }

  /** The handler waits for the client's next message. */
  waiting(): void {
    if (this.#done || this.#waitStart !== undefined) {
      return;
    }
    const now = this.#now();
    this.#waitStart = now;
    this.#lastHeard = now;
    this.#accountedUntil = now;
    // A timer still pending from an earlier wait fires no later than this wait needs (waiting
    // time only grows), and #tick re-arms for what is left: one timer per upload, not one per message.
    if (this.#timer === undefined) {
      this.#arm();
    }
  }

  /**
   * From now on the source reports the request's bytes as they arrive (arrived()): call before the
   * first of them. Whole messages then only count toward the data figures.
   */
  hearsBytes(): void {
    this.#hearsBytes = true;
  }

  /**
   * `bytes` of the request (of any message, whole or not) arrived from the client: while the server
   * waits for it, the client is not idle. Bytes that arrive while the server is busy count toward
   * the rate too (only the time does not).
   */
  arrived(bytes: number): void {
    if (this.#done || !this.#hearsBytes || bytes <= 0) {
      return;
    }
    // Counted before the waiting time is: they arrived by the end of the period that ends now.
    this.#rate.moved(bytes);
    if (this.#waitStart !== undefined) {
      const now = this.#now();
      this.#lastHeard = now;
      this.#account(now);
    }
  }

  /** A message with `dataBytes` of version data arrived; the server is busy with it until waiting(). */
  received(dataBytes: number): void {
    if (this.#done) {
      return;
    }
    // The timer is left pending (see waiting()); if it fires while the server is busy, it stops.
    if (this.#waitStart !== undefined) {
      this.#account(this.#now());
      this.#waitStart = undefined;
    }
    this.#dataBytes += dataBytes;
    if (!this.#hearsBytes) {
      this.#rate.moved(dataBytes);
    }
  }

  /** The upload ended (all received, failed or cancelled). */
  stop(): void {
    this.#done = true;
    this.#disarm();
  }

  #arm(): void {
    const { idleTimeoutMs } = this.#limits;
    let delay = Number.POSITIVE_INFINITY;
    if (idleTimeoutMs > 0) {
      delay = idleTimeoutMs - (this.#accountedUntil - (this.#waitStart === undefined ? this.#accountedUntil : this.#lastHeard));
    }
    if (this.#rate.checking) {
      delay = Math.min(delay, this.#rate.remainingMs);
    }
    if (Number.isFinite(delay)) {
      this.#timer = setTimeout(() => this.#tick(), Math.max(0, Math.ceil(delay))).unref();
    }
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#done || this.#waitStart === undefined) {
      return;
    }
    const now = this.#now();
    this.#account(now);
    if (this.#done) {
      return;
    }
    const { idleTimeoutMs } = this.#limits;
    const silentMs = now - this.#lastHeard;
    if (idleTimeoutMs > 0 && silentMs >= idleTimeoutMs) {
      this.#expire(
        `CreateVersion received nothing from the client for ${formatMs(silentMs)} ` +
          `(${IDLE_VARIABLE} = ${formatMs(idleTimeoutMs)}) after ${this.#dataBytes} bytes of data; ` +
          "the upload was abandoned and its memory reservation released",
      );
      return;
    }
    this.#arm();
  }

  /** Adds the waiting time up to `now` to the periods, checking the rate of each period it completes. */
  #account(now: number): void {
    const slow = this.#rate.waited(now - this.#accountedUntil);
    this.#accountedUntil = now;
    if (slow !== undefined) {
      this.#expire(
        `CreateVersion too slow: the client sent ${slow.bytes} bytes in ${formatMs(this.#limits.minRatePeriodMs)} of waiting ` +
          `(${slow.bytesPerSecond} bytes/s), below ${RATE_VARIABLE} = ${this.#limits.minRateBytesPerSecond} bytes/s, after ${this.#dataBytes} bytes of data; ` +
          "the upload was abandoned and its memory reservation released",
      );
    }
  }

  #expire(message: string): void {
    this.stop();
    this.#onExpired(new RegistryError(Code.DEADLINE_EXCEEDED, message));
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)}s` : `${Math.round(ms)}ms`;
}
