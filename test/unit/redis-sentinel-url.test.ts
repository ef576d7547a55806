import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config.js";
import { RedisUrlError, describeRedisEndpoint, isSentinelUrl, parseRedisUrl, redisAddress } from "../../src/redis/index.js";
import { parseNatMap } from "../../src/redis/nat-map.js";
import { sentinelClientOptions } from "../../src/redis/redis-sentinel-url.js";

const FORM =
  "expected redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_username=...&sentinel_password=...] or rediss+sentinel://... for TLS (Sentinel port 26379 and db 0 by default)";

describe("COGMENT_MODEL_REGISTRY_REDIS_URL, Sentinel form", () => {
  test("reads the Sentinels (port 26379 by default), the master name, the database, the data nodes' and the Sentinels' credentials", () => {
    assert.deepEqual(parseRedisUrl("redis+sentinel://s1,s2:26380,[::1]:26381,10.0.0.4/mymaster"), {
      host: "s1",
      port: 26379,
      tls: false,
      username: undefined,
      password: undefined,
      db: 0,
      sentinel: {
        masterName: "mymaster",
        sentinels: [
          { host: "s1", port: 26379 },
          { host: "s2", port: 26380 },
          { host: "::1", port: 26381 },
          { host: "10.0.0.4", port: 26379 },
        ],
        username: undefined,
        password: undefined,
      },
    });
    assert.deepEqual(
      parseRedisUrl("rediss+sentinel://app:p%40ss%2Fw0rd@sentinel.example:5000/registry%20primary/3?sentinel_username=watch&sentinel_password=s%26cret"),
      {
        host: "sentinel.example",
        port: 5000,
        tls: true,
        username: "app",
        password: "p@ss/w0rd",
        db: 3,
        sentinel: {
          masterName: "registry primary",
          sentinels: [{ host: "sentinel.example", port: 5000 }],
          username: "watch",
          password: "s&cret",
        },
      },
    );
    // A "+" stays a "+" in the Sentinels' password, as in the data nodes' (not a space, as URLSearchParams reads it).
    const plus = parseRedisUrl("redis+sentinel://:a+b@s1/m?sentinel_password=s+cret&sentinel_username=w%2Bx");
    assert.equal(plus.password, "a+b");
    assert.equal(plus.sentinel?.password, "s+cret");
    assert.equal(plus.sentinel?.username, "w+x");
    const passwordOnly = parseRedisUrl("REDIS+SENTINEL://:secret@s1/m/");
    assert.equal(passwordOnly.username, undefined);
    assert.equal(passwordOnly.password, "secret");
    assert.equal(passwordOnly.db, 0);
    assert.equal(passwordOnly.tls, false);
  });

  test("only the sentinel schemes are Sentinel URLs", () => {
    assert.equal(isSentinelUrl("redis+sentinel://s/m"), true);
    assert.equal(isSentinelUrl("rediss+sentinel://s/m"), true);
    assert.equal(isSentinelUrl("Redis+Sentinel://s/m"), true);
    assert.equal(isSentinelUrl("redis://s:26379/0"), false);
    assert.equal(isSentinelUrl("sentinel://s/m"), false);
    assert.equal(isSentinelUrl("s1,s2/m"), false);
  });

  test("errors and logs name the master and the Sentinels, never a password", () => {
    const endpoint = parseRedisUrl("rediss+sentinel://app:secret@s1,[fd00::2]:26380/main/2?sentinel_password=hidden&sentinel_username=watch");
    assert.equal(redisAddress(endpoint), 'master "main" of Sentinels s1:26379,[fd00::2]:26380');
    assert.equal(
      describeRedisEndpoint(endpoint),
      "rediss+sentinel://app:***@s1:26379,[fd00::2]:26380/main/2?sentinel_username=watch&sentinel_password=***",
    );
    assert.equal(describeRedisEndpoint(parseRedisUrl("redis+sentinel://s1/m")), "redis+sentinel://s1:26379/m/0");
  });

  test("rejects every bad form with the reason and the accepted form, echoing no part of the value", () => {
    for (const [url, reason] of [
      ["redis+sentinel:s1/m", "the scheme is not followed by ://"],
      ["redis+sentinel://u:secret@s1", "the master name is missing"],
      ["redis+sentinel://u:secret@s1/", "the master name is missing"],
      ["redis+sentinel://u:secret@/m", "Sentinel 1 of 1 has no host, or one that is not a name, an IPv4 address or a bracketed IPv6 address"],
      ["redis+sentinel://u:secret@s1,,s3/m", "Sentinel 2 of 3 has no host, or one that is not a name, an IPv4 address or a bracketed IPv6 address"],
      ["redis+sentinel://s1,fd00::2/m", "Sentinel 2 of 2 has no host, or one that is not a name, an IPv4 address or a bracketed IPv6 address"],
      ["redis+sentinel://s1:secret/m", "Sentinel 1 of 1 has a port that is not a number from 1 to 65535"],
      ["redis+sentinel://s1,s2:0/m", "Sentinel 2 of 2 has a port that is not a number from 1 to 65535"],
      ["redis+sentinel://s1:65536/m", "Sentinel 1 of 1 has a port that is not a number from 1 to 65535"],
      ["redis+sentinel://s1/m/secret", "the database (after the master name) is not a number"],
      ["redis+sentinel://s1/m/1/2", "the path has more than a master name and a database"],
      ["redis+sentinel://s1/m/2000000", "the database is out of range"],
      ["redis+sentinel://s1/m?secret=1", "the only query parameters accepted are sentinel_username and sentinel_password"],
      ["redis+sentinel://s1/m#secret", "fragments are not supported"],
      ["redis+sentinel://u:%E0%A4%Asecret@s1/m", "the password is not valid percent-encoding"],
      ["redis+sentinel://s1/%E0%A4%Asecret", "the master name is not valid percent-encoding"],
      // A password with an unencoded "/" ends the authority early: still no echo of it.
      ["redis+sentinel://u:se/cret@s1/m", "Sentinel 1 of 1 has a port that is not a number from 1 to 65535"],
    ] as const) {
      assert.throws(
        () => parseRedisUrl(url),
        (error: unknown) => {
          assert.ok(error instanceof RedisUrlError, url);
          assert.equal(error.message, `${reason}; ${FORM}`, url);
          assert.doesNotMatch(error.message, /secret|se\/cret/);
          return true;
        },
      );
    }
  });

  test("a bad value is a start-up error naming the variable and every accepted form, never echoing the value", () => {
    assert.throws(
      () => loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_URL: "redis+sentinel://app:hunter2@s1,s2" }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          "COGMENT_MODEL_REGISTRY_REDIS_URL=(value not shown: it may hold a password) is invalid: the master name is missing; expected redis://[user:password@]host[:port][/db] or rediss://... for TLS (port 6379 and db 0 by default), or redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_username=...&sentinel_password=...] or rediss+sentinel://... for TLS (Sentinel port 26379 and db 0 by default) (empty: single mode)",
    );
    assert.equal(loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_URL: "redis+sentinel://s1,s2/mymaster/1" }).redis?.sentinel?.masterName, "mymaster");
  });

  test("ioredis follows the primary through the Sentinels: role master, failover detection, the same timeout and retries", () => {
    const endpoint = parseRedisUrl("rediss+sentinel://app:data@s1,s2:26380/main?sentinel_username=watch&sentinel_password=guard");
    const retry = (attempt: number): number => attempt;
    assert.deepEqual(sentinelClientOptions(endpoint.sentinel as NonNullable<typeof endpoint.sentinel>, true, 2000, retry), {
      sentinels: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26380 },
      ],
      name: "main",
      role: "master",
      sentinelUsername: "watch",
      sentinelPassword: "guard",
      sentinelCommandTimeout: 2000,
      sentinelRetryStrategy: retry,
      failoverDetector: true,
      tls: {},
      enableTLSForSentinelMode: true,
      sentinelTLS: {},
    });
    const plain = sentinelClientOptions(parseRedisUrl("redis+sentinel://s1/main").sentinel as NonNullable<typeof endpoint.sentinel>, false, 2000, retry);
    assert.equal("tls" in plain, false);
    assert.equal("sentinelTLS" in plain, false);
    assert.equal("natMap" in plain, false);
  });

  test("with a NAT map, ioredis reaches the primary (and the Sentinels) the Sentinels announce where the map says, each time a fresh object", () => {
    const target = parseRedisUrl("redis+sentinel://s1/main").sentinel as NonNullable<ReturnType<typeof parseRedisUrl>["sentinel"]>;
    const natMap = parseNatMap("10.1.0.4:6379=127.0.0.1:7001,[fd00::5]:26379=s1.example.com:26379");
    const { natMap: mapping } = sentinelClientOptions(target, false, 2000, (attempt) => attempt, natMap);
    assert.equal(typeof mapping, "function");
    const lookUp = mapping as (key: string) => { host: string; port: number } | null;
    assert.deepEqual(lookUp("10.1.0.4:6379"), { host: "127.0.0.1", port: 7001 });
    assert.deepEqual(lookUp("fd00::5:26379"), { host: "s1.example.com", port: 26379 });
    assert.equal(lookUp("10.1.0.4:6380"), null);
    // ioredis copies the TLS options into what it gets (Object.assign): never the map's own entry.
    assert.notEqual(lookUp("10.1.0.4:6379"), lookUp("10.1.0.4:6379"));
  });
});
