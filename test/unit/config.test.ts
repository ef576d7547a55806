import { test, describe } from "node:test";
import { strict as assert } from "node:assert";

import type { Config } from "../../src/config.js";
import { CONFIG_VARIABLES, ConfigError, describeIgnoredVariable, loadConfig } from "../../src/config.js";

const P = "COGMENT_MODEL_REGISTRY_";

const DEFAULTS: Config = {
  port: 9000,
  archiveDir: ".cogment_model_registry",
  archiveS3: undefined,
  archiveS3ForcePathStyle: false,
  archiveS3TimeoutMs: 60_000,
  cacheMaxBytes: 1_073_741_824,
  cacheExpirationMs: 3_600_000,
  cachePruneCount: 5,
  sentChunkSize: 2_097_152,
  grpcReflection: false,
  logLevel: "info",
  shutdownGraceMs: 10_000,
  http2WindowBytes: 8_388_608,
  maxConcurrentStreams: 0,
  metricsPort: 0,
  versionMaxBytes: 0,
  uploadIdleTimeoutMs: 30_000,
  uploadMinRateBytesPerSecond: 65_536,
  uploadMinRatePeriodMs: 10_000,
  sendIdleTimeoutMs: 60_000,
  sendMinRateBytesPerSecond: 16_384,
  sendMinRatePeriodMs: 10_000,
  streamedReadsMaxBytes: 67_108_864,
  peerNewStreamsPerSecond: 50_000,
  peerCancelledStreamsPerSecond: 1_000,
  peerBanMs: 60_000,
  peerIpv6PrefixBits: 64,
  redis: undefined,
  redisWaitReplicas: 0,
  redisWaitTimeoutMs: 1000,
  redisNatMap: new Map(),
  redisClusterResolveSeeds: true,
  ignoredVariables: [],
};

const ACCEPTED = {
  port: "an integer port number from 0 to 65535 (0 picks a free port)",
  cacheMaxBytes: "an integer number of bytes from 1 to 9007199254740991",
  cacheExpiration:
    "a non-negative Go duration such as 30m, 1h or 2h45m (units ns, us, ms, s, m, h); 0 disables expiration",
  pruneCount: "an integer from 1 to 1000000",
  chunkSize: "an integer number of bytes from 1 to 67108864",
  boolean: "a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
  logLevel: "one of trace, debug, info, warn, error, fatal, silent (case-insensitive)",
  shutdownGrace: "a non-negative Go duration such as 500ms, 10s or 1m, at most 596h (units ns, us, ms, s, m, h)",
  metricsPort: "an integer port number from 0 to 65535 (0 turns the metrics endpoint off)",
};

/** Asserts that loading `env` fails with exactly `lines` as the message, one problem per line. */
function assertInvalid(env: Record<string, string>, ...lines: string[]): void {
  assert.throws(
    () => loadConfig(env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.name, "ConfigError");
      assert.equal(error.message, lines.join("\n"));
      return true;
    },
  );
}

describe("defaults", () => {
  test("an empty environment gives every default", () => {
    assert.deepEqual(loadConfig({}), DEFAULTS);
  });

  test("empty and blank values take the default", () => {
    const env: Record<string, string> = {};
    for (const variable of CONFIG_VARIABLES) {
      env[variable.name] = "";
    }
    assert.deepEqual(loadConfig(env), DEFAULTS);
    for (const variable of CONFIG_VARIABLES) {
      env[variable.name] = " \t\n";
    }
    assert.deepEqual(loadConfig(env), DEFAULTS);
  });

  test("undefined values take the default and are not reported as ignored", () => {
    assert.deepEqual(loadConfig({ [`${P}PORT`]: undefined, [`${P}PROT`]: undefined }), DEFAULTS);
  });

  test("the result is frozen", () => {
    const config = loadConfig({});
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.ignoredVariables));
  });
});

