import { setTimeout as sleep } from "node:timers/promises";
import { Code, RegistryError } from "../errors/index.js";
import type { RedisConnection } from "../redis/index.js";
import { ArchiveConflict, syncArchiveIntoRedis } from "./archive-sync.js";
import type { RedisRegistryStateOptions } from "./redis-registry-state-options.js";
import { warnOfMissingReplicas } from "./replica-check.js";

export interface StartOnRedisOptions extends Pick<RedisRegistryStateOptions, "store" | "archive" | "numbering" | "log" | "startWaitMs" | "resumeRetryMs"> {
  /**
   * Reads what the followed models missed while the subscriber connection was down (catch-up.ts);
   * resolves to whether every model was caught up.
   */
  readonly catchUp: () => Promise<boolean>;
}

const DEFAULT_START_WAIT_MS = 2_000;
const DEFAULT_RESUME_RETRY_MS = 1_000;

/**
 * The start on Redis: subscribed to the changes and the archive imported if Redis lacks it. Until
 * it is done, health says NOT_SERVING and every call fails UNAVAILABLE naming Redis; it is done
 * (again: a Redis restarted empty is imported again) whenever Redis becomes reachable, with a
 * catch-up when the subscriber connection came back.
 */
export class StartOnRedis {
  private started = false;
  /** Returns of Redis (connection healthy) asked for, and the last one whose start-up work is done. */
  private resumesWanted = 0;
  private resumesDone = 0;
  private resumeRunning = false;
  /** The subscriber connection came back: what it missed must be read (see catchUp). */
  private catchUpWanted = false;
  /** What the first start attempt met that trying again cannot change (ArchiveConflict): begin() fails with it. */
  private startFailure: ArchiveConflict | undefined = undefined;
  private announceFirstAttempt: () => void = () => undefined;
  private readonly firstAttemptDone = new Promise<void>((resolve) => (this.announceFirstAttempt = resolve));
  private readonly healthListeners = new Set<(healthy: boolean) => void>();
  private lastHealthy = false;
  /** The archive's sync into Redis while one runs (importArchiveIfNeeded). */
  private importing: Promise<void> | undefined = undefined;
  private stopped = false;

  constructor(private readonly options: StartOnRedisOptions) {}

  private get connection(): RedisConnection {
    return this.options.store.connection;
  }

  /**
   * Follows the connection's health and subscription, and waits for the first start attempt once
   * Redis is reachable (at most startWaitMs for it to be); when Redis is not usable by then, warns and
   * resolves anyway: the start finishes by itself later. Rejects with an ArchiveConflict.
   */
  async begin(): Promise<void> {
    const { connection } = this;
    // The subscriber may be back before the command connection: the catch-up runs in the resume
    // loop, once both are up, and is tried again until every followed model was read.
    connection.on("resubscribed", this.onResubscribed);
    connection.on("health", this.onConnectionHealth);
    if (connection.healthy) {
      this.onConnectionHealth(true);
    }
    const reachable = await connection.waitUntilHealthy(this.options.startWaitMs ?? DEFAULT_START_WAIT_MS).then(
      () => true,
      () => false,
    );
    if (reachable) {
      await this.firstAttemptDone; // a reachable Redis: serve only once in step with it, as before
    }
    if (this.startFailure !== undefined) {
      throw this.startFailure;
    }
    if (!this.started) {
      this.options.log.warn(
        { redis: connection.address, cause: connection.healthy ? "the start on Redis failed" : connection.lastFailure },
        "Redis is not usable yet: this instance listens, health says NOT_SERVING and every call fails UNAVAILABLE until it is; the start finishes by itself then",
      );
    }
  }

  private readonly onResubscribed = (): void => {
    this.catchUpWanted = true;
    this.resumesWanted++;
    void this.resume();
  };

  /** The state closes: no more start-up work, unhealthy from now on. */
  stop(): void {
    this.stopped = true;
    this.connection.off("resubscribed", this.onResubscribed);
    this.connection.off("health", this.onConnectionHealth);
  }

