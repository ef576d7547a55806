import { randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import { Code, RegistryError, notFound } from "../errors/index.js";
import type { ChunkBufferPool } from "./chunk-buffer-pool.js";
import type { BulkSink } from "./chunk-channel.js";
import { ChunkRedirected } from "./cluster-chunk-channels.js";
import type { RedisConnection } from "./redis-connection.js";
import { toRegistryError } from "./redis-errors.js";
import { type ModelKeys, dataChunkKey, pendingChunkKey } from "./redis-keys.js";
import type { ChunkChecksums } from "./version-codec.js";

/** The data of an upload, complete in Redis under pending keys, ready for commitVersion. */
export interface UploadedData {
  /** "" for a version without data bytes (nothing stored). */
  readonly uploadId: string;
  readonly chunkCount: number;
  /** The CRC-32 of each chunk written (undefined without bytes). */
  readonly checksums: ChunkChecksums | undefined;
}

export interface VersionDataWriterOptions {
  readonly chunkBytes: number;
  /** TTL of the pending chunk keys, refreshed as the upload goes on: what a crashed upload leaves goes away. */
  readonly pendingTtlMs: number;
  /** Chunk writes sent and not yet acknowledged before append waits: the memory bound of an upload. */
  readonly maxChunksInFlight: number;
  /** Where full-size chunk buffers come from and go back to once their write is acknowledged (of `chunkBytes`). */
  readonly buffers: ChunkBufferPool;
}

/**
 * Streams one upload's data into Redis: appended bytes fill a chunk buffer, each full chunk is
 * written (SET with a TTL) under a pending key while the next one fills. An upload holds at most
 * (1 + maxChunksInFlight) chunks of memory, never the whole version. Nothing is visible until the
 * commit script renames the chunks into place, so an upload that dies leaves only pending keys,
 * which expire.
 */
export class VersionDataWriter {
  readonly uploadId = randomUUID();
  private buffer: Buffer | undefined = undefined;
  /** The bytes of `buffer` this chunk fills (the last chunk is shorter). */
  private length = 0;
  private filled = 0;
  /**
   * Chunk buffers whose SET is acknowledged, filled again by the next chunks: the chunk channel sends
   * a buffer as it is (no copy), so an upload goes through (1 + maxChunksInFlight) buffers whatever
   * its size. They come from the shared pool and go back to it when the upload ends.
   */
  private readonly spare: Buffer[] = [];
  private received = 0;
  private chunks = 0;
  /** The CRC-32 of each chunk written, in order (~0.2 ms per MiB, while the chunk is in the CPU's cache). */
  private readonly crc32: number[] = [];
  private readonly inFlight: Promise<void>[] = [];
  private failure: unknown = undefined;
  private lastRefreshMs = Date.now();
  private ended = false;
  /** Set by abort(): an append still in its loop stops, and no chunk is written after abort's UNLINK. */
  private aborted = false;

  constructor(
    private readonly connection: RedisConnection,
    private readonly keys: ModelKeys,
    /** The data_size announced by the upload's header. */
    readonly dataSize: number,
    private readonly options: VersionDataWriterOptions,
  ) {}

  /** Copies `data` into chunks; resolves when the writer can take more (backpressure). */
  async append(data: Uint8Array): Promise<void> {
    this.throwIfFailed();
    if (this.ended) {
      throw new Error("append after finish or abort");
    }
    if (this.received + data.byteLength > this.dataSize) {
      throw new Error(`more data than the ${this.dataSize} bytes announced`);
    }
    let offset = 0;
    while (offset < data.byteLength) {
      if (this.aborted) {
        throw new Error("the upload was aborted");
      }
      if (this.buffer === undefined) {
        // A version smaller than a chunk gets a buffer of its size; any other a pooled one (its last
        // chunk uses the start of it).
        this.buffer = this.spare.pop() ?? (this.dataSize < this.options.chunkBytes ? Buffer.allocUnsafe(this.dataSize) : this.options.buffers.take());
        this.length = Math.min(this.options.chunkBytes, this.dataSize - this.received);
        this.filled = 0;
      }
      const taken = Math.min(this.length - this.filled, data.byteLength - offset);
      this.buffer.set(data.subarray(offset, offset + taken), this.filled);
      this.filled += taken;
      this.received += taken;
      offset += taken;
      if (this.filled === this.length) {
        await this.flush();
      }
    }
  }

  /** Waits for every chunk to be stored and refreshes their TTL; then commit promptly. */
  async finish(): Promise<UploadedData> {
    this.ended = true;
    if (this.received !== this.dataSize) {
      throw new Error(`received ${this.received} bytes of the ${this.dataSize} announced`);
    }
    await Promise.all(this.inFlight.splice(0));
    this.returnBuffers();
    this.throwIfFailed();
    if (this.chunks === 0) {
      return { uploadId: "", chunkCount: 0, checksums: undefined };
    }
    await this.refreshTtl();
    return { uploadId: this.uploadId, chunkCount: this.chunks, checksums: { chunkBytes: this.options.chunkBytes, crc32: this.crc32 } };
  }

  /** Deletes what was written (best effort: the TTL collects what this cannot). */
  async abort(): Promise<void> {
    this.ended = true;
    this.aborted = true;
    if (this.buffer !== undefined) {
      this.spare.push(this.buffer); // being filled: no write holds it
      this.buffer = undefined;
    }
    await Promise.all(this.inFlight.splice(0));
    this.returnBuffers();
    const keys = this.writtenKeys();
    if (keys.length > 0) {
      await this.connection.commands.unlink(...keys).catch(() => undefined);
    }
  }

  /** Every buffer whose write is acknowledged goes back to the pool (a failed write's never: it may still be held). */
  private returnBuffers(): void {
    for (const buffer of this.spare.splice(0)) {
      this.options.buffers.give(buffer);
    }
  }

  private async flush(): Promise<void> {
    const buffer = this.buffer;
    if (buffer === undefined || this.aborted) {
      return;
    }
    this.buffer = undefined;
    const key = pendingChunkKey(this.keys, this.uploadId, this.chunks);
    this.chunks++;
    this.crc32.push(crc32(buffer.subarray(0, this.length)));
    const written = this.connection
      .call(() => this.connection.chunks.setChunk(key, [buffer.subarray(0, this.length)], this.options.pendingTtlMs), key)
      .then(
        () => void this.spare.push(buffer),
        (error: unknown) => {
          // Not reused: a write cut off by a dropped connection may still hold it.
          this.failure ??= error;
        },
      );
    this.inFlight.push(written);
    if (Date.now() - this.lastRefreshMs > this.options.pendingTtlMs / 3) {
      this.inFlight.push(this.refreshTtl().catch((error: unknown) => void (this.failure ??= error)));
    }
    while (this.inFlight.length > this.options.maxChunksInFlight) {
      await this.inFlight.shift();
    }
    this.throwIfFailed();
  }

  /** Gives every chunk written so far its full TTL again; fails if one is already gone. */
  private async refreshTtl(): Promise<void> {
    this.lastRefreshMs = Date.now();
    const keys = this.writtenKeys();
    const results = await this.connection.call(async () => {
      const pipeline = this.connection.commands.pipeline();
      for (const key of keys) {
        pipeline.pexpire(key, this.options.pendingTtlMs);
      }
      return (await pipeline.exec()) ?? [];
    }, keys[0]);
    const missing = results.findIndex(([error, value]) => error !== null || value !== 1);
    // A chunk whose SET is still in flight may not be there yet: only count the acknowledged ones.
    if (missing !== -1 && this.inFlight.length === 0) {
      const error = results[missing]?.[0];
      if (error !== null && error !== undefined) {
        throw toRegistryError(this.connection.address, error);
      }
      throw new RegistryError(
        Code.RESOURCE_EXHAUSTED,
        `chunk ${missing} of the upload left Redis before its commit (expired or evicted: is maxmemory too small?)`,
      );
    }
  }

  private writtenKeys(): string[] {
    return Array.from({ length: this.chunks }, (_, i) => pendingChunkKey(this.keys, this.uploadId, i));
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) {
      throw this.failure;
    }
  }
}

