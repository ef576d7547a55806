import type { VersionRecord } from "./records.js";

/** Where a VersionUpdate subscriber's messages go; implemented by the RPC layer. */
export interface VersionSink {
  /** Sends one update; resolves when the stream can take more (backpressure). */
  send(version: VersionRecord): Promise<void>;
  /** Ends the stream cleanly (model deleted, server stopping). */
  end(): void;
}

/**
 * One VersionUpdate subscriber. At most one update is in flight; while it is,
 * newer versions replace each other in a single pending slot, so a slow reader
 * skips intermediate versions but always ends up with the latest and the
 * server never queues more than one record per subscriber.
 */
export class VersionSubscription {
  private pending: VersionRecord | undefined = undefined;
  private lastSent = 0;
  private sending = false;
  private closed = false;

  constructor(private readonly sink: VersionSink, private readonly onError: (error: unknown) => void) {}

  get isClosed(): boolean {
    return this.closed;
  }

  publish(version: VersionRecord): void {
    if (this.closed || version.versionNumber <= this.lastSent) {
      return;
    }
    if (this.pending === undefined || version.versionNumber > this.pending.versionNumber) {
      this.pending = version;
    }
    if (!this.sending) {
      void this.flush();
    }
  }

  end(): void {
    if (!this.closed) {
      this.closed = true;
      this.pending = undefined;
      this.sink.end();
    }
  }

  /** Stops without ending the stream (the client went away). */
  detach(): void {
    this.closed = true;
    this.pending = undefined;
  }

  private async flush(): Promise<void> {
    this.sending = true;
    try {
      while (this.pending !== undefined && !this.closed) {
        const next = this.pending;
        this.pending = undefined;
        this.lastSent = next.versionNumber;
        await this.sink.send(next);
      }
    } catch (error) {
      this.detach();
      this.onError(error);
    } finally {
      this.sending = false;
    }
  }
}
