import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RedisUrlError, describeRedisEndpoint, parseRedisUrl, redisAddress } from "../../src/redis/index.js";

describe("COGMENT_MODEL_REGISTRY_REDIS_URL", () => {
  test("reads host, port, credentials, database and TLS", () => {
    assert.deepEqual(parseRedisUrl("redis://cache:6380/2"), {
      host: "cache",
      port: 6380,
      tls: false,
      username: undefined,
      password: undefined,
      db: 2,
    });
    assert.deepEqual(parseRedisUrl("rediss://registry:p%40ss@redis.example:6379"), {
      host: "redis.example",
      port: 6379,
      tls: true,
      username: "registry",
      password: "p@ss",
      db: 0,
    });
    const bare = parseRedisUrl("redis://:secret@[::1]");
    assert.equal(bare.password, "secret");
    assert.equal(bare.username, undefined);
    assert.equal(redisAddress(bare), "[::1]:6379");
  });

  test("logs never show the password", () => {
    assert.equal(describeRedisEndpoint(parseRedisUrl("rediss://registry:secret@redis:6379/1")), "rediss://registry:***@redis:6379/1");
    assert.equal(describeRedisEndpoint(parseRedisUrl("redis://:secret@redis")), "redis://:***@redis:6379/0");
    assert.equal(describeRedisEndpoint(parseRedisUrl("redis://redis")), "redis://redis:6379/0");
  });

  test("rejects other forms, naming the accepted one and never echoing the password", () => {
    const form = /expected redis:\/\/\[user:password@\]host\[:port\]\[\/db\] or rediss:\/\/\.\.\. for TLS/;
    for (const [url, reason] of [
      ["localhost:6379", /^scheme "localhost" is not supported; /],
      ["http://redis:6379", /^scheme "http" is not supported; /],
      ["redis://:secret@redis/x", /^the database \(the path after the host\) is not a number \(a "\/" in a password must be written %2F\); /],
      // A password holding an unencoded "/": the URL parser sees a path; no part of it is echoed.
      ["redis://user:123/secret@redis", /^the database \(the path after the host\) is not a number /],
      ["redis://redis/0?timeout=1", /^query parameters and fragments are not supported; /],
      ["not a url", /^not a URL; /],
    ] as const) {
      assert.throws(
        () => parseRedisUrl(url),
        (error: unknown) => {
          assert.ok(error instanceof RedisUrlError);
          assert.match(error.message, reason);
          assert.match(error.message, form);
          assert.doesNotMatch(error.message, /secret/);
          return true;
        },
      );
    }
  });
});
