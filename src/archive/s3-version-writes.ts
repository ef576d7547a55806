/*
 * Archived versions written to the bucket. A version is committed as the directory backend commits
 * it: data first, its info (the commit marker) last. Neither is ever written over an object another
 * writer may own: the info and the data are created with `If-None-Match: *`, and a data object found
 * there is replaced only with `If-Match` on the ETag it had when it was found to be a leftover. A
 * streamed version's number is only known at commit, so its data goes to a temporary key (a
 * multipart upload, aborted on failure) and is copied into place at commit.
 *
 * A 412 is not always another writer:
 * - on the data, with no info of that number in the store, the object is the leftover of a commit
 *   that never wrote its info (a crash in between, a stale writer): no version refers to it, and it is
 *   replaced, as the directory backend replaces such a file;
 * - on the info, it may answer our own write: the SDK retries a PUT whose reply was lost, and the
 *   object is then there already. The info is read back: our own record means the commit is done.
 * Any failure once the info was sent (or seen in the store) uses up the number (spendsNumber).
 *
 * With a fence (several instances on Redis), a writer may have outlived its claim of the number
 * unknowingly (paused, cut off): the number's next holder may be writing, or have committed, the same
 * keys. So the info is written, and a leftover data object replaced, only once the fence confirms the
 * claim; and after a failure the data object is removed only if it is still this writer's (a
 * DeleteObject with `If-Match` on the ETag its write returned). See docs/redis-mode.md, "Stale writers".
 * Beside its data, such a writer also puts the version's pending mark (an object holding the info's
 * text, see layout.ts, pendingMarkPath), before its info, removed by markCommitted once Redis committed the version:
 * a listing skips the version meanwhile, so the objects of a writer that died before its commit are
 * never listed. The mark is never removed after a failure: it names this writer's info text only.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import type { VersionRecord } from "../domain/index.js";
import { Code, RegistryError } from "../errors/index.js";
import { type ArchiveStore, type PlacementFence, type StreamedVersionData, spendsNumber } from "./archive-store.js";
import { isConditionalConflict, isNotFound, isPreconditionFailed, toS3RegistryError } from "./s3-errors.js";
import type { S3Keys } from "./s3-keys.js";
import { CREATE_ONLY, mapLimit, type S3Objects, type WriteCondition } from "./s3-objects.js";
import { beginObjectUpload, uploadChunks } from "./s3-version-upload.js";
import { encodeVersionInfo } from "./yaml-codec.js";

const MAX_SINGLE_COPY_BYTES = 5 * 1024 * 1024 * 1024;
const COPY_PART_BYTES = 512 * 1024 * 1024;
/** Attempts at writing a version's data while the object under its key keeps changing. */
const WRITE_ATTEMPTS = 3;

export interface S3VersionWritesOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly keys: S3Keys;
  readonly objects: S3Objects;
  /** Largest object copied with one CopyObject; larger ones are copied in parts (S3's limit is 5 GiB). */
  readonly maxSingleCopyBytes?: number | undefined;
  readonly warn: (message: string, details: Record<string, unknown>) => void;
}

export type S3VersionWrites = Pick<ArchiveStore, "putVersion" | "beginVersionData" | "markCommitted">;