describe("CONFIG_VARIABLES", () => {
  test("lists every variable in Config field order with its default", () => {
    assert.deepEqual(
      CONFIG_VARIABLES.map((v) => [v.name, v.default]),
      [
        [`${P}PORT`, "9000"],
        [`${P}ARCHIVE_DIR`, ".cogment_model_registry"],
        [`${P}ARCHIVE_URL`, ""],
        [`${P}ARCHIVE_S3_FORCE_PATH_STYLE`, "false"],
        [`${P}ARCHIVE_S3_TIMEOUT`, "1m"],
        [`${P}VERSION_CACHE_MAX_SIZE`, "1073741824"],
        [`${P}VERSION_CACHE_EXPIRATION`, "1h"],
        [`${P}VERSION_CACHE_TO_PRUNE_COUNT`, "5"],
        [`${P}SENT_MODEL_VERSION_DATA_CHUNK_SIZE`, "2097152"],
        [`${P}GRPC_REFLECTION`, "false"],
        [`${P}LOG_LEVEL`, "info"],
        [`${P}SHUTDOWN_GRACE_PERIOD`, "10s"],
        [`${P}HTTP2_WINDOW_SIZE`, "8388608"],
        [`${P}MAX_CONCURRENT_STREAMS`, "0"],
        [`${P}METRICS_PORT`, "0"],
        [`${P}VERSION_MAX_SIZE`, "0"],
        [`${P}UPLOAD_IDLE_TIMEOUT`, "30s"],
        [`${P}UPLOAD_MIN_RATE`, "65536"],
        [`${P}UPLOAD_MIN_RATE_PERIOD`, "10s"],
        [`${P}SEND_IDLE_TIMEOUT`, "60s"],
        [`${P}SEND_MIN_RATE`, "16384"],
        [`${P}SEND_MIN_RATE_PERIOD`, "10s"],
        [`${P}STREAMED_READS_MAX_SIZE`, "67108864"],
        [`${P}PEER_NEW_STREAMS_PER_SECOND`, "50000"],
        [`${P}PEER_CANCELLED_STREAMS_PER_SECOND`, "1000"],
        [`${P}PEER_BAN_PERIOD`, "1m"],
        [`${P}PEER_IPV6_PREFIX`, "64"],
        [`${P}REDIS_URL`, ""],
        [`${P}REDIS_WAIT_REPLICAS`, "0"],
        [`${P}REDIS_WAIT_TIMEOUT`, "1s"],
        [`${P}REDIS_NAT_MAP`, ""],
        [`${P}REDIS_CLUSTER_RESOLVE_SEEDS`, "true"],
      ],
    );
  });

  test("has the accepted forms used in error messages and a description for each", () => {
    assert.deepEqual(
      CONFIG_VARIABLES.map((v) => v.accepted),
      [
        ACCEPTED.port,
        "a non-empty directory path",
        "s3://bucket or s3://bucket/prefix (empty: the archive directory)",
        ACCEPTED.boolean,
        "a positive Go duration such as 30s or 2m, at most 596h (units ns, us, ms, s, m, h)",
        ACCEPTED.cacheMaxBytes,
        ACCEPTED.cacheExpiration,
        ACCEPTED.pruneCount,
        ACCEPTED.chunkSize,
        ACCEPTED.boolean,
        ACCEPTED.logLevel,
        ACCEPTED.shutdownGrace,
        "an integer number of bytes from 0 to 2147483647 (0 keeps Node's 65535-byte default)",
        "an integer from 0 to 4294967295 (0: no limit)",
        ACCEPTED.metricsPort,
        VERSION_MAX_ACCEPTED,
        UPLOAD_IDLE_ACCEPTED,
        UPLOAD_MIN_RATE_ACCEPTED,
        UPLOAD_MIN_RATE_PERIOD_ACCEPTED,
        SEND_IDLE_ACCEPTED,
        UPLOAD_MIN_RATE_ACCEPTED,
        UPLOAD_MIN_RATE_PERIOD_ACCEPTED,
        ACCEPTED.cacheMaxBytes,
        PEER_RATE_ACCEPTED,
        PEER_RATE_ACCEPTED,
        PEER_BAN_ACCEPTED,
        PEER_IPV6_PREFIX_ACCEPTED,
        "redis://[user:password@]host[:port][/db] or rediss://... for TLS (port 6379 and db 0 by default), or redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_username=...&sentinel_password=...] or rediss+sentinel://... for TLS (Sentinel port 26379 and db 0 by default) (empty: single mode)",
        "an integer from 0 to 1000 (0: no wait)",
        "a positive Go duration such as 100ms or 1s, at most 1s (units ns, us, ms, s, m, h)",
        "comma-separated pairs announced=reachable, each side host:port (IPv6 in brackets), e.g. 10.0.1.5:6379=redis.example.com:30001,10.0.1.6:6379=redis.example.com:30002 (empty: every node is reached at the address it announces)",
        ACCEPTED.boolean,
      ],
    );
    for (const variable of CONFIG_VARIABLES) {
      assert.ok(variable.description.length > 0, variable.name);
    }
  });

  test("rows only expose the documented fields and are frozen", () => {
    for (const variable of CONFIG_VARIABLES) {
      assert.deepEqual(Object.keys(variable), ["name", "default", "accepted", "description"]);
      assert.ok(Object.isFrozen(variable));
    }
    assert.ok(Object.isFrozen(CONFIG_VARIABLES));
  });
});

