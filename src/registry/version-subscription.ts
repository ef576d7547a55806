import type { RegistryError } from "../errors/index.js";
import { LatestWins } from "../latest-wins.js";
import type { VersionRecord } from "../domain/index.js";

/** Where a VersionUpdate subscriber's messages go; implemented by the RPC layer. */
export interface VersionSink {
  /** Sends one update; resolves when the stream can take more (backpressure). */
  send(version: VersionRecord): Promise<void>;
  /**
   * Ends the stream with an error status saying why (model deleted, server stopping): never with
   * OK, which clients take for "nothing more will ever come" and then keep a stale latest silently.
   */
  end(reason: RegistryError): void;
}

/**
 * One VersionUpdate subscriber: versions go out in increasing order, latest wins (see
 * latest-wins.ts), so a slow reader skips intermediate versions but always ends up with the
 * latest and the server never queues more than one record per subscriber.
 */
export class VersionSubscription {
  private readonly sender: LatestWins<VersionRecord>;
  private newest = 0;

  constructor(
    private readonly sink: VersionSink,
    onError: (error: unknown) => void,
  ) {
    this.sender = new LatestWins((version) => sink.send(version), onError);
  }

  get isClosed(): boolean {
    return this.sender.isClosed;
  }

  publish(version: VersionRecord): void {
    if (version.versionNumber > this.newest) {
      this.newest = version.versionNumber;
      this.sender.offer(version);
    }
  }

  end(reason: RegistryError): void {
    if (!this.sender.isClosed) {
      this.sender.close();
      this.sink.end(reason);
    }
  }

  /** Stops without ending the stream (the client went away). */
  detach(): void {
    this.sender.close();
  }
}
