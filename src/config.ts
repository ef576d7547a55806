import type { S3Location } from "./archive/s3-url.js";
import type { NatMap } from "./redis/nat-map.js";
import type { RedisEndpoint } from "./redis/redis-url.js";
import { InvalidValue, type LogLevel } from "./config-values.js";
import {
  ARCHIVE_DIR,
  ARCHIVE_S3_FORCE_PATH_STYLE,
  ARCHIVE_S3_TIMEOUT,
  ARCHIVE_URL,
  CACHE_EXPIRATION,
  CACHE_MAX_SIZE,
  CACHE_TO_PRUNE_COUNT,
  GRPC_REFLECTION,
  HTTP2_WINDOW_SIZE,
  MAX_CONCURRENT_STREAMS,
  KNOWN_NAMES,
  LOG_LEVEL,
  METRICS_PORT,
  PEER_BAN_PERIOD,
  PEER_IPV6_PREFIX,
  PEER_CANCELLED_STREAMS_PER_SECOND,
  PEER_NEW_STREAMS_PER_SECOND,
  PORT,
  REDIS_CLUSTER_RESOLVE_SEEDS,
  REDIS_NAT_MAP,
  REDIS_URL,
  REDIS_WAIT_REPLICAS,
  REDIS_WAIT_TIMEOUT,
  PREFIX,
  SEND_IDLE_TIMEOUT,
  SEND_MIN_RATE,
  SEND_MIN_RATE_PERIOD,
  STREAMED_READS_MAX_SIZE,
  SENT_CHUNK_SIZE,
  SHUTDOWN_GRACE_PERIOD,
  UPLOAD_IDLE_TIMEOUT,
  UPLOAD_MIN_RATE,
  UPLOAD_MIN_RATE_PERIOD,
  VERSION_MAX_SIZE,
  type Variable,
} from "./config-variables.js";

export type { LogLevel } from "./config-values.js";
export { CONFIG_VARIABLES, type ConfigVariable } from "./config-variables.js";

export interface Config {
  /** 0 lets the system pick a free port. */
  readonly port: number;
  readonly archiveDir: string;
  /** The archive's bucket and prefix when it is on S3-compatible storage (archiveDir is then unused). */
  readonly archiveS3?: S3Location | undefined;
  /** Path-style S3 requests (`endpoint/bucket/key`), for stores without virtual-hosted buckets. */
  readonly archiveS3ForcePathStyle?: boolean;
  /** Idle timeout of every S3 request (no byte sent or received for this long: the attempt fails and is retried). */
  readonly archiveS3TimeoutMs?: number;
  readonly cacheMaxBytes: number;
  /** 0 disables expiration. */
  readonly cacheExpirationMs: number;
  readonly cachePruneCount: number;
  readonly sentChunkSize: number;
  readonly grpcReflection: boolean;
  readonly logLevel: LogLevel;
  readonly shutdownGraceMs: number;
  /** HTTP/2 receive window (per stream and per connection) in bytes; 0 keeps Node's 64 KiB default. */
  readonly http2WindowBytes: number;
  /** Streams one client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); 0: no limit. */
  readonly maxConcurrentStreams: number;
  /** Port of the Prometheus /metrics HTTP endpoint; 0 turns the endpoint off. */
  readonly metricsPort: number;
  /** Largest data_size of one version; 0 = no limit but memory (transient) or disk (archived). */
  readonly versionMaxBytes: number;
  /** An upload that receives nothing for this long fails; 0 disables. */
  readonly uploadIdleTimeoutMs: number;
  /** Slowest upload accepted, in bytes per second of waiting for the client; 0 disables. */
  readonly uploadMinRateBytesPerSecond: number;
  /** The minimum rate is checked over each period of this length, from the end of the first one. */
  readonly uploadMinRatePeriodMs: number;
  /** A RetrieveVersionData stream whose sent messages make no progress for this long is cancelled; 0 disables. */
  readonly sendIdleTimeoutMs: number;
  /** Fewest bytes per second a RetrieveVersionData reader must take over time the server waits for it; 0: no limit. */
  readonly sendMinRateBytesPerSecond: number;
  readonly sendMinRatePeriodMs: number;
  /** Bytes of version data held at once by all reads the cache does not hold (streamed from the archive or the shared state). */
  readonly streamedReadsMaxBytes: number;
  /** New HTTP/2 streams one client address may open per second (bursts up to as many); 0 = no limit. */
  readonly peerNewStreamsPerSecond: number;
  /** HTTP/2 streams one client address may reset per second (bursts up to as many); 0 = no limit. */
  readonly peerCancelledStreamsPerSecond: number;
  /** How long a client address over one of those limits is refused. */
  readonly peerBanMs: number;
  /** Leading bits of an IPv6 client address the per-address limits count as one client (64: its /64). */
  readonly peerIpv6PrefixBits: number;
  /** The shared Redis of several instances acting as one registry; undefined: single mode (state in this process). */
  readonly redis?: RedisEndpoint | undefined;
  /** Replicas that must acknowledge each write a client is told succeeded (Redis WAIT); 0: no wait. */
  readonly redisWaitReplicas: number;
  /** How long such a write waits for them, in ms. */
  readonly redisWaitTimeoutMs: number;
  /** Announced address (`host:port`) → where to reach that Redis node (Cluster nodes, Sentinels and the primary they name). */
  readonly redisNatMap: NatMap;
  /** Redis Cluster: resolve the seed nodes' host names to IP addresses before connecting (ioredis's default); false keeps the names (TLS checks them). */
  readonly redisClusterResolveSeeds: boolean;
  /** Sorted names of set COGMENT_MODEL_REGISTRY_* variables this module does not know (likely typos). */
  readonly ignoredVariables: readonly string[];
}

