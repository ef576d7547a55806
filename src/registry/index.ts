export { EMPTY_USER_DATA, type ModelRecord, type VersionRecord } from "./records.js";
export { Registry, type RegistryOptions, type RegistryStats, type VersionDataSource } from "./registry.js";
export type { VersionSink, VersionSubscription } from "./version-subscription.js";
export type { PendingUpload, VersionUpload, UploadHeader } from "./version-upload.js";
export { VERSION_OVERHEAD_BYTES, VersionCache, type VersionCacheStats } from "./version-cache.js";
