import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import type { ArchiveStore, PlacementFence, RevocableWrite } from "../archive/index.js";
import type { VersionRecord } from "../domain/index.js";
import { Code, RegistryError } from "../errors/index.js";
import type { Logger } from "../logger.js";
import {
  type NumberClaim,
  type RedisRegistryStore,
  ReplicationUnconfirmed,
  type StoredVersion,
  type UploadedData,
  isRefusedWhileDeleting,
} from "../redis/index.js";
import type { RegistryState, VersionNumberClaim } from "./registry-state.js";
import type { ArchiveNumbering } from "./archive-numbering.js";
import { renewLeaseWhileHeld } from "./lease-renewal.js";
import { Announcements } from "./announcements.js";
import { catchUpFollowedModels } from "./catch-up.js";
import { LossChecks } from "./loss-checks.js";
import { RedisTransientData } from "./redis-transient-data.js";
import { StartOnRedis } from "./start-on-redis.js";

export interface RedisRegistryStateOptions {
  readonly store: RedisRegistryStore;
  /** The archive every instance shares: archived versions' data, and what an empty Redis imports. */
  readonly archive: ArchiveStore;
  /** The archive's numbering records, kept at least as high as the numbers handed out (archive-numbering.ts). */
  readonly numbering: ArchiveNumbering;
  readonly log: Logger;
  /**
   * How long open() waits for Redis to be reachable before it lets the instance listen anyway (health
   * NOT_SERVING, calls UNAVAILABLE naming Redis); the start is finished once Redis is reachable.
   */
  readonly startWaitMs?: number;
  /** Pause before another attempt at finishing the start (subscribing, importing) after it failed with Redis up. */
  readonly resumeRetryMs?: number;
  /** A claim's lease, renewed while its commit goes on: a crashed instance's claim runs out after this. */
  readonly claimLeaseMs?: number;
  /** How long a commit waits for another instance's claim of the same model before it fails (UNAVAILABLE). */
  readonly claimWaitMs?: number;
  /**
   * A deletion's hold on the model (it cannot be created again) while its archive files are removed,
   * renewed meanwhile: a crashed deleter's hold runs out after this.
   */
  readonly deletionLeaseMs?: number;
}

const DEFAULT_CLAIM_LEASE_MS = 5_000;
const DEFAULT_CLAIM_WAIT_MS = 30_000;
const DEFAULT_DELETION_LEASE_MS = 10_000;
/** Pause between two attempts at a claim held by another commit of the same model. */
const CLAIM_RETRY_MS = 3;
/**
 * The share of the lease a claim's fence wants left after its confirmation, for the renames that
 * follow it (fenced-placement.ts): Redis must confirm within the rest of the lease.
 */
const PLACEMENT_MARGIN_SHARE = 0.5;

/**
 * The registry state of several instances sharing one Redis (src/redis/) and one archive. Numbering:
 * a commit first claims the model's next number across every instance (a lease in Redis), stores the
 * bytes under it (an archived version's files, a transient version's chunk keys), then the commit
 * script takes the number and makes the version visible; a claim released or run out leaves the
 * number free, so numbers stay unique and gap-free and nothing half-stored is ever listed.
 * Metadata is read from Redis at every call (read your writes across instances); notifications come
 * from Redis's change feed, deduplicated with what this instance announces itself at commit and
 * deletion, and caught up after the subscriber connection was lost.
 */
