import type { ArchiveStore, VersionDataReader } from "../archive/index.js";
import { compareCodePoints } from "../code-point-order.js";
import { EncodedVersionData, encodeFrameHeader, frameHeaderLength } from "../data/index.js";
import { Code, RegistryError, notFound, resourceExhausted } from "../errors/index.js";
import type { Logger } from "../logger.js";
import { readBootId } from "./boot-id.js";
import { ModelActor } from "./model-actor.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import { type Reservation, VERSION_OVERHEAD_BYTES, VersionCache, type VersionCacheStats } from "./version-cache.js";
import type { UploadHeader } from "./upload-header.js";
import { type PendingUpload, VersionUpload } from "./version-upload.js";
import { StreamedVersionUpload } from "./streamed-upload.js";
import { type VersionSink, VersionSubscription } from "./version-subscription.js";
import { type ResumableHash, createStreamingHash } from "./streaming-hash.js";
import { findVersion, lowerBound, pageOf, parseHandle, resolveVersion } from "./version-selection.js";

export interface RegistryOptions {
  readonly archive: ArchiveStore;
  readonly cacheMaxBytes: number;
  readonly cacheExpirationMs: number;
  readonly cachePruneCount: number;
  /** Data bytes per RetrieveVersionDataReplyChunk. */
  readonly chunkSize: number;
  hash(segments: readonly Uint8Array[]): Promise<string>;
  /**
   * Resumable hashing for archived uploads streamed to disk. Without it, archived uploads are held
   * in memory like transient ones (and so limited by the cache budget).
   */
  readonly resumableHash?: ResumableHash;
  /** Largest data_size accepted for one version; 0 = no limit but the cache budget (transient) or the disk (archived). */
  readonly maxVersionBytes?: number;
  readonly log: Logger;
  /** Called before version data is allocated (see memory-guard.ts). */
  readonly beforeAllocate?: () => void;
  /** Called with the size of every piece of version data an upload receives. */
  readonly dataReceived?: (bytes: number) => void;
  /** Clock in ns since the epoch, for creation timestamps. */
  readonly now?: () => bigint;
  /** The kernel's boot id; read from /proc when not given (tests give one to simulate a reboot). */
  readonly bootId?: string;
}

/** A version's data ready to stream: its reply chunk messages as gRPC frames (length prefix included). */
export interface VersionDataSource {
  readonly version: VersionRecord;
  readonly frames: Iterable<Buffer> | AsyncIterable<Buffer>;
  /**
   * Frees what the stream held (call once, whether it completed or not). `mayStillBeRead`: some frame
   * handed out may still be read (a socket write not confirmed), so its memory must never be reused.
   */
  release(mayStillBeRead: boolean): void;
}

export interface ModelPage {
  readonly models: readonly ModelRecord[];
  readonly nextHandle: string;
}

export interface VersionPage {
  readonly versions: readonly VersionRecord[];
  readonly nextHandle: string;
}

export interface RegistryStats {
  readonly models: number;
  readonly subscribers: number;
  readonly uploadsInFlight: number;
  /** Bytes of streamed archived uploads' batch buffers held beside the budget (it had no room for them). */
  readonly uploadBytesOutsideBudget: number;
  readonly cache: VersionCacheStats;
}

/**
 * Archived versions larger than this share of the budget go straight to disk on upload (as do
 * smaller ones when the budget has no room for them at their header) and are streamed from disk on
 * download, never cached.
 */
const ARCHIVED_CACHE_SHARE = 4;
/**
 * Memory an archived upload streamed to disk holds at most (one batch), on top of what its HTTP/2
 * stream window lets the client send ahead.
 */
const STREAMED_UPLOAD_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * How long the memory of a version that left the cache is kept (inside the budget) for the next
 * upload of the same size: a learner publishing many times a minute reuses it every time.
 */
const SPARE_MAX_AGE_MS = 30_000;

/** Models whose numbering record is flushed at once at a graceful stop (bounds the open files). */
const STOP_RECORD_BATCH = 32;

/** Routes each model to its owner actor and keeps the shared version cache. */
export class Registry {
  readonly cache: VersionCache<EncodedVersionData>;
  private readonly actors = new Map<string, ModelActor>();
  private sortedIds: string[] | undefined = undefined;
  private readonly archivedLoads = new Map<string, Promise<void>>();
  private uploadsInFlight = 0;
  /** Batch buffers of streamed archived uploads that the budget could not take. */
  private bytesOutsideBudget = 0;
  private readonly now: () => bigint;
  private bootId: string | undefined = undefined;

