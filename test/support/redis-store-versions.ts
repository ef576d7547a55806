import { createHash } from "node:crypto";
import type { RedisRegistryStore, StoredVersion } from "../../src/redis/index.js";

/**
 * Creates `modelId` in `store` and commits `data` as its transient version 1, through the chunk
 * writer as an upload does (creation timestamp 1, no user data).
 */
export async function commitTransientVersion(store: RedisRegistryStore, modelId: string, data: Buffer): Promise<StoredVersion> {
  await store.putModel({ modelId, userData: {} });
  const writer = store.beginVersionData(modelId, data.byteLength);
  await writer.append(data);
  const dataHash = createHash("sha256").update(data).digest("base64");
  return store.commitVersion(
    { modelId, creationTimestamp: 1n, archived: false, dataHash, dataSize: data.byteLength, userData: {} },
    0,
    await writer.finish(),
  );
}

/** A version's bytes as copyVersionData hands them over, put together. */
export async function copiedVersionData(store: RedisRegistryStore, version: StoredVersion): Promise<Buffer> {
  const pieces: Buffer[] = [];
  await store.copyVersionData(version, (piece) => pieces.push(Buffer.from(piece)));
  return Buffer.concat(pieces);
}