/**
 * Why a variable of `ignoredVariables` is ignored: later upstream releases of the registry (the
 * Cogment CLI's model_registry service) read a few names this server does not; the rest are typos.
 */
export function describeIgnoredVariable(name: string): string {
  if (name === `${PREFIX}VERSION_CACHE_MAX_ITEMS`) {
    return `a later upstream release's cache limit in versions; not supported: the cache is bounded in bytes by ${PREFIX}VERSION_CACHE_MAX_SIZE`;
  }
  if (name.startsWith(`${PREFIX}DIRECTORY_`)) {
    return "a later upstream release's Cogment directory registration; not supported";
  }
  return "unknown variable (a typo?)";
}

/** Thrown by loadConfig; the message has one line per invalid variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}
/**
 * The largest chunk of data a client with gRPC's default 4 MiB receive limit accepts: a reply
 * chunk message adds 5 bytes (field tag and 4-byte length) to its data.
 */
export const STOCK_CLIENT_MAX_CHUNK_SIZE = 4 * 1024 * 1024 - 5;

/** A valid but doubtful setting, logged as a warning at start. */
export interface ConfigWarning {
  readonly variable: string;
  readonly value: number;
  readonly limit: number;
  readonly message: string;
}

export function configWarnings(config: Config): readonly ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  if (config.sentChunkSize > STOCK_CLIENT_MAX_CHUNK_SIZE) {
    warnings.push({
      variable: SENT_CHUNK_SIZE.name,
      value: config.sentChunkSize,
      limit: STOCK_CLIENT_MAX_CHUNK_SIZE,
      message:
        `${SENT_CHUNK_SIZE.name} is larger than stock clients receive: with gRPC's default 4 MiB receive limit they accept ` +
        `chunks of at most ${STOCK_CLIENT_MAX_CHUNK_SIZE} bytes, so every download fails in them (the Cogment SDK's retrieve_model returns None); ` +
        `unset it (default ${SENT_CHUNK_SIZE.default}) or set at most ${STOCK_CLIENT_MAX_CHUNK_SIZE}`,
    });
  }
  return warnings;
}