export function createRedisRegistryState(options: RedisRegistryStateOptions): RegistryState {
  const { store, archive, log, numbering: archiveNumbering } = options;
  const claimLeaseMs = options.claimLeaseMs ?? DEFAULT_CLAIM_LEASE_MS;
  const claimWaitMs = options.claimWaitMs ?? DEFAULT_CLAIM_WAIT_MS;
  const deletionLeaseMs = options.deletionLeaseMs ?? DEFAULT_DELETION_LEASE_MS;
  const announcements = new Announcements({
    readGeneration: (modelId) => store.generation(modelId),
    suspectLoss: (modelId) => lossChecks.suspect(modelId),
  });
  const lossChecks = new LossChecks(store, announcements, log);
  const start = new StartOnRedis({
    store,
    archive,
    numbering: archiveNumbering,
    log,
    catchUp: () => catchUpFollowedModels({ store, announcements, lossChecks, log }),
    startWaitMs: options.startWaitMs,
    resumeRetryMs: options.resumeRetryMs,
  });
  const requireStarted = (): void => start.requireStarted();
  const transientData = new RedisTransientData(store, log);
  let modelCount = 0;
  let closed = false;

  /**
   * The version before a commit's: normally number − 1, else (a skipped number, or its info expired)
   * the latest below it. Unknown (undefined) if Redis fails now: the commit is done.
   */
  const previousVersion = async (modelId: string, versionNumber: number): Promise<VersionRecord | undefined> => {
    if (versionNumber <= 1) {
      return undefined;
    }
    try {
      return ((await store.getVersion(modelId, versionNumber - 1)) ?? (await store.versionBefore(modelId, versionNumber - 1)))?.record;
    } catch {
      return undefined;
    }
  };

  /** Models whose archive numbering record could not be written, warned once until a write succeeds. */
  const reservationWarned = new Set<string>();

  /**
   * Before a claimed number is handed out: the archive's numbering records (version-numbering.ts) must
   * reach above it, so that a single-mode server started later on this archive never hands it out
   * again (a transient version leaves no file to continue after). Written a block ahead, as single
   * mode does: one archive write per VERSION_NUMBER_BLOCK numbers, the other claims learn from Redis
   * (the claim's `reserved`) that it is done. Resolves to how far the records now reach (for Redis,
   * at commit), undefined when nothing was written; never rejects: a failed write is a warning, as in
   * single mode, and the next claim tries again.
   */
  const reserveInArchive = async (modelId: string, claim: NumberClaim): Promise<number | undefined> => {
    if (claim.versionNumber < claim.reserved) {
      return undefined;
    }
    try {
      const upTo = await archiveNumbering.reserveAbove(modelId, claim.versionNumber);
      reservationWarned.delete(modelId);
      return upTo;
    } catch (error) {
      if (!reservationWarned.has(modelId)) {
        reservationWarned.add(modelId);
        log.warn(
          { err: error, modelId, versionNumber: claim.versionNumber },
          "could not write the archive's version-number record: versions are still numbered and served, but a server started later in single mode on this archive may hand out again numbers of transient versions created from now on",
        );
      }
      return undefined;
    }
  };

  /**
   * After the commit script: an archived version's files were put in place under a pending mark
   * (ArchiveStore.markCommitted), which an import of the archive into an empty Redis, or single mode,
   * takes for a commit that never completed. Rejects when the mark could not be removed: the version
   * is committed (listed, announced), but the client must not be told it is without that caveat.
   */
  const recordCommitInArchive = async (version: VersionRecord): Promise<void> => {
    if (!version.archived || archive.markCommitted === undefined) {
      return;
    }
    try {
      await archive.markCommitted(version.modelId, version.versionNumber);
    } catch (error) {
      const { modelId, versionNumber } = version;
      log.error({ err: error, modelId, versionNumber }, "an archived version was committed in Redis, but its pending mark could not be removed from the archive");
      const cause = error instanceof Error ? error.message : String(error);
      throw new RegistryError(
        Code.UNAVAILABLE,
        `version ${versionNumber} of model "${modelId}" was committed, but the archive could not record that its commit completed (${cause}): it is listed and served while Redis keeps it, but an import of the archive into an empty Redis would not list it`,
      );
    }
  };

  const newClaim = (modelId: string, claim: NumberClaim, reservation: Promise<number | undefined>): VersionNumberClaim => {
    // Renewed while the bytes are stored (large archived files); a lost renewal shows at commit (ABORTED).
    const renewal = renewLeaseWhileHeld(claimLeaseMs, () => store.renewClaim(modelId, claim.token, claimLeaseMs));
    const what = `version number ${claim.versionNumber} of model "${modelId}"`;
    const items = archive.storedItems ?? "files";
    const fence: PlacementFence = {
      async confirm() {
        // The lease renewed here runs from Redis's execution of the script, after `sent`.
        const sent = performance.now();
        const held = await store.renewClaim(modelId, claim.token, claimLeaseMs);
        const waited = performance.now() - sent;
        if (!held) {
          throw new RegistryError(
            Code.ABORTED,
            `the claim of ${what} expired before the version's ${items} were put in place (the lease of ${claimLeaseMs} ms ran out: this instance was stalled or could not reach Redis); its ${items} were not put in place, try again`,
          );
        }
        const margin = claimLeaseMs * PLACEMENT_MARGIN_SHARE;
        if (waited > claimLeaseMs - margin) {
          throw new RegistryError(
            Code.ABORTED,
            `Redis took ${Math.round(waited)} ms to confirm the claim of ${what}, leaving less than ${margin} ms of its ${claimLeaseMs} ms lease to put the version's ${items} in place; they were not put in place, try again`,
          );
        }
      },
    };
    return {
      versionNumber: claim.versionNumber,
      fence,
      async commit(version, transientDataSink) {
        const writer = transientDataSink === undefined ? undefined : transientData.writerOf(transientDataSink);
        let stored: StoredVersion;
        try {
          if (transientDataSink !== undefined && writer === undefined) {
            throw new Error("claim.commit was given a transient data sink of another registry state");
          }
          // The archive's record (it never rejects) and the transient bytes still in flight to Redis
          // (their last chunks, over a link as slow as it may be), the lease renewed until both are
          // done: a slow write must not lose the claim.
          const reservedUpTo = await reservation;
          const uploaded: UploadedData | undefined = writer === undefined || version.archived ? undefined : await writer.finish();
          renewal.stop();
          const { versionNumber: _assigned, ...newVersion } = version;
          stored = await store.commitVersion(newVersion, claim.generation, uploaded, claim, reservedUpTo);
        } catch (error) {
          renewal.stop();
          if (error instanceof ReplicationUnconfirmed) {
            // Committed (numbered, published), only not known to be replicated: nothing to undo.
            const committed = (error.outcome as StoredVersion).record;
            announcements.announceVersion(committed, claim.generation);
            await recordCommitInArchive(committed).catch(() => undefined); // logged; the client gets the replication's error
            throw error;
          }
          await writer?.abort();
          await store.releaseClaim(modelId, claim.token).catch(() => undefined);
          throw error;
        }
        announcements.announceVersion(stored.record, claim.generation);
        // Before the reply: until then, the archive does not count the version (see markCommitted).
        await recordCommitInArchive(stored.record);
        return await previousVersion(modelId, claim.versionNumber);
      },
      abandon(numberSpent = false) {
        renewal.stop();
        if (!numberSpent) {
          store.releaseClaim(modelId, claim.token).catch(() => undefined); // else its lease runs out
          return;
        }
        // The archive holds objects under this number (e.g. an S3 info of another writer): handing it
        // out again would fail the same way, or name other bytes. Numbering moves past it.
        void (async () => {
          const skipped = await store.skipNumber(modelId, claim, (await reservation) ?? 0);
          log.warn(
            { modelId, versionNumber: claim.versionNumber, skipped },
            skipped
              ? "a version number was skipped: the archive holds objects under it that no version in Redis refers to (another writer's, or those of a commit that failed after writing them)"
              : "a version number whose archive objects are not this commit's could not be skipped (its claim ran out or the number was taken meanwhile)",
          );
        })().catch((error: unknown) => {
          log.warn({ err: error, modelId, versionNumber: claim.versionNumber }, "could not skip a version number whose archive objects are not this commit's; its claim runs out and the next commit tries it again");
        });
      },
    };
  };

  return {
    async open() {
      await archive.open();
      await archive.removeLeftovers?.();
      store.feed.followAll((change) => announcements.announceChange(change));
      await start.begin();
    },

    async listModelIds() {
      requireStarted();
      const ids = await store.listModelIds();
      modelCount = ids.length;
      return ids;
    },

    async listModelIdPage(offset, count) {
      requireStarted();
      const { ids, total } = await store.listModelIdPage(offset, count);
      modelCount = total;
      return ids;
    },

    async getModel(modelId) {
      requireStarted();
      return store.getModel(modelId);
    },

    async getModelForUpload(modelId) {
      requireStarted();
      return store.getModelAndGeneration(modelId);
    },

    async getModels(modelIds) {
      requireStarted();
      return store.getModels(modelIds);
    },

    async putModel(model) {
      requireStarted();
      // The archive keeps every model info too: what an empty Redis imports.
      let written: RevocableWrite | undefined;
      if (archive.writeModelRevocably === undefined) {
        await archive.writeModel(model);
      } else {
        written = await archive.writeModelRevocably(model);
      }
      let created;
      try {
        ({ created } = await store.putModel(model));
      } catch (error) {
        if (isRefusedWhileDeleting(error)) {
          // Not created, and the deleting instance may have removed the model's files before this
          // write: left there, the info would bring the model back at an import into an empty Redis.
          await written?.revoke();
        }
        if (error instanceof ReplicationUnconfirmed && (error.outcome as { created: boolean }).created) {
          modelCount++;
        }
        throw error;
      }
      if (created) {
        modelCount++;
      }
      return created;
    },

    async deleteModel(modelId) {
      requireStarted();
      // From the script until the archive files are gone, no instance creates the model again (putModel
      // refuses): the removal below takes every file under the model's name, a new model's too.
      const token = randomUUID();
      const renewal = renewLeaseWhileHeld(deletionLeaseMs, () => store.renewDeletion(modelId, token, deletionLeaseMs));
      /** Whether the script set the hold: unknown when the call failed (it may have run). */
      let held: boolean | undefined = undefined;
      try {
        let generation;
        try {
          generation = await store.deleteModelGeneration(modelId, { token, leaseMs: deletionLeaseMs });
          held = generation !== undefined;
        } catch (error) {
          if (error instanceof ReplicationUnconfirmed) {
            held = true;
            // A failover may bring the model back: its archived versions' files must still be there then.
            modelCount = Math.max(0, modelCount - 1);
            announcements.announceDeleted(modelId, error.outcome as number);
            throw new ReplicationUnconfirmed(`${error.message}; its archive files were kept`, error.outcome);
          }
          throw error;
        }
        if (generation === undefined) {
          return false;
        }
        modelCount = Math.max(0, modelCount - 1);
        try {
          await archive.deleteModel(modelId);
        } catch (error) {
          log.warn({ err: error, modelId }, "the model is deleted but its archive files could not all be removed");
        }
        announcements.announceDeleted(modelId, generation);
        return true;
      } finally {
        renewal.stop();
        // Before the reply: a client that deletes, then creates the model again through any instance, is not refused.
        if (held !== false) {
          await store.endDeletion(modelId, token).catch((error: unknown) => {
            if (held === true) {
              log.warn(
                { err: error, modelId },
                `cannot end the deletion's hold on the model in Redis: it cannot be created again for up to ${deletionLeaseMs} ms`,
              );
            }
          });
        }
      }
    },

    get modelCount() {
      return modelCount;
    },

    async listVersions(modelId) {
      requireStarted();
      let stored;
      try {
        stored = await store.listVersions(modelId, 1, 0);
      } catch (error) {
        if (error instanceof RegistryError && error.code === Code.NOT_FOUND) {
          return [];
        }
        throw error;
      }
      const versions = stored.map((version) => version.record);
      announcements.follow(modelId, versions[versions.length - 1], false);
      return versions;
    },

    async findVersion(modelId, versionNumber) {
      requireStarted();
      let stored;
      try {
        stored =
          versionNumber === -1
            ? await store.latestVersion(modelId)
            : versionNumber > 0
              ? await store.getVersion(modelId, versionNumber)
              : undefined;
      } catch (error) {
        if (error instanceof RegistryError && error.code === Code.NOT_FOUND) {
          return undefined;
        }
        throw error;
      }
      if (stored !== undefined) {
        announcements.follow(modelId, stored.record, false);
      }
      return stored?.record;
    },

    async claimVersionNumber(modelId, generation) {
      requireStarted();
      const token = randomUUID();
      const deadline = Date.now() + claimWaitMs;
      for (;;) {
        const claim = await store.claimNumber(modelId, token, claimLeaseMs);
        if (claim === undefined) {
          return undefined;
        }
        if (claim !== "busy" && generation !== undefined && claim.generation !== generation) {
          // Deleted since the upload began (maybe not announced here yet): not into the model created again.
          await store.releaseClaim(modelId, token).catch(() => undefined); // else its lease runs out
          return undefined;
        }
        if (claim !== "busy") {
          // Written while the version's bytes are stored; the commit waits for it.
          const reservation = reserveInArchive(modelId, claim);
          return newClaim(modelId, claim, reservation);
        }
        if (Date.now() > deadline) {
          throw new RegistryError(
            Code.UNAVAILABLE,
            `another commit of model "${modelId}" has held its version numbering for over ${claimWaitMs} ms; try again`,
          );
        }
        await sleep(CLAIM_RETRY_MS + Math.random() * CLAIM_RETRY_MS);
      }
    },

    async forgetTransientVersion() {
      return undefined; // Redis keeps the data: this instance's cache held only a copy
    },

    onVersionCommitted: (listener) => announcements.onVersionCommitted(listener),
    onModelDeleted: (listener) => announcements.onModelDeleted(listener),
    onVersionsLost: (listener) => announcements.onVersionsLost(listener),

    beginTransientData: (modelId, dataSize) => transientData.begin(modelId, dataSize),

    async openTransientData(version) {
      requireStarted();
      return transientData.open(version);
    },

    transientGoneReason:
      "the transient version is no longer in Redis: it expired, Redis evicted it (maxmemory), or its model was deleted and created again",

    get healthy() {
      return start.healthy;
    },

    onHealth: (listener) => start.onHealth(listener),

    async recordStop() {
      // Nothing to record: Redis holds the numbering.
    },

    async close() {
      if (!closed) {
        closed = true;
        lossChecks.stop();
        start.stop();
        await store.close();
      }
    },
  };
}
