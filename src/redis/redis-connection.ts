import { EventEmitter } from "node:events";
import { Cluster, type ClusterOptions, type DNSLookupFunction, Redis, type RedisOptions } from "ioredis";
import type { RegistryError } from "../errors/index.js";
import { ChunkChannel, type ChunkStore } from "./chunk-channel.js";
import { ChunkRedirected, ClusterChunkChannels } from "./cluster-chunk-channels.js";
import { keySlot, probeKeyForSlot } from "./cluster-slot.js";
import type { RedisScript } from "./redis-scripts.js";
import { toRegistryError, unavailable } from "./redis-errors.js";
import { type NatMap, NO_NAT_MAP, ioredisNatMap, reachableNode } from "./nat-map.js";
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
  /** Told once the URL turned out to name a node of a Redis Cluster (for the log). */
  readonly onModeDetected?: (message: string) => void;
  /**
   * COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP: where to reach the nodes a Redis Cluster or the Sentinels
   * announce (every connection: ioredis's, the subscriber's moves, the chunk connections).
   */
  readonly natMap?: NatMap;
  /**
   * COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS: the Cluster client resolves the seeds' host
   * names to IP addresses before connecting (ioredis's default, true); false connects by name, so TLS
   * checks each seed's certificate against its name.
   */
  readonly resolveClusterSeeds?: boolean;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;
export const DEFAULT_PROBE_INTERVAL_MS = 1000;
const DEFAULT_MAX_RECONNECT_DELAY_MS = 1000;
/** ioredis's error for a command without a reply within commandTimeout. */
const COMMAND_TIMED_OUT = "Command timed out";

/** Errors of a connection that could not be made (refused, no route, no answer to the SYN, no such name). */
const CONNECT_FAILED = /^(?:connect )?(?:ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)\b|^connect ETIMEDOUT/;
/** ioredis's "DNS lookup" that keeps a host name: the connection resolves it (and TLS checks the certificate against it). */
const KEEP_HOST_NAME: DNSLookupFunction = (hostname, callback) => callback(null, hostname);

/** The variable that maps announced addresses, as the errors name it. */
const NAT_MAP_VARIABLE = "COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP";

/** What INFO says on a node of a Redis Cluster. */
const CLUSTER_ENABLED = /^cluster_enabled:1\s*$/m;