describe(`${P}PORT`, () => {
  const name = `${P}PORT`;
  test("accepts integers from 0 to 65535", () => {
    assert.equal(loadConfig({ [name]: "0" }).port, 0);
    assert.equal(loadConfig({ [name]: "1" }).port, 1);
    assert.equal(loadConfig({ [name]: "8080" }).port, 8080);
    assert.equal(loadConfig({ [name]: "65535" }).port, 65535);
    assert.equal(loadConfig({ [name]: "09000" }).port, 9000);
  });
  test("rejects out of range values", () => {
    assertInvalid({ [name]: "65536" }, `${name}="65536" is invalid: expected ${ACCEPTED.port}`);
    assertInvalid({ [name]: "-1" }, `${name}="-1" is invalid: expected ${ACCEPTED.port}`);
  });
  test("rejects anything but decimal digits", () => {
    for (const value of ["1e3", "0x10", "12abc", "1.5", "+5", "9 000", "abc", "٣"]) {
      assertInvalid({ [name]: value }, `${name}=${JSON.stringify(value)} is invalid: expected ${ACCEPTED.port}`);
    }
  });
});

describe(`${P}ARCHIVE_DIR`, () => {
  const name = `${P}ARCHIVE_DIR`;
  test("accepts any path, trimmed", () => {
    assert.equal(loadConfig({ [name]: "/var/lib/registry" }).archiveDir, "/var/lib/registry");
    assert.equal(loadConfig({ [name]: "  relative dir/x  " }).archiveDir, "relative dir/x");
  });
});

describe(`${P}VERSION_CACHE_MAX_SIZE`, () => {
  const name = `${P}VERSION_CACHE_MAX_SIZE`;
  test("accepts integers from 1 to Number.MAX_SAFE_INTEGER", () => {
    assert.equal(loadConfig({ [name]: "1" }).cacheMaxBytes, 1);
    assert.equal(loadConfig({ [name]: "536870912" }).cacheMaxBytes, 536_870_912);
    assert.equal(loadConfig({ [name]: "9007199254740991" }).cacheMaxBytes, Number.MAX_SAFE_INTEGER);
  });
  test("rejects 0, unsafe integers and non-integers", () => {
    for (const value of ["0", "9007199254740992", "99999999999999999999999", "1e9", "1GB", "1.5"]) {
      assertInvalid(
        { [name]: value },
        `${name}=${JSON.stringify(value)} is invalid: expected ${ACCEPTED.cacheMaxBytes}`,
      );
    }
  });
});

describe(`${P}VERSION_CACHE_EXPIRATION`, () => {
  const name = `${P}VERSION_CACHE_EXPIRATION`;
  test("accepts Go durations, 0 disabling expiration", () => {
    assert.equal(loadConfig({ [name]: "0" }).cacheExpirationMs, 0);
    assert.equal(loadConfig({ [name]: "30m" }).cacheExpirationMs, 1_800_000);
    assert.equal(loadConfig({ [name]: "2h45m" }).cacheExpirationMs, 9_900_000);
    assert.equal(loadConfig({ [name]: "1.5s" }).cacheExpirationMs, 1500);
    assert.equal(loadConfig({ [name]: "1us" }).cacheExpirationMs, 0.001);
    assert.equal(loadConfig({ [name]: "-0s" }).cacheExpirationMs, 0);
  });
  test("rejects malformed durations with the reason", () => {
    assertInvalid({ [name]: "10" }, `${name}="10" is invalid: missing unit; expected ${ACCEPTED.cacheExpiration}`);
    assertInvalid(
      { [name]: "1d" },
      `${name}="1d" is invalid: unknown unit "d"; expected ${ACCEPTED.cacheExpiration}`,
    );
    assertInvalid(
      { [name]: "9999999999h" },
      `${name}="9999999999h" is invalid: out of range (at most 2562047h47m16.854775807s, about 292 years); ` +
        `expected ${ACCEPTED.cacheExpiration}`,
    );
  });
  test("rejects negative durations", () => {
    assertInvalid(
      { [name]: "-1m" },
      `${name}="-1m" is invalid: negative duration; expected ${ACCEPTED.cacheExpiration}`,
    );
  });
});

