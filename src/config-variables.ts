/* The COGMENT_MODEL_REGISTRY_* variables: name, default, accepted form, description and parser of each. */
import { type S3Location, parseS3Url } from "./archive/s3-url.js";
import { NAT_MAP_FORM, type NatMap, parseNatMap } from "./redis/nat-map.js";
import { REDIS_URL_FORMS, type RedisEndpoint, parseRedisUrls } from "./redis/redis-url.js";
import {
  boolean,
  DURATION_UNITS,
  integer,
  InvalidValue,
  LOG_LEVELS,
  type LogLevel,
  logLevel,
  MAX_TIMER_MS,
  nonNegativeDuration,
  timerDuration,
} from "./config-values.js";

export interface ConfigVariable {
  readonly name: string;
  readonly default: string;
  readonly accepted: string;
  readonly description: string;
}

export const PREFIX = "COGMENT_MODEL_REGISTRY_";

export interface Variable<T> extends ConfigVariable {
  readonly parse: (value: string) => T;
  /** Its value may hold a password: never echoed in errors. */
  readonly secret?: boolean;
}

export const PORT: Variable<number> = {
  name: `${PREFIX}PORT`,
  default: "9000",
  accepted: "an integer port number from 0 to 65535 (0 picks a free port)",
  description: "TCP port the gRPC server listens on",
  parse: integer(0, 65535),
};
export const ARCHIVE_DIR: Variable<string> = {
  name: `${PREFIX}ARCHIVE_DIR`,
  default: ".cogment_model_registry",
  accepted: "a non-empty directory path",
  description: "Directory where models and model versions are archived",
  // Never invalid: an empty (or blank) value takes the default.
  parse: (value) => value,
};
export const ARCHIVE_URL: Variable<S3Location | undefined> = {
  name: `${PREFIX}ARCHIVE_URL`,
  default: "",
  accepted: "s3://bucket or s3://bucket/prefix (empty: the archive directory)",
  description: "S3-compatible bucket (and key prefix) holding the archive instead of ARCHIVE_DIR; credentials, region and endpoint come from the standard AWS variables",
  parse: (value) => {
    if (value === "") {
      return undefined;
    }
    try {
      return parseS3Url(value);
    } catch (error) {
      throw new InvalidValue((error as Error).message);
    }
  },
};
export const ARCHIVE_S3_FORCE_PATH_STYLE: Variable<boolean> = {
  name: `${PREFIX}ARCHIVE_S3_FORCE_PATH_STYLE`,
  default: "false",
  accepted: "a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
  description: "Whether S3 requests put the bucket in the path (endpoint/bucket/key) rather than the host name, as MinIO and Ceph RGW often need",
  parse: (value) => boolean(value),
};
export const ARCHIVE_S3_TIMEOUT: Variable<number> = {
  name: `${PREFIX}ARCHIVE_S3_TIMEOUT`,
  default: "1m",
  accepted: `a positive Go duration such as 30s or 2m, at most 596h (${DURATION_UNITS})`,
  description:
    "How long one S3 request may go without a byte sent or received (waiting for the reply, or a pause in a download) before that attempt fails and is retried; with the attempts of AWS_MAX_ATTEMPTS (3), it bounds how long an archive call can hang on a stalled store",
  parse: positiveTimerDuration,
};
export const CACHE_MAX_SIZE: Variable<number> = {
  name: `${PREFIX}VERSION_CACHE_MAX_SIZE`,
  default: "1073741824",
  accepted: `an integer number of bytes from 1 to ${Number.MAX_SAFE_INTEGER}`,
  description: "Maximum total size of the in-memory model version data cache, in bytes",
  parse: integer(1, Number.MAX_SAFE_INTEGER),
};
export const CACHE_EXPIRATION: Variable<number> = {
  name: `${PREFIX}VERSION_CACHE_EXPIRATION`,
  default: "1h",
  accepted: `a non-negative Go duration such as 30m, 1h or 2h45m (${DURATION_UNITS}); 0 disables expiration`,
  description: "How long a model version's data stays in the cache after it was added (the latest version of each model is kept)",
  parse: nonNegativeDuration,
};
export const CACHE_TO_PRUNE_COUNT: Variable<number> = {
  name: `${PREFIX}VERSION_CACHE_TO_PRUNE_COUNT`,
  default: "5",
  accepted: "an integer from 1 to 1000000",
  description: "Number of model versions evicted from the cache at once when it is full",
  parse: integer(1, 1_000_000),
};
export const SENT_CHUNK_SIZE: Variable<number> = {
  name: `${PREFIX}SENT_MODEL_VERSION_DATA_CHUNK_SIZE`,
  default: "2097152",
  accepted: "an integer number of bytes from 1 to 67108864",
  description:
    "Size of the data chunks in which model version data is streamed to clients, in bytes; stock clients (gRPC's 4 MiB receive limit, e.g. the Cogment SDK) receive at most 4194299: a larger value is warned about at start",
  parse: integer(1, 64 * 1024 * 1024),
};

