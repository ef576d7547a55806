import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NO_NAT_MAP, describeNatMap, ioredisNatMap, parseNatMap, reachableNode } from "../../src/redis/nat-map.js";

describe("the NAT map of announced Redis addresses (COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP)", () => {
  const natMap = parseNatMap("172.18.0.2:6379=127.0.0.1:7001,[fd00::5]:6379=[::1]:7003,redis-1:6379=redis.example.com:30002");

  test("a node as ioredis and Redis write it (host:port, IPv6 unbracketed) is reached where the map says, or as announced", () => {
    assert.equal(reachableNode(natMap, "172.18.0.2:6379"), "127.0.0.1:7001");
    assert.equal(reachableNode(natMap, "fd00::5:6379"), "::1:7003");
    assert.equal(reachableNode(natMap, "redis-1:6379"), "redis.example.com:30002");
    assert.equal(reachableNode(natMap, "172.18.0.2:6380"), "172.18.0.2:6380");
    assert.equal(reachableNode(NO_NAT_MAP, "172.18.0.2:6379"), "172.18.0.2:6379");
  });

  test("ioredis gets no option for an empty map; the log shows the pairs, IPv6 targets bracketed", () => {
    assert.equal(ioredisNatMap(NO_NAT_MAP), undefined);
    assert.equal(ioredisNatMap(parseNatMap("")), undefined);
    assert.equal(describeNatMap(natMap), "172.18.0.2:6379=127.0.0.1:7001,fd00::5:6379=[::1]:7003,redis-1:6379=redis.example.com:30002");
  });
});
