export { EMPTY_USER_DATA, type ModelRecord, type VersionRecord } from "../domain/index.js";
export { Registry, STREAMED_READS_MAX_BYTES, type ModelPage, type RegistryOptions, type RegistryStats, type VersionDataSource, type VersionPage } from "./registry.js";
export type { VersionSink, VersionSubscription } from "./version-subscription.js";
export type { UploadHeader } from "./upload-header.js";
export type { PendingUpload, VersionUpload } from "./version-upload.js";
export { VERSION_OVERHEAD_BYTES, VersionCache, type VersionCacheStats } from "./version-cache.js";
