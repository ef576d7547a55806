import type { ArchiveStore, StreamedVersionData } from "../archive/index.js";
import type { EncodedVersionData } from "../data/index.js";
import { notFound, resourceExhausted } from "../errors/index.js";
import type { Logger } from "../logger.js";
import type { ModelRecord, VersionRecord } from "./records.js";
import { SerialQueue } from "./serial-queue.js";
import { lowerBound } from "./version-selection.js";
import type { Reservation, VersionCache } from "./version-cache.js";
import { MAX_VERSION_NUMBER, VersionNumbering } from "./version-numbering.js";
import type { VersionSubscription } from "./version-subscription.js";

export interface ModelActorContext {
  readonly archive: ArchiveStore;
  readonly cache: VersionCache<EncodedVersionData>;
  readonly log: Logger;
  /** The kernel's boot id (see boot-id.ts); undefined where there is none. */
  readonly bootId: string | undefined;
}

/** Where a received version's bytes are: in memory (reserved in the cache), or streamed to the archive. */
export type CommitPayload =
  | { readonly kind: "memory"; readonly data: EncodedVersionData; readonly reservation: Reservation }
  | { readonly kind: "stream"; readonly stream: StreamedVersionData; readonly dataSize: number };

/** A fully received, hash-checked upload waiting for its version number. */
export interface VersionCommit {
  readonly generation: number;
  readonly archived: boolean;
  readonly creationTimestamp: bigint;
  readonly dataHash: string;
  readonly userData: Readonly<Record<string, string>>;
  readonly payload: CommitPayload;
}

/**
 * The single owner of one model's state. Everything that changes the model
 * (its info, version numbering, commits, deletion, the latest pointer and the
 * subscribers) runs through its serial queue; readers use the current snapshot.
 */
export class ModelActor {
  model: ModelRecord | undefined = undefined;
  /**
   * Existing versions, sorted by increasing number. Changed in place (push on commit, splice on
   * eviction: a copy per commit made 100,000 publishes quadratic), so read it synchronously and
   * copy what must outlive an await.
   */
  versions: VersionRecord[] = [];
  /** Bumped on deletion so that uploads begun before it cannot land in a re-created model. */
  generation = 0;
  readonly subscriptions = new Set<VersionSubscription>();
  readonly queue: SerialQueue;
  private loading: Promise<void> | undefined = undefined;
  private loaded = false;
  private numbering: VersionNumbering;

  constructor(
    readonly modelId: string,
    private readonly context: ModelActorContext,
    onIdle: (actor: ModelActor) => void,
  ) {
    this.queue = new SerialQueue(() => onIdle(this));
    this.numbering = new VersionNumbering(modelId, context);
  }

  get exists(): boolean {
    return this.model !== undefined;
  }

  get latest(): VersionRecord | undefined {
    return this.versions[this.versions.length - 1];
  }

  /** Loads the archived versions on first use (the archive is never read in full at start). */
  ensureLoaded(): Promise<void> {
    if (this.loading === undefined) {
      this.loading = this.load().catch((error: unknown) => {
        this.loading = undefined;
        throw error;
      });
    }
    return this.loading;
  }

  createOrUpdate(model: ModelRecord): Promise<boolean> {
    return this.queue.run(async () => {
      await this.context.archive.writeModel(model);
      const created = this.model === undefined;
      this.model = model;
      return created;
    });
  }

  delete(): Promise<void> {
    return this.queue.run(async () => {
      if (this.model === undefined) {
        throw notFound(`model "${this.modelId}" not found`);
      }
      await this.context.archive.deleteModel(this.modelId);
      this.context.cache.deleteModel(this.modelId);
      this.model = undefined;
      this.versions = [];
      this.generation++;
      this.loading = undefined;
      this.loaded = false;
      this.numbering = new VersionNumbering(this.modelId, this.context);
      const reason = notFound(`model "${this.modelId}" was deleted: this VersionUpdate stream has no more versions to send`);
      for (const subscription of this.subscriptions) {
        subscription.end(reason);
      }
      this.subscriptions.clear();
    });
  }

  /** Numbers and stores a received version. A memory payload's reservation is consumed on success, released on failure. */
  commit(pending: VersionCommit): Promise<VersionRecord> {
    const { payload } = pending;
    return this.queue
      .run(async () => {
        await this.ensureLoaded();
        if (this.model === undefined || pending.generation !== this.generation) {
          throw notFound(`model "${this.modelId}" not found (it was deleted while the version was uploading)`);
        }
        const versionNumber = this.numbering.next;
        if (versionNumber > MAX_VERSION_NUMBER) {
          throw resourceExhausted(`model "${this.modelId}" has used every version number up to ${MAX_VERSION_NUMBER}`);
        }
        await this.numbering.reserve(versionNumber);
        const record: VersionRecord = {
          modelId: this.modelId,
          versionNumber,
          creationTimestamp: pending.creationTimestamp,
          archived: pending.archived,
          dataHash: pending.dataHash,
          dataSize: payload.kind === "memory" ? payload.data.dataSize : payload.dataSize,
          userData: pending.userData,
        };
        if (payload.kind === "stream") {
          await payload.stream.commit(record);
        } else if (record.archived) {
          await this.context.archive.putVersion(record, payload.data.dataSegments());
        }
        // Stored: the number is recorded before anyone can see it.
        await this.numbering.record(versionNumber);
        if (payload.kind === "memory") {
          this.context.cache.insert(payload.reservation, this.modelId, versionNumber, payload.data, { pinned: true });
        }
        // Read after the awaits: an eviction meanwhile may have made an older version the latest
        // and pinned it (dataEvicted). Unpinned on both paths: a version streamed to disk is not cached.
        const previous = this.latest;
        if (previous !== undefined) {
          this.context.cache.setPinned(this.modelId, previous.versionNumber, false);
        }
        this.versions.push(record);
        this.numbering.handedOut(versionNumber);
        for (const subscription of this.subscriptions) {
          subscription.publish(record);
        }
        return record;
      })
      .catch((error: unknown) => {
        if (payload.kind === "memory") {
          payload.reservation.release();
        }
        throw error;
      });
  }

  /** The cache dropped a version's data: a transient version is then gone for good. */
  dataEvicted(versionNumber: number): void {
    const index = lowerBound(this.versions, versionNumber);
    const version = this.versions[index];
    if (version?.versionNumber !== versionNumber || version.archived) {
      return;
    }
    const wasLatest = index === this.versions.length - 1;
    this.versions.splice(index, 1);
    const latest = this.latest;
    if (wasLatest && latest !== undefined) {
      this.context.cache.setPinned(this.modelId, latest.versionNumber, true);
    }
  }

  /** At a graceful stop, after the last commit: the next version number is flushed to disk, marked clean. */
  recordStop(): Promise<void> {
    return this.queue.run(async () => {
      if (this.loaded && this.model !== undefined) {
        await this.numbering.recordStop();
      }
    });
  }

  private async load(): Promise<void> {
    const generation = this.generation;
    const [onDisk, saved] = await Promise.all([this.context.archive.listVersions(this.modelId), this.numbering.readSaved()]);
    if (generation !== this.generation) {
      return;
    }
    // Transient versions committed before the load cannot exist: commits load first.
    this.versions = [...onDisk];
    this.numbering.start(saved, onDisk[onDisk.length - 1]?.versionNumber ?? 0);
    this.loaded = true;
  }
}
