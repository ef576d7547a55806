/*
 * The archive in an S3-compatible bucket, in the archive directory's layout below a prefix, object for
 * object and byte for byte (the YAML comes from yaml-codec.ts, the names from layout.ts).
 *
 * A version is committed as the directory backend commits it: data first, its info (the commit
 * marker) last, both with `If-None-Match: *` so two writers never overwrite one version. A streamed
 * version's number is only known at commit, so its data goes to a temporary key (a multipart upload,
 * aborted on failure) and is copied into place at commit.
 */
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type _Object,
  UploadPartCopyCommand,
  CreateMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
} from "@aws-sdk/client-s3";
import { notFound, RegistryError } from "../errors/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import type { ArchiveStore, StreamedVersionData } from "./archive-store.js";
import { isTempFileName, parseVersionFileName } from "./layout.js";
import { isNotFound, isPreconditionFailed, toS3RegistryError } from "./s3-errors.js";
import { createS3Keys } from "./s3-keys.js";
import type { S3Location } from "./s3-url.js";
import { createS3VersionReader } from "./s3-version-reader.js";
import { beginObjectUpload, uploadChunks } from "./s3-version-upload.js";
import { decodeModelInfo, decodeVersionInfo, encodeModelInfo, encodeVersionInfo } from "./yaml-codec.js";

export interface S3ArchiveStoreOptions {
  readonly client: S3Client;
  readonly location: S3Location;
  readonly onWarning?: (message: string, details: Record<string, unknown>) => void;
  /** Largest object copied with one CopyObject; larger ones are copied in parts (S3's limit is 5 GiB). */
  readonly maxSingleCopyBytes?: number;
  /** Temporary upload objects older than this are leftovers of a dead writer, removed when their model is listed. */
  readonly leftoverAgeMs?: number;
}

const MAX_SINGLE_COPY_BYTES = 5 * 1024 * 1024 * 1024;
const COPY_PART_BYTES = 512 * 1024 * 1024;
const LEFTOVER_AGE_MS = 24 * 60 * 60 * 1000;
/** Concurrent small requests (HEAD, GET of a YAML) of one listing. */
const LIST_CONCURRENCY = 16;
const DELETE_BATCH = 1000;

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
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

interface VersionObjects {
  info?: _Object;
  data?: _Object;
}