export function createS3VersionWrites(options: S3VersionWritesOptions): S3VersionWrites {
  const { client, bucket, keys, warn } = options;
  const { call, getText, putText, exists, etagOf, deleteKey, removeQuietly, removeOwn } = options.objects;
  const maxSingleCopy = options.maxSingleCopyBytes ?? MAX_SINGLE_COPY_BYTES;

  /** Copies `source` to `target` under `condition`; resolves to the ETag of the object written. */
  async function copyObject(source: string, target: string, size: number, condition: WriteCondition): Promise<string | undefined> {
    const copySource = `${bucket}/${source.split("/").map(encodeURIComponent).join("/")}`;
    if (size <= maxSingleCopy) {
      const reply = await client.send(new CopyObjectCommand({ Bucket: bucket, Key: target, CopySource: copySource, ...condition }));
      return reply.CopyObjectResult?.ETag;
    }
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: target }));
    try {
      const ranges: { PartNumber: number; start: number; end: number }[] = [];
      for (let start = 0, part = 1; start < size; start += COPY_PART_BYTES, part++) {
        ranges.push({ PartNumber: part, start, end: Math.min(start + COPY_PART_BYTES, size) - 1 });
      }
      const parts = await mapLimit(ranges, 4, async ({ PartNumber, start, end }) => {
        const reply = await client.send(
          new UploadPartCopyCommand({ Bucket: bucket, Key: target, UploadId, PartNumber, CopySource: copySource, CopySourceRange: `bytes=${start}-${end}` }),
        );
        return { PartNumber, ETag: reply.CopyPartResult?.ETag };
      });
      const reply = await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId, ...condition, MultipartUpload: { Parts: parts } }));
      return reply.ETag;
    } catch (error) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId })).catch(() => {});
      throw error;
    }
  }

  /**
   * `write(condition)`: the ETag of the object written, or the store's refusal when the condition
   * did not hold (412; 404 for an `If-Match` whose object is gone) or met a write in flight (409).
   */
  async function writeIf(
    what: string,
    write: (condition: WriteCondition) => Promise<string | undefined>,
    condition: WriteCondition,
  ): Promise<{ readonly written: string | undefined } | { readonly refused: unknown }> {
    try {
      return { written: await write(condition) };
    } catch (error) {
      const objectGone = "IfMatch" in condition && isNotFound(error);
      if (isPreconditionFailed(error) || isConditionalConflict(error) || objectGone) {
        return { refused: error };
      }
      throw toS3RegistryError(error, what, bucket);
    }
  }

  /**
   * Writes `version`'s data with `write(condition)`; resolves to the ETag of the object written. The
   * key free: created. Taken, with no info of that number in the store: a leftover, replaced if it is
   * still the object seen (`If-Match`), once the fence (if any) confirms the claim. Taken, with an
   * info there: another writer holds the number. Tried again from the start when the object changed
   * meanwhile, or a write of it was in flight.
   */
  async function writeData(
    version: VersionRecord,
    what: string,
    write: (condition: WriteCondition) => Promise<string | undefined>,
    fence: PlacementFence | undefined,
  ): Promise<string | undefined> {
    const dataKey = keys.versionData(version.modelId, version.versionNumber);
    const infoKey = keys.versionInfo(version.modelId, version.versionNumber);
    for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
      const created = await writeIf(what, write, CREATE_ONLY);
      if ("written" in created) {
        return created.written;
      }
      if (isConditionalConflict(created.refused)) {
        continue;
      }
      const found = await etagOf(dataKey);
      if (await exists(infoKey)) {
        throw spendsNumber(toS3RegistryError(created.refused, what, bucket));
      }
      if (found === undefined) {
        continue; // gone since: created again
      }
      // Still the claim's holder: no other writer can commit this number, so the object is a leftover.
      await fence?.confirm();
      warn("overwriting a leftover data object: no version info refers to it (a commit interrupted before its info was written)", { key: dataKey });
      const replaced = await writeIf(what, write, { IfMatch: found });
      if ("written" in replaced) {
        return replaced.written;
      }
    }
    throw new RegistryError(
      Code.ABORTED,
      `archive bucket "${bucket}": ${what} failed: the object at that key changed during each of ${WRITE_ATTEMPTS} attempts (another writer is writing it), try again`,
    );
  }

  /** After a failed commit: removes the data object if it is still the one this commit wrote. */
  async function removeOwnData(version: VersionRecord, ownData: string | undefined): Promise<void> {
    const dataKey = keys.versionData(version.modelId, version.versionNumber);
    if (ownData === undefined) {
      warn("the data object of a failed archive write is left in place: the store gave no ETag to tell it from another writer's", { key: dataKey });
      return;
    }
    await removeOwn(dataKey, ownData);
  }

  /**
   * Writes the info of a version whose data object (ours, of ETag `ownData`) is in place, once the
   * fence (if any) confirms the claim. On failure our data is removed, and once the info was sent the
   * number is used up: the info may be in the store all the same (a lost reply).
   */
  async function commitInfo(version: VersionRecord, ownData: string | undefined, fence: PlacementFence | undefined): Promise<void> {
    const infoKey = keys.versionInfo(version.modelId, version.versionNumber);
    const text = encodeVersionInfo(version);
    try {
      await fence?.confirm();
    } catch (error) {
      await removeOwnData(version, ownData);
      throw error;
    }
    try {
      await putText(infoKey, text, true);
      return;
    } catch (error) {
      if (isPreconditionFailed(error) && (await storedText(infoKey)) === text) {
        return; // our own write, whose reply was lost: the retry found it done
      }
      await removeOwnData(version, ownData);
      throw spendsNumber(toS3RegistryError(error, `writing ${infoKey}`, bucket));
    }
  }

  /** The object's text, or undefined when it is missing or cannot be read. */
  async function storedText(key: string): Promise<string | undefined> {
    try {
      return await getText(key);
    } catch {
      return undefined;
    }
  }

  /**
   * Writes the version's data with `write`, then its info, as writeData and commitInfo do. With a
   * fence (several instances), the version's pending mark is written beside the data (a listing
   * counts a version only once its info is there), and the info only once the mark is in place.
   */
  async function writeVersion(
    version: VersionRecord,
    what: string,
    write: (condition: WriteCondition) => Promise<string | undefined>,
    fence: PlacementFence | undefined,
  ): Promise<void> {
    const markKey = keys.pendingMark(version.modelId, version.versionNumber);
    const marked = fence === undefined ? undefined : call(`writing ${markKey}`, () => putText(markKey, encodeVersionInfo(version)));
    marked?.catch(() => undefined); // awaited below, unless the data write fails first
    const ownData = await writeData(version, what, write, fence);
    try {
      await marked;
    } catch (error) {
      await removeOwnData(version, ownData);
      throw error;
    }
    await commitInfo(version, ownData, fence);
  }

  function describe(version: VersionRecord): string {
    return `version ${version.versionNumber} of model "${version.modelId}"`;
  }

  return {
    async putVersion(version, dataChunks, fence) {
      if (!version.archived) {
        throw new Error(`${describe(version)} is not archived`);
      }
      const total = dataChunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
      if (total !== version.dataSize) {
        throw new Error(`${describe(version)}: data is ${total} bytes, data_size is ${version.dataSize}`);
      }
      const dataKey = keys.versionData(version.modelId, version.versionNumber);
      await writeVersion(version, `writing ${dataKey}`, (condition) => uploadChunks({ client, bucket, key: dataKey, condition }, dataChunks), fence);
    },

    async markCommitted(modelId, versionNumber) {
      const markKey = keys.pendingMark(modelId, versionNumber);
      await deleteKey(markKey);
    },

    async beginVersionData(modelId): Promise<StreamedVersionData> {
      const tempKey = keys.uploadData(modelId);
      const upload = beginObjectUpload({ client, bucket, key: tempKey });
      let settled = false;
      return {
        async append(chunks) {
          await call(`uploading ${tempKey}`, () => upload.append(chunks));
        },
        async commit(version, fence) {
          settled = true;
          const size = await call(`uploading ${tempKey}`, () => upload.finish());
          if (size !== version.dataSize) {
            await removeQuietly(tempKey);
            throw new Error(`streamed ${size} bytes for a version whose data_size is ${version.dataSize}`);
          }
          const dataKey = keys.versionData(version.modelId, version.versionNumber);
          try {
            await writeVersion(version, `copying ${tempKey} to ${dataKey}`, (condition) => copyObject(tempKey, dataKey, size, condition), fence);
          } finally {
            await removeQuietly(tempKey);
          }
        },
        async abort() {
          await upload.abort();
          if (settled) {
            await removeQuietly(tempKey); // a commit that failed after the upload completed
          }
        },
      };
    },

  };
}
