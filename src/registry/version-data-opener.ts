import type { ArchiveStore, VersionDataReader } from "../archive/index.js";
import { type VersionRecord, findVersion } from "../domain/index.js";
import { EncodedVersionData, encodeFrameHeader, frameHeaderLength } from "../data/index.js";
import { Code, RegistryError, notFound } from "../errors/index.js";
import type { Logger } from "../logger.js";
import type { RegistryState, TransientDataSource } from "../state/index.js";
import { CacheLoad } from "./cache-load.js";
import type { StreamedReadAccount, StreamedReadBuffers } from "./streamed-read-buffers.js";
import type { Lease, Reservation, VersionCache } from "./version-cache.js";
import { type OffThreadHashing, createStreamingHash } from "./streaming-hash.js";

/** A version's data ready to stream: its reply chunk messages as gRPC frames (length prefix included). */
export interface VersionDataSource {
  readonly version: VersionRecord;
  readonly frames: Iterable<Buffer> | AsyncIterable<Buffer>;
  /**
   * Frees what the stream held (call once, whether it completed or not). `mayStillBeRead`: some frame
   * handed out may still be read (a socket write not confirmed), so its memory must never be reused.
   */
  release(mayStillBeRead: boolean): void;
  /**
   * Called once each frame has been written to the socket (or dropped), with its length: frames that
   * no cache entry holds are counted in StreamedReadBuffers until then. Absent for cached data.
   */
  readonly sent?: (frameBytes: number) => void;
  /**
   * The reader went away before the end (call it at once, the frames may be waiting for room): what
   * the stream holds goes back and its frames end. Absent for cached data. release() is still due.
   */
  readonly abandon?: () => void;
}

export interface VersionDataOpenerOptions {
  readonly state: RegistryState;
  readonly archive: ArchiveStore;
  readonly cache: VersionCache<EncodedVersionData>;
  readonly cacheMaxBytes: number;
  /** Data bytes per RetrieveVersionDataReplyChunk. */
  readonly chunkSize: number;
  /** Archived versions larger than cacheMaxBytes / this are streamed from disk, never cached. */
  readonly archivedCacheShare: number;
  readonly offThreadHash: OffThreadHashing | undefined;
  readonly beforeAllocate: (() => void) | undefined;
  /** The bound on frames of reads no cache entry backs (streamed from the archive or the shared state). */
  readonly streamedReads: StreamedReadBuffers;
  readonly log: Logger;
}

/**
 * The RetrieveVersionData read path: a version's data from the cache, else (archived) streamed while
 * it is read from the archive into the cache when it fits a share of the budget, else streamed from
 * the archive. Either way archived data is checked against its SHA-256 as it is sent: a mismatch ends
 * the stream with DATA_LOSS after the bytes, and such data is never cached.
 */
export class VersionDataOpener {
  /** Transient versions being read from the shared state into the cache (their readers stream them meanwhile). */
  readonly #transientLoads = new Map<string, Promise<CacheLoad | undefined>>();
  /** Archived versions being read into the cache (their readers stream them meanwhile). */
  readonly #archivedLoads = new Map<string, CacheLoad>();

  /** Model deletions seen so far (any model): a load that saw none during its read needs no check before it caches. */
  #deletions = 0;

  constructor(private readonly options: VersionDataOpenerOptions) {}

  /** A model was deleted (through this instance or, in shared mode, another). */
  modelDeleted(): void {
    this.#deletions += 1;
  }