/**
 * Reads the configuration from environment variables.
 *
 * A variable that is unset, empty or blank takes its default; surrounding whitespace is trimmed
 * otherwise. Any other malformed value is an error: all invalid variables are reported together in
 * one ConfigError, one per line.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const problems: string[] = [];

  const read = <T>(variable: Variable<T>): T => {
    const raw = env[variable.name];
    const value = raw?.trim() ?? "";
    if (value === "") {
      return variable.parse(variable.default);
    }
    try {
      return variable.parse(value);
    } catch (error) {
      if (!(error instanceof InvalidValue)) {
        throw error;
      }
      const detail = error.message === "" ? "" : `${error.message}; `;
      const shown = variable.secret === true ? "(value not shown: it may hold a password)" : JSON.stringify(raw);
      problems.push(`${variable.name}=${shown} is invalid: ${detail}expected ${variable.accepted}`);
      return variable.parse(variable.default);
    }
  };

  const config: Config = {
    port: read(PORT),
    archiveDir: read(ARCHIVE_DIR),
    archiveS3: read(ARCHIVE_URL),
    archiveS3ForcePathStyle: read(ARCHIVE_S3_FORCE_PATH_STYLE),
    archiveS3TimeoutMs: read(ARCHIVE_S3_TIMEOUT),
    cacheMaxBytes: read(CACHE_MAX_SIZE),
    cacheExpirationMs: read(CACHE_EXPIRATION),
    cachePruneCount: read(CACHE_TO_PRUNE_COUNT),
    sentChunkSize: read(SENT_CHUNK_SIZE),
    grpcReflection: read(GRPC_REFLECTION),
    logLevel: read(LOG_LEVEL),
    shutdownGraceMs: read(SHUTDOWN_GRACE_PERIOD),
    http2WindowBytes: read(HTTP2_WINDOW_SIZE),
    maxConcurrentStreams: read(MAX_CONCURRENT_STREAMS),
    metricsPort: read(METRICS_PORT),
    versionMaxBytes: read(VERSION_MAX_SIZE),
    uploadIdleTimeoutMs: read(UPLOAD_IDLE_TIMEOUT),
    uploadMinRateBytesPerSecond: read(UPLOAD_MIN_RATE),
    uploadMinRatePeriodMs: read(UPLOAD_MIN_RATE_PERIOD),
    sendIdleTimeoutMs: read(SEND_IDLE_TIMEOUT),
    sendMinRateBytesPerSecond: read(SEND_MIN_RATE),
    sendMinRatePeriodMs: read(SEND_MIN_RATE_PERIOD),
    streamedReadsMaxBytes: read(STREAMED_READS_MAX_SIZE),
    peerNewStreamsPerSecond: read(PEER_NEW_STREAMS_PER_SECOND),
    peerCancelledStreamsPerSecond: read(PEER_CANCELLED_STREAMS_PER_SECOND),
    peerBanMs: read(PEER_BAN_PERIOD),
    peerIpv6PrefixBits: read(PEER_IPV6_PREFIX),
    redis: read(REDIS_URL),
    redisWaitReplicas: read(REDIS_WAIT_REPLICAS),
    redisWaitTimeoutMs: read(REDIS_WAIT_TIMEOUT),
    redisNatMap: read(REDIS_NAT_MAP),
    redisClusterResolveSeeds: read(REDIS_CLUSTER_RESOLVE_SEEDS),
    ignoredVariables: Object.freeze(
      Object.keys(env)
        .filter((name) => name.startsWith(PREFIX) && !KNOWN_NAMES.has(name) && env[name] !== undefined)
        .sort(),
    ),
  };
  if (config.archiveS3 !== undefined && (env[ARCHIVE_DIR.name]?.trim() ?? "") !== "") {
    problems.push(`${ARCHIVE_DIR.name} and ${ARCHIVE_URL.name} are both set: the archive is either a directory or a bucket; unset one of them`);
  }
  if (config.redisWaitReplicas > 0 && config.redis === undefined) {
    problems.push(
      `${REDIS_WAIT_REPLICAS.name}=${config.redisWaitReplicas} needs ${REDIS_URL.name}: only a Redis has replicas to wait for; unset it or set ${REDIS_URL.name}`,
    );
  }
  if (config.redisNatMap.size > 0 && config.redis === undefined) {
    problems.push(`${REDIS_NAT_MAP.name} needs ${REDIS_URL.name}: it maps the addresses a Redis Cluster or Sentinels announce; unset it or set ${REDIS_URL.name}`);
  }
  if (!config.redisClusterResolveSeeds && config.redis?.sentinel !== undefined) {
    problems.push(
      `${REDIS_CLUSTER_RESOLVE_SEEDS.name}=false applies to a Redis Cluster, but ${REDIS_URL.name} names Sentinels (redis+sentinel://), whose nodes it does not change; unset it`,
    );
  } else if (!config.redisClusterResolveSeeds && config.redis === undefined) {
    problems.push(`${REDIS_CLUSTER_RESOLVE_SEEDS.name}=false needs ${REDIS_URL.name}: it changes how a Redis Cluster's nodes are connected to; unset it or set ${REDIS_URL.name}`);
  }
  if (problems.length > 0) {
    throw new ConfigError(problems.join("\n"));
  }
  return Object.freeze(config);
}
