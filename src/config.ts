import { type S3Location, parseS3Url } from "./archive/s3-url.js";
import { REDIS_URL_FORM, type RedisEndpoint, parseRedisUrl } from "./redis/redis-url.js";
import { DurationError, parseGoDuration } from "./duration.js";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

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
  /** New HTTP/2 streams one client address may open per second (bursts up to as many); 0 = no limit. */
  readonly peerNewStreamsPerSecond: number;
  /** HTTP/2 streams one client address may reset per second (bursts up to as many); 0 = no limit. */
  readonly peerCancelledStreamsPerSecond: number;
  /** How long a client address over one of those limits is refused. */
  readonly peerBanMs: number;
  /** The shared Redis of several instances acting as one registry; undefined: single mode (state in this process). */
  readonly redis?: RedisEndpoint | undefined;
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

export interface ConfigVariable {
  readonly name: string;
  readonly default: string;
  readonly accepted: string;
  readonly description: string;
}

const PREFIX = "COGMENT_MODEL_REGISTRY_";

/** Thrown by value parsers; the message is an optional detail shown before the accepted form. */
class InvalidValue extends Error {}

interface Variable<T> extends ConfigVariable {
  readonly parse: (value: string) => T;
  /** Its value may hold a password: never echoed in errors. */
  readonly secret?: boolean;
}

const integer =
  (min: number, max: number) =>
  (value: string): number => {
    // Number() alone would also accept "1e3", "0x10", " 5" or "-0".
    const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= min && n <= max)) {
      throw new InvalidValue();
    }
    return n;
  };

const nonNegativeDuration = (value: string): number => {
  let ms: number;
  try {
    ms = parseGoDuration(value);
  } catch (error) {
    if (error instanceof DurationError) {
      throw new InvalidValue(error.reason);
    }
    throw error;
  }
  if (ms < 0) {
    throw new InvalidValue("negative duration");
  }
  return ms;
};

// Go's strconv.ParseBool.
const BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ...["1", "t", "T", "TRUE", "true", "True"].map((s): [string, boolean] => [s, true]),
  ...["0", "f", "F", "FALSE", "false", "False"].map((s): [string, boolean] => [s, false]),
]);

const boolean = (value: string): boolean => {
  const parsed = BOOLEANS.get(value);
  if (parsed === undefined) {
    throw new InvalidValue();
  }
  return parsed;
};

const logLevel = (value: string): LogLevel => {
  const lower = value.toLowerCase();
  const level = LOG_LEVELS.find((l) => l === lower);
  if (level === undefined) {
    throw new InvalidValue();
  }
  return level;
};

const DURATION_UNITS = "units ns, us, ms, s, m, h";