  async open(version: VersionRecord): Promise<VersionDataSource> {
    const cached = this.#leaseData(version);
    if (cached !== undefined) {
      return cached;
    }
    if (!version.archived) {
      return this.#openTransient(version);
    }
    return (await this.#followArchivedLoad(version)) ?? this.#streamFromArchive(version);
  }

  /**
   * A transient version missing from the cache: read through from the registry state when it shares
   * transient data between instances, streamed while it is read into the cache (CacheLoad: once per
   * instance however many read it); streamed from the state by each reader when the budget has no
   * room; else it was evicted for good.
   */
  async #openTransient(version: VersionRecord): Promise<VersionDataSource> {
    const key = loadKey(version);
    for (;;) {
      let starting = this.#transientLoads.get(key);
      if (starting === undefined) {
        starting = this.#startTransientLoad(version, key);
        this.#transientLoads.set(key, starting);
      }
      const load = await starting;
      if (load === undefined) {
        return this.#streamTransient(version);
      }
      // Still listed: not yet cached, so it can be followed (a finished load is removed before it ends).
      if (this.#transientLoads.get(key) === starting) {
        const follower = await load.follow();
        return { version, frames: follower.frames, release: follower.release };
      }
      const cached = this.#leaseData(version);
      if (cached !== undefined) {
        return cached;
      }
    }
  }

