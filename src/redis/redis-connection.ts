import { EventEmitter } from "node:events";
import { Redis, type RedisOptions } from "ioredis";
import type { RegistryError } from "../errors/index.js";
import { ChunkChannel } from "./chunk-channel.js";
import type { RedisScript } from "./redis-scripts.js";
import { toRegistryError, unavailable } from "./redis-errors.js";
import { type SentinelAddress, sentinelClientOptions } from "./redis-sentinel-url.js";
import { type RedisEndpoint, redisAddress } from "./redis-url.js";

export interface RedisConnectionOptions {
  /**
   * The bound on every call: a command that has no reply after this long fails (UNAVAILABLE), and
   * so does connecting. While Redis is known to be down, calls fail at once (no offline queue).
   */
  readonly commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts; they go on forever. */
  readonly maxReconnectDelayMs?: number;
  /**
   * How often each connection is sent a PING while it is up (DEFAULT_PROBE_INTERVAL_MS), so that a
   * hung Redis turns health NOT_SERVING even on an instance no call reaches; 0: never.
   */
  readonly probeIntervalMs?: number;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;
export const DEFAULT_PROBE_INTERVAL_MS = 1000;
const DEFAULT_MAX_RECONNECT_DELAY_MS = 1000;
/** ioredis's error for a command without a reply within commandTimeout. */
const COMMAND_TIMED_OUT = "Command timed out";

export interface RedisConnectionEvents {
  /** Both connections are ready (again), or one of them was lost. */
  health: [healthy: boolean];
  /** The subscriber connection is subscribed again after it was lost: notifications may have been missed. */
  resubscribed: [];
}

/**
 * The two connections an instance holds to Redis: one for commands, one in subscriber mode (a
 * connection that subscribed can run nothing else). Fail-fast: no offline queue, no retry of a
 * command whose connection was lost (a script may have run), a timeout on every command; the
 * connections reconnect by themselves, and `healthy` says whether both are up.
 */
export class RedisConnection extends EventEmitter<RedisConnectionEvents> {
  readonly address: string;
  readonly commands: Redis;
  readonly subscriber: Redis;
  /** A third connection, for the bytes of version data only (see ChunkChannel); opened at its first use. */
  readonly chunks: ChunkChannel;
  private commandsReady = false;
  private subscriberReady = false;
  private subscriberWasLost = false;
  private lastHealthy = false;
  private lastError = "not connected yet";
  private closed = false;
  private readonly commandTimeoutMs: number;
  private readonly probeTimer: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(
    readonly endpoint: RedisEndpoint,
    options: RedisConnectionOptions = {},
  ) {
    super();
    this.address = redisAddress(endpoint);
    const timeout = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.commandTimeoutMs = timeout;
    const maxDelay = options.maxReconnectDelayMs ?? DEFAULT_MAX_RECONNECT_DELAY_MS;
    const retryDelay = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay);
    const redisOptions: RedisOptions = {
      ...(endpoint.sentinel === undefined
        ? { host: endpoint.host, port: endpoint.port, ...(endpoint.tls ? { tls: { servername: endpoint.host } } : {}) }
        : sentinelClientOptions(endpoint.sentinel, endpoint.tls, timeout, retryDelay)),
      username: endpoint.username,
      password: endpoint.password,
      db: endpoint.db,
      connectTimeout: timeout,
      commandTimeout: timeout,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: retryDelay,
      // Reconnect after READONLY (a failover turned our primary into a replica).
      reconnectOnError: (error) => error.message.startsWith("READONLY"),
    };
    this.commands = new Redis(redisOptions);
    this.subscriber = new Redis(redisOptions);
    this.chunks = new ChunkChannel(endpoint, timeout, endpoint.sentinel === undefined ? undefined : () => this.primaryAddress());
    this.watch(this.commands, (ready) => (this.commandsReady = ready));
    this.watch(this.subscriber, (ready) => {
      this.subscriberReady = ready;
      if (!ready) {
        this.subscriberWasLost = true;
      }
    });
    const probeInterval = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    if (probeInterval > 0) {
      this.probeTimer = setInterval(() => void this.probe(), probeInterval);
      this.probeTimer.unref();
    }
  }

