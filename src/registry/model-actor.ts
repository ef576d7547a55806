import { type ArchiveStore, isNumberSpent } from "../archive/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import type { EncodedVersionData } from "../data/index.js";
import { notFound } from "../errors/index.js";
import type { RegistryError } from "../errors/index.js";
import type { RegistryState } from "../state/index.js";
import { SerialQueue } from "./serial-queue.js";
import type { VersionCache } from "./version-cache.js";
import type { VersionCommit } from "./version-commit.js";
import type { VersionSubscription } from "./version-subscription.js";

export interface ModelActorContext {
  readonly state: RegistryState;
  readonly archive: ArchiveStore;
  readonly cache: VersionCache<EncodedVersionData>;
}

/**
 * The single owner, in this instance, of one model's work. Everything that changes the model (its
 * info, commits, deletion) runs through its serial queue and goes to the registry state; it keeps
 * what is the instance's own: the model's cached data and which of it is pinned (the latest), the
 * VersionUpdate subscribers, and the generation that keeps uploads begun before a deletion out of a
 * re-created model. One mutation skips the queue: `dataEvicted` (see there).
 */
export class ModelActor {
  /** Bumped on deletion so that uploads begun before it cannot land in a re-created model. */
  #generation = 0;
  /** Whether this instance knows the model exists (it keeps the actor until the model is deleted). */
  #known = false;
  readonly #subscriptions = new Set<VersionSubscription>();
  readonly #queue: SerialQueue;

  constructor(
    readonly modelId: string,
    private readonly context: ModelActorContext,
    onIdle: (actor: ModelActor) => void,
  ) {
    this.#queue = new SerialQueue(() => onIdle(this));
  }

  get generation(): number {
    return this.#generation;
  }

  get known(): boolean {
    return this.#known;
  }

  get subscriberCount(): number {
    return this.#subscriptions.size;
  }

  /** No work queued and nobody subscribed: the registry may drop an actor of a model it does not know. */
  get isIdle(): boolean {
    return this.#queue.pending === 0 && this.#subscriptions.size === 0;
  }

  /** The model exists (seen in a listing or a read): the actor stays until the model is deleted. */
  markKnown(): void {
    this.#known = true;
  }

  createOrUpdate(model: ModelRecord): Promise<boolean> {
    return this.#queue.run(async () => {
      const created = await this.context.state.putModel(model);
      this.#known = true;
      return created;
    });
  }

  delete(): Promise<void> {
    return this.#queue.run(async () => {
      // The state announces the deletion (modelDeleted) before it resolves.
      if (!(await this.context.state.deleteModel(this.modelId))) {
        throw notFound(`model "${this.modelId}" not found`);
      }
    });
  }

  /**
   * Numbers and stores a received version. A memory payload's reservation is consumed on success,
   * released on failure. `stateGeneration`: the model's generation in the state as the upload began
   * (RegistryState.getModelForUpload), for a deletion this instance has not heard of yet.
   */
  commit(pending: VersionCommit, stateGeneration?: number): Promise<VersionRecord> {
    return this.#queue.run(() => this.#commitNow(pending, stateGeneration));
  }

  async #commitNow(pending: VersionCommit, stateGeneration: number | undefined): Promise<VersionRecord> {
    const { payload } = pending;
    try {
      const { state, archive, cache } = this.context;
      const claim = pending.generation === this.#generation ? await state.claimVersionNumber(this.modelId, stateGeneration) : undefined;
      if (claim === undefined || pending.generation !== this.#generation) {
        claim?.abandon();
        throw notFound(`model "${this.modelId}" not found (it was deleted while the version was uploading)`);
      }
      const { versionNumber } = claim;
      const record: VersionRecord = {
        modelId: this.modelId,
        versionNumber,
        creationTimestamp: pending.creationTimestamp,
        archived: pending.archived,
        dataHash: pending.dataHash,
        dataSize: payload.kind === "memory" ? payload.data.dataSize : payload.dataSize,
        userData: pending.userData,
      };
      try {
        if (payload.kind === "stream") {
          await payload.stream.commit(record, claim.fence);
        } else if (record.archived) {
          await archive.putVersion(record, payload.data.dataSegments(), claim.fence);
        }
      } catch (error) {
        claim.abandon(isNumberSpent(error));
        throw error;
      }
      // Held until the version is listed: an eviction before that could not forget the version (not
      // listed yet), which would then be listed, the latest even, with no data behind it.
      let heldUntilListed: { release(): void } | undefined;
      if (payload.kind === "memory") {
        // In the cache before the version is visible: a reader told of it finds its data.
        cache.insert(payload.reservation, this.modelId, versionNumber, payload.data, {
          pinned: true,
          archived: record.archived,
          identity: record.dataHash,
        });
        heldUntilListed = cache.acquire(this.modelId, versionNumber, record.dataHash);
      }
      let previous: VersionRecord | undefined;
      try {
        previous = await claim.commit(record, payload.kind === "memory" ? payload.shared : undefined);
      } catch (error) {
        heldUntilListed?.release();
        cache.delete(this.modelId, versionNumber);
        throw error;
      }
      heldUntilListed?.release();
      // The previous latest as of the commit (an eviction meanwhile may have made an older version
      // the latest and pinned it: dataEvicted). Unpinned on both paths: a version streamed to disk is not cached.
      if (previous !== undefined) {
        cache.setPinned(this.modelId, previous.versionNumber, false);
      }
      return record;
    } catch (error) {
      if (payload.kind === "memory") {
        payload.reservation.release();
        payload.shared?.abort();
      }
      throw error;
    }
  }

  /**
   * The cache dropped a version's data: a transient version is then gone for good. The one mutation
   * that skips the queue: the cache evicts synchronously, inside whatever call made room (another
   * model's upload, an expiration sweep), and from that moment no reader may be handed the version.
   * It only removes a transient version and pins the data of the version that became the latest.
   */
  dataEvicted(versionNumber: number): void {
    const { state, cache } = this.context;
    void state.forgetTransientVersion(this.modelId, versionNumber).then((latest) => {
      if (latest !== undefined) {
        cache.setPinned(this.modelId, latest.versionNumber, true);
      }
    });
  }

  /** The state announced a committed version (of this instance or another): subscribers get it. */
  versionCommitted(version: VersionRecord): void {
    // A copy read through from a shared state while it was the latest is pinned: no longer (the
    // committing instance unpinned its own in commit). Numbers of a shared state have no gaps.
    this.context.cache.setPinned(this.modelId, version.versionNumber - 1, false);
    for (const subscription of this.#subscriptions) {
      subscription.publish(version);
    }
  }

  /** The state announced the model's deletion: its cached data goes, uploads in flight will fail, streams end. */
  modelDeleted(): void {
    this.context.cache.deleteModel(this.modelId);
    this.#known = false;
    this.#generation++;
    this.endSubscriptions(notFound(`model "${this.modelId}" was deleted: this VersionUpdate stream has no more versions to send`));
  }

  subscribe(subscription: VersionSubscription): void {
    this.#subscriptions.add(subscription);
  }

  unsubscribe(subscription: VersionSubscription): void {
    this.#subscriptions.delete(subscription);
  }

  endSubscriptions(reason: RegistryError): void {
    for (const subscription of this.#subscriptions) {
      subscription.end(reason);
    }
    this.#subscriptions.clear();
  }

  /** Resolves once the work queued so far is done (a graceful stop waits for the commits in flight). */
  settled(): Promise<void> {
    return this.#queue.run(async () => {});
  }
}
