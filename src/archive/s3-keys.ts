/*
 * Object keys of the S3 archive: the archive directory's layout below the prefix, object for object
 * (`<prefix><model_id>/<model_id>-v000001.yaml`, ...). The names come from layout.ts, so the model id
 * checks and the version file names are the directory backend's exactly. Keys are plain UTF-8: the
 * SDK percent-encodes them on the wire, so spaces, ':', '@' or non-ASCII need nothing here.
 */
import path from "node:path";
import { archiveMetaFilePath, metaFilePath, modelDirPath, modelInfoPath, pendingMarkPath, tempFileName, versionDataPath, versionInfoPath } from "./layout.js";

// layout.ts builds paths below a root; the key is the part below it.
const ROOT = "/";
const below = (filePath: string): string => path.posix.relative(ROOT, filePath);

export interface S3Keys {
  /** `<prefix>` for listing models with the delimiter "/". */
  readonly root: string;
  modelPrefix(modelId: string): string;
  modelInfo(modelId: string): string;
  versionInfo(modelId: string, versionNumber: number): string;
  versionData(modelId: string, versionNumber: number): string;
  meta(modelId: string, key: string): string;
  /** A version's pending mark (layout.ts, pendingMarkPath): a dotfile of the model's, as the metadata. */
  pendingMark(modelId: string, versionNumber: number): string;
  /** An archive-wide metadata object: a dotfile at the archive root, never a model. */
  archiveMeta(key: string): string;
  /** Where a streamed version's data goes until it has a number: a temp name the directory backend also removes. */
  uploadData(modelId: string): string;
  /** The object the start-up check writes: a dotfile at the archive root, never a model. */
  writeCheck(): string;
}

export function createS3Keys(prefix: string): S3Keys {
  return {
    root: prefix,
    modelPrefix: (modelId) => `${prefix}${below(modelDirPath(ROOT, modelId))}/`,
    modelInfo: (modelId) => prefix + below(modelInfoPath(ROOT, modelId)),
    versionInfo: (modelId, n) => prefix + below(versionInfoPath(ROOT, modelId, n)),
    versionData: (modelId, n) => prefix + below(versionDataPath(ROOT, modelId, n)),
    meta: (modelId, key) => prefix + below(metaFilePath(ROOT, modelId, key)),
    pendingMark: (modelId, n) => prefix + below(pendingMarkPath(ROOT, modelId, n)),
    archiveMeta: (key) => prefix + below(archiveMetaFilePath(ROOT, key)),
    uploadData: (modelId) => `${prefix}${below(modelDirPath(ROOT, modelId))}/${tempFileName(`${modelId}-upload.data`)}`,
    writeCheck: () => `${prefix}.cogment-ts-write-check`,
  };
}
