import { randomUUID } from "node:crypto";
import type { RevocableWrite } from "../archive/index.js";
import { isNotFound } from "../errors/index.js";
import { ReplicationUnconfirmed, isRefusedWhileDeleting } from "../redis/index.js";
import type { RegistryState } from "./registry-state.js";
import { Announcements } from "./announcements.js";
import { ArchiveReservations } from "./archive-reservations.js";
import { catchUpFollowedModels } from "./catch-up.js";
import { renewLeaseWhileHeld } from "./lease-renewal.js";
import { LossChecks } from "./loss-checks.js";
import type { RedisRegistryStateOptions } from "./redis-registry-state-options.js";
import { RedisTransientData } from "./redis-transient-data.js";
import { RedisVersionClaims } from "./redis-version-claims.js";
import { StartOnRedis } from "./start-on-redis.js";

export type { RedisRegistryStateOptions } from "./redis-registry-state-options.js";

const DEFAULT_DELETION_LEASE_MS = 10_000;

/**
 * The registry state of several instances sharing one Redis (src/redis/) and one archive. Metadata
 * is read from Redis at every call (read your writes across instances). Its parts:
 * - numbering: redis-version-claims.ts (a claim of the model's next number across every instance,
 *   then the commit script), archive-reservations.ts (the archive's numbering records kept ahead);
 * - notifications: announcements.ts (Redis's change feed, deduplicated with what this instance
 *   announces itself at commit and deletion), loss-checks.ts (Redis lost versions announced) and
 *   catch-up.ts (after the subscriber connection was lost);
 * - the start on Redis and the health it gives: start-on-redis.ts;
 * - transient versions' data: redis-transient-data.ts.
 * Here: the model calls (a deletion's hold included), the reads, and the wiring of the parts.
 */
export function createRedisRegistryState(options: RedisRegistryStateOptions): RegistryState {
  const { store, archive, log } = options;
  const deletionLeaseMs = options.deletionLeaseMs ?? DEFAULT_DELETION_LEASE_MS;
  const announcements = new Announcements({
    readGeneration: (modelId) => store.generation(modelId),
    suspectLoss: (modelId) => lossChecks.suspect(modelId),
  });
  const lossChecks = new LossChecks(store, announcements, log);
  const start = new StartOnRedis({ ...options, catchUp: () => catchUpFollowedModels({ store, announcements, lossChecks, log }) });
  const transientData = new RedisTransientData(store, log);
  const reservations = new ArchiveReservations(options.numbering, log);
  const claims = new RedisVersionClaims({ ...options, reservations, transientData, announcements });
  const requireStarted = (): void => start.requireStarted();
  let modelCount = 0;
  let closed = false;

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
        if (isNotFound(error)) {
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
        if (isNotFound(error)) {
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
      return claims.claim(modelId, generation);
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

    sharesTransientData: true,

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
