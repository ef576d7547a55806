export type { ArchiveStore, LeftoverCleanupOptions, PlacementFence, RevocableWrite, StreamedVersionData, VersionDataReader } from "./archive-store.js";
export { isNumberSpent, META_WRITTEN, spendsNumber } from "./archive-store.js";
export {
  commitStreamedVersion,
  inlineFileWriter,
  writeChunksAt,
  writeFileAtomic,
  writeVersionFilesAtomic,
} from "./atomic-write.js";
export type { ArchiveFileWriter, StreamedVersionCommit, VersionFilesWrite } from "./archive-file-writer.js";
export { createFsArchiveStore } from "./fs-archive-store.js";
export type { FsArchiveStoreOptions } from "./fs-archive-store.js";
export {
  formatVersionNumber,
  isTempFileName,
  MAX_MODEL_ID_BYTES,
  metaFilePath,
  modelDirPath,
  modelIdProblem,
  MODEL_ID_RULE,
  modelInfoPath,
  parseVersionFileName,
  tempFileName,
  versionDataPath,
  versionInfoPath,
} from "./layout.js";
export { formatRfc3339Nano, parseRfc3339Nano } from "./timestamp.js";
export { decodeModelInfo, decodeVersionInfo, encodeModelInfo, encodeVersionInfo, preloadYamlLibrary } from "./yaml-codec.js";