export const GRPC_REFLECTION: Variable<boolean> = {
  name: `${PREFIX}GRPC_REFLECTION`,
  default: "false",
  accepted: "a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
  description: "Whether to serve the gRPC server reflection service",
  parse: boolean,
};
export const LOG_LEVEL: Variable<LogLevel> = {
  name: `${PREFIX}LOG_LEVEL`,
  default: "info",
  accepted: `one of ${LOG_LEVELS.join(", ")} (case-insensitive)`,
  description: "Minimum level of the log messages written to stdout",
  parse: logLevel,
};

export const SHUTDOWN_GRACE_PERIOD: Variable<number> = {
  name: `${PREFIX}SHUTDOWN_GRACE_PERIOD`,
  default: "10s",
  accepted: `a non-negative Go duration such as 500ms, 10s or 1m, at most 596h (${DURATION_UNITS})`,
  description: "How long to wait for in-flight calls to finish on shutdown before cancelling them",
  parse: (value) => {
    const ms = nonNegativeDuration(value);
    if (ms > MAX_TIMER_MS) {
      throw new InvalidValue("longer than 596h");
    }
    return ms;
  },
};

export const HTTP2_WINDOW_SIZE: Variable<number> = {
  name: `${PREFIX}HTTP2_WINDOW_SIZE`,
  default: "8388608",
  accepted: "an integer number of bytes from 0 to 2147483647 (0 keeps Node's 65535-byte default)",
  description: "HTTP/2 receive window of the server, per stream and per connection: uploads over links with a round trip are capped at window / RTT",
  parse: integer(0, 2_147_483_647),
};

export const MAX_CONCURRENT_STREAMS: Variable<number> = {
  name: `${PREFIX}MAX_CONCURRENT_STREAMS`,
  default: "0",
  accepted: "an integer from 0 to 4294967295 (0: no limit)",
  description:
    "Calls (HTTP/2 streams) one client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); gRPC clients wait for a free stream beyond it. Each open upload may hold HTTP2_WINDOW_SIZE of data received ahead, so this bounds a connection's to that many windows",
  parse: integer(0, 4_294_967_295),
};

export const METRICS_PORT: Variable<number> = {
  name: `${PREFIX}METRICS_PORT`,
  default: "0",
  accepted: "an integer port number from 0 to 65535 (0 turns the metrics endpoint off)",
  description: "TCP port of the HTTP endpoint serving Prometheus metrics on /metrics (off by default)",
  parse: integer(0, 65535),
};