/** Single: one Redis (or its primary). Cluster: a Redis Cluster, found out at the first connection or given as several seeds. */
export type RedisMode = "detecting" | "single" | "cluster";

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
  /**
   * The commands' client: a Redis, or a Cluster once a Redis Cluster was found (the same commands,
   * each sent to the node serving its key's slot; a script goes where its first key is).
   */
  commands: Redis | Cluster;
  /**
   * The subscriber: on a Redis Cluster too, one plain connection to one node (a PUBLISH reaches the
   * subscribers of every node); when it is lost it connects again to the next node of the cluster.
   */
  readonly subscriber: Redis;
  /** The connection(s) for the bytes of version data only (see ChunkChannel): one, or one per Cluster node; opened at first use. */
  chunks: ChunkStore;
  private modeNow: RedisMode;
  private commandsReady = false;
  /** Cluster mode: masters (node keys) whose last probe failed; health waits for them. */
  private readonly mastersDown = new Set<string>();
  /**
   * Cluster mode: masters that left a command without a reply for the command timeout (hung: stopped,
   * or a partition that keeps the connection open). Calls for their slots fail at once, without being
   * sent, until the probe hears from the master again (or it serves no slot any more).
   */
  private readonly mastersHung = new Set<string>();
  /** Cluster mode: the seed nodes, then the nodes the subscriber may move to. */
  private subscriberNodes: readonly { host: string; port: number }[] = [];
  private subscriberNodeIndex = 0;
  private subscriberReady = false;
  private subscriberWasLost = false;
  private lastHealthy = false;
  private lastError = "not connected yet";
  private closed = false;
  /**
   * Whether the command connection was ready once (Cluster and Sentinel modes). Before that, a node it
   * cannot connect to is likely announced at an address not reachable from here (NAT, containers).
   */
  private commandsWereReady = false;
  private readonly natMap: NatMap;
  private readonly commandTimeoutMs: number;
  private readonly maxReconnectDelayMs: number;
  private readonly probeTimer: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(
    readonly endpoint: RedisEndpoint,
    private readonly options: RedisConnectionOptions = {},
  ) {
    super();
    const timeout = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.commandTimeoutMs = timeout;
    this.natMap = options.natMap ?? NO_NAT_MAP;
    const maxDelay = options.maxReconnectDelayMs ?? DEFAULT_MAX_RECONNECT_DELAY_MS;
    this.maxReconnectDelayMs = maxDelay;
    const retryDelay = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay);
    const redisOptions: RedisOptions = {
      ...(endpoint.sentinel === undefined
        ? { host: endpoint.host, port: endpoint.port, ...(endpoint.tls ? { tls: { servername: endpoint.host } } : {}) }
        : sentinelClientOptions(endpoint.sentinel, endpoint.tls, timeout, retryDelay, this.natMap)),
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
    this.subscriber = new Redis({
      ...redisOptions,
      retryStrategy: (attempt) => {
        this.moveSubscriberIfCluster();
        return retryDelay(attempt);
      },
    });
    if (endpoint.sentinel !== undefined) {
      // The Sentinels name a primary, never a Redis Cluster node: no detection.
      this.modeNow = "single";
      this.commands = new Redis(redisOptions);
      this.chunks = new ChunkChannel(endpoint, timeout, () => this.primaryAddress());
      this.watchCommands(this.commands);
    } else if (endpoint.clusterSeeds === undefined) {
      // One URL: a plain client, until its first connection says whether the node is part of a Redis Cluster.
      this.modeNow = "detecting";
      this.commands = new Redis(redisOptions);
      this.chunks = new ChunkChannel(endpoint, timeout);
      this.watchCommands(this.commands);
    } else {
      this.modeNow = "cluster";
      this.commands = this.openCluster(endpoint.clusterSeeds);
      this.chunks = new ClusterChunkChannels(this.commands, endpoint, timeout, this.natMap);
    }
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

  /** Whether this is a single Redis or a Redis Cluster (detecting: not connected yet). */
  get mode(): RedisMode {
    return this.modeNow;
  }

  /** `host:port` of the Redis (of the Cluster's seed nodes, comma-separated), as errors and logs name it. */
  get address(): string {
    const seeds = this.endpoint.clusterSeeds ?? [this.endpoint];
    const list = seeds.map(redisAddress).join(",");
    return this.modeNow === "cluster" ? `${list} (cluster)` : list;
  }

  /** The plain client's first connection: a node of a Redis Cluster turns this into a Cluster client. */
  private watchCommands(client: Redis): void {
    client.on("ready", () => {
      if (this.modeNow === "single") {
        this.commandsReady = true;
        this.commandsWereReady = true;
        this.reportHealth();
        return;
      }
      if (this.modeNow !== "detecting" || client !== this.commands) {
        return;
      }
      client.info("cluster").then(
        (info) => {
          if (this.closed || client !== this.commands || this.modeNow !== "detecting") {
            return;
          }
          if (CLUSTER_ENABLED.test(info) && this.endpoint.db !== 0) {
            // Not silently database 0: two registries kept apart by their database would share keys.
            const reason = `the URL names database ${this.endpoint.db}, but the Redis there is a Redis Cluster node, which has only database 0: remove /${this.endpoint.db} from COGMENT_MODEL_REGISTRY_REDIS_URL`;
            if (this.lastError !== reason) {
              this.lastError = reason;
              this.log(reason);
            }
          } else if (CLUSTER_ENABLED.test(info)) {
            this.switchToCluster(client);
          } else {
            this.modeNow = "single";
            this.commandsReady = client.status === "ready";
            this.reportHealth();
          }
        },
        (error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          if (message.includes("NOPERM") && !this.closed && client === this.commands && this.modeNow === "detecting") {
            // A user not allowed INFO (ioredis's ready check lets it pass too): taken for a single Redis;
            // a Redis Cluster is then given as several comma-separated URLs.
            this.modeNow = "single";
            this.commandsReady = client.status === "ready";
            this.reportHealth();
            return;
          }
          // The connection went away meanwhile: its next "ready" asks again.
          this.lastError = `cannot ask Redis whether it is a cluster: ${message}`;
        },
      );
    });
    client.on("error", (error: Error) => this.noteError(error));
    client.on("close", () => {
      this.commandsReady = false;
      this.reportHealth();
    });
  }

  private switchToCluster(plain: Redis): void {
    this.modeNow = "cluster";
    this.log("the Redis at the URL is a node of a Redis Cluster: using the Cluster client with it as seed");
    const cluster = this.openCluster([this.endpoint]);
    this.commands = cluster;
    const chunks = this.chunks;
    this.chunks = new ClusterChunkChannels(cluster, this.endpoint, this.commandTimeoutMs, this.natMap);
    chunks.close();
    plain.removeAllListeners("ready");
    plain.removeAllListeners("close");
    plain.on("error", () => undefined);
    plain.disconnect();
  }

  /**
   * The Cluster client. Fail-fast as the single client: no offline queue, no retry of a command whose
   * connection was lost (retryDelayOnFailover 0: a script may have run), CLUSTERDOWN at once; MOVED,
   * ASK and TRYAGAIN are followed (the command did not run). A node's connection that is lost ends
   * (ioredis's default for nodes); the next command for its slots, or the probe, connects again.
   */
  private openCluster(seeds: readonly RedisEndpoint[]): Cluster {
    const { endpoint } = this;
    const maxDelay = this.maxReconnectDelayMs;
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      enableReadyCheck: true,
      scaleReads: "master",
      maxRedirections: 16,
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 0,
      retryDelayOnTryAgain: 100,
      retryDelayOnMoved: 0,
      slotsRefreshTimeout: this.commandTimeoutMs,
      // The nodes are reached where the map says, not at the addresses CLUSTER SLOTS, MOVED and ASK give.
      ...(this.natMap.size > 0 ? { natMap: ioredisNatMap(this.natMap) } : {}),
      ...(this.options.resolveClusterSeeds === false ? { dnsLookup: KEEP_HOST_NAME } : {}),
      clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay),
      redisOptions: {
        username: endpoint.username,
        password: endpoint.password,
        // Each node's host name is checked against its certificate (Node's default servername).
        ...(endpoint.tls ? { tls: {} } : {}),
        connectTimeout: this.commandTimeoutMs,
        commandTimeout: this.commandTimeoutMs,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
      },
    };
    const cluster = new Cluster(
      seeds.map((seed) => ({ host: seed.host, port: seed.port })),
      options,
    );
    this.subscriberNodes = seeds.map((seed) => ({ host: seed.host, port: seed.port }));
    cluster.on("ready", () => {
      this.commandsWereReady = true;
      // Every master connected first: ioredis refuses a command for a node whose connection is still
      // being made (enableOfflineQueue off), so the first calls after a start would fail for nothing.
      void this.probeMasters(cluster).then(() => {
        this.commandsReady = cluster.status === "ready";
        this.reportHealth();
      });
    });
    cluster.on("error", (error: Error) => this.noteError(error));
    cluster.on("node error", (error: Error, node: unknown) => this.noteNodeError(error, node));
    for (const event of ["close", "end", "reconnecting"]) {
      cluster.on(event, () => {
        this.commandsReady = false;
        this.reportHealth();
      });
    }
    return cluster;
  }

  /** Cluster mode: the subscriber's next connection goes to the next node known (any node hears every PUBLISH). */
  private moveSubscriberIfCluster(): void {
    if (this.modeNow !== "cluster" || !(this.commands instanceof Cluster)) {
      return;
    }
    const known = new Map<string, { host: string; port: number }>();
    for (const node of [...this.subscriberNodes, ...this.commands.nodes("all").map((redis) => redis.options)]) {
      if (node.host !== undefined && node.port !== undefined) {
        known.set(`${node.host}:${node.port}`, { host: node.host, port: node.port });
      }
    }
    const nodes = [...known.values()];
    this.subscriberNodes = nodes;
    const next = nodes[this.subscriberNodeIndex++ % nodes.length];
    if (next !== undefined) {
      // ioredis's connector reads these options at each connection attempt.
      this.subscriber.options.host = next.host;
      this.subscriber.options.port = next.port;
      if (this.endpoint.tls) {
        this.subscriber.options.tls = {};
      }
    }
  }

  private log(message: string): void {
    this.options.onModeDetected?.(message);
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
      const { commands } = this;
      if (commands instanceof Cluster && !this.commandsWereReady && commands.status !== "ready" && !this.lastError.includes(NAT_MAP_VARIABLE)) {
        // Never ready: ioredis's cause alone ("Command timed out" of its ready check) does not say which nodes it tried.
        const cause = this.lastError === COMMAND_TIMED_OUT ? `no reply from the Cluster nodes within ${this.commandTimeoutMs} ms` : this.lastError;
        this.lastError = this.notReadyReason(commands, cause);
      }
      const pings: Promise<unknown>[] = [];
      if (this.commands instanceof Cluster) {
        pings.push(this.probeMasters(this.commands));
      } else if (this.commandsReady) {
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
              if (!(this.commands instanceof Cluster)) {
                this.abandonSilentChunks("subscriber");
              }
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
   * Cluster mode: one command to each master serving slots (EXISTS of a key of its first slot, never
   * written: routed like any call, so a lost node's connection is made again). A master that does not
   * answer within the timeout, refuses (CLUSTERDOWN) or cannot be reached is down until it answers:
   * health NOT_SERVING meanwhile, as with a single Redis that is down (calls for the other masters'
   * models still run).
   */
  private async probeMasters(cluster: Cluster): Promise<void> {
    if (cluster.status !== "ready") {
      return;
    }
    const firstSlots = new Map<string, number>();
    cluster.slots.forEach((nodes, slot) => {
      const master = nodes[0] === undefined ? undefined : reachableNode(this.natMap, nodes[0]);
      if (master !== undefined && !firstSlots.has(master)) {
        firstSlots.set(master, slot);
      }
    });
    if (this.mastersHung.size > 0) {
      // A hung master answers no MOVED: only a fresh slot map shows its slots promoted to a replica.
      cluster.refreshSlotsCache();
    }
    await Promise.all(
      [...firstSlots].map(async ([master, slot]) => {
        try {
          await cluster.exists(probeKeyForSlot(slot));
          this.mastersDown.delete(master);
          this.mastersHung.delete(master);
        } catch (error) {
          const timedOut = error instanceof Error && error.message === COMMAND_TIMED_OUT;
          if (!this.mastersDown.has(master)) {
            this.lastError = timedOut
              ? `the Cluster node ${master} did not answer within ${this.commandTimeoutMs} ms`
              : `the Cluster node ${master} did not answer: ${error instanceof Error ? error.message : String(error)}`;
          }
          if (timedOut) {
            this.markHung(master);
          }
          this.mastersDown.add(master);
        }
      }),
    );
    for (const master of this.mastersDown) {
      if (!firstSlots.has(master)) {
        this.mastersDown.delete(master); // serves no slot any more (a failover or resharding moved them)
        this.mastersHung.delete(master);
      }
    }
    for (const master of this.mastersHung) {
      if (!firstSlots.has(master)) {
        this.mastersHung.delete(master);
      }
    }
    this.reportHealth();
  }

  /**
   * Sentinel mode: the primary the command connection is on, which ioredis asked the Sentinels for and
   * checked (INFO's role) before it turned ready; the chunk channel follows it across failovers.
   */
  private primaryAddress(): SentinelAddress {
    const stream = this.commands instanceof Redis ? (this.commands.stream as { remoteAddress?: string; remotePort?: number } | undefined) : undefined;
    if (!this.commandsReady || stream?.remoteAddress === undefined || stream.remotePort === undefined) {
      throw new Error(`no primary reachable now (${this.lastError})`);
    }
    return { host: stream.remoteAddress, port: stream.remotePort };
  }

  /**
   * The `connection` to Redis (to the Cluster node `master`) got no reply for the command timeout: the
   * chunk connection there, if just as silent, is not left waiting out its own longer bound.
   */
  private abandonSilentChunks(connection: "command" | "subscriber", master?: string): void {
    this.chunks.abandonIfSilent(
      this.commandTimeoutMs,
      `no reply within ${this.commandTimeoutMs} ms on the ${connection} connection, nor any byte on the chunk connection`,
      master,
    );
  }

  /** Both connections are up: calls can run, though on a Redis Cluster some master may be down (see healthy). */
  get connected(): boolean {
    return this.commandsReady && this.subscriberReady;
  }

  /** Connected, and on a Redis Cluster every master serving slots answered its last probe. */
  get healthy(): boolean {
    return this.connected && this.mastersDown.size === 0;
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
    }, keys[0]);
  }

  /** Cluster mode: the master ioredis's slot map names for `key` now ("host:port"); undefined when unknown or not a Cluster. */
  masterOf(key: string): string | undefined {
    const { commands } = this;
    const master = commands instanceof Cluster ? commands.slots[keySlot(key)]?.[0] : undefined;
    // ioredis's map holds the announced address from a MOVED until its next refresh: named as reached.
    return master === undefined ? undefined : reachableNode(this.natMap, master);
  }

  /** Cluster mode: a master left a command without a reply (see mastersHung); health turns NOT_SERVING now. */
  private markHung(master: string): void {
    if (this.closed || this.probeTimer === undefined) {
      return; // without the probe, nothing would ever let calls through again
    }
    this.abandonSilentChunks("command", master);
    if (!this.mastersHung.has(master)) {
      this.lastError = `the Cluster node ${master} did not answer within ${this.commandTimeoutMs} ms`;
    }
    this.mastersHung.add(master);
    this.mastersDown.add(master);
    this.reportHealth();
  }

  /**
   * Runs Redis calls, turning any failure into the registry's error (UNAVAILABLE naming Redis, ...).
   * A command left without a reply for the command timeout means a hung or cut-off Redis, which TCP
   * alone may not notice for minutes: the command connection is dropped and made again, so `healthy`
   * turns false (health NOT_SERVING, later calls fail at once) until Redis answers again.
   * On a Redis Cluster, `key` (the first key the call touches) names the master the call goes to: its
   * errors name that master, and while it is hung (see mastersHung) the call fails at once, the other
   * masters' calls going on.
   */
  async call<T>(run: () => Promise<T>, key?: string): Promise<T> {
    const master = key === undefined ? undefined : this.masterOf(key);
    if (master !== undefined && this.mastersHung.has(master)) {
      throw unavailable(
        `${master} (cluster)`,
        `no reply within ${this.commandTimeoutMs} ms to an earlier command; calls for its slots fail at once until it answers again`,
      );
    }
    try {
      return await run();
    } catch (error) {
      if (error instanceof ChunkRedirected) {
        throw error; // the caller sends it again (copyVersionChunks)
      }
      if (error instanceof Error && error.message === COMMAND_TIMED_OUT && this.commands instanceof Cluster) {
        if (master === undefined) {
          // Which node hung is not known here: the probe finds it and turns health NOT_SERVING.
          this.lastError = `no reply within ${this.commandTimeoutMs} ms`;
        } else {
          this.markHung(master);
        }
      } else if (error instanceof Error && error.message === COMMAND_TIMED_OUT && !this.closed && this.commandsReady) {
        this.lastError = `no reply within ${this.commandTimeoutMs} ms`;
        this.commandsReady = false; // now: the connection's "close" comes later
        this.reportHealth();
        this.commands.disconnect(true);
        this.abandonSilentChunks("command");
      }
      throw toRegistryError(master === undefined ? this.address : `${master} (cluster)`, error);
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
    client.on("error", (error: Error) => this.noteError(error));
    client.on("close", () => {
      setReady(false);
      this.reportHealth();
    });
  }

  /**
   * Cluster mode: a node's connection failed. Until the Cluster client was ready once, a node it cannot
   * connect to is most likely one the cluster announces at an address not reachable from here (NAT,
   * containers): the error says so, since the seeds in REDIS_URL were reachable.
   */
  private noteNodeError(error: Error, node: unknown): void {
    this.noteError(error);
    if (!this.commandsWereReady && typeof node === "string" && CONNECT_FAILED.test(this.lastError) && this.commands instanceof Cluster) {
      this.lastError = this.notReadyReason(this.commands, `cannot connect to the Cluster node ${node}: ${this.lastError}`);
    }
  }

  /**
   * Cluster mode, never ready yet: `cause`, and where the masters are reached as CLUSTER SLOTS gave
   * them (through the NAT map). A node that refuses, or takes connections and never answers, at an
   * address the cluster announces is the usual reason behind NAT or in containers.
   */
  private notReadyReason(cluster: Cluster, cause: string): string {
    const masters = [...new Set(cluster.slots.flatMap((nodes) => (nodes[0] === undefined ? [] : [reachableNode(this.natMap, nodes[0])])))];
    if (masters.length === 0) {
      return cause; // no slot map yet: the seeds themselves did not answer
    }
    const list = masters.sort().join(", ");
    return this.natMap.size === 0
      ? `${cause} (the cluster announces its masters at ${list}: if those addresses are not reachable from here, e.g. behind NAT or in containers, map them to reachable ones with ${NAT_MAP_VARIABLE})`
      : `${cause} (its masters are reached at ${list}, the addresses the cluster announces as ${NAT_MAP_VARIABLE} maps them: check that it maps every announced address to a reachable one)`;
  }

  private noteError(error: Error): void {
    const code = (error as NodeJS.ErrnoException).code;
    this.lastError = error.message !== "" ? error.message : (code ?? error.name);
    if (this.endpoint.sentinel !== undefined && !this.commandsWereReady && CONNECT_FAILED.test(this.lastError)) {
      // The Sentinels answered (else ioredis says "All sentinels are unreachable"): the primary they name did not.
      this.lastError = `${this.lastError} (the address the Sentinels name for the primary${this.natMap.size === 0 ? "" : `, as ${NAT_MAP_VARIABLE} maps it`}: if it is not reachable from here, e.g. behind NAT or in containers, map it to a reachable one with ${NAT_MAP_VARIABLE})`;
    }
  }

  private reportHealth(): void {
    const healthy = this.healthy && !this.closed;
    if (healthy !== this.lastHealthy) {
      this.lastHealthy = healthy;
      this.emit("health", healthy);
    }
  }
}
