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

  describe("REDIS_WAIT_REPLICAS and REDIS_WAIT_TIMEOUT", () => {
    const URL = { COGMENT_MODEL_REGISTRY_REDIS_URL: "redis://127.0.0.1:6379" };
    const invalid = (env: Record<string, string>, message: string): void => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => error instanceof ConfigError && error.message === message,
      );
    };

    test("off by default (0 replicas, 1 s), read when set", () => {
      assert.equal(loadConfig(URL).redisWaitReplicas, 0);
      assert.equal(loadConfig(URL).redisWaitTimeoutMs, 1000);
      const config = loadConfig({ ...URL, COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: "2", COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "250ms" });
      assert.equal(config.redisWaitReplicas, 2);
      assert.equal(config.redisWaitTimeoutMs, 250);
      assert.equal(loadConfig({ ...URL, COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "1s" }).redisWaitTimeoutMs, 1000);
      assert.equal(loadConfig({ ...URL, COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "1ms" }).redisWaitTimeoutMs, 1);
      assert.equal(loadConfig({ ...URL, COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "1500us" }).redisWaitTimeoutMs, 2);
      // 0 needs no Redis: the default of single mode.
      assert.equal(loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: "0" }).redisWaitReplicas, 0);
    });

    test("a bad count is an error naming the variable and the accepted form", () => {
      for (const value of ["-1", "1001", "one", "1.5", "0x1"]) {
        invalid(
          { ...URL, COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: value },
          `COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS=${JSON.stringify(value)} is invalid: expected an integer from 0 to 1000 (0: no wait)`,
        );
      }
    });

    test("a bad timeout is an error naming the variable, the reason and the accepted form", () => {
      const accepted = "expected a positive Go duration such as 100ms or 1s, at most 1s (units ns, us, ms, s, m, h)";
      const cases: [string, string][] = [
        ["0", "shorter than 1ms; "],
        ["500us", "shorter than 1ms; "],
        ["1001ms", "longer than 1s; "],
        ["2s", "longer than 1s; "],
        ["-1s", "negative duration; "],
        ["10", "missing unit; "],
        ["1d", 'unknown unit "d"; '],
      ];
      for (const [value, reason] of cases) {
        invalid(
          { ...URL, COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: value },
          `COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT=${JSON.stringify(value)} is invalid: ${reason}${accepted}`,
        );
      }
    });

    test("replicas to wait for without a Redis is an error", () => {
      invalid(
        { COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: "1" },
        "COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS=1 needs COGMENT_MODEL_REGISTRY_REDIS_URL: only a Redis has replicas to wait for; unset it or set COGMENT_MODEL_REGISTRY_REDIS_URL",
      );
    });
  });
});
