import type { VersionRecord } from "../domain/index.js";
import type { RegistryChange } from "../redis/index.js";
import { sameVersion } from "./lost-versions.js";
import type { LostVersions } from "./registry-state.js";

/** What Announcements asks of the rest of the shared state. */
export interface AnnouncementsHooks {
  /** The model's generation (its count of deletions) in Redis now. */
  readGeneration(modelId: string): Promise<number>;
  /**
   * A version came that is behind, or another under the number of, the last one announced or read
   * of the model: whether Redis lost versions is to be checked (in the background, see LossChecks).
   */
  suspectLoss(modelId: string): void;
}

/**
 * What this instance announced, read and follows of each model in shared mode, and the announcing
 * itself: the onVersionCommitted, onModelDeleted and onVersionsLost listeners (the VersionUpdate
 * streams, the cache). A commit is announced by this instance and by Redis's change feed, which
 * come on other connections in no set order: each version is announced once, in number order per
 * model, and none of a deleted model once its deletion was announced.
 */
export class Announcements {
  private readonly committedListeners = new Set<(version: VersionRecord) => void>();
  private readonly deletedListeners = new Set<(modelId: string) => void>();
  private readonly lostListeners = new Set<(loss: LostVersions) => void>();
  /** The highest-numbered version announced per model (a commit is announced by this instance and by the feed). */
  private readonly lastAnnounced = new Map<string, VersionRecord>();
  /**
   * The highest-numbered version this instance announced or read per model (a stream's first message
   * is read, not announced): what Redis must still hold as it was. A Redis that lost its last writes
   * (restarted without persistence, a crash with appendfsync everysec) shows a lower latest, or
   * another version under that number; see LossChecks.
   */
  private readonly seen = new Map<string, VersionRecord>();
  /** Generation of the last deletion announced per model. */
  private readonly deletionAnnounced = new Map<string, number>();
  /**
   * Where a catch-up of each followed model starts: the version read when this instance began to
   * follow it, raised by each version announced. Reads do not raise it: a version read while the
   * subscription was down (or whose notification was lost with it) has not been announced to the
   * model's VersionUpdate streams, and the catch-up must announce it.
   */
  private readonly followed = new Map<string, number>();
  /**
   * The model's generation (its count of deletions) when this instance began to follow it, read in
   * the background (again at a later follow if the read failed): a catch-up that finds a higher one knows the model was deleted (and maybe
   * created again) while the subscription was down, which version numbers alone cannot tell.
   */
  private readonly generationWhenFollowed = new Map<string, number>();
  /** The generation read in flight per model (its token: a deletion's reset makes a later follow read again). */
  private readonly generationReads = new Map<string, object>();

  constructor(private readonly hooks: AnnouncementsHooks) {}

  onVersionCommitted(listener: (version: VersionRecord) => void): () => void {
    this.committedListeners.add(listener);
    return () => this.committedListeners.delete(listener);
  }

  onModelDeleted(listener: (modelId: string) => void): () => void {
    this.deletedListeners.add(listener);
    return () => this.deletedListeners.delete(listener);
  }

