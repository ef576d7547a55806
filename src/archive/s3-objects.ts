/* The requests the S3 archive is made of: reads, listings and deletions of objects in one bucket. */
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type _Object,
} from "@aws-sdk/client-s3";
import { errorMessage } from "./errno.js";
import { isNotFound, isPreconditionFailed, toS3RegistryError } from "./s3-errors.js";

const DELETE_BATCH = 1000;

/** `task` over `items`, at most `limit` at a time, results in the order of `items`. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * The precondition of a write to a key another writer may write too: create only (`If-None-Match: *`),
 * or replace only the object of that ETag (`If-Match`). Stores that ignore them write anyway.
 */
export type WriteCondition = { readonly IfNoneMatch: "*" } | { readonly IfMatch: string };

export const CREATE_ONLY: WriteCondition = { IfNoneMatch: "*" };

/** The requests the S3 archive is made of, each failure mapped to a RegistryError naming the bucket. */
export interface S3Objects {
  /** Runs `request`, mapping its failure to a RegistryError about `what`. */
  call<T>(what: string, request: () => Promise<T>): Promise<T>;
  /** The object's text, undefined if there is no such object. */
  getText(key: string): Promise<string | undefined>;
  /** Raw PutObject (errors not mapped); with `ifNoneMatch`, fails if the object exists. */
  putText(key: string, text: string, ifNoneMatch?: boolean): Promise<unknown>;
  exists(key: string): Promise<boolean>;
  /** The object's ETag (as the store gives it, quoted), undefined if there is no such object. */
  etagOf(key: string): Promise<string | undefined>;
  /** Every object below `prefix`, page by page (ListObjectsV2 gives at most 1000 a page). */
  listAll(prefix: string, delimiter?: string): Promise<{ objects: _Object[]; prefixes: string[] }>;
  deleteKeys(list: readonly string[]): Promise<void>;
  deleteKey(key: string): Promise<unknown>;
  /** Removes `key` on a failure path; a failure to do so is only reported. */
  removeQuietly(key: string): Promise<void>;
  /**
   * Removes `key` on a failure path only if it is still the object of `etag` (`If-Match`): never an
   * object another writer put there since. A failure to remove it is only reported.
   */
  removeOwn(key: string, etag: string): Promise<void>;
}

export function createS3Objects(
  client: S3Client,
  bucket: string,
  warn: (message: string, details: Record<string, unknown>) => void,
): S3Objects {
  async function call<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw toS3RegistryError(error, what, bucket);
    }
  }

  async function getText(key: string): Promise<string | undefined> {
    try {
      const reply = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return (await reply.Body?.transformToString("utf8")) ?? "";
    } catch (error) {
      if (isNotFound(error)) {
        return undefined;
      }
      throw toS3RegistryError(error, `reading ${key}`, bucket);
    }
  }

  const putText = (key: string, text: string, ifNoneMatch = false): Promise<unknown> =>
    client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(text, "utf8"), ...(ifNoneMatch ? { IfNoneMatch: "*" } : {}) }));

  /** HeadObject: the object's metadata, undefined if there is no such object. */
  async function head(key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      if (isNotFound(error)) {
        return undefined;
      }
      throw toS3RegistryError(error, `checking ${key}`, bucket);
    }
  }

  const exists = async (key: string): Promise<boolean> => (await head(key)) !== undefined;
  const etagOf = async (key: string): Promise<string | undefined> => (await head(key))?.ETag;

  /** Every object below `prefix`, page by page (ListObjectsV2 gives at most 1000 a page). */
  async function listAll(prefix: string, delimiter?: string): Promise<{ objects: _Object[]; prefixes: string[] }> {
    const objects: _Object[] = [];
    const prefixes: string[] = [];
    let token: string | undefined;
    do {
      const page = await call(`listing ${prefix === "" ? "the bucket" : prefix}`, () =>
        client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token })),
      );
      objects.push(...(page.Contents ?? []));
      prefixes.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix ?? ""));
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return { objects, prefixes };
  }

  async function deleteKeys(list: readonly string[]): Promise<void> {
    for (let start = 0; start < list.length; start += DELETE_BATCH) {
      const batch = list.slice(start, start + DELETE_BATCH);
      const reply = await call("deleting objects", () =>
        client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })),
      );
      const [firstError] = reply.Errors ?? [];
      if (firstError !== undefined) {
        throw toS3RegistryError(new Error(`${firstError.Code ?? "Error"}: ${firstError.Message ?? ""} (${firstError.Key ?? ""})`), "deleting objects", bucket);
      }
    }
  }

  const deleteKey = (key: string): Promise<unknown> => call(`deleting ${key}`, () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));

  /** Removes `key` on a failure path; a failure to do so is only reported. */
  async function removeQuietly(key: string): Promise<void> {
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      warn("could not remove an object of a failed archive write", { key, error: errorMessage(error) });
    }
  }

  async function removeOwn(key: string, etag: string): Promise<void> {
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, IfMatch: etag }));
    } catch (error) {
      if (isPreconditionFailed(error) || isNotFound(error)) {
        return; // another writer's object now (or none): not ours to remove
      }
      warn("could not remove an object of a failed archive write", { key, error: errorMessage(error) });
    }
  }

  return { call, getText, putText, exists, etagOf, listAll, deleteKeys, deleteKey, removeQuietly, removeOwn };
}