/** Chunk GETs sent ahead of the one being received when copying a version's data (replies land in place, so this holds no memory). */
const CHUNK_GETS_AHEAD = 4;

/**
 * Copies a version's data from Redis, in order, into `sink` (each piece valid only during the call):
 * the bytes go from the chunk channel's read buffer straight to where the caller keeps them, with a
 * few GETs in flight so that Redis always has the next chunk to send. A chunk that left Redis (the
 * version expired or was evicted while being read) fails with NOT_FOUND; once this settles, `sink`
 * is never called again.
 */
export async function copyVersionChunks(
  connection: RedisConnection,
  keys: ModelKeys,
  modelId: string,
  versionNumber: number,
  chunkCount: number,
  sink: BulkSink,
): Promise<void> {
  // A Redis Cluster node may answer a GET with MOVED or ASK (its slot moved, or is moving): nothing of
  // that chunk reached the sink, so the copy goes on from that chunk, where the redirection points; the
  // GETs pipelined after it are abandoned (their attempt's sink is closed before their replies). From
  // then on one GET at a time: during a migration a version's chunks are on two nodes, and replies on
  // two connections would reach the sink in no set order.
  let from = 0;
  for (let redirections = 0; ; redirections++) {
    try {
      await copyChunksFrom(connection, keys, modelId, versionNumber, chunkCount, sink, from, redirections === 0 ? CHUNK_GETS_AHEAD : 0);
      return;
    } catch (error) {
      if (!(error instanceof ChunkCopyRedirected) || redirections >= chunkCount + MAX_COPY_REDIRECTIONS) {
        // Redirected again and again (a slot moving on and on): Redis cannot serve it now.
        throw error instanceof ChunkCopyRedirected ? toRegistryError(connection.address, error.cause) : error;
      }
      from = error.index;
    }
  }
}

