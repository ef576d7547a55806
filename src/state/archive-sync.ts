import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { ArchiveStore } from "../archive/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import { Code, RegistryError, isNotFound } from "../errors/index.js";
import type { Logger } from "../logger.js";
import type { RedisRegistryStore, StoredVersion } from "../redis/index.js";
import type { ArchiveNumbering, ArchivedNumbering } from "./archive-numbering.js";
import { type LeaseRenewal, renewLeaseWhileHeld } from "./lease-renewal.js";

export interface ArchiveSyncOptions {
  readonly store: RedisRegistryStore;
  readonly archive: ArchiveStore;
  readonly numbering: ArchiveNumbering;
  readonly log: Logger;
  /** The lease of the one instance importing at a time, renewed meanwhile: a crashed importer's runs out after this. */
  readonly leaseMs?: number;
  /** Pause between two looks at the import another instance holds the lease of. */
  readonly pollMs?: number;
}

const DEFAULT_LEASE_MS = 10_000;
const DEFAULT_POLL_MS = 100;

/**
 * What the archive holds cannot be brought into Redis without losing or hiding a version another
 * holds under the same number: the start fails with it (its message names the case and the way out).
 */
export class ArchiveConflict extends Error {}

/**
 * Brings Redis in line with the archive when it is not yet (its import mark, see
 * RedisRegistryStore.markArchiveImported):
 * - a Redis without the mark (new, or it lost its data) gets the archive imported, as before: what
 *   Redis has is kept, numbering continues above the archive's numbering records;
 * - a Redis whose mark names another single-mode run than the archive's last (single-mode-run.ts: a
 *   single-mode server ran on the archive since) gets that run's changes: its models and archived
 *   versions imported, its user data, its numbers skipped, its deleted models deleted, and a model it
 *   deleted and created again replaced by the archive's.
 * One instance at a time (a lease in Redis, renewed meanwhile); the others wait for its mark.
 * Throws on a Redis error (the caller tries again) and ArchiveConflict.
 */
export async function syncArchiveIntoRedis(options: ArchiveSyncOptions): Promise<void> {
  const { store, numbering } = options;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  for (;;) {
    const [imported, run] = await Promise.all([store.archiveImport(), numbering.singleModeRun()]);
    if (isUpToDate(imported, run)) {
      return;
    }
    const token = randomUUID();
    const sent = performance.now();
    if (!(await store.beginArchiveSync(token, leaseMs))) {
      await sleep(options.pollMs ?? DEFAULT_POLL_MS, undefined, { ref: false }); // another instance imports: its mark follows
      continue;
    }
    const lease = new SyncLease(store, token, leaseMs, sent);
    try {
      // Another instance may have finished between the first look and the lease.
      const importedNow = await store.archiveImport();
      if (isUpToDate(importedNow, run)) {
        return;
      }
      await new ArchiveSync(options, lease, importedNow !== undefined).run(run);
      await lease.check();
      await store.markArchiveImported(run);
      return;
    } finally {
      lease.stop();
      await store.endArchiveSync(token).catch(() => undefined); // else it runs out
    }
  }
}

/** Redis reflects the archive: imported, and since the archive's last single-mode run (if any left its mark). */
const isUpToDate = (imported: string | undefined, run: string | undefined): boolean => imported !== undefined && (run === undefined || imported === run);

/**
 * The import's lease. Checked before each change: when less than half of it may be left (counted on
 * this process's monotonic clock from before the last renewal's request), it is renewed first, and a
 * lease that ran out (this instance was stalled or cut off: another may be importing) stops the import.
 */
class SyncLease {
  private validUntil: number;
  private readonly renewal: LeaseRenewal;

  constructor(
    private readonly store: RedisRegistryStore,
    private readonly token: string,
    private readonly leaseMs: number,
    sent: number,
  ) {
    this.validUntil = sent + leaseMs;
    this.renewal = renewLeaseWhileHeld(leaseMs, () => this.renew());
  }

  async check(): Promise<void> {
    if (performance.now() < this.validUntil - this.leaseMs / 2) {
      return;
    }
    if (!(await this.renew()) || performance.now() >= this.validUntil - this.leaseMs / 2) {
      throw new RegistryError(
        Code.UNAVAILABLE,
        `the lease of the archive's import into Redis ran out (${this.leaseMs} ms: this instance was stalled or could not reach Redis); another instance may be importing it`,
      );
    }
  }

  stop(): void {
    this.renewal.stop();
  }

  private async renew(): Promise<boolean> {
    const sent = performance.now();
    const held = await this.store.renewArchiveSync(this.token, this.leaseMs);
    this.validUntil = held ? Math.max(this.validUntil, sent + this.leaseMs) : Number.NEGATIVE_INFINITY;
    return held;
  }
}

/** One import (`reconcile` false) or reconciliation after a single-mode run, under the lease. */
class ArchiveSync {
  private models = 0;
  private created = 0;
  private replaced = 0;
  private deleted = 0;

  constructor(
    private readonly options: ArchiveSyncOptions,
    private readonly lease: SyncLease,
    private readonly reconcile: boolean,
  ) {}

