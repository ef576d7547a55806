import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { PlacementFence } from "../archive/index.js";
import type { VersionRecord } from "../domain/index.js";
import { Code, RegistryError } from "../errors/index.js";
import { type NumberClaim, ReplicationUnconfirmed, type StoredVersion, type UploadedData } from "../redis/index.js";
import type { Announcements } from "./announcements.js";
import type { ArchiveReservations } from "./archive-reservations.js";
import { renewLeaseWhileHeld } from "./lease-renewal.js";
import type { RedisRegistryStateOptions } from "./redis-registry-state-options.js";
import type { RedisTransientData } from "./redis-transient-data.js";
import type { VersionNumberClaim } from "./registry-state.js";

export interface RedisVersionClaimsOptions extends Pick<RedisRegistryStateOptions, "store" | "archive" | "log" | "claimLeaseMs" | "claimWaitMs"> {
  readonly reservations: ArchiveReservations;
  /** Where a commit finds the Redis writer of its transient data sink. */
  readonly transientData: RedisTransientData;
  /** A commit's version is announced here as soon as Redis took it. */
  readonly announcements: Announcements;
}

const DEFAULT_CLAIM_LEASE_MS = 5_000;
const DEFAULT_CLAIM_WAIT_MS = 30_000;
/** Pause between two attempts at a claim held by another commit of the same model. */
const CLAIM_RETRY_MS = 3;
/**
 * The share of the lease a claim's fence wants left after its confirmation, for the renames that
 * follow it (fenced-placement.ts): Redis must confirm within the rest of the lease.
 */
const PLACEMENT_MARGIN_SHARE = 0.5;

/**
 * Version numbering across the instances sharing Redis: a commit first claims the model's next
 * number (a lease in Redis, renewed meanwhile), stores the bytes under it (an archived version's
 * files, a transient version's chunk keys), then the commit script takes the number and makes the
 * version visible; a claim released or run out leaves the number free, so numbers stay unique and
 * gap-free and nothing half-stored is ever listed.
 */
export class RedisVersionClaims {
  private readonly claimLeaseMs: number;
  private readonly claimWaitMs: number;

  constructor(private readonly options: RedisVersionClaimsOptions) {
    this.claimLeaseMs = options.claimLeaseMs ?? DEFAULT_CLAIM_LEASE_MS;
    this.claimWaitMs = options.claimWaitMs ?? DEFAULT_CLAIM_WAIT_MS;
  }

  /** See RegistryState.claimVersionNumber; waits up to claimWaitMs for another commit's claim of the model. */
  async claim(modelId: string, generation: number | undefined): Promise<VersionNumberClaim | undefined> {
    const { store, reservations } = this.options;
    const { claimLeaseMs, claimWaitMs } = this;
    const token = randomUUID();
    const deadline = performance.now() + claimWaitMs;
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
        const reservation = reservations.reserve(modelId, claim);
        return this.newClaim(modelId, claim, reservation);
      }
      if (performance.now() > deadline) {
        throw new RegistryError(
          Code.UNAVAILABLE,
          `another commit of model "${modelId}" has held its version numbering for over ${claimWaitMs} ms; try again`,
        );
      }
      await sleep(CLAIM_RETRY_MS + Math.random() * CLAIM_RETRY_MS);
    }
  }

  private newClaim(modelId: string, claim: NumberClaim, reservation: Promise<number | undefined>): VersionNumberClaim {
    const { store, log, transientData, announcements } = this.options;
    const { claimLeaseMs } = this;
    // Renewed while the bytes are stored (large archived files); a lost renewal shows at commit (ABORTED).
    const renewal = renewLeaseWhileHeld(claimLeaseMs, () => store.renewClaim(modelId, claim.token, claimLeaseMs));
    return {
      versionNumber: claim.versionNumber,
      fence: this.fence(modelId, claim),
      commit: async (version, transientDataSink) => {
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
            await this.recordCommitInArchive(committed).catch(() => undefined); // logged; the client gets the replication's error
            throw error;
          }
          await writer?.abort();
          await store.releaseClaim(modelId, claim.token).catch(() => undefined);
          throw error;
        }
        announcements.announceVersion(stored.record, claim.generation);
        // Before the reply: until then, the archive does not count the version (see markCommitted).
        await this.recordCommitInArchive(stored.record);
        return await this.previousVersion(modelId, claim.versionNumber);
      },
      abandon: (numberSpent = false) => {
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
  }

  /** What the archive confirms right before it puts the version's files under their final names (VersionNumberClaim.fence). */
  private fence(modelId: string, claim: NumberClaim): PlacementFence {
    const { store, archive } = this.options;
    const { claimLeaseMs } = this;
    const what = `version number ${claim.versionNumber} of model "${modelId}"`;
    const items = archive.storedItems ?? "files";
    return {
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
  }

  /**
   * After the commit script: an archived version's files were put in place under a pending mark
   * (ArchiveStore.markCommitted), which an import of the archive into an empty Redis, or single mode,
   * takes for a commit that never completed. Rejects when the mark could not be removed: the version
   * is committed (listed, announced), but the client must not be told it is without that caveat.
   */
  private async recordCommitInArchive(version: VersionRecord): Promise<void> {
    const { archive, log } = this.options;
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
  }

  /**
   * The version before a commit's: normally number − 1, else (a skipped number, or its info expired)
   * the latest below it. Unknown (undefined) if Redis fails now: the commit is done.
   */
  private async previousVersion(modelId: string, versionNumber: number): Promise<VersionRecord | undefined> {
    if (versionNumber <= 1) {
      return undefined;
    }
    try {
      return ((await this.options.store.getVersion(modelId, versionNumber - 1)) ?? (await this.options.store.versionBefore(modelId, versionNumber - 1)))?.record;
    } catch {
      return undefined;
    }
  }
}
