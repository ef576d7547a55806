import type { ArchiveStore } from "../archive/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import type { EncodedVersionData } from "../data/index.js";
import { Code, RegistryError, notFound } from "../errors/index.js";
import type { Logger } from "../logger.js";
import { type RegistryState, createInProcessRegistryState } from "../state/index.js";
import { ModelActor } from "./model-actor.js";
import { StreamedReadBuffers } from "./streamed-read-buffers.js";
import type { OffThreadHashing } from "./streaming-hash.js";
import type { UploadHeader } from "./upload-header.js";
import { UploadPlanner, type UploadTarget } from "./upload-planner.js";
import { VERSION_OVERHEAD_BYTES, VersionCache, type VersionCacheStats } from "./version-cache.js";
import { type VersionDataSource, VersionDataOpener } from "./version-data-opener.js";
import { type ModelPage, type VersionPage, selectVersionPage } from "./version-page.js";
import { pageOf, parseHandle, resolveVersion, unchangedHandle } from "./version-selection.js";
import { type VersionSink, VersionSubscription } from "./version-subscription.js";
import type { PendingUpload } from "./version-upload.js";
import type { VersionCommit } from "./version-commit.js";

export interface RegistryOptions {
  readonly archive: ArchiveStore;
  /** Where model infos, numbering and version infos live; in this process (backed by the archive) when not given. */
  readonly state?: RegistryState;
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
  readonly offThreadHash?: OffThreadHashing;
  /** Largest data_size accepted for one version; 0 = no limit but the cache budget (transient) or the disk (archived). */
  readonly maxVersionBytes?: number;
  /**
   * Bytes of version data all reads without a cache entry behind them (too large for the cache, or
   * no room in it) may hold at once; default STREAMED_READS_MAX_BYTES.
   */
  readonly streamedReadsMaxBytes?: number;
  readonly log: Logger;
  /** Called before version data is allocated (see memory-guard.ts). */
  readonly beforeAllocate?: (bytes?: number) => void;
  /** Called with the size of every piece of version data an upload receives. */
  readonly dataReceived?: (bytes: number) => void;
  /** Clock in ns since the epoch, for creation timestamps. */
  readonly now?: () => bigint;
  /** The kernel's boot id, for the in-process state; read from /proc when not given (tests give one to simulate a reboot). */
  readonly bootId?: string;
  /**
   * open() resolves before the model listing ends (a server then listens meanwhile, and awaits
   * whenListed() before it reports the start done); the calls that need the listing wait for it.
   */
  readonly listModelsLater?: boolean;
}

export type { ModelPage, VersionDataSource, VersionPage };

export interface RegistryStats {
  readonly models: number;
  readonly subscribers: number;
  readonly uploadsInFlight: number;
  /** Bytes of streamed archived uploads' batch buffers held beside the budget (it had no room for them). */
  readonly uploadBytesOutsideBudget: number;
  /** Bytes of version data held by reads without a cache entry behind them (see StreamedReadBuffers). */
  readonly streamedReadBytes: number;
  /** Such reads waiting for room before reading their next chunk. */
  readonly streamedReadsWaiting: number;
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

/** Default of RegistryOptions.streamedReadsMaxBytes (and of STREAMED_READS_MAX_SIZE): 32 chunks of 2 MiB. */
export const STREAMED_READS_MAX_BYTES = 64 * 1024 * 1024;

/**
 * How long the memory of a version that left the cache is kept (inside the budget) for the next
 * upload of the same size: a learner publishing many times a minute reuses it every time.
 */
const SPARE_MAX_AGE_MS = 30_000;

/** The model an upload is for: its actor, as of the upload's begin. One object per CreateVersion, no closure. */
class ActorUploadTarget implements UploadTarget {
  readonly generation: number;
  /** The model's generation in the registry state as the upload began (see RegistryState.getModelForUpload). */
  stateGeneration: number | undefined = undefined;

  constructor(private readonly actor: ModelActor) {
    this.generation = actor.generation;
  }

  modelDeleted(): boolean {
    return this.actor.generation !== this.generation;
  }

