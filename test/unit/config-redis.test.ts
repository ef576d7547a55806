import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("config: Redis (several instances)", () => {
  test("REDIS_URL gives the endpoint; unset is single mode", () => {
    assert.equal(loadConfig({}).redis, undefined);
    assert.deepEqual(loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_URL: "redis://app:s3cret@redis.internal:6380/2" }).redis, {
      host: "redis.internal",
      port: 6380,
      tls: false,
      username: "app",
      password: "s3cret",
      db: 2,
    });
    assert.equal(loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_URL: "rediss://redis.internal" }).redis?.tls, true);
  });

  test("a bad URL is an error naming the variable and the form, never echoing the value (it may hold a password)", () => {
    assert.throws(
      () => loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_URL: "http://user:hunter2@redis:6379" }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          'COGMENT_MODEL_REGISTRY_REDIS_URL=(value not shown: it may hold a password) is invalid: scheme "http" is not supported; expected redis://[user:password@]host[:port][/db] or rediss://... for TLS (port 6379 and db 0 by default), or redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_username=...&sentinel_password=...] or rediss+sentinel://... for TLS (Sentinel port 26379 and db 0 by default) (empty: single mode)',
    );
  });
});