  /**
   * A PING on each connection that is up. A hung Redis (stopped, or a path that drops packets) keeps
   * its sockets open, and TCP alone may not notice for minutes; without the probe, an instance that no
   * call reaches would say SERVING all along. A PING without a reply within the command timeout drops
   * that connection as a timed-out call does (health NOT_SERVING until Redis answers again; the
   * subscriber's reconnection catches up on what it missed).
   */
  private async probe(): Promise<void> {
    if (this.probing || this.closed) {
      return;
    }
    this.probing = true;
    try {
      const pings: Promise<unknown>[] = [];
      if (this.commandsReady) {
        pings.push(this.call(() => this.commands.ping()));
      }
      if (this.subscriberReady) {
        pings.push(
          this.subscriber.ping().catch((error: unknown) => {
            if (error instanceof Error && error.message === COMMAND_TIMED_OUT && !this.closed && this.subscriberReady) {
              this.lastError = `no reply to a PING within ${this.commandTimeoutMs} ms`;
              this.subscriberReady = false; // now: the connection's "close" comes later
              this.subscriberWasLost = true;
              this.reportHealth();
              this.subscriber.disconnect(true);
            }
          }),
        );
      }
      await Promise.allSettled(pings);
    } finally {
      this.probing = false;
    }
  }

  /**
   * Sentinel mode: the primary the command connection is on, which ioredis asked the Sentinels for and
   * checked (INFO's role) before it turned ready; the chunk channel follows it across failovers.
   */
  private primaryAddress(): SentinelAddress {
    const stream = this.commands.stream as { remoteAddress?: string; remotePort?: number } | undefined;
    if (!this.commandsReady || stream?.remoteAddress === undefined || stream.remotePort === undefined) {
      throw new Error(`no primary reachable now (${this.lastError})`);
    }
    return { host: stream.remoteAddress, port: stream.remotePort };
  }

  get healthy(): boolean {
    return this.commandsReady && this.subscriberReady;
  }

  /** Why the connection is down (the last error seen), for messages and logs. */
  get lastFailure(): string {
    return this.lastError;
  }

  /** The error every call gets while Redis is unreachable. */
  unavailableError(): RegistryError {
    return unavailable(this.address, this.lastError);
  }

  /** Resolves once both connections are ready; rejects with UNAVAILABLE after `timeoutMs`. */
  async waitUntilHealthy(timeoutMs: number): Promise<void> {
    if (this.healthy) {
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onHealth = (healthy: boolean): void => {
        if (healthy) {
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.off("health", onHealth);
        reject(this.unavailableError());
      }, timeoutMs);
      this.on("health", onHealth);
    });
  }

  /** Runs a script by SHA-1, loading it first if this Redis does not know it yet (a restart, a failover). */
  async runScript(script: RedisScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    if (keys.length !== script.keyCount) {
      throw new Error(`script ${script.name} takes ${script.keyCount} keys, got ${keys.length}`);
    }
    return this.call(async () => {
      try {
        return await this.commands.evalsha(script.sha1, keys.length, ...keys, ...args);
      } catch (error) {
        if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
          return await this.commands.eval(script.source, keys.length, ...keys, ...args);
        }
        throw error;
      }
    });
  }

  /**
   * Runs Redis calls, turning any failure into the registry's error (UNAVAILABLE naming Redis, ...).
   * A command left without a reply for the command timeout means a hung or cut-off Redis, which TCP
   * alone may not notice for minutes: the command connection is dropped and made again, so `healthy`
   * turns false (health NOT_SERVING, later calls fail at once) until Redis answers again.
   */
  async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof Error && error.message === COMMAND_TIMED_OUT && !this.closed && this.commandsReady) {
        this.lastError = `no reply within ${this.commandTimeoutMs} ms`;
        this.commandsReady = false; // now: the connection's "close" comes later
        this.reportHealth();
        this.commands.disconnect(true);
      }
      throw toRegistryError(this.address, error);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probeTimer);
    this.chunks.close();
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  private watch(client: Redis, setReady: (ready: boolean) => void): void {
    client.on("ready", () => {
      setReady(true);
      if (client === this.subscriber && this.subscriberWasLost) {
        this.subscriberWasLost = false;
        // ioredis re-subscribes before "ready" (autoResubscribe), so notifications flow again now.
        this.emit("resubscribed");
      }
      this.reportHealth();
    });
    client.on("error", (error: Error) => {
      const code = (error as NodeJS.ErrnoException).code;
      this.lastError = error.message !== "" ? error.message : (code ?? error.name);
    });
    client.on("close", () => {
      setReady(false);
      this.reportHealth();
    });
  }

  private reportHealth(): void {
    const healthy = this.healthy && !this.closed;
    if (healthy !== this.lastHealthy) {
      this.lastHealthy = healthy;
      this.emit("health", healthy);
    }
  }
}