describe(`${P}VERSION_CACHE_TO_PRUNE_COUNT`, () => {
  const name = `${P}VERSION_CACHE_TO_PRUNE_COUNT`;
  test("accepts integers from 1 to 1000000", () => {
    assert.equal(loadConfig({ [name]: "1" }).cachePruneCount, 1);
    assert.equal(loadConfig({ [name]: "20" }).cachePruneCount, 20);
    assert.equal(loadConfig({ [name]: "1000000" }).cachePruneCount, 1_000_000);
  });
  test("rejects out of range and non-integer values", () => {
    for (const value of ["0", "1000001", "-1", "2.0", "five"]) {
      assertInvalid({ [name]: value }, `${name}=${JSON.stringify(value)} is invalid: expected ${ACCEPTED.pruneCount}`);
    }
  });
});

describe(`${P}SENT_MODEL_VERSION_DATA_CHUNK_SIZE`, () => {
  const name = `${P}SENT_MODEL_VERSION_DATA_CHUNK_SIZE`;
  test("accepts integers from 1 to 64 MiB", () => {
    assert.equal(loadConfig({ [name]: "1" }).sentChunkSize, 1);
    assert.equal(loadConfig({ [name]: "65536" }).sentChunkSize, 65_536);
    assert.equal(loadConfig({ [name]: "67108864" }).sentChunkSize, 67_108_864);
  });
  test("rejects 0, which would stream endless empty chunks", () => {
    assertInvalid(
      { [name]: "0" },
      `${P}SENT_MODEL_VERSION_DATA_CHUNK_SIZE="0" is invalid: expected an integer number of bytes from 1 to 67108864`,
    );
  });
  test("rejects values above 64 MiB and non-integers", () => {
    for (const value of ["67108865", "2MiB", "0x10", "1e6"]) {
      assertInvalid({ [name]: value }, `${name}=${JSON.stringify(value)} is invalid: expected ${ACCEPTED.chunkSize}`);
    }
  });
});

describe(`${P}GRPC_REFLECTION`, () => {
  const name = `${P}GRPC_REFLECTION`;
  test("accepts Go's strconv.ParseBool values", () => {
    for (const value of ["1", "t", "T", "TRUE", "true", "True"]) {
      assert.equal(loadConfig({ [name]: value }).grpcReflection, true, value);
    }
    for (const value of ["0", "f", "F", "FALSE", "false", "False"]) {
      assert.equal(loadConfig({ [name]: value }).grpcReflection, false, value);
    }
  });
  test("rejects anything else", () => {
    for (const value of ["yes", "no", "on", "tRUE", "2", "y"]) {
      assertInvalid({ [name]: value }, `${name}=${JSON.stringify(value)} is invalid: expected ${ACCEPTED.boolean}`);
    }
  });
});

describe(`${P}LOG_LEVEL`, () => {
  const name = `${P}LOG_LEVEL`;
  test("accepts every level, case-insensitively", () => {
    for (const level of ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const) {
      assert.equal(loadConfig({ [name]: level }).logLevel, level);
      assert.equal(loadConfig({ [name]: level.toUpperCase() }).logLevel, level);
    }
    assert.equal(loadConfig({ [name]: "Debug" }).logLevel, "debug");
  });
  test("rejects unknown levels", () => {
    for (const value of ["warning", "verbose", "off", "0"]) {
      assertInvalid({ [name]: value }, `${name}=${JSON.stringify(value)} is invalid: expected ${ACCEPTED.logLevel}`);
    }
  });
});