  /** Each reader its own read of the shared state (the budget has no room for the version). */
  async #streamTransient(version: VersionRecord): Promise<VersionDataSource> {
    const source = await this.options.state.openTransientData(version);
    if (source === undefined) {
      throw transientGone(version, this.options.state.transientGoneReason);
    }
    const account = this.options.streamedReads.open();
    return accountedSource(version, framesOf(source.stream(), version.dataSize, this.options.chunkSize, account), account);
  }

  /**
   * Starts reading a transient version from the shared state into the cache: undefined when the
   * budget has no room (its readers stream it from the state instead). Rejects with NOT_FOUND when
   * the state does not have it (single mode, or evicted).
   */
  async #startTransientLoad(version: VersionRecord, key: string): Promise<CacheLoad | undefined> {
    const deletionsBefore = this.#deletions;
    try {
      // First: without shared data (single mode) nothing may be reserved (a reservation evicts).
      const source = await this.options.state.openTransientData(version);
      if (source === undefined) {
        throw transientGone(version, this.options.state.transientGoneReason);
      }
      const room = this.#reserveForLoad(version);
      if (room === undefined) {
        this.#transientLoads.delete(key);
        return undefined;
      }
      const { data, reservation } = room;
      const { cache } = this.options;
      return new CacheLoad(data, reservation, (chunkLoaded) => this.#readTransient(version, source, data, chunkLoaded), {
        checked: async () => {
          try {
            // A model deleted while it loaded (its event may have dropped the model from the cache
            // already): this version is not cached if it is gone, its readers got the bytes it had
            // when they asked. A deletion after this is seen by the cache itself.
            if (this.#deletions !== deletionsBefore && !sameVersion(await this.options.state.findVersion(version.modelId, version.versionNumber), version)) {
              return undefined;
            }
            // A copy of data the state keeps: unpinned, the cache may drop it whenever it needs the room.
            cache.insert(reservation, version.modelId, version.versionNumber, data, { pinned: false, identity: version.dataHash });
            return cache.acquire(version.modelId, version.versionNumber, version.dataHash);
          } finally {
            this.#transientLoads.delete(key);
          }
        },
        failed: () => this.#transientLoads.delete(key),
      });
    } catch (error) {
      this.#transientLoads.delete(key);
      throw error;
    }
  }

  /**
   * Copies a transient version from the shared state into `data`, straight from the state's socket
   * reads (the state checks each piece as it passes), each reply chunk announced as soon as its last
   * byte is in place and verified; too many bytes are counted, never written.
   */
  async #readTransient(version: VersionRecord, source: TransientDataSource, data: EncodedVersionData, chunkLoaded: () => void): Promise<void> {
    const { chunkSize } = this.options;
    const chunkCount = data.chunkCount;
    let position = 0;
    let announced = 0;
    await source.copyTo(
      (piece) => {
        if (position + piece.byteLength <= version.dataSize) {
          data.write(position, piece);
        }
        position += piece.byteLength;
      },
      (verified) => {
        // A chunk may be served once the verified data reaches its end (the last one ends at dataSize).
        const reached = Math.min(verified, position, version.dataSize);
        while (announced < chunkCount && Math.min((announced + 1) * chunkSize, version.dataSize) <= reached) {
          announced += 1;
          chunkLoaded();
        }
      },
    );
    if (position > version.dataSize) {
      throw new RegistryError(Code.DATA_LOSS, `the shared data of version ${version.versionNumber} of model "${version.modelId}" is longer than its data_size`);
    }
    if (position !== version.dataSize) {
      throw new RegistryError(Code.DATA_LOSS, `the shared data of version ${version.versionNumber} of model "${version.modelId}" is shorter than its data_size`);
    }
    while (announced < chunkCount) {
      announced += 1; // a version without bytes: its one empty chunk
      chunkLoaded();
    }
  }

  /**
   * The budget's room for a version being loaded into the cache, and where its bytes go; undefined
   * when the budget has no room for it. Its readers can stream it instead (from the archive or the
   * shared state), so it never takes the room of a model's transient latest: evicting that would
   * lose it for good.
   */
  #reserveForLoad(version: VersionRecord): { reservation: Reservation; data: EncodedVersionData } | undefined {
    const { cache, chunkSize } = this.options;
    let reserved;
    try {
      // The memory of an evicted version of the same size, when there is one, as an upload takes it:
      // no fresh allocation to fault in (a broadcast of same-size versions reads each one through).
      reserved = cache.reserveReusing(EncodedVersionData.planTotalBytes(version.dataSize, chunkSize), { keepPinnedTransient: true });
    } catch {
      return undefined;
    }
    const { reservation, reused } = reserved;
    try {
      if (reused !== undefined) {
        return { reservation, data: EncodedVersionData.reuse(reused, version.dataSize, chunkSize) };
      }
      this.options.beforeAllocate?.();
      return { reservation, data: EncodedVersionData.allocate(version.dataSize, chunkSize) };
    } catch (error) {
      reservation.release();
      throw error;
    }
  }

  /**
   * The cached data of this very version: a model deleted and created again reuses its numbers, and
   * only an entry of the same SHA-256 (the same bytes) may answer for it.
   */
  #leaseData(version: VersionRecord): VersionDataSource | undefined {
    const lease = this.options.cache.acquire(version.modelId, version.versionNumber, version.dataHash);
    if (lease === undefined) {
      return undefined;
    }
    return { version, frames: lease.value.frames(), release: (mayStillBeRead) => lease.release(mayStillBeRead) };
  }

  /**
   * An archived version that fits a share of the budget: streamed while it is read into the cache
   * (CacheLoad), following the load in progress if there is one. Undefined when it is too large or
   * the budget has no room: the caller streams it from the archive instead.
   */
  async #followArchivedLoad(version: VersionRecord): Promise<VersionDataSource | undefined> {
    const key = loadKey(version);
    const load = this.#archivedLoads.get(key) ?? this.#startArchivedLoad(version, key);
    if (load === undefined) {
      return undefined;
    }
    const follower = await load.follow();
    return { version, frames: follower.frames, release: follower.release };
  }

  #startArchivedLoad(version: VersionRecord, key: string): CacheLoad | undefined {
    const { cacheMaxBytes, chunkSize } = this.options;
    if (EncodedVersionData.planTotalBytes(version.dataSize, chunkSize) > cacheMaxBytes / this.options.archivedCacheShare) {
      return undefined;
    }
    const room = this.#reserveForLoad(version);
    if (room === undefined) {
      return undefined; // No room: stream from disk instead.
    }
    const { data, reservation } = room;
    const load = new CacheLoad(
      data,
      reservation,
      (chunkLoaded) => this.#readArchived(version, data, chunkLoaded),
      {
        checked: async () => {
          try {
            return await this.#cacheLoaded(version, data, reservation);
          } finally {
            this.#archivedLoads.delete(key);
          }
        },
        failed: () => this.#archivedLoads.delete(key), // the next reader reads the file again (and fails the same way)
      },
    );
    this.#archivedLoads.set(key, load);
    return load;
  }

  /**
   * Reads an archived version into `data`, each chunk hashed on a hash thread while the next ones are
   * read. The reads do not wait for the hash: the whole version is in memory (reserved) anyway, so
   * waiting would bound nothing and would pace the readers by the hash thread instead of the send.
   */
  async #readArchived(version: VersionRecord, data: EncodedVersionData, chunkLoaded: () => void): Promise<void> {
    const reader = await this.options.archive.openVersionData(version.modelId, version.versionNumber);
    const hash = createStreamingHash(this.options.offThreadHash);
    try {
      this.#checkArchivedSize(version, reader);
      let position = 0;
      const hashing: Promise<void>[] = [];
      for (const segment of data.dataSegments()) {
        await this.#readFully(version, reader, segment, position);
        position += segment.byteLength;
        const behind = hash.add(segment);
        if (behind !== undefined) {
          hashing.push(behind);
        }
        chunkLoaded();
      }
      await Promise.all(hashing);
      this.#checkArchivedHash(version, reader, await hash.digest());
    } finally {
      hash.abandon(); // after digest(): nothing
      await reader.close();
    }
  }

  /**
   * A checked version enters the cache (pinned when it is its model's latest), with a lease for the
   * readers still streaming it; undefined when it was deleted meanwhile (not cached: its readers got
   * the bytes it had when they asked).
   */
  async #cacheLoaded(version: VersionRecord, data: EncodedVersionData, reservation: Reservation): Promise<Lease<EncodedVersionData> | undefined> {
    const { cache } = this.options;
    const versions = await this.options.state.listVersions(version.modelId);
    // By content, not identity: a shared state reads fresh records at every call.
    if (!sameVersion(findVersion(versions, version.versionNumber), version)) {
      return undefined;
    }
    cache.insert(reservation, version.modelId, version.versionNumber, data, {
      pinned: sameVersion(versions[versions.length - 1], version),
      archived: true,
      identity: version.dataHash,
    });
    return cache.acquire(version.modelId, version.versionNumber, version.dataHash);
  }

  /**
   * Streams an archived version from disk, chunk by chunk, hashing as it goes: when the data's SHA-256
   * differs from its info's, the stream ends with DATA_LOSS instead of OK (the client got the bytes but
   * must not trust them). The frames live in shared memory so the worker hashing them needs no copy.
   */
  #streamFromArchive(version: VersionRecord): VersionDataSource {
    const account = this.options.streamedReads.open();
    return accountedSource(version, this.#archivedFrames(version, account), account);
  }

  async *#archivedFrames(version: VersionRecord, account: StreamedReadAccount): AsyncGenerator<Buffer> {
    const { chunkSize } = this.options;
    const hash = createStreamingHash(this.options.offThreadHash);
    const reader = await this.options.archive.openVersionData(version.modelId, version.versionNumber);
    try {
      this.#checkArchivedSize(version, reader);
      let position = 0;
      do {
        const length = Math.min(chunkSize, version.dataSize - position);
        const headerLength = frameHeaderLength(length);
        await account.take(headerLength + length);
        const frame = Buffer.from(new SharedArrayBuffer(headerLength + length));
        encodeFrameHeader(length, frame, 0);
        const data = frame.subarray(headerLength);
        await this.#readFully(version, reader, data, position);
        position += length;
        const behind = hash.add(data);
        yield frame;
        if (behind !== undefined) {
          await behind;
        }
      } while (position < version.dataSize);
      this.#checkArchivedHash(version, reader, await hash.digest());
    } finally {
      hash.abandon(); // a stream given up half way (after digest(): nothing)
      await reader.close();
    }
  }

  #checkArchivedSize(version: VersionRecord, reader: VersionDataReader): void {
    if (reader.size !== version.dataSize) {
      throw this.#corruptedOnDisk(version, reader, `${reader.size} bytes of data, its info says ${version.dataSize}`);
    }
  }

  #checkArchivedHash(version: VersionRecord, reader: VersionDataReader, hash: string): void {
    if (hash !== version.dataHash) {
      throw this.#corruptedOnDisk(version, reader, `its data's SHA-256 is "${hash}", its info says "${version.dataHash}"`);
    }
  }

  async #readFully(version: VersionRecord, reader: VersionDataReader, target: Uint8Array, position: number): Promise<void> {
    let filled = 0;
    while (filled < target.byteLength) {
      const count = await reader.read(target.subarray(filled), position + filled);
      if (count === 0) {
        throw this.#corruptedOnDisk(version, reader, `its data ended early at byte ${position + filled}`);
      }
      filled += count;
    }
  }

  /** DATA_LOSS for the client; for the operator, an error line naming the file. */
  #corruptedOnDisk(version: VersionRecord, reader: VersionDataReader, detail: string): RegistryError {
    const message = `version ${version.versionNumber} of model "${version.modelId}" is corrupted on disk: ${detail}`;
    this.options.log.error(
      { modelId: version.modelId, versionNumber: version.versionNumber, path: reader.location, detail },
      "archived version data is corrupted",
    );
    return new RegistryError(Code.DATA_LOSS, message);
  }
}

