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

  describe("REDIS_NAT_MAP and REDIS_CLUSTER_RESOLVE_SEEDS", () => {
    const URL = { COGMENT_MODEL_REGISTRY_REDIS_URL: "redis://127.0.0.1:7000" };
    const NAT_MAP_ACCEPTED =
      "expected comma-separated pairs announced=reachable, each side host:port (IPv6 in brackets), e.g. 10.0.1.5:6379=redis.example.com:30001,10.0.1.6:6379=redis.example.com:30002 (empty: every node is reached at the address it announces)";
    const invalid = (env: Record<string, string>, message: string): void => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => error instanceof ConfigError && error.message === message,
      );
    };

    test("no map and resolved seeds by default; the map keyed as ioredis writes a node (IPv6 unbracketed)", () => {
      assert.deepEqual(loadConfig(URL).redisNatMap, new Map());
      assert.equal(loadConfig(URL).redisClusterResolveSeeds, true);
      const config = loadConfig({
        ...URL,
        COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP: " 172.18.0.2:6379=127.0.0.1:7001 , redis-1.internal:6379=redis.example.com:30002,[fd00::5]:6379=[::1]:7003",
        COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS: "false",
      });
      assert.deepEqual(
        config.redisNatMap,
        new Map([
          ["172.18.0.2:6379", { host: "127.0.0.1", port: 7001 }],
          ["redis-1.internal:6379", { host: "redis.example.com", port: 30002 }],
          ["fd00::5:6379", { host: "::1", port: 7003 }],
        ]),
      );
      assert.equal(config.redisClusterResolveSeeds, false);
      // Sentinels announce a primary too: the map applies to them.
      assert.equal(
        loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_URL: "redis+sentinel://s1/main", COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP: "10.1.0.4:6379=127.0.0.1:6379" }).redisNatMap.size,
        1,
      );
    });

    test("a malformed map is an error naming the variable, the pair, the reason and the accepted form", () => {
      const cases: [string, string][] = [
        ["10.0.0.1:6379", 'pair 1 of 1 "10.0.0.1:6379" is not announced=reachable'],
        ["a:1=b:2,c:3=d:4=e:5", 'pair 2 of 2 "c:3=d:4=e:5" is not announced=reachable'],
        ["a:1=b:2,", 'pair 2 of 2 "" is not announced=reachable'],
        ["10.0.0.1=127.0.0.1:7000", 'pair 1 of 1: "10.0.0.1" is not host:port (a name, an IPv4 address or a bracketed IPv6 address, and a port)'],
        ["::1:7000=127.0.0.1:7000", 'pair 1 of 1: "::1:7000" is not host:port (a name, an IPv4 address or a bracketed IPv6 address, and a port)'],
        ["10.0.0.1:6379=127.0.0.1:0", 'pair 1 of 1: "127.0.0.1:0" has a port that is not a number from 1 to 65535'],
        ["10.0.0.1:65536=127.0.0.1:7000", 'pair 1 of 1: "10.0.0.1:65536" has a port that is not a number from 1 to 65535'],
        ["a:1=b:2,a:1=c:3", "pair 2 of 2 maps a:1 a second time"],
        ["[fd00::5]:1=b:2,[fd00::5]:1=c:3", "pair 2 of 2 maps [fd00::5]:1 a second time"],
      ];
      for (const [value, reason] of cases) {
        invalid(
          { ...URL, COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP: value },
          `COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP=${JSON.stringify(value)} is invalid: ${reason}; ${NAT_MAP_ACCEPTED}`,
        );
      }
      invalid(
        { ...URL, COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS: "no" },
        'COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS="no" is invalid: expected a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False',
      );
    });

    test("a map without a Redis, and seeds kept by name without a Redis Cluster to connect to, are errors", () => {
      invalid(
        { COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP: "10.0.0.1:6379=127.0.0.1:7000" },
        "COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP needs COGMENT_MODEL_REGISTRY_REDIS_URL: it maps the addresses a Redis Cluster or Sentinels announce; unset it or set COGMENT_MODEL_REGISTRY_REDIS_URL",
      );
      invalid(
        { COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS: "false" },
        "COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS=false needs COGMENT_MODEL_REGISTRY_REDIS_URL: it changes how a Redis Cluster's nodes are connected to; unset it or set COGMENT_MODEL_REGISTRY_REDIS_URL",
      );
      invalid(
        { COGMENT_MODEL_REGISTRY_REDIS_URL: "redis+sentinel://s1/main", COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS: "0" },
        "COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS=false applies to a Redis Cluster, but COGMENT_MODEL_REGISTRY_REDIS_URL names Sentinels (redis+sentinel://), whose nodes it does not change; unset it",
      );
      // The defaults need nothing.
      assert.equal(loadConfig({ COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS: "true" }).redisClusterResolveSeeds, true);
    });
  });
});