describe(`${P}SHUTDOWN_GRACE_PERIOD`, () => {
  const name = `${P}SHUTDOWN_GRACE_PERIOD`;
  test("accepts Go durations", () => {
    assert.equal(loadConfig({ [name]: "0" }).shutdownGraceMs, 0);
    assert.equal(loadConfig({ [name]: "500ms" }).shutdownGraceMs, 500);
    assert.equal(loadConfig({ [name]: "1m30s" }).shutdownGraceMs, 90_000);
    assert.equal(loadConfig({ [name]: "596h" }).shutdownGraceMs, 596 * 3_600_000);
  });
  test("rejects what a Node timer cannot wait (it would fire at once and cancel every call)", () => {
    assertInvalid({ [name]: "597h" }, `${name}="597h" is invalid: longer than 596h; expected ${ACCEPTED.shutdownGrace}`);
  });
  test("rejects malformed and negative durations", () => {
    assertInvalid({ [name]: "5" }, `${name}="5" is invalid: missing unit; expected ${ACCEPTED.shutdownGrace}`);
    assertInvalid(
      { [name]: "-10s" },
      `${name}="-10s" is invalid: negative duration; expected ${ACCEPTED.shutdownGrace}`,
    );
    assertInvalid(
      { [name]: "10 s" },
      `${name}="10 s" is invalid: unknown unit " s"; expected ${ACCEPTED.shutdownGrace}`,
    );
  });
});

describe(`${P}HTTP2_WINDOW_SIZE`, () => {
  const name = `${P}HTTP2_WINDOW_SIZE`;
  const accepted = "an integer number of bytes from 0 to 2147483647 (0 keeps Node's 65535-byte default)";
  test("accepts 0 to 2^31-1", () => {
    assert.equal(loadConfig({ [name]: "0" }).http2WindowBytes, 0);
    assert.equal(loadConfig({ [name]: "1048576" }).http2WindowBytes, 1_048_576);
    assert.equal(loadConfig({ [name]: "2147483647" }).http2WindowBytes, 2_147_483_647);
  });
  test("rejects values outside the HTTP/2 range", () => {
    assertInvalid({ [name]: "2147483648" }, `${name}="2147483648" is invalid: expected ${accepted}`);
    assertInvalid({ [name]: "-1" }, `${name}="-1" is invalid: expected ${accepted}`);
    assertInvalid({ [name]: "8MiB" }, `${name}="8MiB" is invalid: expected ${accepted}`);
  });
});

describe(`${P}METRICS_PORT`, () => {
  const name = `${P}METRICS_PORT`;
  test("is off (0) by default", () => {
    assert.equal(loadConfig({}).metricsPort, 0);
    assert.equal(loadConfig({ [name]: "" }).metricsPort, 0);
  });
  test("accepts 0 (off) and ports from 1 to 65535", () => {
    assert.equal(loadConfig({ [name]: "0" }).metricsPort, 0);
    assert.equal(loadConfig({ [name]: "1" }).metricsPort, 1);
    assert.equal(loadConfig({ [name]: "9100" }).metricsPort, 9100);
    assert.equal(loadConfig({ [name]: " 9100\n" }).metricsPort, 9100);
    assert.equal(loadConfig({ [name]: "65535" }).metricsPort, 65535);
  });
  test("does not change the gRPC port", () => {
    const config = loadConfig({ [name]: "9100", [`${P}PORT`]: "9001" });
    assert.equal(config.metricsPort, 9100);
    assert.equal(config.port, 9001);
  });
  test("rejects out of range values and anything but decimal digits", () => {
    for (const value of ["65536", "-1", "1e3", "0x10", "9100.0", "off", "false", ":9100"]) {
      assertInvalid({ [name]: value }, `${name}=${JSON.stringify(value)} is invalid: expected ${ACCEPTED.metricsPort}`);
    }
  });
  test("is reported with the other invalid variables, in CONFIG_VARIABLES order", () => {
    assertInvalid(
      { [name]: "metrics", [`${P}PORT`]: "grpc" },
      `${P}PORT="grpc" is invalid: expected ${ACCEPTED.port}`,
      `${name}="metrics" is invalid: expected ${ACCEPTED.metricsPort}`,
    );
  });
});

const VERSION_MAX_ACCEPTED =
  "an integer number of bytes from 0 to 9007199254740991 (0: no limit but the cache budget for transient versions and the disk for archived ones)";

describe(`${P}VERSION_MAX_SIZE`, () => {
  const name = `${P}VERSION_MAX_SIZE`;
  test("accepts 0 (no limit) and byte counts", () => {
    assert.equal(loadConfig({}).versionMaxBytes, 0);
    assert.equal(loadConfig({ [name]: "1073741824" }).versionMaxBytes, 1_073_741_824);
  });
  test("rejects what is not a byte count", () => {
    assertInvalid({ [name]: "1GiB" }, `${name}="1GiB" is invalid: expected ${VERSION_MAX_ACCEPTED}`);
    assertInvalid({ [name]: "-5" }, `${name}="-5" is invalid: expected ${VERSION_MAX_ACCEPTED}`);
  });
});

