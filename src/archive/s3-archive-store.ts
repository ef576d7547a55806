/*
 * The archive in an S3-compatible bucket, in the archive directory's layout below a prefix, object for
 * object and byte for byte (the YAML comes from yaml-codec.ts, the names from layout.ts).
 *
 * Versions are written by s3-version-writes.ts, the requests themselves are in s3-objects.ts.
 */
import { HeadObjectCommand, type S3Client, type _Object } from "@aws-sdk/client-s3";
import { notFound, RegistryError } from "../errors/index.js";
import type { ModelRecord, VersionRecord } from "../domain/index.js";
import type { ArchiveStore } from "./archive-store.js";
import { errorMessage } from "./errno.js";
import { isMetaFileName, isTempFileName, parsePendingMarkName, parseVersionFileName } from "./layout.js";
import { isNotFound, toS3RegistryError } from "./s3-errors.js";
import { createS3Keys } from "./s3-keys.js";
import { createS3Objects, mapLimit } from "./s3-objects.js";
import type { S3Location } from "./s3-url.js";
import { createS3VersionReader } from "./s3-version-reader.js";
import { createS3VersionWrites } from "./s3-version-writes.js";
import { type SkippedVersion, keepServable, loadListedVersion } from "./listed-version.js";
import { decodeModelInfo, encodeModelInfo } from "./yaml-codec.js";

export interface S3ArchiveStoreOptions {
  readonly client: S3Client;
  readonly location: S3Location;
  readonly onWarning?: (message: string, details: Record<string, unknown>) => void;
  /** Largest object copied with one CopyObject; larger ones are copied in parts (S3's limit is 5 GiB). */
  readonly maxSingleCopyBytes?: number;
  /** Temporary upload objects older than this are leftovers of a dead writer, removed when their model is listed. */
  readonly leftoverAgeMs?: number;
}

const LEFTOVER_AGE_MS = 24 * 60 * 60 * 1000;
/** Concurrent small requests (HEAD, GET of a YAML) of one listing. */
const LIST_CONCURRENCY = 16;

interface VersionObjects {
  info?: _Object;
  data?: _Object;
  pending?: boolean;
}

export function createS3ArchiveStore(options: S3ArchiveStoreOptions): ArchiveStore {
  const { client, location } = options;
  const { bucket } = location;
  const keys = createS3Keys(location.prefix);
  const warn = options.onWarning ?? ((): void => {});
  const leftoverAgeMs = options.leftoverAgeMs ?? LEFTOVER_AGE_MS;
  const requests = createS3Objects(client, bucket, warn);
  const { call, getText, putText, exists, listAll, deleteKeys, deleteKey, removeQuietly } = requests;
  const versionWrites = createS3VersionWrites({ client, bucket, keys, objects: requests, maxSingleCopyBytes: options.maxSingleCopyBytes, warn });

  function loadVersion(modelId: string, versionNumber: number, objects: VersionObjects): Promise<VersionRecord | SkippedVersion> {
    const infoKey = keys.versionInfo(modelId, versionNumber);
    const size = objects.data?.Size;
    return loadListedVersion(modelId, versionNumber, {
      locationName: "key",
      infoLocation: infoKey,
      dataLocation: keys.versionData(modelId, versionNumber),
      hasInfo: objects.info !== undefined,
      hasData: objects.data !== undefined,
      readInfo: () => getText(infoKey),
      pendingMark: objects.pending === true ? () => getText(keys.pendingMark(modelId, versionNumber)) : undefined,
      dataSize: () => Promise.resolve(size ?? { problem: "data object without a size in the listing" }),
    });
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
      const isMeta = (key: string): boolean => isMetaFileName(key.slice(modelPrefix.length));
      // Commit markers first, then the data, then the model's info: an interruption leaves whole
      // versions or none, and the model until its info goes. The numbering records last: while the
      // model is there, its numbers must never start again below what was handed out.
      await deleteKeys(all.filter(isVersionInfo));
      await deleteKeys(all.filter((key) => key !== modelInfo && !isVersionInfo(key) && !isMeta(key)));
      if (all.includes(modelInfo)) {
        await deleteKey(modelInfo);
      }
      try {
        await deleteKeys(all.filter(isMeta));
      } catch (error) {
        // The model is gone; one created again under this id numbers its versions after these records.
        warn("could not remove a deleted model's numbering records; a model created again under this id continues its numbering", {
          modelId,
          error: errorMessage(error),
        });
      }
    },

    async listVersions(modelId) {
      const modelPrefix = keys.modelPrefix(modelId);
      const { objects } = await listAll(modelPrefix);
      const byNumber = new Map<number, VersionObjects>();
      const leftovers: string[] = [];
      const pending: number[] = [];
      for (const object of objects) {
        const name = (object.Key ?? "").slice(modelPrefix.length);
        const parsed = parseVersionFileName(modelId, name);
        const marked = parsed === undefined ? parsePendingMarkName(name) : undefined;
        if (parsed !== undefined) {
          const entry = byNumber.get(parsed.versionNumber) ?? {};
          entry[parsed.kind] = object;
          byNumber.set(parsed.versionNumber, entry);
        } else if (marked !== undefined) {
          pending.push(marked);
        } else if (isTempFileName(name) && object.LastModified !== undefined && Date.now() - object.LastModified.getTime() > leftoverAgeMs) {
          leftovers.push(object.Key ?? "");
        }
      }
      for (const key of leftovers) {
        warn("removing a leftover temporary object of an interrupted upload", { key });
        await removeQuietly(key);
      }
      for (const versionNumber of pending) {
        const entry = byNumber.get(versionNumber);
        if (entry !== undefined) {
          entry.pending = true;
        }
      }
      const numbers = [...byNumber.keys()].sort((a, b) => a - b);
      const loaded = await mapLimit(numbers, LIST_CONCURRENCY, (n) => loadVersion(modelId, n, byNumber.get(n) ?? {}));
      return keepServable(loaded, warn);
    },

    ...versionWrites,

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

    async readArchiveMeta(key) {
      return getText(keys.archiveMeta(key));
    },

    async writeArchiveMeta(key, value) {
      const objectKey = keys.archiveMeta(key);
      await call(`writing ${objectKey}`, () => putText(objectKey, value));
    },

    // An object store has no page cache to write to: every overwrite is a PUT, durable once
    // acknowledged. The numbering sends its per-commit record in the background (remoteMeta).
    overwriteMeta: putMeta,
    remoteMeta: true,
    storedItems: "objects",
  };
}
