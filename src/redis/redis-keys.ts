/*
 * The key layout. Every key of one model carries the same hash tag, `{` + base64url of the model id's
 * UTF-8 + `}`: Redis Cluster hashes only the part between the first `{` and the next `}`, so whatever
 * characters the id holds (a model id may contain `{` and `}`), all its keys land in one slot and one
 * Lua script may touch them all. base64url has neither brace, and an id is never empty, so the tag
 * never is.
 *
 *   <prefix>models                   sorted set, score 0, member = model id: listing in UTF-8 byte order
 *   <prefix>events                   pub/sub channel of every commit, deletion and model change
 *   <prefix>archive-imported         set once the archive's models were imported: the single-mode run it reflects (see RedisRegistryStore)
 *   <prefix>archive-sync             string, TTL: the token of the instance importing the archive (a lease)
 *   <prefix>{tag}:model              hash: userData (JSON); exists iff the model exists
 *   <prefix>{tag}:generation         integer, incremented at every deletion; never deleted
 *   <prefix>{tag}:counter            last version number handed out (INCR at commit)
 *   <prefix>{tag}:reserved           how far the archive's numbering records reach (raised a block ahead at commit)
 *   <prefix>{tag}:claim              the token of the commit holding the next number, with a lease (claimNumber)
 *   <prefix>{tag}:numbers            sorted set of version numbers (score = member = number)
 *   <prefix>{tag}:v:<n>              string: version n's info (JSON, see version-codec.ts)
 *   <prefix>{tag}:d:<n>:<i>          string: chunk i of version n's data (transient versions)
 *   <prefix>{tag}:p:<upload>:<i>     string: chunk i of an upload in flight, with a TTL; renamed at commit
 *   <prefix>{tag}:deleting           string, TTL: the token of a deletion removing the archive files
 */

export const DEFAULT_KEY_PREFIX = "cmr:";

/** The hash tag of a model's keys (braces included). */
export function modelHashTag(modelId: string): string {
  return `{${Buffer.from(modelId, "utf8").toString("base64url")}}`;
}

export interface GlobalKeys {
  readonly models: string;
  readonly events: string;
  readonly archiveImported: string;
  readonly archiveSync: string;
}

export function globalKeys(prefix: string): GlobalKeys {
  return { models: `${prefix}models`, events: `${prefix}events`, archiveImported: `${prefix}archive-imported`, archiveSync: `${prefix}archive-sync` };
}

export interface ModelKeys {
  /** Every key of the model starts with this (scripts build per-version keys from it). */
  readonly base: string;
  readonly model: string;
  readonly generation: string;
  readonly counter: string;
  readonly numbers: string;
  /** Set while a deletion removes the model's archive files: the model is not created again meanwhile. */
  readonly deleting: string;
}

export function modelKeys(prefix: string, modelId: string): ModelKeys {
  const base = `${prefix}${modelHashTag(modelId)}:`;
  return {
    base,
    model: `${base}model`,
    generation: `${base}generation`,
    counter: `${base}counter`,
    numbers: `${base}numbers`,
    deleting: `${base}deleting`,
  };
}

export const versionInfoKey = (keys: ModelKeys, versionNumber: number): string => `${keys.base}v:${versionNumber}`;
export const dataChunkKey = (keys: ModelKeys, versionNumber: number, index: number): string =>
  `${keys.base}d:${versionNumber}:${index}`;
export const pendingChunkKey = (keys: ModelKeys, uploadId: string, index: number): string =>
  `${keys.base}p:${uploadId}:${index}`;