const UPLOAD_IDLE_ACCEPTED =
  "a non-negative Go duration such as 10s or 1m, at most 596h (units ns, us, ms, s, m, h); 0 disables the limit";
const UPLOAD_MIN_RATE_ACCEPTED = "an integer number of bytes per second from 0 to 9007199254740991 (0 disables the limit)";
const UPLOAD_MIN_RATE_PERIOD_ACCEPTED = "a positive Go duration such as 5s or 1m, at most 596h (units ns, us, ms, s, m, h)";
const SEND_IDLE_ACCEPTED =
  "a non-negative Go duration such as 30s or 2m, at most 596h (units ns, us, ms, s, m, h); 0 disables the limit";

describe("slow clients: UPLOAD_IDLE_TIMEOUT, UPLOAD_MIN_RATE, UPLOAD_MIN_RATE_PERIOD, SEND_IDLE_TIMEOUT", () => {
  test("accept durations and rates, 0 disabling a limit", () => {
    const config = loadConfig({
      [`${P}UPLOAD_IDLE_TIMEOUT`]: "0",
      [`${P}UPLOAD_MIN_RATE`]: "0",
      [`${P}UPLOAD_MIN_RATE_PERIOD`]: "1.5s",
      [`${P}SEND_IDLE_TIMEOUT`]: "2m",
    });
    assert.deepEqual(
      [config.uploadIdleTimeoutMs, config.uploadMinRateBytesPerSecond, config.uploadMinRatePeriodMs, config.sendIdleTimeoutMs],
      [0, 0, 1500, 120_000],
    );
    assert.equal(loadConfig({ [`${P}UPLOAD_IDLE_TIMEOUT`]: "596h" }).uploadIdleTimeoutMs, 596 * 3_600_000);
  });
  test("reject malformed, negative or too long durations, naming the variable and the accepted form", () => {
    assertInvalid(
      { [`${P}UPLOAD_IDLE_TIMEOUT`]: "30", [`${P}SEND_IDLE_TIMEOUT`]: "-1s" },
      `${P}UPLOAD_IDLE_TIMEOUT="30" is invalid: missing unit; expected ${UPLOAD_IDLE_ACCEPTED}`,
      `${P}SEND_IDLE_TIMEOUT="-1s" is invalid: negative duration; expected ${SEND_IDLE_ACCEPTED}`,
    );
    assertInvalid(
      { [`${P}UPLOAD_IDLE_TIMEOUT`]: "597h" },
      `${P}UPLOAD_IDLE_TIMEOUT="597h" is invalid: longer than 596h; expected ${UPLOAD_IDLE_ACCEPTED}`,
    );
  });
  test("the rate is a byte count per second and its period is positive", () => {
    assertInvalid(
      { [`${P}UPLOAD_MIN_RATE`]: "64KiB", [`${P}UPLOAD_MIN_RATE_PERIOD`]: "0" },
      `${P}UPLOAD_MIN_RATE="64KiB" is invalid: expected ${UPLOAD_MIN_RATE_ACCEPTED}`,
      `${P}UPLOAD_MIN_RATE_PERIOD="0" is invalid: shorter than 1ms; expected ${UPLOAD_MIN_RATE_PERIOD_ACCEPTED}`,
    );
  });
});

describe("slow readers: SEND_MIN_RATE, SEND_MIN_RATE_PERIOD", () => {
  test("a rate in bytes per second (0 disables it) and a positive period", () => {
    const config = loadConfig({ [`${P}SEND_MIN_RATE`]: "0", [`${P}SEND_MIN_RATE_PERIOD`]: "2.5s" });
    assert.deepEqual([config.sendMinRateBytesPerSecond, config.sendMinRatePeriodMs], [0, 2500]);
    assert.equal(loadConfig({ [`${P}SEND_MIN_RATE`]: "1048576" }).sendMinRateBytesPerSecond, 1_048_576);
  });
  test("refuses units, negative rates and a zero period, naming the variable and the accepted form", () => {
    assertInvalid(
      { [`${P}SEND_MIN_RATE`]: "16KiB", [`${P}SEND_MIN_RATE_PERIOD`]: "0" },
      `${P}SEND_MIN_RATE="16KiB" is invalid: expected ${UPLOAD_MIN_RATE_ACCEPTED}`,
      `${P}SEND_MIN_RATE_PERIOD="0" is invalid: shorter than 1ms; expected ${UPLOAD_MIN_RATE_PERIOD_ACCEPTED}`,
    );
    assertInvalid({ [`${P}SEND_MIN_RATE`]: "-1" }, `${P}SEND_MIN_RATE="-1" is invalid: expected ${UPLOAD_MIN_RATE_ACCEPTED}`);
  });
});

