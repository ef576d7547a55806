import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config.js";
import { keySlot } from "../../src/redis/cluster-slot.js";
import { describeRedisEndpoint, parseRedisUrls } from "../../src/redis/redis-url.js";

describe("Redis Cluster: several seed URLs, key slots", () => {
  test("one URL is one endpoint as before (no clusterSeeds: a Cluster is detected at the first connection)", () => {
    assert.deepEqual(parseRedisUrls("redis://cache:6380/2"), { host: "cache", port: 6380, tls: false, username: undefined, password: undefined, db: 2 });
  });

  test("comma-separated URLs are a Redis Cluster's seed nodes, the first one the endpoint; the password is masked in the description", () => {
    const endpoint = parseRedisUrls("rediss://app:s3cret@node-a:7000, rediss://app:s3cret@node-b:7001");
    const seed = (host: string, port: number) => ({ host, port, tls: true, username: "app", password: "s3cret", db: 0 });
    assert.deepEqual(endpoint, { ...seed("node-a", 7000), clusterSeeds: [seed("node-a", 7000), seed("node-b", 7001)] });
    assert.equal(describeRedisEndpoint(endpoint), "rediss://app:***@node-a:7000/0,rediss://app:***@node-b:7001/0");
  });

  test("a comma in a password does not make a list: one URL stays one endpoint, also as a seed of a list", () => {
    assert.deepEqual(parseRedisUrls("redis://:pa,ss@cache:6380"), { host: "cache", port: 6380, tls: false, username: undefined, password: "pa,ss", db: 0 });
    const endpoint = parseRedisUrls("redis://app:a,b@node-a:7000,redis://app:a,b@node-b:7001");
    assert.deepEqual(
      endpoint.clusterSeeds?.map((seed) => [seed.host, seed.port, seed.password]),
      [
        ["node-a", 7000, "a,b"],
        ["node-b", 7001, "a,b"],
      ],
    );
  });

  test("bad lists are start-up errors naming the variable, the URL at fault and the accepted forms, never the password", () => {
    const cluster =
      "several URLs are nodes of one Redis Cluster, separated by commas, e.g. redis://node-a:6379,redis://node-b:6379, all with the same scheme, user and password and no database (one URL suffices: a Cluster is detected)";
    const accepted =
      "expected redis://[user:password@]host[:port][/db] or rediss://... for TLS (port 6379 and db 0 by default), or " +
      "redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_username=...&sentinel_password=...] " +
      "or rediss+sentinel://... for TLS (Sentinel port 26379 and db 0 by default) (empty: single mode)";
    for (const [value, reason] of [
      ["redis://:hunter2@a:1,", `an empty URL in the comma-separated list; ${cluster}`],
      ["redis://:hunter2@a:1,redis://:other@b:2", `URL 2 of the list differs from the first in scheme, user or password; ${cluster}`],
      ["redis://a:1,rediss://b:2", `URL 2 of the list differs from the first in scheme, user or password; ${cluster}`],
      ["redis://a:1,redis://b:2/3", `URL 2 of the list names database 3, but a Redis Cluster has only database 0; ${cluster}`],
      ["redis://a:1,http://b:2", 'URL 2 of the list: scheme "http" is not supported'],
      ["redis://a:1,redis+sentinel://s:26379/main", `URL 2 of the list is a Sentinel URL, which stands alone; ${cluster}`],
    ] as const) {
      assert.throws(
        () => loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_URL: value }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(
            error.message,
            `COGMENT_MODEL_REGISTRY_REDIS_URL=(value not shown: it may hold a password) is invalid: ${reason}; ${accepted}`,
          );
          return true;
        },
      );
    }
  });

  test("key slots are Redis Cluster's: CRC16 of the hash tag (or of the key without one), mod 16384", () => {
    // Values from CLUSTER KEYSLOT (Redis 7.0).
    assert.equal(keySlot("foo"), 12182);
    assert.equal(keySlot("{user1000}.following"), keySlot("{user1000}.followers"));
    assert.equal(keySlot("{user1000}.following"), 3443);
    assert.equal(keySlot("foo{}{bar}"), 8363);
    assert.equal(keySlot("foo{{bar}}zap"), 4015);
    assert.equal(keySlot("foo{bar}{zap}"), 5061);
    assert.equal(keySlot("123456789"), 12739); // CRC16-XMODEM check value 0x31C3, mod 16384
  });
});