export const VERSION_MAX_SIZE: Variable<number> = {
  name: `${PREFIX}VERSION_MAX_SIZE`,
  default: "0",
  accepted: `an integer number of bytes from 0 to ${Number.MAX_SAFE_INTEGER} (0: no limit but the cache budget for transient versions and the disk for archived ones)`,
  description: "Largest data_size accepted for one version; larger uploads fail at their header with RESOURCE_EXHAUSTED",
  parse: integer(0, Number.MAX_SAFE_INTEGER),
};

export const UPLOAD_IDLE_TIMEOUT: Variable<number> = {
  name: `${PREFIX}UPLOAD_IDLE_TIMEOUT`,
  default: "30s",
  accepted: `a non-negative Go duration such as 10s or 1m, at most 596h (${DURATION_UNITS}); 0 disables the limit`,
  description:
    "How long a CreateVersion may receive no byte from its client (time the server itself is busy excluded) before it fails with DEADLINE_EXCEEDED and its memory reservation is released",
  parse: timerDuration,
};

/** A timer duration of at least 1 ms (the rate periods: a period of 0 would never end). */
function positiveTimerDuration(value: string): number {
  const ms = timerDuration(value);
  if (ms < 1) {
    throw new InvalidValue("shorter than 1ms");
  }
  return ms;
}

export const UPLOAD_MIN_RATE: Variable<number> = {
  name: `${PREFIX}UPLOAD_MIN_RATE`,
  default: "65536",
  accepted: `an integer number of bytes per second from 0 to ${Number.MAX_SAFE_INTEGER} (0 disables the limit)`,
  description:
    "Slowest CreateVersion accepted, in request bytes per second of waiting for the client (counted as they arrive), checked over each UPLOAD_MIN_RATE_PERIOD after the first; a slower upload fails with DEADLINE_EXCEEDED and its memory reservation is released",
  parse: integer(0, Number.MAX_SAFE_INTEGER),
};

export const UPLOAD_MIN_RATE_PERIOD: Variable<number> = {
  name: `${PREFIX}UPLOAD_MIN_RATE_PERIOD`,
  default: "10s",
  accepted: `a positive Go duration such as 5s or 1m, at most 596h (${DURATION_UNITS})`,
  description: "Length of the periods over which UPLOAD_MIN_RATE is measured; an upload's first period is not checked (connection start-up)",
  parse: positiveTimerDuration,
};

export const PEER_NEW_STREAMS_PER_SECOND: Variable<number> = {
  name: `${PREFIX}PEER_NEW_STREAMS_PER_SECOND`,
  default: "50000",
  accepted: "an integer from 0 to 1000000 (0: no limit)",
  description:
    "Calls (HTTP/2 streams) one client IP address may start per second, in bursts up to as many, over all its connections; past it the connection is closed and the address banned",
  parse: integer(0, 1_000_000),
};

export const PEER_CANCELLED_STREAMS_PER_SECOND: Variable<number> = {
  name: `${PREFIX}PEER_CANCELLED_STREAMS_PER_SECOND`,
  default: "1000",
  accepted: "an integer from 0 to 1000000 (0: no limit)",
  description:
    "Calls (HTTP/2 streams) one client IP address may cancel (RST_STREAM) per second, in bursts up to as many, over all its connections; past it the connection is closed and the address banned",
  parse: integer(0, 1_000_000),
};

export const PEER_BAN_PERIOD: Variable<number> = {
  name: `${PREFIX}PEER_BAN_PERIOD`,
  default: "1m",
  accepted: `a non-negative Go duration such as 30s, 1m or 10m, at most 596h (${DURATION_UNITS})`,
  description: "How long new connections from a client IP address that went over a per-address limit are refused",
  parse: timerDuration,
};

export const PEER_IPV6_PREFIX: Variable<number> = {
  name: `${PREFIX}PEER_IPV6_PREFIX`,
  default: "64",
  accepted: "an integer from 1 to 128 (bits)",
  description:
    "How many leading bits of a client's IPv6 address the per-address limits count as one client: 64 (a host's usual allocation, in which it can pick a new address per connection); 128 counts each address alone, for pod networks that put many clients in one /64",
  parse: integer(1, 128),
};