  get healthy(): boolean {
    return this.started && this.connection.healthy && !this.stopped;
  }

  onHealth(listener: (healthy: boolean) => void): () => void {
    this.healthListeners.add(listener);
    return () => this.healthListeners.delete(listener);
  }

  /** Throws UNAVAILABLE naming Redis until the start is done. */
  requireStarted(): void {
    if (!this.started) {
      const { connection } = this;
      throw connection.healthy
        ? new RegistryError(
            Code.UNAVAILABLE,
            `Redis at ${connection.address} is reachable but this instance has not finished its start on it yet (subscribing, importing the archive); try again`,
          )
        : connection.unavailableError();
    }
  }

  private reportHealth(): void {
    const now = this.healthy;
    if (now !== this.lastHealthy) {
      this.lastHealthy = now;
      for (const listener of this.healthListeners) {
        listener(now);
      }
    }
  }

  private readonly onConnectionHealth = (connectionHealthy: boolean): void => {
    const { connection } = this;
    const { log, store } = this.options;
    log.info({ redis: connection.address, healthy: connectionHealthy }, connectionHealthy ? "Redis is reachable" : "Redis is unreachable");
    if (connectionHealthy && !this.stopped) {
      // Also after a return: a subscription refused while Redis was down is not retried by the client,
      // and a Redis restarted without its data gets the archive imported again.
      this.resumesWanted++;
      void this.resume();
      void warnOfMissingReplicas(store, log);
    }
    this.reportHealth();
  };

  /** Redis is reachable (again): the start-up work, retried while Redis stays reachable, then serve. */
  private async resume(): Promise<void> {
    if (this.resumeRunning) {
      return; // the loop below sees resumesWanted move
    }
    this.resumeRunning = true;
    const { connection } = this;
    try {
      // Connected is enough (one master of a Redis Cluster down): what can be caught up is, the rest is tried again.
      while (!this.stopped && connection.connected && this.resumesDone < this.resumesWanted) {
        const done = await this.attemptResume();
        if (done && !this.started && this.resumesDone >= this.resumesWanted && connection.connected && !this.stopped) {
          this.started = true;
          this.options.log.info({ redis: connection.address }, "start on Redis finished: serving");
        }
        this.reportHealth();
        this.announceFirstAttempt();
        if (!done) {
          await sleep(this.options.resumeRetryMs ?? DEFAULT_RESUME_RETRY_MS, undefined, { ref: false });
        }
      }
    } finally {
      this.resumeRunning = false;
      this.reportHealth();
      this.announceFirstAttempt(); // also when Redis went away again before a try
    }
  }

  /** One try at the start-up work on a reachable Redis (and a catch-up when one is due); whether it is done. */
  private async attemptResume(): Promise<boolean> {
    const target = this.resumesWanted;
    try {
      await this.options.store.feed.start();
      await this.importArchiveIfNeeded();
      if (this.catchUpWanted) {
        this.catchUpWanted = false;
        let complete = false;
        try {
          complete = await this.options.catchUp();
        } finally {
          this.catchUpWanted ||= !complete; // however it failed, the next try catches up again
        }
        if (!complete) {
          return false;
        }
      }
      this.resumesDone = Math.max(this.resumesDone, target);
      return true;
    } catch (error) {
      if (error instanceof ArchiveConflict && !this.started) {
        this.startFailure ??= error;
      }
      this.options.log.error({ err: error, redis: this.connection.address }, "cannot subscribe to Redis or import the archive into it; trying again");
      return false;
    }
  }

  /**
   * Brings Redis in line with the archive when it is not (archive-sync.ts): imports the archive into
   * a Redis that has not got it (a first start on a single-mode archive, or a Redis that lost its
   * data), and the changes of a single-mode run on the archive since the last import.
   */
  private importArchiveIfNeeded(): Promise<void> {
    const { store, archive, numbering, log } = this.options;
    this.importing ??= syncArchiveIntoRedis({ store, archive, numbering, log }).finally(() => (this.importing = undefined));
    return this.importing;
  }
}