  commit(pending: VersionCommit): Promise<VersionRecord> {
    return this.actor.commit(pending, this.stateGeneration);
  }
}

/**
 * The registry as rpc/ sees it: routes each model's work to its owner actor, reads through the
 * registry state, and keeps this instance's version cache.
 */
export class Registry {
  readonly cache: VersionCache<EncodedVersionData>;
  readonly #actors = new Map<string, ModelActor>();
  readonly #state: RegistryState;
  #listed: Promise<void> = Promise.resolve();
  readonly #uploads: UploadPlanner;
  readonly #data: VersionDataOpener;
  readonly #streamedReads: StreamedReadBuffers;

  private constructor(private readonly options: RegistryOptions) {
    this.cache = new VersionCache<EncodedVersionData>({
      maxBytes: options.cacheMaxBytes,
      expirationMs: options.cacheExpirationMs,
      pruneCount: options.cachePruneCount,
      onEvict: (modelId, versionNumber) => this.#actors.get(modelId)?.dataEvicted(versionNumber),
      spares: { maxAgeMs: SPARE_MAX_AGE_MS },
      entryOverheadBytes: VERSION_OVERHEAD_BYTES,
    });
    const { archive, log } = options;
    this.#state = options.state ?? createInProcessRegistryState({ archive, log, bootId: options.bootId });
    this.#state.onVersionCommitted((version) => {
      this.#actors.get(version.modelId)?.versionCommitted(version);
      if (this.#state.sharesTransientData) {
        // The cache holds copies of the shared state's data (also on an instance that only serves reads,
        // which has no actor): the one before the previous version is seldom read again (readers follow
        // the latest), and its memory, as a spare, saves the next version of its size a fresh
        // allocation (16 MiB of fresh pages are 4,096 page faults: 10-30 ms of CPU measured on a VM).
        this.cache.retire(version.modelId, version.versionNumber - 2);
      }
    });
    this.#state.onModelDeleted((modelId) => {
      this.#data.modelDeleted();
      // Reads create no actor, so an instance that only served a model's versions (shared state:
      // another instance deleted it) still holds them in its cache.
      const actor = this.#actors.get(modelId);
      if (actor === undefined) {
        this.cache.deleteModel(modelId);
      } else {
        actor.modelDeleted();
      }
    });
    this.#state.onVersionsLost?.(({ modelId, lastSeen, latest }) => {
      this.#data.modelDeleted(); // a load in flight checks its version against the state again before it caches it
      this.cache.deleteModel(modelId); // copies: read through again when asked
      this.#actors.get(modelId)?.endSubscriptions(
        new RegistryError(
          Code.UNAVAILABLE,
          `Redis lost versions of model "${modelId}" that this server had announced (a restart without persistence, a crash with appendfsync everysec, or a failover to a replica without them): version ${lastSeen} is no longer there as it was, the latest version is now ${latest === 0 ? "none" : latest}; call VersionUpdate again`,
        ),
      );
    });
    const shared = {
      archive,
      cache: this.cache,
      cacheMaxBytes: options.cacheMaxBytes,
      chunkSize: options.chunkSize,
      archivedCacheShare: ARCHIVED_CACHE_SHARE,
      hash: options.hash,
      offThreadHash: options.offThreadHash,
      beforeAllocate: options.beforeAllocate,
    };
    this.#uploads = new UploadPlanner({
      ...shared,
      streamedBatchBytes: STREAMED_UPLOAD_BATCH_BYTES,
      maxVersionBytes: options.maxVersionBytes ?? 0,
      dataReceived: options.dataReceived,
      beginTransientData: (modelId, dataSize) => this.#state.beginTransientData(modelId, dataSize),
      now: options.now ?? createNanosecondClock(),
    });
    this.#streamedReads = new StreamedReadBuffers(options.streamedReadsMaxBytes ?? STREAMED_READS_MAX_BYTES);
    this.#data = new VersionDataOpener({ ...shared, state: this.#state, streamedReads: this.#streamedReads, log });
  }

  /**
   * Opens the state and so the archive, reading the model list (version infos are read lazily, per
   * model); with `listModelsLater`, resolves before the list is read (see whenListed).
   */
  static async open(options: RegistryOptions): Promise<Registry> {
    const registry = new Registry(options);
    const state = registry.#state;
    let listed: Promise<void>;
    if (state.openServing === undefined) {
      await state.open();
      listed = Promise.resolve();
    } else {
      listed = (await state.openServing()).listed;
    }
    registry.#listed = listed.then(async () => {
      // A shared state whose backend is not reachable yet serves NOT_SERVING: models become known as used.
      if (state.healthy) {
        for (const modelId of await state.listModelIds()) {
          registry.#actorFor(modelId).markKnown();
        }
      }
    });
    registry.#listed.catch(() => {}); // awaited below or by whenListed(): not an unhandled rejection meanwhile
    if (options.listModelsLater !== true) {
      await registry.#listed;
    }
    return registry;
  }

  /** Settles once the model list is read (at once unless opened with `listModelsLater`): rejects if that failed. */
  whenListed(): Promise<void> {
    return this.#listed;
  }

  /** Ends the VersionUpdate streams (UNAVAILABLE: the client follows again once a server is back). */
  close(): void {
    for (const actor of this.#actors.values()) {
      actor.endSubscriptions(
        new RegistryError(
          Code.UNAVAILABLE,
          `the model registry is stopping: VersionUpdate of model "${actor.modelId}" ended; call it again once the server is back`,
        ),
      );
    }
    this.cache.close();
  }

  /**
   * At a graceful stop, once no more commits arrive: waits for the commits in flight, then has the
   * state record what lets numbering resume exactly, even after a reboot.
   */
  async recordStop(): Promise<void> {
    await Promise.all([...this.#actors.values()].map((actor) => actor.settled()));
    await this.#state.recordStop();
  }

  /** Whether the registry state's backend can be reached (always, in single mode); health reports it. */
  get stateHealthy(): boolean {
    return this.#state.healthy;
  }

  /** Calls `listener` when stateHealthy changes; returns the unsubscribe function. */
  onStateHealth(listener: (healthy: boolean) => void): () => void {
    return this.#state.onHealth(listener);
  }

  stats(): RegistryStats {
    let subscribers = 0;
    for (const actor of this.#actors.values()) {
      subscribers += actor.subscriberCount;
    }
    return {
      models: this.#state.modelCount,
      subscribers,
      uploadsInFlight: this.#uploads.inFlight,
      uploadBytesOutsideBudget: this.#uploads.bytesOutsideBudget,
      streamedReadBytes: this.#streamedReads.heldBytes,
      streamedReadsWaiting: this.#streamedReads.waitingCount,
      cache: this.cache.stats(),
    };
  }

  async createOrUpdateModel(model: ModelRecord): Promise<void> {
    await this.#actorFor(model.modelId).createOrUpdate(model);
  }

  async deleteModel(modelId: string): Promise<void> {
    await this.#actorFor(modelId).delete();
  }

  async listModels(modelIds: readonly string[], count: number, handle: string): Promise<ModelPage> {
    const offset = parseHandle("model_handle", handle) ?? 0;
    const ids = modelIds.length === 0 ? await this.#state.listModelIdPage(offset, count) : pageOf(modelIds, offset, count);
    const found = await this.#state.getModels(ids);
    const models: ModelRecord[] = [];
    for (const [index, model] of found.entries()) {
      if (model !== undefined) {
        models.push(model);
      } else if (modelIds.length !== 0) {
        throw notFound(`model "${ids[index]}" not found`);
      }
    }
    return { models, nextHandle: ids.length === 0 ? unchangedHandle(handle) : String(offset + ids.length) };
  }

  async listVersions(modelId: string, versionNumbers: readonly number[], count: number, handle: string): Promise<VersionPage> {
    const [only] = versionNumbers;
    if (versionNumbers.length === 1 && handle === "" && only !== undefined) {
      // One version asked (a poll of the latest): read just it (see #findVersion); when absent, the
      // full path below gives the error.
      const found = await this.#findVersion(modelId, only);
      if (found !== undefined) {
        return selectVersionPage(modelId, [found], versionNumbers, count, handle);
      }
    }
    await this.#requireModel(modelId);
    parseHandle("version_handle", handle); // a bad handle fails before the versions are read
    return selectVersionPage(modelId, await this.#state.listVersions(modelId), versionNumbers, count, handle);
  }

  /**
   * Starts an upload: checks the model and the size, and reserves memory in the cache account (see
   * UploadPlanner). Not async: one promise per CreateVersion, where async frames cost a few hundred
   * bytes of garbage each.
   */
  beginUpload(header: UploadHeader): Promise<PendingUpload> {
    const { modelId } = header;
    const target = new ActorUploadTarget(this.#actorFor(modelId));
    const state = this.#state;
    const found =
      state.getModelForUpload === undefined
        ? this.#requireModel(modelId)
        : state.getModelForUpload(modelId).then((current) => {
            this.#modelFound(modelId, current?.model);
            target.stateGeneration = current?.generation;
          });
    return found.then(() => this.#uploads.begin(header, target));
  }

  async openVersionData(modelId: string, versionNumber: number): Promise<VersionDataSource> {
    const found = await this.#findVersion(modelId, versionNumber);
    if (found !== undefined) {
      return this.#data.open(found);
    }
    // Absent: the model's check and the full list give the error (it names how many versions there are).
    await this.#requireModel(modelId);
    return this.#data.open(resolveVersion(modelId, await this.#state.listVersions(modelId), versionNumber));
  }

  async subscribe(modelId: string, sink: VersionSink): Promise<VersionSubscription> {
    let actor: ModelActor;
    let generation: number;
    // A lookup made earlier, before another instance created the model, may have answered "absent"
    // meanwhile and dropped the actor: announcements go to the actor in the map, so subscribe to
    // that one, looked up again (which marks it known).
    do {
      actor = this.#actorFor(modelId);
      generation = actor.generation;
      await this.#requireModel(modelId);
    } while (this.#actors.get(modelId) !== actor);
    if (actor.generation !== generation) {
      throw notFound(`model "${modelId}" not found`); // deleted meanwhile
    }
    const subscription = new VersionSubscription(sink, (error) =>
      this.options.log.info({ modelId, err: error }, "VersionUpdate subscriber failed"),
    );
    actor.subscribe(subscription);
    this.#state.listVersions(modelId).then(
      (versions) => {
        const latest = versions[versions.length - 1];
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
    const actor = this.#actors.get(modelId);
    if (actor !== undefined) {
      actor.unsubscribe(subscription);
      this.#dropIfIdle(actor);
    }
  }

  /** Number of actors held (models plus actors still finishing work); for tests. */
  get actorCount(): number {
    return this.#actors.size;
  }

  /**
   * One version (-1: the latest) without reading the model's others. A version found means its model
   * exists (a model's deletion removes its versions at once, in both states), so the model's own
   * check (#requireModel: one more Redis round trip per poll in shared mode) is skipped.
   */
  async #findVersion(modelId: string, versionNumber: number): Promise<VersionRecord | undefined> {
    const found = await this.#state.findVersion(modelId, versionNumber);
    if (found !== undefined) {
      this.#actors.get(modelId)?.markKnown();
    }
    return found;
  }

  /** NOT_FOUND unless the model exists; the model's actor then stays (see ModelActor.markKnown). */
  #requireModel(modelId: string): Promise<void> {
    return this.#state.getModel(modelId).then((model) => this.#modelFound(modelId, model));
  }

  /** #requireModel's check of what the state answered. */
  #modelFound(modelId: string, model: ModelRecord | undefined): void {
    const actor = this.#actors.get(modelId);
    if (model === undefined) {
      if (actor !== undefined) {
        this.#dropIfIdle(actor);
      }
      throw notFound(`model "${modelId}" not found`);
    }
    actor?.markKnown();
  }

  #actorFor(modelId: string): ModelActor {
    let actor = this.#actors.get(modelId);
    if (actor === undefined) {
      actor = new ModelActor(modelId, { state: this.#state, archive: this.options.archive, cache: this.cache }, (idle) =>
        this.#dropIfIdle(idle),
      );
      this.#actors.set(modelId, actor);
    }
    return actor;
  }

  #dropIfIdle(actor: ModelActor): void {
    if (!actor.known && actor.isIdle && this.#actors.get(actor.modelId) === actor) {
      this.#actors.delete(actor.modelId);
    }
  }
}

/** Nanoseconds since the epoch, with sub-millisecond resolution from the monotonic clock. */
function createNanosecondClock(): () => bigint {
  const origin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return () => origin + process.hrtime.bigint();
}