export const SEND_IDLE_TIMEOUT: Variable<number> = {
  name: `${PREFIX}SEND_IDLE_TIMEOUT`,
  default: "60s",
  accepted: `a non-negative Go duration such as 30s or 2m, at most 596h (${DURATION_UNITS}); 0 disables the limit`,
  description:
    "How long a RetrieveVersionData reader may leave sent data unread (no byte of it leaves the server) before its stream is reset (the client sees CANCELLED) and the version it held is released",
  parse: timerDuration,
};

export const SEND_MIN_RATE: Variable<number> = {
  name: `${PREFIX}SEND_MIN_RATE`,
  default: "16384",
  accepted: `an integer number of bytes per second from 0 to ${Number.MAX_SAFE_INTEGER} (0 disables the limit)`,
  description:
    "Slowest RetrieveVersionData reader accepted, in bytes per second of the server waiting for it (sent data left unread), checked over each SEND_MIN_RATE_PERIOD after the first; a slower reader has its stream reset (the client sees CANCELLED) and the version it held is released",
  parse: integer(0, Number.MAX_SAFE_INTEGER),
};

export const SEND_MIN_RATE_PERIOD: Variable<number> = {
  name: `${PREFIX}SEND_MIN_RATE_PERIOD`,
  default: "10s",
  accepted: `a positive Go duration such as 5s or 1m, at most 596h (${DURATION_UNITS})`,
  description: "Length of the periods over which SEND_MIN_RATE is measured; a read's first period is not checked (connection start-up)",
  parse: positiveTimerDuration,
};

export const STREAMED_READS_MAX_SIZE: Variable<number> = {
  name: `${PREFIX}STREAMED_READS_MAX_SIZE`,
  default: "67108864",
  accepted: `an integer number of bytes from 1 to ${Number.MAX_SAFE_INTEGER}`,
  description:
    "Most bytes of version data held at once, over all RetrieveVersionData streams, by reads the cache does not hold (an archived version larger than a quarter of VERSION_CACHE_MAX_SIZE, or one the cache had no room for): such a stream waits for room before reading its next chunk; a chunk larger than this is sent alone",
  parse: integer(1, Number.MAX_SAFE_INTEGER),
};

export const REDIS_URL: Variable<RedisEndpoint | undefined> = {
  name: `${PREFIX}REDIS_URL`,
  default: "",
  accepted: `${REDIS_URL_FORMS} (empty: single mode)`,
  description:
    "Redis holding the registry's shared state: every instance given the same Redis and the same archive serves one registry (see Running several instances); a Redis Cluster is detected from the one node given, or several of its nodes may be listed, comma-separated; a redis+sentinel:// URL names the Sentinels of a primary; empty: one instance, state in the process",
  secret: true,
  parse: (value) => {
    if (value === "") {
      return undefined;
    }
    try {
      return parseRedisUrls(value);
    } catch (error) {
      throw new InvalidValue((error as Error).message.replace(/; expected .*$/, ""));
    }
  },
};

/** A WAIT's longest timeout: a command queued behind one WAIT keeps half the 2 s per-call bound for itself. */
export const MAX_REDIS_WAIT_TIMEOUT_MS = 1000;

export const REDIS_WAIT_REPLICAS: Variable<number> = {
  name: `${PREFIX}REDIS_WAIT_REPLICAS`,
  default: "0",
  accepted: "an integer from 0 to 1000 (0: no wait)",
  description:
    "With REDIS_URL: how many replicas must acknowledge (Redis WAIT) each commit, model creation or update and deletion before the client is told it succeeded; fewer within REDIS_WAIT_TIMEOUT: the call fails UNAVAILABLE, saying the write is done on the primary but may be lost if it fails over",
  parse: integer(0, 1000),
};