/** Redirections a copy follows beyond one per chunk (a slot migrated key by key may redirect each chunk once). */
const MAX_COPY_REDIRECTIONS = 4;

class ChunkCopyRedirected extends Error {
  constructor(
    readonly index: number,
    cause: unknown,
  ) {
    super(`chunk ${index} was redirected`, { cause });
  }
}

async function copyChunksFrom(
  connection: RedisConnection,
  keys: ModelKeys,
  modelId: string,
  versionNumber: number,
  chunkCount: number,
  sink: BulkSink,
  from: number,
  getsAhead: number,
): Promise<void> {
  let settled = false;
  const guarded: BulkSink = (piece) => {
    if (!settled) {
      sink(piece);
    }
  };
  const chunkKey = (index: number): string => dataChunkKey(keys, versionNumber, index);
  const fetch = (index: number): Promise<number | null> => {
    const key = chunkKey(index);
    const pending = connection.call(
      // Nil or an error: no later reply's bytes may reach the sink (they would land at this chunk's place).
      () => connection.chunks.getInto(key, guarded, () => (settled = true)),
      key,
    );
    pending.catch(() => undefined); // observed below, or abandoned when an earlier chunk failed
    return pending;
  };
  const inFlight: Promise<number | null>[] = [];
  /** The connection of the GETs in flight: a GET for another one waits until they are all answered. */
  let inFlightOn: unknown = undefined;
  let next = from;
  try {
    for (let index = from; index < chunkCount; index++) {
      while (next < chunkCount && inFlight.length <= getsAhead) {
        // Replies are ordered on one connection only: on a Redis Cluster whose slot map changes meanwhile
        // (a MOVED or ASK met by any command), two nodes would feed the sink in no set order.
        const on = connection.chunks.connectionFor(chunkKey(next));
        if (inFlight.length > 0 && on !== inFlightOn) {
          break;
        }
        inFlightOn = on;
        inFlight.push(fetch(next++));
      }
      let length: number | null;
      try {
        length = await (inFlight.shift() as Promise<number | null>);
      } catch (error) {
        throw error instanceof ChunkRedirected ? new ChunkCopyRedirected(index, error) : error;
      }
      if (length === null) {
        throw leftRedis(modelId, versionNumber);
      }
    }
  } finally {
    settled = true;
  }
}

/**
 * A version's data read back from Redis chunk by chunk into Buffers of its own, the next chunk fetched
 * while the current one is consumed: a reader holds at most two chunks (the stream for a reader the
 * cache has no room for). A chunk that left Redis ends the stream with NOT_FOUND.
 */
export async function* readVersionChunks(
  connection: RedisConnection,
  keys: ModelKeys,
  modelId: string,
  versionNumber: number,
  chunkCount: number,
): AsyncGenerator<Buffer, void, undefined> {
  const fetch = (index: number): Promise<Buffer | null> => {
    const key = dataChunkKey(keys, versionNumber, index);
    const pending = connection.call(() => connection.chunks.getBuffer(key), key);
    pending.catch(() => undefined); // observed below, or abandoned when the reader stops early
    return pending;
  };
  let next = chunkCount > 0 ? fetch(0) : undefined;
  for (let index = 0; index < chunkCount; index++) {
    const chunk = await (next as Promise<Buffer | null>);
    next = index + 1 < chunkCount ? fetch(index + 1) : undefined;
    if (chunk === null) {
      throw leftRedis(modelId, versionNumber);
    }
    yield chunk;
  }
}

function leftRedis(modelId: string, versionNumber: number): RegistryError {
  return notFound(
    `the data of version ${versionNumber} of model "${modelId}" left Redis while it was read (transient versions may have been evicted)`,
  );
}
