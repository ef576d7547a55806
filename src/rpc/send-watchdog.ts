import type { Http2Stream } from "node:http2";
import { MinRatePeriods } from "./min-rate-periods.js";

export interface SendLimits {
  /** Longest time with sent data left unread (no byte of it leaving) before the stream is reset; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Fewest bytes per second the reader must take, over time spent waiting for it; 0 disables. */
  readonly minRateBytesPerSecond: number;
  /** The rate is checked over each period of waiting of this length, from the end of the first one. */
  readonly minRatePeriodMs: number;
}

export const NO_SEND_LIMITS: SendLimits = { idleTimeoutMs: 0, minRateBytesPerSecond: 0, minRatePeriodMs: 10_000 };

/**
 * Bytes written so far to the socket of the reader's connection (node:http2's
 * `session.socket.bytesWritten`), or undefined when unknown.
 */
export type ConnectionBytesWritten = () => number | undefined;

/**
 * Notices a server stream whose client does not read, or reads too slowly: messages were handed to
 * grpc-js and no byte of them has left for the socket for `idleTimeoutMs`, or fewer than
 * `minRateBytesPerSecond` left over a period of waiting after the first (left to connection
 * start-up). A reader holds what it reads (a cached version's lease, streamed-read room) for as long
 * as its stream runs: one that takes a chunk just before each idle timeout would otherwise hold it
 * for hours. Counts the writes in flight through the completion callbacks of their writes (see
 * WriteConfirmations); only time with a write pending counts (the server waiting for the client),
 * so a reader the server keeps waiting is never at fault.
 *
 * A write completes only once its whole message has left: a 2 MiB message to a reader taking
 * 150 KB/s takes 14 s. The bytes that leave meanwhile are read from the connection's socket
 * (`connectionBytes`, sampled at each check and at least every quarter of the idle timeout) and
 * credited to the message being written, never more than what is left of it: on a connection
 * shared with other streams, a reader that stopped is credited at most one message it did not take.
 */
export class SendWatchdog {
  readonly #limits: SendLimits;
  readonly #onStalled: (why: string) => void;
  readonly #now: () => number;
  readonly #connectionBytes: ConnectionBytesWritten | undefined;
  /** Sizes of the writes not yet completed, oldest first (a stream completes them in order). */
  readonly #pending: number[] = [];
  /** Bytes of the oldest pending write already credited from the connection's socket. */
  #headCredited = 0;
  /** The connection's bytes written at the last sample. */
  #lastSample: number | undefined = undefined;
  #timer: NodeJS.Timeout | undefined = undefined;
  #stopped = false;
  /** When bytes last left (a write completed or the socket moved) or the first write was made (the idle clock), while writes are pending. */
  #idleSince = 0;
  /** Up to when the waiting time has been added to the current period. */
  #accountedUntil = 0;
  readonly #rate: MinRatePeriods;

  constructor(
    limits: SendLimits,
    onStalled: (why: string) => void,
    now: () => number = () => performance.now(),
    connectionBytes?: ConnectionBytesWritten,
  ) {
    this.#limits = limits;
    this.#rate = new MinRatePeriods(limits.minRateBytesPerSecond, limits.minRatePeriodMs);
    this.#onStalled = onStalled;
    this.#now = now;
    this.#connectionBytes = connectionBytes;
  }

  /** Wraps the completion callback of one write of `bytes`. */
  track(written: () => void, bytes: number): () => void {
    const { idleTimeoutMs, minRateBytesPerSecond } = this.#limits;
    if ((idleTimeoutMs <= 0 && minRateBytesPerSecond <= 0) || this.#stopped) {
      return written;
    }
    this.#pending.push(bytes);
    if (this.#pending.length === 1) {
      const now = this.#now();
      this.#idleSince = now;
      this.#accountedUntil = now;
      this.#lastSample = this.#connectionBytes?.();
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
    // What the socket wrote up to now is this write's: the next sample counts from here.
    this.#lastSample = this.#connectionBytes?.();
    const at = this.#pending.indexOf(bytes);
    const credited = at === 0 ? Math.min(this.#headCredited, bytes) : 0;
    if (at === 0) {
      this.#headCredited = 0;
    }
    this.#pending.splice(at === -1 ? 0 : at, 1);
    // Counted before the waiting time is: the bytes arrived by the end of the period they end.
    this.#rate.moved(bytes - credited);
    this.#account(now);
    this.#idleSince = now;
    if (this.#pending.length > 0) {
      this.#rearm();
    } else {
      this.#disarm();
    }
  }

  /** Credits the oldest pending write with what the connection's socket wrote since the last sample. */
  #sample(now: number): void {
    const probe = this.#connectionBytes;
    if (probe === undefined) {
      return;
    }
    const at = probe();
    const last = this.#lastSample;
    this.#lastSample = at;
    const head = this.#pending[0];
    if (at === undefined || last === undefined || head === undefined || at <= last) {
      return;
    }
    const credit = Math.min(at - last, head - this.#headCredited);
    if (credit > 0) {
      this.#headCredited += credit;
      this.#rate.moved(credit);
      this.#idleSince = now;
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
      if (this.#connectionBytes !== undefined) {
        // Bytes leaving are only seen at a sample: a reader that stops is then reset within 1.25 idle timeouts.
        delay = Math.min(delay, idleTimeoutMs / 4);
      }
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
    if (this.#stopped || this.#pending.length === 0) {
      return;
    }
    const now = this.#now();
    this.#sample(now);
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

/** The connection's bytes written for a stream (see ConnectionBytesWritten); undefined once its session is gone. */
export function connectionBytesWritten(stream: Http2Stream): number | undefined {
  try {
    const written = stream.session?.socket.bytesWritten;
    return typeof written === "number" ? written : undefined;
  } catch {
    return undefined; // the session's socket is unbound (ERR_HTTP2_SOCKET_UNBOUND)
  }
}
