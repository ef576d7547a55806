/*
 * Archived versions written to the bucket. A version is committed as the directory backend commits
 * it: data first, its info (the commit marker) last, both with `If-None-Match: *` so two writers never
 * overwrite one version. A streamed version's number is only known at commit, so its data goes to a
 * temporary key (a multipart upload, aborted on failure) and is copied into place at commit.
 *
 * A 412 is not always another writer:
 * - on the data, with no info of that number in the store, the object is the leftover of a commit
 *   that never wrote its info (a crash in between, a failed clean-up): no version refers to it, and
 *   it is overwritten, as the directory backend's rename replaces such a file;
 * - on the info, it may answer our own write: the SDK retries a PUT whose reply was lost, and the
 *   object is then there already. The info is read back: our own record means the commit is done.
 * Any failure once the info was sent (or seen in the store) uses up the number (spendsNumber).
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
import { type ArchiveStore, type StreamedVersionData, spendsNumber } from "./archive-store.js";
import { isPreconditionFailed, toS3RegistryError } from "./s3-errors.js";
import type { S3Keys } from "./s3-keys.js";
import { mapLimit, type S3Objects } from "./s3-objects.js";
import { beginObjectUpload, uploadChunks } from "./s3-version-upload.js";
import { encodeVersionInfo } from "./yaml-codec.js";

const MAX_SINGLE_COPY_BYTES = 5 * 1024 * 1024 * 1024;
const COPY_PART_BYTES = 512 * 1024 * 1024;

export interface S3VersionWritesOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly keys: S3Keys;
  readonly objects: S3Objects;
  /** Largest object copied with one CopyObject; larger ones are copied in parts (S3's limit is 5 GiB). */
  readonly maxSingleCopyBytes?: number | undefined;
  readonly warn: (message: string, details: Record<string, unknown>) => void;
}

export type S3VersionWrites = Pick<ArchiveStore, "putVersion" | "beginVersionData">;

export function createS3VersionWrites(options: S3VersionWritesOptions): S3VersionWrites {
  const { client, bucket, keys, warn } = options;
  const { call, getText, putText, exists, removeQuietly } = options.objects;
  const maxSingleCopy = options.maxSingleCopyBytes ?? MAX_SINGLE_COPY_BYTES;

  async function copyObject(source: string, target: string, size: number, ifNoneMatch: boolean): Promise<void> {
    const copySource = `${bucket}/${source.split("/").map(encodeURIComponent).join("/")}`;
    const condition = ifNoneMatch ? { IfNoneMatch: "*" } : {};
    if (size <= maxSingleCopy) {
      await client.send(new CopyObjectCommand({ Bucket: bucket, Key: target, CopySource: copySource, ...condition }));
      return;
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
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId, ...condition, MultipartUpload: { Parts: parts } }));
    } catch (error) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId })).catch(() => {});
      throw error;
    }
  }

  /**
   * Writes `version`'s data with `write(conditional)`: conditional first; on a 412, overwritten if no
   * info of that number is in the store (a leftover), else another writer holds the number.
   */
  async function writeData(version: VersionRecord, what: string, write: (ifNoneMatch: boolean) => Promise<unknown>): Promise<void> {
    try {
      await write(true);
      return;
    } catch (error) {
      if (!isPreconditionFailed(error)) {
        throw toS3RegistryError(error, what, bucket);
      }
      if (await exists(keys.versionInfo(version.modelId, version.versionNumber))) {
        throw spendsNumber(toS3RegistryError(error, what, bucket));
      }
    }
    warn("overwriting a leftover data object: no version info refers to it (a commit interrupted before its info was written)", {
      key: keys.versionData(version.modelId, version.versionNumber),
    });
    await call(what, () => write(false));
  }

  /**
   * Writes the info of a version whose data object (ours) is in place. On failure the data is removed
   * and the number is used up: the info may be in the store all the same (a lost reply).
   */
  async function commitInfo(version: VersionRecord): Promise<void> {
    const infoKey = keys.versionInfo(version.modelId, version.versionNumber);
    const text = encodeVersionInfo(version);
    try {
      await putText(infoKey, text, true);
      return;
    } catch (error) {
      if (isPreconditionFailed(error) && (await storedText(infoKey)) === text) {
        return; // our own write, whose reply was lost: the retry found it done
      }
      await removeQuietly(keys.versionData(version.modelId, version.versionNumber));
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

  function describe(version: VersionRecord): string {
    return `version ${version.versionNumber} of model "${version.modelId}"`;
  }

  return {
    async putVersion(version, dataChunks) {
      if (!version.archived) {
        throw new Error(`${describe(version)} is not archived`);
      }
      const total = dataChunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
      if (total !== version.dataSize) {
        throw new Error(`${describe(version)}: data is ${total} bytes, data_size is ${version.dataSize}`);
      }
      const dataKey = keys.versionData(version.modelId, version.versionNumber);
      await writeData(version, `writing ${dataKey}`, (ifNoneMatch) => uploadChunks({ client, bucket, key: dataKey, ifNoneMatch }, dataChunks));
      await commitInfo(version);
    },

    async beginVersionData(modelId): Promise<StreamedVersionData> {
      const tempKey = keys.uploadData(modelId);
      const upload = beginObjectUpload({ client, bucket, key: tempKey });
      let settled = false;
      return {
        async append(chunks) {
          await call(`uploading ${tempKey}`, () => upload.append(chunks));
        },
        async commit(version) {
          settled = true;
          const size = await call(`uploading ${tempKey}`, () => upload.finish());
          if (size !== version.dataSize) {
            await removeQuietly(tempKey);
            throw new Error(`streamed ${size} bytes for a version whose data_size is ${version.dataSize}`);
          }
          const dataKey = keys.versionData(version.modelId, version.versionNumber);
          try {
            await writeData(version, `copying ${tempKey} to ${dataKey}`, (ifNoneMatch) => copyObject(tempKey, dataKey, size, ifNoneMatch));
            await commitInfo(version);
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
