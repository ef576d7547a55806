import type { VersionRecord } from "../domain/index.js";
import { isNotFound } from "../errors/index.js";
import type { RedisRegistryStore } from "../redis/index.js";

/** A version an instance announced or served that Redis no longer holds as it was, and Redis's latest now. */
export interface VersionLoss {
  readonly last: VersionRecord;
  readonly latest: VersionRecord | undefined;
}

export type LossReads = Pick<RedisRegistryStore, "generation" | "getVersion" | "latestVersion">;

/**
 * Whether Redis lost `last`, the last version of the model this instance announced or served: gone
 * with nothing above it, or another version under its number (Redis lost its last writes: restarted
 * without persistence, a crash of its host with appendfsync everysec, a failover to a replica that
 * lacked them; its counter may then hand the number out again). Undefined when Redis still holds it
 * as it was, when it expired once later versions came (VERSION_CACHE_EXPIRATION), and when the model
 * was deleted meanwhile (a generation above `knownGeneration`, or no model): a deletion is announced
 * by its own notification or the catch-up. Rejects when Redis could not be read.
 */
export async function findLostVersion(store: LossReads, modelId: string, last: VersionRecord, knownGeneration: number | undefined): Promise<VersionLoss | undefined> {
  if (knownGeneration !== undefined && (await store.generation(modelId)) > knownGeneration) {
    return undefined;
  }
  const current = await store.getVersion(modelId, last.versionNumber);
  if (current !== undefined && sameVersion(current.record, last)) {
    return undefined;
  }
  let latest: VersionRecord | undefined;
  try {
    latest = (await store.latestVersion(modelId))?.record;
  } catch (error) {
    if (isNotFound(error)) {
      return undefined;
    }
    throw error;
  }
  if (current === undefined && latest !== undefined && latest.versionNumber > last.versionNumber) {
    return undefined;
  }
  return { last, latest };
}

/** Whether two infos are of one commit (a number handed out again after Redis lost writes names another). */
export function sameVersion(a: VersionRecord, b: VersionRecord): boolean {
  return (
    a.versionNumber === b.versionNumber &&
    a.dataHash === b.dataHash &&
    a.dataSize === b.dataSize &&
    a.creationTimestamp === b.creationTimestamp &&
    a.archived === b.archived
  );
}