  private constructor(private readonly options: RegistryOptions) {
    this.cache = new VersionCache<EncodedVersionData>({
      maxBytes: options.cacheMaxBytes,
      expirationMs: options.cacheExpirationMs,
      pruneCount: options.cachePruneCount,
      onEvict: (modelId, versionNumber) => this.actors.get(modelId)?.dataEvicted(versionNumber),
      spares: { maxAgeMs: SPARE_MAX_AGE_MS },
      entryOverheadBytes: VERSION_OVERHEAD_BYTES,
    });
    this.now = options.now ?? createNanosecondClock();
  }

  /** Opens the archive and reads the model list (version infos are read lazily, per model). */
  static async open(options: RegistryOptions): Promise<Registry> {
    const registry = new Registry(options);
    registry.bootId = options.bootId ?? (await readBootId());
    await options.archive.open();
    const ids = await options.archive.listModelIds();
    const models = await Promise.all(ids.map((id) => options.archive.readModel(id)));
    for (const model of models) {
      if (model !== undefined) {
        registry.actorFor(model.modelId).model = model;
      }
    }
    return registry;
  }

  /** Ends the VersionUpdate streams (UNAVAILABLE: the client follows again once a server is back). */
  close(): void {
    for (const actor of this.actors.values()) {
      const reason = new RegistryError(
        Code.UNAVAILABLE,
        `the model registry is stopping: VersionUpdate of model "${actor.modelId}" ended; call it again once the server is back`,
      );
      for (const subscription of actor.subscriptions) {
        subscription.end(reason);
      }
      actor.subscriptions.clear();
    }
    this.cache.close();
  }

  /**
   * At a graceful stop, once no more commits arrive: records every loaded model's next version
   * number on disk, marked clean, so numbering resumes exactly even after a reboot.
   */
  async recordStop(): Promise<void> {
    const actors = [...this.actors.values()];
    for (let start = 0; start < actors.length; start += STOP_RECORD_BATCH) {
      await Promise.all(actors.slice(start, start + STOP_RECORD_BATCH).map((actor) => actor.recordStop()));
    }
  }

  stats(): RegistryStats {
    let models = 0;
    let subscribers = 0;
    for (const actor of this.actors.values()) {
      models += actor.exists ? 1 : 0;
      subscribers += actor.subscriptions.size;
    }
    return {
      models,
      subscribers,
      uploadsInFlight: this.uploadsInFlight,
      uploadBytesOutsideBudget: this.bytesOutsideBudget,
      cache: this.cache.stats(),
    };
  }

  async createOrUpdateModel(model: ModelRecord): Promise<void> {
    const created = await this.actorFor(model.modelId).createOrUpdate(model);
    if (created) {
      this.sortedIds = undefined;
    }
  }

  async deleteModel(modelId: string): Promise<void> {
    await this.existingActor(modelId).delete();
    this.sortedIds = undefined;
  }

  listModels(modelIds: readonly string[], count: number, handle: string): ModelPage {
    const offset = parseHandle("model_handle", handle) ?? 0;
    if (modelIds.length === 0) {
      const ids = pageOf(this.modelIds(), offset, count);
      const models = ids.map((id) => this.actors.get(id)?.model).filter((m): m is ModelRecord => m !== undefined);
      return { models, nextHandle: String(offset + ids.length) };
    }
    const ids = pageOf(modelIds, offset, count);
    const models = ids.map((id) => this.existingActor(id).model as ModelRecord);
    return { models, nextHandle: String(offset + ids.length) };
  }

  async listVersions(modelId: string, versionNumbers: readonly number[], count: number, handle: string): Promise<VersionPage> {
    const actor = this.existingActor(modelId);
    const parsedHandle = parseHandle("version_handle", handle);
    await actor.ensureLoaded();
    const all = actor.versions;
    let versions: readonly VersionRecord[];
    if (versionNumbers.length === 0) {
      const start = lowerBound(all, parsedHandle ?? 0);
      versions = pageOf(all, start, count);
    } else {
      // With explicit numbers the handle is an offset into that list.
      versions = pageOf(versionNumbers, parsedHandle ?? 0, count).map((n) => resolveVersion(modelId, all, n));
    }
    const last = versions[versions.length - 1];
    const nextHandle = last !== undefined ? String(last.versionNumber + 1) : handle === "" ? "0" : String(parsedHandle);
    return { versions, nextHandle };
  }