export const REDIS_WAIT_TIMEOUT: Variable<number> = {
  name: `${PREFIX}REDIS_WAIT_TIMEOUT`,
  default: "1s",
  accepted: `a positive Go duration such as 100ms or 1s, at most 1s (${DURATION_UNITS})`,
  description:
    "How long a write waits for the REDIS_WAIT_REPLICAS acknowledgments; at most 1s, so that the commands queued behind a WAIT on its connection stay within the 2 s bound of a Redis call",
  parse: (value) => {
    const ms = nonNegativeDuration(value);
    if (ms < 1) {
      throw new InvalidValue("shorter than 1ms");
    }
    if (ms > MAX_REDIS_WAIT_TIMEOUT_MS) {
      throw new InvalidValue("longer than 1s");
    }
    return Math.round(ms);
  },
};

export const REDIS_NAT_MAP: Variable<NatMap> = {
  name: `${PREFIX}REDIS_NAT_MAP`,
  default: "",
  accepted: `${NAT_MAP_FORM} (empty: every node is reached at the address it announces)`,
  description:
    "With REDIS_URL on a Redis Cluster or Sentinels: where to reach the nodes that the cluster (CLUSTER SLOTS, MOVED, ASK) or the Sentinels announce at addresses this instance cannot reach (NAT, Docker, Kubernetes), as announced=reachable pairs; an address not listed is used as announced",
  parse: (value) => {
    try {
      return parseNatMap(value);
    } catch (error) {
      throw new InvalidValue((error as Error).message);
    }
  },
};

export const REDIS_CLUSTER_RESOLVE_SEEDS: Variable<boolean> = {
  name: `${PREFIX}REDIS_CLUSTER_RESOLVE_SEEDS`,
  default: "true",
  accepted: "a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
  description:
    "With REDIS_URL on a Redis Cluster: whether the cluster client resolves the host names of the nodes given in REDIS_URL to IP addresses and connects to those (ioredis's default); false connects by host name, so that with rediss:// each certificate is checked against the name (AWS ElastiCache with TLS)",
  parse: boolean,
};

export const VARIABLES = [
  PORT,
  ARCHIVE_DIR,
  ARCHIVE_URL,
  ARCHIVE_S3_FORCE_PATH_STYLE,
  ARCHIVE_S3_TIMEOUT,
  CACHE_MAX_SIZE,
  CACHE_EXPIRATION,
  CACHE_TO_PRUNE_COUNT,
  SENT_CHUNK_SIZE,
  GRPC_REFLECTION,
  LOG_LEVEL,
  SHUTDOWN_GRACE_PERIOD,
  HTTP2_WINDOW_SIZE,
  MAX_CONCURRENT_STREAMS,
  METRICS_PORT,
  VERSION_MAX_SIZE,
  UPLOAD_IDLE_TIMEOUT,
  UPLOAD_MIN_RATE,
  UPLOAD_MIN_RATE_PERIOD,
  SEND_IDLE_TIMEOUT,
  SEND_MIN_RATE,
  SEND_MIN_RATE_PERIOD,
  STREAMED_READS_MAX_SIZE,
  PEER_NEW_STREAMS_PER_SECOND,
  PEER_CANCELLED_STREAMS_PER_SECOND,
  PEER_BAN_PERIOD,
  PEER_IPV6_PREFIX,
  REDIS_URL,
  REDIS_WAIT_REPLICAS,
  REDIS_WAIT_TIMEOUT,
  REDIS_NAT_MAP,
  REDIS_CLUSTER_RESOLVE_SEEDS,
] as const;

export const KNOWN_NAMES: ReadonlySet<string> = new Set(VARIABLES.map((v) => v.name));

/** One row per variable, in Config field order, for the README table and help output. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = Object.freeze(
  VARIABLES.map(({ name, default: defaultValue, accepted, description }) =>
    Object.freeze({ name, default: defaultValue, accepted, description }),
  ),
);
