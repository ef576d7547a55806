import type { Cluster } from "ioredis";
import { type BulkSink, ChunkChannel, type ChunkStore } from "./chunk-channel.js";
import { keySlot } from "./cluster-slot.js";
import { type NatMap, NO_NAT_MAP, reachableNode } from "./nat-map.js";
import type { RedisEndpoint } from "./redis-url.js";

/** A MOVED or ASK reply: `MOVED <slot> <host:port>`. */
const REDIRECT = /^(MOVED|ASK) (\d+) (\S+)$/;
/** Redirections one chunk command follows before it fails (a slot moving twice while we ask is already rare). */
const MAX_REDIRECTIONS = 5;

/**
 * A chunk GET whose node answered MOVED or ASK: none of its bytes reached the sink, the routing is
 * updated, and the caller may send it again (and the GETs it had pipelined after it: see
 * copyVersionChunks). Only getInto throws it; the other commands follow redirections themselves.
 */
export class ChunkRedirected extends Error {
  override readonly name = "ChunkRedirected";
}

/**
 * The chunk connections of a Redis Cluster: one ChunkChannel per node, each key sent to the node that
 * serves its slot (ioredis's slot map, refreshed by the Cluster client; a MOVED seen here wins until
 * that map is refreshed). ASK (a slot being migrated) sends the one command again, with ASKING, to
 * the node importing the slot. Every node is reached where the NAT map says: MOVED and ASK name the
 * node as the cluster announces it, and so does ioredis's map after a MOVED until its next refresh.
 */
export class ClusterChunkChannels implements ChunkStore {
  private readonly channels = new Map<string, ChunkChannel>();
  /** Slot → node from MOVED replies, newer than ioredis's map until its next refresh. */
  private readonly moved = new Map<number, string>();
  /** Key → node of its last ASK reply: where that key's next command goes, once, with ASKING. */
  private readonly asked = new Map<string, string>();
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    /** Credentials and TLS of every node (the seed's). */
    private readonly seed: RedisEndpoint,
    private readonly timeoutMs: number,
    private readonly natMap: NatMap = NO_NAT_MAP,
  ) {
    cluster.on("refresh", this.onRefresh);
  }

  async setChunk(key: string, segments: readonly Uint8Array[], ttlMs: number): Promise<void> {
    await this.follow(key, (channel, asking) => channel.setChunk(key, segments, ttlMs, asking));
  }

  getBuffer(key: string): Promise<Buffer | null> {
    return this.follow(key, (channel, asking) => channel.getBuffer(key, asking));
  }

  async getInto(key: string, sink: BulkSink, onNoBulk?: () => void): Promise<number | null> {
    const { channel, asking } = this.route(key);
    try {
      return await channel.getInto(key, sink, onNoBulk, asking);
    } catch (error) {
      if (this.noteRedirect(key, error)) {
        throw new ChunkRedirected(`chunk ${key} was redirected: ${(error as Error).message}`, { cause: error });
      }
      throw error;
    }
  }

  abandonIfSilent(silentMs: number, reason: string, node?: string): void {
    if (node !== undefined) {
      this.channels.get(node)?.abandonIfSilent(silentMs, reason);
    }
  }

  close(): void {
    this.closed = true;
    this.cluster.off("refresh", this.onRefresh);
    for (const channel of this.channels.values()) {
      channel.close();
    }
    this.channels.clear();
  }

  private async follow<T>(key: string, run: (channel: ChunkChannel, asking: boolean) => Promise<T>): Promise<T> {
    for (let redirections = 0; ; redirections++) {
      const { channel, asking } = this.route(key);
      try {
        return await run(channel, asking);
      } catch (error) {
        if (redirections >= MAX_REDIRECTIONS || !this.noteRedirect(key, error)) {
          throw error;
        }
      }
    }
  }

  /** Records where a MOVED or ASK reply sends `key`; false for any other error. */
  private noteRedirect(key: string, error: unknown): boolean {
    const redirect = error instanceof Error ? REDIRECT.exec(error.message) : null;
    if (redirect === null) {
      return false;
    }
    const [, kind, slot, node] = redirect as unknown as [string, string, string, string];
    const reachable = reachableNode(this.natMap, node);
    if (kind === "MOVED") {
      this.moved.set(Number(slot), reachable);
      this.cluster.refreshSlotsCache();
    } else {
      this.asked.set(key, reachable);
    }
    return true;
  }

  /** The node (`host:port`) a command for `key` goes to now; undefined while no node is known for its slot. */
  connectionFor(key: string): unknown {
    return this.asked.get(key) ?? this.nodeOfSlot(keySlot(key));
  }

  private route(key: string): { channel: ChunkChannel; asking: boolean } {
    const askedNode = this.asked.get(key);
    if (askedNode !== undefined) {
      this.asked.delete(key);
      return { channel: this.channel(askedNode), asking: true };
    }
    const slot = keySlot(key);
    const node = this.nodeOfSlot(slot);
    if (node === undefined) {
      throw new Error(`no node of the Redis Cluster is known to serve slot ${slot} yet`);
    }
    return { channel: this.channel(node), asking: false };
  }

  private nodeOfSlot(slot: number): string | undefined {
    const moved = this.moved.get(slot);
    if (moved !== undefined) {
      return moved;
    }
    const master = this.cluster.slots[slot]?.[0];
    return master === undefined ? undefined : reachableNode(this.natMap, master);
  }

  private channel(node: string): ChunkChannel {
    let channel = this.channels.get(node);
    if (channel === undefined) {
      if (this.closed) {
        throw new Error("Connection is closed.");
      }
      const colon = node.lastIndexOf(":");
      const host = node.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
      const endpoint: RedisEndpoint = {
        host,
        port: Number(node.slice(colon + 1)),
        tls: this.seed.tls,
        username: this.seed.username,
        password: this.seed.password,
        db: 0,
      };
      channel = new ChunkChannel(endpoint, this.timeoutMs);
      this.channels.set(node, channel);
    }
    return channel;
  }

  /** ioredis read the slot map again: MOVED replies seen before are in it; nodes that serve nothing lose their connection. */
  private readonly onRefresh = (): void => {
    this.moved.clear();
    // ASK targets are one command's; those of abandoned commands would stay for ever (a key asked again
    // meets its ASK again).
    this.asked.clear();
    const serving = new Set(this.cluster.slots.flatMap((nodes) => (nodes[0] === undefined ? [] : [reachableNode(this.natMap, nodes[0])])));
    for (const [node, channel] of this.channels) {
      if (!serving.has(node)) {
        channel.close();
        this.channels.delete(node);
      }
    }
  };
}