const PORT: Variable<number> = {
  name: `${PREFIX}PORT`,
  default: "9000",
  accepted: "an integer port number from 0 to 65535 (0 picks a free port)",
  description: "TCP port the gRPC server listens on",
  parse: integer(0, 65535),
};
const ARCHIVE_DIR: Variable<string> = {
  name: `${PREFIX}ARCHIVE_DIR`,
  default: ".cogment_model_registry",
  accepted: "a non-empty directory path",
  description: "Directory where models and model versions are archived",
  // Never invalid: an empty (or blank) value takes the default.
  parse: (value) => value,
};
const ARCHIVE_URL: Variable<S3Location | undefined> = {
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
const ARCHIVE_S3_FORCE_PATH_STYLE: Variable<boolean> = {
  name: `${PREFIX}ARCHIVE_S3_FORCE_PATH_STYLE`,
  default: "false",
  accepted: "a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
  description: "Whether S3 requests put the bucket in the path (endpoint/bucket/key) rather than the host name, as MinIO and Ceph RGW often need",
  parse: (value) => boolean(value),
};
const ARCHIVE_S3_TIMEOUT: Variable<number> = {
  name: `${PREFIX}ARCHIVE_S3_TIMEOUT`,
  default: "1m",
  accepted: `a positive Go duration such as 30s or 2m, at most 596h (${DURATION_UNITS})`,
  description:
    "How long one S3 request may go without a byte sent or received (waiting for the reply, or a pause in a download) before that attempt fails and is retried; with the attempts of AWS_MAX_ATTEMPTS (3), it bounds how long an archive call can hang on a stalled store",
  parse: (value) => {
    const ms = timerDuration(value);
    if (ms < 1) {
      throw new InvalidValue("shorter than 1ms");
    }
    return ms;
  },
};
const CACHE_MAX_SIZE: Variable<number> = {
  name: `${PREFIX}VERSION_CACHE_MAX_SIZE`,
  default: "1073741824",
  accepted: `an integer number of bytes from 1 to ${Number.MAX_SAFE_INTEGER}`,
  description: "Maximum total size of the in-memory model version data cache, in bytes",
  parse: integer(1, Number.MAX_SAFE_INTEGER),
};
const CACHE_EXPIRATION: Variable<number> = {
  name: `${PREFIX}VERSION_CACHE_EXPIRATION`,
  default: "1h",
  accepted: `a non-negative Go duration such as 30m, 1h or 2h45m (${DURATION_UNITS}); 0 disables expiration`,
  description: "How long a model version's data stays in the cache after it was added (the latest version of each model is kept)",
  parse: nonNegativeDuration,
};
const CACHE_TO_PRUNE_COUNT: Variable<number> = {
  name: `${PREFIX}VERSION_CACHE_TO_PRUNE_COUNT`,
  default: "5",
  accepted: "an integer from 1 to 1000000",
  description: "Number of model versions evicted from the cache at once when it is full",
  parse: integer(1, 1_000_000),
};
const SENT_CHUNK_SIZE: Variable<number> = {
  name: `${PREFIX}SENT_MODEL_VERSION_DATA_CHUNK_SIZE`,
  default: "2097152",
  accepted: "an integer number of bytes from 1 to 67108864",
  description:
    "Size of the data chunks in which model version data is streamed to clients, in bytes; stock clients (gRPC's 4 MiB receive limit, e.g. the Cogment SDK) receive at most 4194299: a larger value is warned about at start",
  parse: integer(1, 64 * 1024 * 1024),
};

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
const GRPC_REFLECTION: Variable<boolean> = {
  name: `${PREFIX}GRPC_REFLECTION`,
  default: "false",
  accepted: "a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
  description: "Whether to serve the gRPC server reflection service",
  parse: boolean,
};
const LOG_LEVEL: Variable<LogLevel> = {
  name: `${PREFIX}LOG_LEVEL`,
  default: "info",
  accepted: `one of ${LOG_LEVELS.join(", ")} (case-insensitive)`,
  description: "Minimum level of the log messages written to stdout",
  parse: logLevel,
};
// Node's timers fire at once past 2^31 - 1 ms (about 596 hours).
const MAX_TIMER_MS = 2 ** 31 - 1;

const SHUTDOWN_GRACE_PERIOD: Variable<number> = {
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

const HTTP2_WINDOW_SIZE: Variable<number> = {
  name: `${PREFIX}HTTP2_WINDOW_SIZE`,
  default: "8388608",
  accepted: "an integer number of bytes from 0 to 2147483647 (0 keeps Node's 65535-byte default)",
  description: "HTTP/2 receive window of the server, per stream and per connection: uploads over links with a round trip are capped at window / RTT",
  parse: integer(0, 2_147_483_647),
};

const METRICS_PORT: Variable<number> = {
  name: `${PREFIX}METRICS_PORT`,
  default: "0",
  accepted: "an integer port number from 0 to 65535 (0 turns the metrics endpoint off)",
  description: "TCP port of the HTTP endpoint serving Prometheus metrics on /metrics (off by default)",
  parse: integer(0, 65535),
};

const VERSION_MAX_SIZE: Variable<number> = {
  name: `${PREFIX}VERSION_MAX_SIZE`,
  default: "0",
  accepted: `an integer number of bytes from 0 to ${Number.MAX_SAFE_INTEGER} (0: no limit but the cache budget for transient versions and the disk for archived ones)`,
  description: "Largest data_size accepted for one version; larger uploads fail at their header with RESOURCE_EXHAUSTED",
  parse: integer(0, Number.MAX_SAFE_INTEGER),
};

/** A duration a timer can wait for: at most 596h (Node's timers fire at once past 2^31 - 1 ms). */
const timerDuration = (value: string): number => {
  const ms = nonNegativeDuration(value);
  if (ms > MAX_TIMER_MS) {
    throw new InvalidValue("longer than 596h");
  }
  return ms;
};

const UPLOAD_IDLE_TIMEOUT: Variable<number> = {
  name: `${PREFIX}UPLOAD_IDLE_TIMEOUT`,
  default: "30s",
  accepted: `a non-negative Go duration such as 10s or 1m, at most 596h (${DURATION_UNITS}); 0 disables the limit`,
  description:
    "How long a CreateVersion may receive nothing from its client (time the server itself is busy excluded) before it fails with DEADLINE_EXCEEDED and its memory reservation is released",
  parse: timerDuration,
};

const UPLOAD_MIN_RATE: Variable<number> = {
  name: `${PREFIX}UPLOAD_MIN_RATE`,
  default: "65536",
  accepted: `an integer number of bytes per second from 0 to ${Number.MAX_SAFE_INTEGER} (0 disables the limit)`,
  description:
    "Slowest CreateVersion accepted, in bytes per second of waiting for the client, checked over each UPLOAD_MIN_RATE_PERIOD after the first; a slower upload fails with DEADLINE_EXCEEDED and its memory reservation is released",
  parse: integer(0, Number.MAX_SAFE_INTEGER),
};

const UPLOAD_MIN_RATE_PERIOD: Variable<number> = {
  name: `${PREFIX}UPLOAD_MIN_RATE_PERIOD`,
  default: "10s",
  accepted: `a positive Go duration such as 5s or 1m, at most 596h (${DURATION_UNITS})`,
  description: "Length of the periods over which UPLOAD_MIN_RATE is measured; an upload's first period is not checked (connection start-up)",
  parse: (value) => {
    const ms = timerDuration(value);
    if (ms < 1) {
      throw new InvalidValue("shorter than 1ms");
    }
    return ms;
  },
};

const PEER_NEW_STREAMS_PER_SECOND: Variable<number> = {
  name: `${PREFIX}PEER_NEW_STREAMS_PER_SECOND`,
  default: "10000",
  accepted: "an integer from 0 to 1000000 (0: no limit)",
  description:
    "Calls (HTTP/2 streams) one client IP address may start per second, in bursts up to as many, over all its connections; past it the connection is closed and the address banned",
  parse: integer(0, 1_000_000),
};

const PEER_CANCELLED_STREAMS_PER_SECOND: Variable<number> = {
  name: `${PREFIX}PEER_CANCELLED_STREAMS_PER_SECOND`,
  default: "1000",
  accepted: "an integer from 0 to 1000000 (0: no limit)",
  description:
    "Calls (HTTP/2 streams) one client IP address may cancel (RST_STREAM) per second, in bursts up to as many, over all its connections; past it the connection is closed and the address banned",
  parse: integer(0, 1_000_000),
};

const PEER_BAN_PERIOD: Variable<number> = {
  name: `${PREFIX}PEER_BAN_PERIOD`,
  default: "1m",
  accepted: `a non-negative Go duration such as 30s, 1m or 10m, at most 596h (${DURATION_UNITS})`,
  description: "How long new connections from a client IP address that went over a per-address limit are refused",
  parse: timerDuration,
};

const SEND_IDLE_TIMEOUT: Variable<number> = {
  name: `${PREFIX}SEND_IDLE_TIMEOUT`,
  default: "60s",
  accepted: `a non-negative Go duration such as 30s or 2m, at most 596h (${DURATION_UNITS}); 0 disables the limit`,
  description:
    "How long a RetrieveVersionData reader may leave sent data unread (no message leaves the server) before its stream is reset (the client sees CANCELLED) and the version it held is released",
  parse: timerDuration,
};
const REDIS_URL: Variable<RedisEndpoint | undefined> = {
  name: `${PREFIX}REDIS_URL`,
  default: "",
  accepted: `${REDIS_URL_FORM} (empty: single mode)`,
  description:
    "Redis holding the registry's shared state: every instance given the same Redis and the same archive serves one registry (see Running several instances); empty: one instance, state in the process",
  secret: true,
  parse: (value) => {
    if (value === "") {
      return undefined;
    }
    try {
      return parseRedisUrl(value);
    } catch (error) {
      throw new InvalidValue((error as Error).message.replace(/; expected .*$/, ""));
    }
  },
};

const VARIABLES = [
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
  METRICS_PORT,
  VERSION_MAX_SIZE,
  UPLOAD_IDLE_TIMEOUT,
  UPLOAD_MIN_RATE,
  UPLOAD_MIN_RATE_PERIOD,
  SEND_IDLE_TIMEOUT,
  PEER_NEW_STREAMS_PER_SECOND,
  PEER_CANCELLED_STREAMS_PER_SECOND,
  PEER_BAN_PERIOD,
  REDIS_URL,
] as const;

const KNOWN_NAMES: ReadonlySet<string> = new Set(VARIABLES.map((v) => v.name));

/** One row per variable, in Config field order, for the README table and help output. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = Object.freeze(
  VARIABLES.map(({ name, default: defaultValue, accepted, description }) =>
    Object.freeze({ name, default: defaultValue, accepted, description }),
  ),
);

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
    metricsPort: read(METRICS_PORT),
    versionMaxBytes: read(VERSION_MAX_SIZE),
    uploadIdleTimeoutMs: read(UPLOAD_IDLE_TIMEOUT),
    uploadMinRateBytesPerSecond: read(UPLOAD_MIN_RATE),
    uploadMinRatePeriodMs: read(UPLOAD_MIN_RATE_PERIOD),
    sendIdleTimeoutMs: read(SEND_IDLE_TIMEOUT),
    peerNewStreamsPerSecond: read(PEER_NEW_STREAMS_PER_SECOND),
    peerCancelledStreamsPerSecond: read(PEER_CANCELLED_STREAMS_PER_SECOND),
    peerBanMs: read(PEER_BAN_PERIOD),
    redis: read(REDIS_URL),
    ignoredVariables: Object.freeze(
      Object.keys(env)
        .filter((name) => name.startsWith(PREFIX) && !KNOWN_NAMES.has(name) && env[name] !== undefined)
        .sort(),
    ),
  };
  if (config.archiveS3 !== undefined && (env[ARCHIVE_DIR.name]?.trim() ?? "") !== "") {
    problems.push(`${ARCHIVE_DIR.name} and ${ARCHIVE_URL.name} are both set: the archive is either a directory or a bucket; unset one of them`);
  }
  if (problems.length > 0) {
    throw new ConfigError(problems.join("\n"));
  }
  return Object.freeze(config);
}
