/*
 * A version's data streamed to S3 as it arrives: a lib-storage multipart upload (parts of PART_BYTES,
 * QUEUE_SIZE in flight) fed by a stream. Appended chunks are copied (the caller reuses them), and
 * append waits while the upload is behind, so at most about (QUEUE_SIZE + 2) parts are in memory.
 * Abort ends the feed with an error: lib-storage then aborts the multipart upload once the parts in
 * flight have settled, and only then does abort() resolve.
 */
import { once } from "node:events";
import { PassThrough, Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { WriteCondition } from "./s3-objects.js";

export const PART_BYTES = 8 * 1024 * 1024;
export const QUEUE_SIZE = 4;

export interface S3ObjectUpload {
  append(chunks: readonly Uint8Array[]): Promise<void>;
  /** Ends the data and waits for the object to be complete; resolves to its size. */
  finish(): Promise<number>;
  /** Cancels; resolves once no part of the upload is left in the store. */
  abort(): Promise<void>;
}

interface UploadTarget {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** The write's precondition (412 when it does not hold), where the store supports conditional writes. */
  readonly condition?: WriteCondition;
}

/** Resolves to the ETag of the object written, when the store gave one. */
async function startUpload(target: UploadTarget, body: Readable): Promise<string | undefined> {
  const upload = new Upload({
    client: target.client,
    params: { Bucket: target.bucket, Key: target.key, Body: body, ...target.condition },
    partSize: PART_BYTES,
    queueSize: QUEUE_SIZE,
    leavePartsOnError: false,
  });
  return (await upload.done()).ETag;
}

/** Uploads data already in memory (a whole version); the chunks must stay untouched until it resolves. Resolves to the object's ETag. */
export function uploadChunks(target: UploadTarget, chunks: readonly Uint8Array[]): Promise<string | undefined> {
  return startUpload(target, Readable.from(chunks.length === 0 ? [Buffer.alloc(0)] : chunks, { objectMode: false }));
}

export function beginObjectUpload(target: UploadTarget): S3ObjectUpload {
  const feed = new PassThrough({ highWaterMark: PART_BYTES });
  let written = 0;
  let failure: unknown;
  const done = startUpload(target, feed).then(
    () => undefined,
    (error: unknown) => {
      failure = error;
      feed.destroy();
    },
  );
  const failed = done.then(() => {
    if (failure !== undefined) {
      throw failure;
    }
  });
  // The upload's outcome is read by finish() or abort(); a rejection here alone is no crash.
  failed.catch(() => {});

  return {
    async append(chunks) {
      for (const chunk of chunks) {
        if (failure !== undefined) {
          throw failure;
        }
        if (chunk.byteLength === 0) {
          continue;
        }
        written += chunk.byteLength;
        if (!feed.write(Buffer.from(chunk))) {
          await Promise.race([once(feed, "drain"), failed]);
        }
      }
      if (failure !== undefined) {
        throw failure;
      }
    },
    async finish() {
      feed.end();
      await failed;
      return written;
    },
    async abort() {
      feed.destroy(new Error("upload cancelled"));
      await done;
    },
  };
}
