/*
 * Archived versions written to the bucket. A version is committed as the directory backend commits
 * it: data first, its info (the commit marker) last, both with `If-None-Match: *` so two writers never
 * overwrite one version. A streamed version's number is only known at commit, so its data goes to a
 * temporary key (a multipart upload, aborted on failure) and is copied into place at commit.
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
import type { ArchiveStore, StreamedVersionData } from "./archive-store.js";
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
}

export type S3VersionWrites = Pick<ArchiveStore, "putVersion" | "beginVersionData">;

export function createS3VersionWrites(options: S3VersionWritesOptions): S3VersionWrites {
  const { client, bucket, keys } = options;
  const { call, putText, removeQuietly } = options.objects;
  const maxSingleCopy = options.maxSingleCopyBytes ?? MAX_SINGLE_COPY_BYTES;

  async function copyObject(source: string, target: string, size: number): Promise<void> {
    const copySource = `${bucket}/${source.split("/").map(encodeURIComponent).join("/")}`;
    if (size <= maxSingleCopy) {
      await client.send(new CopyObjectCommand({ Bucket: bucket, Key: target, CopySource: copySource, IfNoneMatch: "*" }));
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
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId, IfNoneMatch: "*", MultipartUpload: { Parts: parts } }));
    } catch (error) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId })).catch(() => {});
      throw error;
    }
  }

  /**
   * Writes the info of a version whose data object is in place; on failure removes that data, unless
   * another writer holds the version (412), whose data it may be.
   */
  async function commitInfo(version: VersionRecord): Promise<void> {
    const infoKey = keys.versionInfo(version.modelId, version.versionNumber);
    try {
      await putText(infoKey, encodeVersionInfo(version), true);
    } catch (error) {
      if (!isPreconditionFailed(error)) {
        await removeQuietly(keys.versionData(version.modelId, version.versionNumber));
      }
      throw toS3RegistryError(error, `writing ${infoKey}`, bucket);
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
      await call(`writing ${dataKey}`, () => uploadChunks({ client, bucket, key: dataKey, ifNoneMatch: true }, dataChunks));
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
            await call(`copying ${tempKey} to ${dataKey}`, () => copyObject(tempKey, dataKey, size));
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