  /**
   * Starts an upload: checks the model and the size, and reserves memory in the cache account.
   * A transient version is held in memory (one copy): it needs room for its whole size. An archived
   * version is never refused for the budget: held in memory (and so cached for readers) when it fits
   * a share of the budget and the budget has room for it right now, streamed to disk otherwise.
   */
  beginUpload(header: UploadHeader): PendingUpload {
    const actor = this.existingActor(header.modelId);
    const maxBytes = this.options.maxVersionBytes ?? 0;
    if (maxBytes > 0 && header.dataSize > maxBytes) {
      throw resourceExhausted(
        `data_size ${header.dataSize} is larger than the largest version this server accepts (COGMENT_MODEL_REGISTRY_VERSION_MAX_SIZE = ${maxBytes} bytes)`,
      );
    }
    const totalBytes = EncodedVersionData.planTotalBytes(header.dataSize, this.options.chunkSize);
    const resumable = this.options.resumableHash;
    const upload =
      header.archived && resumable !== undefined
        ? this.beginArchivedUpload(actor, header, totalBytes, resumable)
        : this.beginMemoryUpload(actor, header, totalBytes);
    this.uploadsInFlight++;
    let counted = true;
    const uncount = (): void => {
      if (counted) {
        counted = false;
        this.uploadsInFlight--;
      }
    };
    return {
      header,
      append: (chunk) => {
        this.options.dataReceived?.(chunk.byteLength);
        return upload.append(chunk);
      },
      finish: () => upload.finish().finally(uncount),
      abort: () => {
        uncount();
        upload.abort();
      },
    };
  }

  private beginArchivedUpload(
    actor: ModelActor,
    header: UploadHeader,
    totalBytes: number,
    resumable: NonNullable<RegistryOptions["resumableHash"]>,
  ): PendingUpload {
    if (totalBytes <= this.options.cacheMaxBytes / ARCHIVED_CACHE_SHARE) {
      try {
        return this.beginMemoryUpload(actor, header, totalBytes);
      } catch (error) {
        if (!(error instanceof RegistryError && error.code === Code.RESOURCE_EXHAUSTED)) {
          throw error;
        }
        // No room in the budget right now: to disk instead.
      }
    }
    return this.beginStreamedUpload(actor, header, resumable);
  }

  private beginMemoryUpload(actor: ModelActor, header: UploadHeader, totalBytes: number): PendingUpload {
    if (!Number.isSafeInteger(totalBytes)) {
      // data_size itself is a safe integer (validated); with the chunks' framing it may not be.
      throw resourceExhausted(
        `cannot hold data_size ${header.dataSize} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is ${this.options.cacheMaxBytes} bytes`,
      );
    }
    const { reservation, reused } = this.cache.reserveReusing(totalBytes);
    let data: EncodedVersionData;
    try {
      if (reused !== undefined) {
        data = EncodedVersionData.reuse(reused, header.dataSize, this.options.chunkSize);
      } else {
        this.options.beforeAllocate?.();
        data = EncodedVersionData.allocate(header.dataSize, this.options.chunkSize);
      }
    } catch (error) {
      reservation.release();
      throw resourceExhausted(`cannot allocate ${header.dataSize} bytes for the version data: ${String(error)}`);
    }
    return new VersionUpload(header, data, reservation, {
      generation: actor.generation,
      hash: this.options.hash,
      now: this.now,
      commit: (pending) => actor.commit(pending),
    });
  }

  /**
   * An archived upload streamed to disk holds one batch buffer (at most STREAMED_UPLOAD_BATCH_BYTES),
   * whatever the version's size; the client's further bytes wait in its HTTP/2 stream window (flow
   * control). The batch is counted in the budget when the budget can take it, and held beside the
   * budget otherwise (Status `upload_bytes_outside_budget`), so the upload is never refused for it.
   */
  private beginStreamedUpload(
    actor: ModelActor,
    header: UploadHeader,
    resumable: NonNullable<RegistryOptions["resumableHash"]>,
  ): PendingUpload {
    const batchBytes = Math.max(1, Math.min(STREAMED_UPLOAD_BATCH_BYTES, header.dataSize));
    return new StreamedVersionUpload(header, this.reserveBatch(batchBytes), {
      generation: actor.generation,
      archive: this.options.archive,
      batchBytes,
      hashUpdate: resumable.update,
      hashDigest: resumable.digest,
      commit: (pending) => actor.commit(pending),
      now: this.now,
    });
  }

