import { Cluster, type Redis } from "ioredis";
import { Code, RegistryError } from "../errors/index.js";
import type { RedisConnection } from "./redis-connection.js";

/** The configuration variable whose setting the messages of an unconfirmed write name. */
const WAIT_REPLICAS_VARIABLE = "COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS";

export interface ReplicationWaitOptions {
  /** WAIT's numreplicas: how many replicas must acknowledge a write before it is confirmed (> 0). */
  readonly replicas: number;
  /** WAIT's timeout, in ms (> 0). */
  readonly timeoutMs: number;
}

/**
 * A write that is done on the Redis primary (the client must learn it is stored) but whose replication
 * could not be confirmed: UNAVAILABLE, with what was written, so the caller can finish what the write
 * started (announce it, keep what a failover could need) before it answers.
 */
export class ReplicationUnconfirmed<T> extends RegistryError {
  constructor(
    message: string,
    /** What the write returned. */
    readonly outcome: T,
  ) {
    super(Code.UNAVAILABLE, message);
  }
}

/** The node a write was sent to, and the socket it went over: WAIT counts that connection's writes only. */
interface NodeMark {
  readonly node: Redis;
  readonly socket: unknown;
  /** The key that chose the node (to check, after the write, that it still routes there). */
  readonly key: string;
}

/** Where a write is about to go (see ReplicationWait.mark); pass it to confirm once the write is done. */
export interface WriteMark {
  readonly nodes: readonly NodeMark[];
}

/**
 * `WAIT <replicas> <timeout>` after the writes a client is told succeeded (COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS).
 * WAIT blocks the connection it is sent on until the replicas acknowledged every earlier write of
 * that connection, so it goes to the very connection the write went over: the command connection
 * (one Redis or the Sentinels' primary), or, on a Redis Cluster, ioredis's connection to the master
 * of the key's slot. A write whose node or socket changed before its WAIT (a reconnection, a
 * failover, a slot moved) is not confirmed: a fresh connection has no writes, and its WAIT would
 * return at once.
 *
 * A WAIT blocks every later command of that connection until it returns (Redis runs a blocked
 * client's next commands only then), so WAITs of one connection are never stacked: a write that
 * finds a WAIT in flight joins the next one, sent when that one returns, which covers every write
 * of the connection before it. A command thus waits behind one WAIT at most (≤ the timeout).
 */
export class ReplicationWait {
  private readonly queues = new WeakMap<Redis, WaitQueue>();

  constructor(
    private readonly connection: RedisConnection,
    readonly options: ReplicationWaitOptions,
  ) {}

  /** Before a write of `keys` (one key per node that matters): where each goes now. */
  mark(keys: readonly string[]): WriteMark {
    const nodes: NodeMark[] = [];
    for (const key of keys) {
      const node = this.nodeFor(key);
      if (node !== undefined && !nodes.some((mark) => mark.node === node)) {
        nodes.push({ node, socket: node.stream, key });
      }
    }
    return { nodes };
  }

  /**
   * After the write: WAIT on each of its nodes. Resolves to undefined when every node had `replicas`
   * acknowledgments, else to why not ("only 0 of 1 replicas acknowledged it within 1000 ms", ...).
   */
  async confirm(mark: WriteMark): Promise<string | undefined> {
    if (mark.nodes.length === 0) {
      return `the Redis node it went to is not known any more: its replication cannot be confirmed`;
    }
    const outcomes = await Promise.all(mark.nodes.map((node) => this.confirmOn(node)));
    return outcomes.find((outcome) => outcome !== undefined);
  }

  /** The message of a write done on the primary whose replication `confirm` did not confirm. */
  unconfirmedMessage(what: string, why: string): string {
    return `${what} on the Redis primary but ${why} (${WAIT_REPLICAS_VARIABLE}): it may be lost if the primary fails over`;
  }

  private async confirmOn(mark: NodeMark): Promise<string | undefined> {
    const { replicas, timeoutMs } = this.options;
    const unknown = (reason: string): string => `whether ${replicas} replicas have it is unknown: ${reason}`;
    if (this.nodeFor(mark.key) !== mark.node || mark.node.stream !== mark.socket) {
      return unknown("the connection it went over was lost or its slot moved before the replicas could be asked");
    }
    let acknowledged: number;
    try {
      acknowledged = await this.queueOf(mark.node).request();
    } catch (error) {
      return unknown(`WAIT failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (mark.node.stream !== mark.socket) {
      return unknown("the connection it went over was lost before the replicas could be asked");
    }
    return acknowledged >= replicas ? undefined : `only ${acknowledged} of ${replicas} replicas acknowledged it within ${timeoutMs} ms`;
  }

  private queueOf(node: Redis): WaitQueue {
    let queue = this.queues.get(node);
    if (queue === undefined) {
      const { replicas, timeoutMs } = this.options;
      queue = new WaitQueue(() => this.connection.call(async () => Number(await node.wait(replicas, timeoutMs))));
      this.queues.set(node, queue);
    }
    return queue;
  }

  /** The client of the node a command of `key` goes to now: the command connection, or a Cluster's master of the key's slot. */
  private nodeFor(key: string): Redis | undefined {
    const { commands } = this.connection;
    if (!(commands instanceof Cluster)) {
      return commands;
    }
    // As reached (through the NAT map): how ioredis names its node connections.
    const name = this.connection.masterOf(key);
    return name === undefined ? undefined : commands.nodes("all").find((node) => `${node.options.host}:${node.options.port}` === name);
  }
}

/** One connection's WAITs: at most one in flight; requests made meanwhile share the next. */
class WaitQueue {
  private inFlight: Promise<void> | undefined;
  private next: Promise<number> | undefined;

  constructor(private readonly send: () => Promise<number>) {}

  /** The replicas that acknowledged a WAIT sent after every write whose reply came before this call. */
  request(): Promise<number> {
    if (this.inFlight === undefined) {
      return this.start();
    }
    // The WAIT in flight may have been sent before the caller's write: the next one covers it.
    this.next ??= this.inFlight.then(() => {
      this.next = undefined;
      return this.start();
    });
    return this.next;
  }

  private start(): Promise<number> {
    const reply = this.send();
    const settled = reply.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight = settled;
    void settled.then(() => {
      if (this.inFlight === settled) {
        this.inFlight = undefined;
      }
    });
    return reply;
  }
}