function transientGone(version: VersionRecord, reason: string): RegistryError {
  return notFound(`version ${version.versionNumber} of model "${version.modelId}" not found (${reason})`);
}

/**
 * A load in progress is followed only by readers of the same bytes (the same SHA-256): a model
 * deleted and created again reuses its numbers, and a reader of the new version 1 must not get the
 * old one's bytes.
 */
function loadKey(version: VersionRecord): string {
  return `${version.modelId}\u0000${version.versionNumber}\u0000${version.dataHash}`;
}

function sameVersion(a: VersionRecord | undefined, b: VersionRecord): boolean {
  return a !== undefined && a.versionNumber === b.versionNumber && a.creationTimestamp === b.creationTimestamp && a.dataHash === b.dataHash;
}

/** A read no cache entry backs: its frames counted in StreamedReadBuffers through `account`. */
function accountedSource(version: VersionRecord, frames: AsyncIterable<Buffer>, account: StreamedReadAccount): VersionDataSource {
  return {
    version,
    frames,
    release: () => account.close(),
    sent: (frameBytes) => account.sent(frameBytes),
    abandon: () => account.close(),
  };
}

/** Pieces of data of any size re-cut into reply chunk frames of `chunkSize` data bytes (the last one shorter). */
async function* framesOf(
  source: AsyncIterable<Uint8Array>,
  dataSize: number,
  chunkSize: number,
  account: StreamedReadAccount,
): AsyncGenerator<Buffer> {
  let position = 0;
  let frame: Buffer | undefined;
  let filled = 0;
  let headerLength = 0;
  const startFrame = async (): Promise<void> => {
    const length = Math.min(chunkSize, dataSize - position);
    headerLength = frameHeaderLength(length);
    await account.take(headerLength + length);
    frame = Buffer.allocUnsafe(headerLength + length);
    encodeFrameHeader(length, frame, 0);
    filled = 0;
  };
  if (dataSize === 0) {
    await startFrame();
    yield frame as Buffer;
    return;
  }
  for await (const piece of source) {
    let offset = 0;
    while (offset < piece.byteLength) {
      if (frame === undefined) {
        await startFrame();
      }
      const current = frame as Buffer;
      const taken = Math.min(current.byteLength - headerLength - filled, piece.byteLength - offset);
      current.set(piece.subarray(offset, offset + taken), headerLength + filled);
      filled += taken;
      offset += taken;
      position += taken;
      if (headerLength + filled === current.byteLength) {
        frame = undefined;
        yield current;
      }
    }
  }
  if (position !== dataSize) {
    throw new RegistryError(Code.DATA_LOSS, `the shared data of a version ended at byte ${position} of ${dataSize}`);
  }
}
