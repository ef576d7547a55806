import type { VersionRecord } from "../registry/index.js";

/**
 * The CRC-32 of each data chunk as its writer stored it, so that a reader checks every chunk before
 * serving it (far cheaper than the SHA-256 of the whole data, and a wrong chunk is never sent).
 */
export interface ChunkChecksums {
  /** The writer's chunk size: chunk i holds bytes [i * chunkBytes, min((i + 1) * chunkBytes, dataSize)). */
  readonly chunkBytes: number;
  /** zlib's CRC-32 of each chunk, in order (one per chunk key). */
  readonly crc32: readonly number[];
}

/** A committed version as Redis holds it: its info and where its data is. */
export interface StoredVersion {
  readonly record: VersionRecord;
  /** Chunk keys holding the data in Redis (0: the data is in the archive only). */
  readonly chunkCount: number;
  /** Undefined for a version without data chunks, or one committed by an earlier build that stored none (its reads check the SHA-256 instead). */
  readonly checksums?: ChunkChecksums | undefined;
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
export function encodeVersionBody(version: NewVersion, chunkCount: number, checksums?: ChunkChecksums): string {
  const json = JSON.stringify({
    modelId: version.modelId,
    creationTimestamp: version.creationTimestamp.toString(),
    archived: version.archived,
    dataHash: version.dataHash,
    dataSize: version.dataSize,
    userData: version.userData,
    chunks: chunkCount,
    ...(checksums === undefined ? {} : { chunkBytes: checksums.chunkBytes, chunkCrc32: checksums.crc32 }),
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
  chunkBytes?: unknown;
  chunkCrc32?: unknown;
}

/** The checksums of a version's info, when it has a well-formed set (one per chunk). */
function checksumsOf(json: VersionJson): ChunkChecksums | undefined {
  const { chunkBytes, chunkCrc32, chunks } = json;
  if (typeof chunkBytes !== "number" || !Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || !Array.isArray(chunkCrc32) || chunkCrc32.length !== chunks) {
    return undefined;
  }
  const crc32 = chunkCrc32.filter((value): value is number => Number.isInteger(value) && value >= 0 && value <= 0xffffffff);
  return crc32.length === chunks && chunks > 0 ? { chunkBytes, crc32 } : undefined;
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
    checksums: checksumsOf(json),
    storedAtMs: json.storedAtMs,
  };
}

/** A version's info as the import script stores it (archived versions: no data in Redis). */
export function encodeImportedVersion(record: VersionRecord): string {
  return `{"versionNumber":${record.versionNumber},"storedAtMs":0,${encodeVersionBody(record, 0)}`;
}
