import type { VersionRecord } from "../registry/index.js";

/** A committed version as Redis holds it: its info and where its data is. */
export interface StoredVersion {
  readonly record: VersionRecord;
  /** Chunk keys holding the data in Redis (0: the data is in the archive only). */
  readonly chunkCount: number;
  /** Redis's clock at commit, in ms since the epoch: a transient version expires from there. */
  readonly storedAtMs: number;
}

/** A version to commit: everything but its number, which the commit script assigns. */
export type NewVersion = Omit<VersionRecord, "versionNumber">;

/**
 * The JSON of a version's info without its opening brace; the commit script prepends
 * `{"versionNumber":N,"storedAtMs":T,` (see redis-scripts.ts), so the number never passes through a
 * Lua JSON codec (which would turn an empty userData object into an array).
 */
export function encodeVersionBody(version: NewVersion, chunkCount: number): string {
  const json = JSON.stringify({
    modelId: version.modelId,
    creationTimestamp: version.creationTimestamp.toString(),
    archived: version.archived,
    dataHash: version.dataHash,
    dataSize: version.dataSize,
    userData: version.userData,
    chunks: chunkCount,
  });
  return json.slice(1);
}

interface VersionJson {
  versionNumber: number;
  storedAtMs: number;
  modelId: string;
  creationTimestamp: string;
  archived: boolean;
  dataHash: string;
  dataSize: number;
  userData: Record<string, string>;
  chunks: number;
}

export function decodeStoredVersion(text: string): StoredVersion {
  const json = JSON.parse(text) as VersionJson;
  return {
    record: {
      modelId: json.modelId,
      versionNumber: json.versionNumber,
      creationTimestamp: BigInt(json.creationTimestamp),
      archived: json.archived,
      dataHash: json.dataHash,
      dataSize: json.dataSize,
      userData: json.userData,
    },
    chunkCount: json.chunks,
    storedAtMs: json.storedAtMs,
  };
}

/** A version's info as the import script stores it (archived versions: no data in Redis). */
export function encodeImportedVersion(record: VersionRecord): string {
  return `{"versionNumber":${record.versionNumber},"storedAtMs":0,${encodeVersionBody(record, 0)}`;
}