  async run(run: string | undefined): Promise<void> {
    const { archive, store, log } = this.options;
    const modelIds = await archive.listModelIds();
    for (const modelId of modelIds) {
      const model = await archive.readModel(modelId);
      if (model !== undefined) {
        if (await this.syncModel(model)) {
          this.models++;
        }
      } else if (this.reconcile) {
        // Unreadable (readModel warned): not a deletion. Redis keeps what it has of it.
        log.warn({ modelId }, "a model the archive lists could not be read: what Redis holds of it is left as it is");
      }
    }
    if (!this.reconcile) {
      log.info({ models: this.models }, "archive imported into Redis");
      return;
    }
    // Every model of Redis has its model file in the archive (written first in shared mode): one that
    // lost it was deleted by the single-mode run.
    const listed = new Set(modelIds);
    for (const modelId of await store.listModelIds()) {
      if (!listed.has(modelId)) {
        await this.lease.check();
        if ((await store.deleteModelGeneration(modelId)) !== undefined) {
          this.deleted++;
          log.info({ modelId }, "a model deleted by a single-mode run on the archive is deleted from Redis too");
        }
      }
    }
    log.info(
      { singleModeRun: run, models: this.models, created: this.created, replaced: this.replaced, deleted: this.deleted },
      "Redis brought in line with the archive after a single-mode run on it: its models, archived versions, user data, deletions and version numbers",
    );
  }

  /** False when the model was not imported (a first import of a model this Redis saw deleted). */
  private async syncModel(model: ModelRecord): Promise<boolean> {
    const { archive, store, numbering, log } = this.options;
    const { modelId } = model;
    const onDisk = await archive.listVersions(modelId);
    const archived = await numbering.numberingOf(modelId, onDisk[onDisk.length - 1]?.versionNumber ?? 0);
    await this.lease.check();
    /** How far the archive's numbering records reached when shared mode last wrote them (0: not known to Redis). */
    let reserved = 0;
    if (this.reconcile) {
      let inRedis: StoredVersion[] | undefined;
      [inRedis, reserved] = await Promise.all([versionsInRedis(store, modelId), store.reservedNumbers(modelId)]);
      if (inRedis === undefined) {
        this.created++;
      } else if (isAnotherLife(modelId, inRedis, onDisk, archived, reserved)) {
        // Not the archive's files: they are the new model's. Its generation moves: uploads begun before fail.
        await store.deleteModelGeneration(modelId);
        reserved = 0;
        this.replaced++;
        log.info({ modelId }, "a model deleted and created again by a single-mode run on the archive replaces the one Redis held");
      }
    }
    // The archive's model file is the latest in either mode (shared mode writes it before Redis).
    const counter = await store.importArchivedModel(model, onDisk, { replaceUserData: this.reconcile, evenIfDeleted: this.reconcile });
    if (counter === undefined) {
      // A first import: deleted through another instance since this Redis holds data, so what the archive showed is older.
      log.info({ modelId }, "a model of the archive was not imported into Redis: it was deleted there meanwhile");
      return false;
    }
    // Where single mode would continue: above its transient versions too, which left no file. A
    // single-mode run starts at or above `reserved` (the records shared mode wrote): when it would
    // continue there, it handed out nothing, and the numbers below stay Redis's to hand out.
    if (archived.next - 1 > counter && archived.next > reserved) {
      await store.raiseCounter(modelId, archived.next - 1);
    }
    return true;
  }
}

async function versionsInRedis(store: RedisRegistryStore, modelId: string): Promise<StoredVersion[] | undefined> {
  try {
    return await store.listVersions(modelId, 1, 0);
  } catch (error) {
    if (isNotFound(error)) {
      return undefined;
    }
    throw error;
  }
}

const isSameVersion = (a: VersionRecord, b: VersionRecord): boolean =>
  a.creationTimestamp === b.creationTimestamp && a.dataHash === b.dataHash && a.dataSize === b.dataSize;

/**
 * Whether the model Redis holds is not the one in the archive: a single-mode run deleted it (with its
 * directory: its files and numbering records) and created it again, numbering from 1 again.
 * - Shared mode keeps the archive's numbering record at `reserved` or above, and single mode only
 *   ever raises it: a record below it, or none, was written anew.
 * - An archived version Redis holds that the archive holds otherwise under its number, or none of
 *   them left in the archive.
 * A transient version of Redis whose number the archive holds as an archived version of the same
 * model is a number handed out twice: ArchiveConflict.
 */
function isAnotherLife(modelId: string, inRedis: readonly StoredVersion[], onDisk: readonly VersionRecord[], archived: ArchivedNumbering, reserved: number): boolean {
  if (reserved > 0 && (archived.recorded === undefined || archived.recorded < reserved)) {
    return true;
  }
  const byNumber = new Map(onDisk.map((version) => [version.versionNumber, version]));
  let archivedInRedis = 0;
  let archivedKept = 0;
  const twice: number[] = [];
  for (const { record } of inRedis) {
    const found = byNumber.get(record.versionNumber);
    if (record.archived) {
      archivedInRedis++;
      if (found !== undefined && !isSameVersion(found, record)) {
        return true;
      }
      archivedKept += found === undefined ? 0 : 1;
    } else if (found !== undefined) {
      twice.push(record.versionNumber);
    }
  }
  if (archivedInRedis > 0 && archivedKept === 0) {
    return true;
  }
  if (twice.length > 0) {
    const numbers = twice.join(", ");
    throw new ArchiveConflict(
      `model "${modelId}": the archive holds archived versions numbered ${numbers}, written by a single-mode server since this Redis imported the archive, while Redis holds transient versions under the same numbers: numbers were handed out twice (the shared instances could not write the archive's numbering records, or they were removed), so neither can be served under them. Way out: stop every instance, then either delete the model with a single-mode server on this archive (its archived versions go with it), or remove this registry's keys from Redis (prefix "cmr:") so that the archive is imported afresh (Redis's transient versions are lost)`,
    );
  }
  return false;
}
