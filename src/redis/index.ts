export { type ChangeListener, ChangeFeed, type RegistryChange } from "./change-feed.js";
export { DEFAULT_COMMAND_TIMEOUT_MS, RedisConnection, type RedisConnectionOptions } from "./redis-connection.js";
export { isRefusedWhileDeleting, toRegistryError } from "./redis-errors.js";
export { DEFAULT_KEY_PREFIX, modelHashTag } from "./redis-keys.js";
export {
  DEFAULT_CHUNK_BYTES,
  DEFAULT_PENDING_TTL_MS,
  DEFAULT_WAIT_TIMEOUT_MS,
  type ModelPageFromRedis,
  type NumberClaim,
  type PutModelResult,
  RedisRegistryStore,
  type RedisRegistryStoreOptions,
} from "./redis-registry-store.js";
export { REDIS_URL_FORM, REDIS_URL_FORMS, type RedisEndpoint, RedisUrlError, describeRedisEndpoint, parseRedisUrl, redisAddress } from "./redis-url.js";
export type { ChunkChecksums, NewVersion, StoredVersion } from "./version-codec.js";
export { type UploadedData, VersionDataWriter } from "./version-data.js";
export { ReplicationUnconfirmed } from "./replication-wait.js";
export { SENTINEL_URL_FORM, type SentinelAddress, type SentinelTarget, isSentinelUrl } from "./redis-sentinel-url.js";
export { type NatMap, describeNatMap } from "./nat-map.js";
export { checkRedisSettingsWhenConnected } from "./redis-settings-check.js";