describe("STREAMED_READS_MAX_SIZE", () => {
  const name = `${P}STREAMED_READS_MAX_SIZE`;
  test("takes a positive byte count", () => {
    assert.equal(loadConfig({ [name]: "1" }).streamedReadsMaxBytes, 1);
    assert.equal(loadConfig({ [name]: "536870912" }).streamedReadsMaxBytes, 536_870_912);
  });
  test("refuses 0, units and negative numbers, naming the variable and the accepted form", () => {
    assertInvalid({ [name]: "0" }, `${name}="0" is invalid: expected ${ACCEPTED.cacheMaxBytes}`);
    assertInvalid({ [name]: "64MiB" }, `${name}="64MiB" is invalid: expected ${ACCEPTED.cacheMaxBytes}`);
  });
});

const PEER_RATE_ACCEPTED = "an integer from 0 to 1000000 (0: no limit)";
const PEER_BAN_ACCEPTED = "a non-negative Go duration such as 30s, 1m or 10m, at most 596h (units ns, us, ms, s, m, h)";
const PEER_IPV6_PREFIX_ACCEPTED = "an integer from 1 to 128 (bits)";

describe("the per-peer-address limits", () => {
  const newStreams = `${P}PEER_NEW_STREAMS_PER_SECOND`;
  const cancelled = `${P}PEER_CANCELLED_STREAMS_PER_SECOND`;
  const ban = `${P}PEER_BAN_PERIOD`;
  test("accept 0 (no limit), rates and durations", () => {
    const config = loadConfig({ [newStreams]: "0", [cancelled]: "25", [ban]: "1500ms" });
    assert.equal(config.peerNewStreamsPerSecond, 0);
    assert.equal(config.peerCancelledStreamsPerSecond, 25);
    assert.equal(config.peerBanMs, 1500);
  });
  test("reject what is not a rate or a duration", () => {
    assertInvalid(
      { [newStreams]: "1e4", [cancelled]: "1000001", [ban]: "600h" },
      `${newStreams}="1e4" is invalid: expected ${PEER_RATE_ACCEPTED}`,
      `${cancelled}="1000001" is invalid: expected ${PEER_RATE_ACCEPTED}`,
      `${ban}="600h" is invalid: longer than 596h; expected ${PEER_BAN_ACCEPTED}`,
    );
    assertInvalid({ [ban]: "-1s" }, `${ban}="-1s" is invalid: negative duration; expected ${PEER_BAN_ACCEPTED}`);
  });
  test("MAX_CONCURRENT_STREAMS takes 0 (no limit) to 2^32 - 1", () => {
    const streams = `${P}MAX_CONCURRENT_STREAMS`;
    assert.equal(loadConfig({ [streams]: "100" }).maxConcurrentStreams, 100);
    assert.equal(loadConfig({ [streams]: "4294967295" }).maxConcurrentStreams, 4_294_967_295);
    assertInvalid({ [streams]: "4294967296" }, `${streams}="4294967296" is invalid: expected an integer from 0 to 4294967295 (0: no limit)`);
    assertInvalid({ [streams]: "-1" }, `${streams}="-1" is invalid: expected an integer from 0 to 4294967295 (0: no limit)`);
  });

  test("count an IPv6 client as a prefix of 1 to 128 bits", () => {
    const prefix = `${P}PEER_IPV6_PREFIX`;
    assert.equal(loadConfig({ [prefix]: "128" }).peerIpv6PrefixBits, 128);
    assert.equal(loadConfig({ [prefix]: "48" }).peerIpv6PrefixBits, 48);
    assertInvalid({ [prefix]: "0" }, `${prefix}="0" is invalid: expected ${PEER_IPV6_PREFIX_ACCEPTED}`);
    assertInvalid({ [prefix]: "129" }, `${prefix}="129" is invalid: expected ${PEER_IPV6_PREFIX_ACCEPTED}`);
    assertInvalid({ [prefix]: "/64" }, `${prefix}="/64" is invalid: expected ${PEER_IPV6_PREFIX_ACCEPTED}`);
  });
});