  onVersionsLost(listener: (loss: LostVersions) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /**
   * `version` (the model's latest, undefined: none) was read, or announced when `announced`: the
   * model is followed from there (see `followed`), its generation read the first time.
   */
  follow(modelId: string, version: VersionRecord | undefined, announced: boolean): void {
    const versionNumber = version?.versionNumber ?? 0;
    if (version !== undefined && versionNumber > (this.seen.get(modelId)?.versionNumber ?? 0)) {
      this.seen.set(modelId, version);
    }
    const from = this.followed.get(modelId);
    if (from === undefined || (announced && versionNumber > from)) {
      this.followed.set(modelId, versionNumber);
    }
    if (!this.generationWhenFollowed.has(modelId) && !this.generationReads.has(modelId)) {
      this.readGeneration(modelId);
    }
  }

  /** Reads the model's generation once it is followed; a failed read is tried again at the model's next follow. */
  private readGeneration(modelId: string): void {
    const token = {};
    this.generationReads.set(modelId, token);
    const done = (): void => {
      if (this.generationReads.get(modelId) === token) {
        this.generationReads.delete(modelId);
      }
    };
    this.hooks.readGeneration(modelId).then(
      (generation) => {
        done();
        // A reply behind a deletion announced meanwhile (the model followed again) is stale.
        if (this.followed.has(modelId) && !this.generationWhenFollowed.has(modelId) && generation >= this.deletionsAnnounced(modelId)) {
          this.generationWhenFollowed.set(modelId, generation);
        }
      },
      done, // unknown until a later follow reads it: a catch-up meanwhile goes by version numbers only
    );
  }

  /** A change from Redis's feed (model infos' changes are not announced). */
  announceChange(change: RegistryChange): void {
    if (change.type === "version") {
      this.announceVersion(change.version.record);
    } else if (change.type === "deleted") {
      this.announceDeleted(change.modelId, change.generation);
    }
  }

  /**
   * `generation`: the model's generation the version was committed in, when known (this instance's
   * commit, a catch-up): one older than a deletion already announced is of the deleted model, whose
   * number must not count as announced for the model created again (the feed orders its own
   * changes; this instance's command replies and reads come on other connections, in no set order
   * with it).
   */
  announceVersion(version: VersionRecord, generation?: number): void {
    if (generation !== undefined && generation < this.deletionsAnnounced(version.modelId)) {
      return;
    }
    const before = this.seen.get(version.modelId);
    if (before !== undefined && (version.versionNumber < before.versionNumber || (version.versionNumber === before.versionNumber && !sameVersion(version, before)))) {
      // Normally a notification behind a read or an own commit's reply (other connections); after a
      // Redis that lost its last writes, a number handed out again: Redis tells which.
      this.hooks.suspectLoss(version.modelId);
    }
    if (version.versionNumber <= (this.lastAnnounced.get(version.modelId)?.versionNumber ?? 0)) {
      return;
    }
    this.lastAnnounced.set(version.modelId, version);
    this.follow(version.modelId, version, true);
    for (const listener of this.committedListeners) {
      listener(version);
    }
  }

  /** The model's deletion that made its generation `generation`: announced once, and the model is forgotten. */
  announceDeleted(modelId: string, generation: number): void {
    if (generation <= this.deletionsAnnounced(modelId)) {
      return;
    }
    this.deletionAnnounced.set(modelId, generation);
    this.lastAnnounced.delete(modelId);
    this.seen.delete(modelId);
    this.followed.delete(modelId);
    this.generationWhenFollowed.delete(modelId);
    this.generationReads.delete(modelId);
    for (const listener of this.deletedListeners) {
      listener(modelId);
    }
  }

  /**
   * Redis lost versions of the model (see LossChecks): from now on, what is announced comes after
   * `latest`, Redis's latest now (undefined: none). Then announceLoss.
   */
  resetAfterLoss(modelId: string, latest: VersionRecord | undefined): void {
    if (latest === undefined) {
      this.lastAnnounced.delete(modelId);
      this.seen.delete(modelId);
    } else {
      this.lastAnnounced.set(modelId, latest);
      this.seen.set(modelId, latest);
    }
    this.followed.set(modelId, latest?.versionNumber ?? 0);
  }

  announceLoss(lost: LostVersions): void {
    for (const listener of this.lostListeners) {
      listener(lost);
    }
  }

  /** The highest-numbered version announced or read of the model, undefined when none since it was last forgotten. */
  lastSeen(modelId: string): VersionRecord | undefined {
    return this.seen.get(modelId);
  }

  /** The generation of the model's last deletion announced (0: none). */
  deletionsAnnounced(modelId: string): number {
    return this.deletionAnnounced.get(modelId) ?? 0;
  }

  /** The model's generation when this instance began to follow it, undefined until it was read. */
  followedGeneration(modelId: string): number | undefined {
    return this.generationWhenFollowed.get(modelId);
  }

  /** A catch-up found a deletion of the model that was announced already: it is followed in `generation` now. */
  followInGeneration(modelId: string, generation: number): void {
    this.generationWhenFollowed.set(modelId, generation);
  }

  /** Where a catch-up of the model starts (see `followed`), undefined when it is not followed. */
  catchUpFrom(modelId: string): number | undefined {
    return this.followed.get(modelId);
  }

  /** The followed models and where their catch-up starts; live: a model followed meanwhile comes too. */
  followedModels(): MapIterator<[string, number]> {
    return this.followed.entries();
  }
}