  private reserveBatch(bytes: number): Reservation {
    try {
      return this.cache.reserve(bytes);
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === Code.RESOURCE_EXHAUSTED)) {
        throw error;
      }
    }
    this.bytesOutsideBudget += bytes;
    let held = true;
    return {
      bytes,
      release: () => {
        if (held) {
          held = false;
          this.bytesOutsideBudget -= bytes;
        }
      },
    };
  }

  async openVersionData(modelId: string, versionNumber: number): Promise<VersionDataSource> {
    const actor = this.existingActor(modelId);
    await actor.ensureLoaded();
    const version = resolveVersion(modelId, actor.versions, versionNumber);
    const cached = this.leaseData(version);
    if (cached !== undefined) {
      return cached;
    }
    if (!version.archived) {
      throw notFound(
        `version ${version.versionNumber} of model "${modelId}" not found (the transient version was evicted from the cache)`,
      );
    }
    await this.loadArchived(actor, version);
    return this.leaseData(version) ?? this.streamFromArchive(version);
  }

  subscribe(modelId: string, sink: VersionSink): VersionSubscription {
    const actor = this.existingActor(modelId);
    const subscription = new VersionSubscription(sink, (error) =>
      this.options.log.info({ modelId, err: error }, "VersionUpdate subscriber failed"),
    );
    actor.subscriptions.add(subscription);
    void actor.ensureLoaded().then(
      () => {
        const latest = actor.latest;
        if (latest !== undefined) {
          subscription.publish(latest);
        }
      },
      (error: unknown) => this.options.log.error({ modelId, err: error }, "cannot load versions for a subscriber"),
    );
    return subscription;
  }

  unsubscribe(modelId: string, subscription: VersionSubscription): void {
    subscription.detach();
    const actor = this.actors.get(modelId);
    if (actor !== undefined) {
      actor.subscriptions.delete(subscription);
      this.dropIfIdle(actor);
    }
  }

  /** Number of actors held (models plus actors still finishing work); for tests. */
  get actorCount(): number {
    return this.actors.size;
  }

  private leaseData(version: VersionRecord): VersionDataSource | undefined {
    const lease = this.cache.acquire(version.modelId, version.versionNumber);
    if (lease === undefined) {
      return undefined;
    }
    return { version, frames: lease.value.frames(), release: (mayStillBeRead) => lease.release(mayStillBeRead) };
  }

  /** Reads an archived version into the cache if it fits a share of the budget; concurrent readers share one load. */
  private loadArchived(actor: ModelActor, version: VersionRecord): Promise<void> {
    const key = `${version.modelId}\u0000${version.versionNumber}`;
    let load = this.archivedLoads.get(key);
    if (load === undefined) {
      load = this.readArchivedIntoCache(actor, version).finally(() => this.archivedLoads.delete(key));
      this.archivedLoads.set(key, load);
    }
    return load;
  }

  private async readArchivedIntoCache(actor: ModelActor, version: VersionRecord): Promise<void> {
    const totalBytes = EncodedVersionData.planTotalBytes(version.dataSize, this.options.chunkSize);
    if (totalBytes > this.options.cacheMaxBytes / ARCHIVED_CACHE_SHARE) {
      return;
    }
    this.options.beforeAllocate?.();
    let reservation;
    try {
      reservation = this.cache.reserve(totalBytes);
    } catch {
      return; // No room: stream from disk instead.
    }
    try {
      const data = EncodedVersionData.allocate(version.dataSize, this.options.chunkSize);
      const reader = await this.options.archive.openVersionData(version.modelId, version.versionNumber);
      try {
        this.checkArchivedSize(version, reader);
        let position = 0;
        for (const segment of data.dataSegments()) {
          await this.readFully(version, reader, segment, position);
          position += segment.byteLength;
        }
        this.checkArchivedHash(version, reader, await this.options.hash(data.dataSegments()));
      } finally {
        await reader.close();
      }
      if (findVersion(actor.versions, version.versionNumber) !== version) {
        reservation.release();
        return; // Deleted meanwhile: the caller reports NOT_FOUND through the disk path.
      }
      this.cache.insert(reservation, version.modelId, version.versionNumber, data, {
        pinned: actor.latest === version,
      });
    } catch (error) {
      reservation.release();
      throw error; // as is: the RPC edge maps file system errors (EACCES, EIO...) to their status
    }
  }

  /**
   * Streams an archived version from disk, chunk by chunk, hashing as it goes: when the data's SHA-256
   * differs from its info's, the stream ends with DATA_LOSS instead of OK (the client got the bytes but
   * must not trust them). The frames live in shared memory so the worker hashing them needs no copy.
   */
  private streamFromArchive(version: VersionRecord): VersionDataSource {
    return { version, frames: this.archivedFrames(version), release: () => {} };
  }

  private async *archivedFrames(version: VersionRecord): AsyncGenerator<Buffer> {
    const { chunkSize } = this.options;
    const hash = createStreamingHash(this.options.resumableHash);
    const reader = await this.options.archive.openVersionData(version.modelId, version.versionNumber);
    try {
      this.checkArchivedSize(version, reader);
      let position = 0;
      do {
        const length = Math.min(chunkSize, version.dataSize - position);
        const headerLength = frameHeaderLength(length);
        const frame = Buffer.from(new SharedArrayBuffer(headerLength + length));
        encodeFrameHeader(length, frame, 0);
        const data = frame.subarray(headerLength);
        await this.readFully(version, reader, data, position);
        position += length;
        const behind = hash.add(data);
        yield frame;
        if (behind !== undefined) {
          await behind;
        }
      } while (position < version.dataSize);
      this.checkArchivedHash(version, reader, await hash.digest());
    } finally {
      await reader.close();
    }
  }

  private checkArchivedSize(version: VersionRecord, reader: VersionDataReader): void {
    if (reader.size !== version.dataSize) {
      throw this.corruptedOnDisk(version, reader, `${reader.size} bytes of data, its info says ${version.dataSize}`);
    }
  }

  private checkArchivedHash(version: VersionRecord, reader: VersionDataReader, hash: string): void {
    if (hash !== version.dataHash) {
      throw this.corruptedOnDisk(version, reader, `its data's SHA-256 is "${hash}", its info says "${version.dataHash}"`);
    }
  }

  private async readFully(version: VersionRecord, reader: VersionDataReader, target: Uint8Array, position: number): Promise<void> {
    let filled = 0;
    while (filled < target.byteLength) {
      const count = await reader.read(target.subarray(filled), position + filled);
      if (count === 0) {
        throw this.corruptedOnDisk(version, reader, `its data ended early at byte ${position + filled}`);
      }
      filled += count;
    }
  }

  /** DATA_LOSS for the client; for the operator, an error line naming the file. */
  private corruptedOnDisk(version: VersionRecord, reader: VersionDataReader, detail: string): RegistryError {
    const message = `version ${version.versionNumber} of model "${version.modelId}" is corrupted on disk: ${detail}`;
    this.options.log.error(
      { modelId: version.modelId, versionNumber: version.versionNumber, path: reader.location, detail },
      "archived version data is corrupted",
    );
    return new RegistryError(Code.DATA_LOSS, message);
  }

  private modelIds(): readonly string[] {
    if (this.sortedIds === undefined) {
      this.sortedIds = [...this.actors.values()]
        .filter((actor) => actor.exists)
        .map((actor) => actor.modelId)
        .sort(compareCodePoints); // byte order of UTF-8, like the original
    }
    return this.sortedIds;
  }

  private existingActor(modelId: string): ModelActor {
    const actor = this.actors.get(modelId);
    if (actor === undefined || !actor.exists) {
      throw notFound(`model "${modelId}" not found`);
    }
    return actor;
  }

  private actorFor(modelId: string): ModelActor {
    let actor = this.actors.get(modelId);
    if (actor === undefined) {
      actor = new ModelActor(
        modelId,
        { archive: this.options.archive, cache: this.cache, log: this.options.log, bootId: this.bootId },
        (idle) => this.dropIfIdle(idle),
      );
      this.actors.set(modelId, actor);
    }
    return actor;
  }

  private dropIfIdle(actor: ModelActor): void {
    if (!actor.exists && actor.queue.pending === 0 && actor.subscriptions.size === 0 && this.actors.get(actor.modelId) === actor) {
      this.actors.delete(actor.modelId);
    }
  }
}

/** Nanoseconds since the epoch, with sub-millisecond resolution from the monotonic clock. */
function createNanosecondClock(): () => bigint {
  const origin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return () => origin + process.hrtime.bigint();
}