describe("whitespace", () => {
  test("surrounding whitespace is trimmed before parsing", () => {
    const config = loadConfig({
      [`${P}PORT`]: " 8080 ",
      [`${P}VERSION_CACHE_MAX_SIZE`]: "\t1024\n",
      [`${P}VERSION_CACHE_EXPIRATION`]: " 2h ",
      [`${P}VERSION_CACHE_TO_PRUNE_COUNT`]: " 3",
      [`${P}SENT_MODEL_VERSION_DATA_CHUNK_SIZE`]: "4096 ",
      [`${P}GRPC_REFLECTION`]: " true\r\n",
      [`${P}LOG_LEVEL`]: " WARN ",
      [`${P}SHUTDOWN_GRACE_PERIOD`]: "  1s",
    });
    assert.deepEqual(config, {
      ...DEFAULTS,
      port: 8080,
      cacheMaxBytes: 1024,
      cacheExpirationMs: 7_200_000,
      cachePruneCount: 3,
      sentChunkSize: 4096,
      grpcReflection: true,
      logLevel: "warn",
      shutdownGraceMs: 1000,
    });
  });

  test("error messages quote the value as it was set, whitespace included", () => {
    assertInvalid({ [`${P}PORT`]: " 70000\n" }, `${P}PORT=" 70000\\n" is invalid: expected ${ACCEPTED.port}`);
  });

  test("inner whitespace is not removed", () => {
    assertInvalid({ [`${P}PORT`]: "90 00" }, `${P}PORT="90 00" is invalid: expected ${ACCEPTED.port}`);
  });
});

describe("several invalid variables", () => {
  test("are all reported, one per line, in CONFIG_VARIABLES order", () => {
    assertInvalid(
      {
        [`${P}LOG_LEVEL`]: "loud",
        [`${P}PORT`]: "http",
        [`${P}SENT_MODEL_VERSION_DATA_CHUNK_SIZE`]: "0",
        [`${P}VERSION_CACHE_EXPIRATION`]: "forever",
        [`${P}ARCHIVE_DIR`]: "/data",
      },
      `${P}PORT="http" is invalid: expected ${ACCEPTED.port}`,
      `${P}VERSION_CACHE_EXPIRATION="forever" is invalid: expected a number, found "f"; ` +
        `expected ${ACCEPTED.cacheExpiration}`,
      `${P}SENT_MODEL_VERSION_DATA_CHUNK_SIZE="0" is invalid: expected ${ACCEPTED.chunkSize}`,
      `${P}LOG_LEVEL="loud" is invalid: expected ${ACCEPTED.logLevel}`,
    );
  });
});

describe("ignoredVariables", () => {
  test("lists unknown COGMENT_MODEL_REGISTRY_* variables, sorted, and nothing else", () => {
    const config = loadConfig({
      [`${P}PROT`]: "9001",
      [`${P}PORT`]: "9002",
      [`${P}ARCHIVE_DIRECTORY`]: "",
      [`${P}`]: "x",
      COGMENT_ORCHESTRATOR_PORT: "9000",
      cogment_model_registry_port: "1",
      PATH: "/usr/bin",
      HOME: "/root",
    });
    assert.equal(config.port, 9002);
    assert.deepEqual(config.ignoredVariables, [`${P}`, `${P}ARCHIVE_DIRECTORY`, `${P}PROT`]);
  });

  test("says why each is ignored: later upstream names are named as such, the rest are typos", () => {
    assert.equal(
      describeIgnoredVariable(`${P}VERSION_CACHE_MAX_ITEMS`),
      `a later upstream release's cache limit in versions; not supported: the cache is bounded in bytes by ${P}VERSION_CACHE_MAX_SIZE`,
    );
    assert.equal(describeIgnoredVariable(`${P}DIRECTORY_ENDPOINT`), "a later upstream release's Cogment directory registration; not supported");
    assert.equal(describeIgnoredVariable(`${P}PROT`), "unknown variable (a typo?)");
  });

  test("is empty when every variable is known", () => {
    const env: Record<string, string> = {};
    for (const variable of CONFIG_VARIABLES) {
      env[variable.name] = variable.default;
    }
    assert.deepEqual(loadConfig(env), DEFAULTS);
  });
});