export function createS3ArchiveStore(options: S3ArchiveStoreOptions): ArchiveStore {
  const { client, location } = options;
  const { bucket } = location;
  const keys = createS3Keys(location.prefix);
  const warn = options.onWarning ?? ((): void => {});
  const maxSingleCopy = options.maxSingleCopyBytes ?? MAX_SINGLE_COPY_BYTES;
  const leftoverAgeMs = options.leftoverAgeMs ?? LEFTOVER_AGE_MS;

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

  async function exists(key: string): Promise<boolean> {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (error) {
      if (isNotFound(error)) {
        return false;
      }
      throw toS3RegistryError(error, `checking ${key}`, bucket);
    }
  }

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

  async function loadVersion(modelId: string, versionNumber: number, objects: VersionObjects): Promise<VersionRecord | { skipped: string; details: Record<string, unknown> }> {
    const infoKey = keys.versionInfo(modelId, versionNumber);
    const dataKey = keys.versionData(modelId, versionNumber);
    const skip = (reason: string, details: Record<string, unknown>) => ({
      skipped: `archived version skipped: ${reason}`,
      details: { modelId, versionNumber, ...details },
    });
    if (objects.info === undefined) {
      return skip("data file without version info", { key: dataKey });
    }
    if (objects.data === undefined) {
      return skip("version info without data file", { key: infoKey });
    }
    let version: VersionRecord;
    try {
      const text = await getText(infoKey);
      if (text === undefined) {
        return skip("version info without data file", { key: infoKey });
      }
      version = decodeVersionInfo(text);
    } catch (error) {
      return skip("unreadable version info", { key: infoKey, error: errorMessage(error) });
    }
    if (version.modelId !== modelId || version.versionNumber !== versionNumber) {
      return skip("version info names another version", { key: infoKey, foundModelId: version.modelId, foundVersionNumber: version.versionNumber });
    }
    if (objects.data.Size !== version.dataSize) {
      return skip("data file size differs from data_size", { key: dataKey, expectedSize: version.dataSize, actualSize: objects.data.Size });
    }
    return version;
  }

  async function putMeta(modelId: string, key: string, value: string): Promise<void> {
    const objectKey = keys.meta(modelId, key);
    await call(`writing ${objectKey}`, () => putText(objectKey, value));
  }

  return {
    /** The start-up check: one small write proves the bucket reachable and writable. */
    async open() {
      await call(`writing ${keys.writeCheck()} (start-up check)`, () => putText(keys.writeCheck(), "cogment model registry: this bucket is writable\n"));
    },

    async listModelIds() {
      const { prefixes } = await listAll(keys.root, "/");
      const candidates = prefixes
        .map((p) => p.slice(keys.root.length, -1))
        .filter((id) => {
          try {
            keys.modelInfo(id);
            return true;
          } catch {
            return false; // a name that can never be a model id
          }
        });
      const found = await mapLimit(candidates, LIST_CONCURRENCY, async (id) => ((await exists(keys.modelInfo(id))) ? id : undefined));
      return found.filter((id): id is string => id !== undefined).sort();
    },

    async readModel(modelId) {
      const key = keys.modelInfo(modelId);
      let model: ModelRecord;
      try {
        const text = await getText(key);
        if (text === undefined) {
          return undefined;
        }
        model = decodeModelInfo(text);
      } catch (error) {
        if (error instanceof RegistryError) {
          throw error;
        }
        warn("model skipped: unreadable model info", { key, error: errorMessage(error) });
        return undefined;
      }
      if (model.modelId !== modelId) {
        warn("model info names another model id; using the directory name", { key, foundModelId: model.modelId });
        return { modelId, userData: model.userData };
      }
      return model;
    },

    async writeModel(model) {
      const key = keys.modelInfo(model.modelId);
      await call(`writing ${key}`, () => putText(key, encodeModelInfo(model)));
    },

    async deleteModel(modelId) {
      const modelPrefix = keys.modelPrefix(modelId);
      const { objects } = await listAll(modelPrefix);
      const all = objects.map((o) => o.Key ?? "").filter((key) => key !== "");
      const modelInfo = keys.modelInfo(modelId);
      const isVersionInfo = (key: string): boolean => parseVersionFileName(modelId, key.slice(modelPrefix.length))?.kind === "info";
      // Commit markers first, the model's info last: an interruption leaves whole versions or none.
      await deleteKeys(all.filter(isVersionInfo));
      await deleteKeys(all.filter((key) => key !== modelInfo && !isVersionInfo(key)));
      if (all.includes(modelInfo)) {
        await deleteKey(modelInfo);
      }
    },

    async listVersions(modelId) {
      const modelPrefix = keys.modelPrefix(modelId);
      const { objects } = await listAll(modelPrefix);
      const byNumber = new Map<number, VersionObjects>();
      const leftovers: string[] = [];
      for (const object of objects) {
        const name = (object.Key ?? "").slice(modelPrefix.length);
        const parsed = parseVersionFileName(modelId, name);
        if (parsed !== undefined) {
          const entry = byNumber.get(parsed.versionNumber) ?? {};
          entry[parsed.kind] = object;
          byNumber.set(parsed.versionNumber, entry);
        } else if (isTempFileName(name) && object.LastModified !== undefined && Date.now() - object.LastModified.getTime() > leftoverAgeMs) {
          leftovers.push(object.Key ?? "");
        }
      }
      for (const key of leftovers) {
        warn("removing a leftover temporary object of an interrupted upload", { key });
        await removeQuietly(key);
      }
      const numbers = [...byNumber.keys()].sort((a, b) => a - b);
      const loaded = await mapLimit(numbers, LIST_CONCURRENCY, (n) => loadVersion(modelId, n, byNumber.get(n) ?? {}));
      const versions: VersionRecord[] = [];
      for (const result of loaded) {
        if ("skipped" in result) {
          warn(result.skipped, result.details);
        } else {
          versions.push(result);
        }
      }
      return versions;
    },

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

    async deleteVersion(modelId, versionNumber) {
      // Info first: it is the commit marker.
      await deleteKey(keys.versionInfo(modelId, versionNumber));
      await deleteKey(keys.versionData(modelId, versionNumber));
    },

    async openVersionData(modelId, versionNumber) {
      const key = keys.versionData(modelId, versionNumber);
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return createS3VersionReader({
          client,
          bucket,
          key,
          size: head.ContentLength ?? 0,
          etag: head.ETag,
          onResume: (details) => warn("resuming an archive read whose response broke", details),
        });
      } catch (error) {
        if (isNotFound(error)) {
          throw notFound(`no archived data for version ${versionNumber} of model "${modelId}"`);
        }
        throw toS3RegistryError(error, `opening ${key}`, bucket);
      }
    },

    async readMeta(modelId, key) {
      return getText(keys.meta(modelId, key));
    },

    writeMeta: putMeta,
    // An object store has no page cache to write to: every overwrite is a PUT, durable once
    // acknowledged. That costs one request per commit (see README, "Archive on S3").
    overwriteMeta: putMeta,
  };
}
