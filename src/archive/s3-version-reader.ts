/*
 * Reads an archived version's data object with ranged GETs, streamed: sequential reads consume one
 * open response of up to RANGE_BYTES; a read elsewhere (or past that range) opens the next range.
 * The GETs carry the ETag the size came from, so an object replaced meanwhile fails, never mixes.
 * A response that breaks after its headers (reset, idle timeout, early end) is resumed: the range is
 * opened again from the first byte not yet received, at most MAX_RESUMES times per reader (the SDK's
 * retries cover a request only until its headers arrive).
 */
import type { Readable } from "node:stream";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { VersionDataReader } from "./archive-store.js";
import { toS3RegistryError } from "./s3-errors.js";

const RANGE_BYTES = 64 * 1024 * 1024;
/** Broken responses resumed per reader before the read fails. */
export const MAX_RESUMES = 3;

interface OpenRange {
  readonly body: Readable;
  readonly chunks: AsyncIterator<Buffer>;
  /** Position of the next byte `chunks` (after `pending`) gives. */
  position: number;
  readonly end: number;
  pending: Buffer | undefined;
}

export interface S3ObjectRef {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly size: number;
  readonly etag: string | undefined;
  /** Told of each resumed response (the read goes on). */
  readonly onResume?: (details: { key: string; position: number; resume: number; reason: string }) => void;
}

export function createS3VersionReader(object: S3ObjectRef): VersionDataReader {
  let open: OpenRange | undefined;
  let resumes = 0;

  const closeRange = (): void => {
    open?.body.destroy();
    open = undefined;
  };

  async function openRange(position: number): Promise<OpenRange> {
    const end = Math.min(position + RANGE_BYTES, object.size);
    try {
      const reply = await object.client.send(
        new GetObjectCommand({ Bucket: object.bucket, Key: object.key, Range: `bytes=${position}-${end - 1}`, IfMatch: object.etag }),
      );
      const body = reply.Body as Readable;
      return { body, chunks: body[Symbol.asyncIterator]() as AsyncIterator<Buffer>, position, end, pending: undefined };
    } catch (error) {
      throw toS3RegistryError(error, `reading ${object.key}`, object.bucket, "object-changed");
    }
  }

  return {
    size: object.size,
    location: `s3://${object.bucket}/${object.key}`,
    async read(target, position) {
      if (position >= object.size || target.byteLength === 0) {
        return 0;
      }
      if (open === undefined || open.position !== position || open.position >= open.end) {
        closeRange();
        open = await openRange(position);
      }
      let range = open;
      let filled = 0;
      while (filled < target.byteLength && range.position < range.end) {
        let chunk = range.pending;
        range.pending = undefined;
        if (chunk === undefined) {
          let next: IteratorResult<Buffer> | { broken: unknown };
          try {
            next = await range.chunks.next();
          } catch (error) {
            next = { broken: error };
          }
          if ("broken" in next || next.done === true) {
            const broken = "broken" in next && next.broken instanceof Error ? next.broken : new Error(`the response ended at byte ${range.position} of ${range.end}`);
            closeRange();
            if (resumes >= MAX_RESUMES) {
              const gaveUp = Object.assign(new Error(`${broken.message} (after ${resumes} resumed reads)`, { cause: broken }), { name: broken.name });
              throw toS3RegistryError(gaveUp, `reading ${object.key}`, object.bucket);
            }
            resumes++;
            object.onResume?.({ key: object.key, position: range.position, resume: resumes, reason: `${broken.name}: ${broken.message}` });
            open = await openRange(range.position);
            range = open;
            continue;
          }
          chunk = next.value;
        }
        const take = Math.min(chunk.byteLength, target.byteLength - filled);
        target.set(chunk.subarray(0, take), filled);
        filled += take;
        range.position += take;
        if (take < chunk.byteLength) {
          range.pending = chunk.subarray(take);
        }
      }
      return filled;
    },
    async close() {
      closeRange();
    },
  };
}
