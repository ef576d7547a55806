import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { adviseOnRedisSettings, settingsFromReply } from "../../src/redis/redis-settings-check.js";

const RECOMMENDED = { maxmemory: "2147483648", "maxmemory-policy": "volatile-lru", appendonly: "yes", appendfsync: "always", rdbcompression: "no" };
const advise = (settings: Record<string, string>): string[][] =>
  adviseOnRedisSettings(new Map(Object.entries(settings))).map(({ setting, found, recommended }) => [setting, found, recommended]);

describe("Redis settings advice (redis-settings-check.ts)", () => {
  test("the recommended settings, and other policies that never evict what has no TTL, get no advice", () => {
    assert.deepEqual(advise(RECOMMENDED), []);
    for (const policy of ["volatile-lfu", "volatile-random", "noeviction"]) {
      assert.deepEqual(advise({ ...RECOMMENDED, "maxmemory-policy": policy }), [], policy);
    }
  });

  test("each setting that differs is named with what was found and what to set", () => {
    assert.deepEqual(advise({ ...RECOMMENDED, "maxmemory-policy": "allkeys-lru" }), [["maxmemory-policy", "allkeys-lru", "volatile-lru"]]);
    assert.deepEqual(advise({ ...RECOMMENDED, "maxmemory-policy": "volatile-ttl" }), [["maxmemory-policy", "volatile-ttl", "volatile-lru"]]);
    assert.deepEqual(advise({ ...RECOMMENDED, maxmemory: "0" }), [["maxmemory", "0", "the bytes the instances' transient versions may take"]]);
    assert.deepEqual(advise({ ...RECOMMENDED, appendfsync: "everysec" }), [["appendfsync", "everysec", "always"]]);
    // Without AOF, appendfsync does not matter: only appendonly is named.
    assert.deepEqual(advise({ ...RECOMMENDED, appendonly: "no", appendfsync: "everysec" }), [["appendonly", "no", "yes (with appendfsync always)"]]);
    assert.deepEqual(advise({ ...RECOMMENDED, rdbcompression: "yes" }), [["rdbcompression", "yes", "no"]]);
    // Settings Redis did not give (an older Redis, a renamed setting) are not judged.
    assert.deepEqual(advise({}), []);
  });

  test("the messages say what can happen, and what to set", () => {
    const messages = adviseOnRedisSettings(new Map(Object.entries({ ...RECOMMENDED, "maxmemory-policy": "allkeys-lfu", rdbcompression: "yes" }))).map(
      (advice) => advice.message,
    );
    assert.deepEqual(messages, [
      "Redis's maxmemory-policy is allkeys-lfu: under memory pressure it may evict models, their version numbering and their latest versions (numbers could then be handed out again); set maxmemory-policy volatile-lru",
      "Redis's rdbcompression is yes: every AOF rewrite, RDB snapshot and replica resynchronization runs LZF over model data that does not compress (2-4x the CPU of a rewrite); set rdbcompression no",
    ]);
  });

  test("CONFIG GET's flat reply becomes a map; anything else an empty one", () => {
    assert.deepEqual([...settingsFromReply(["appendonly", "yes", "maxmemory", "0"])], [["appendonly", "yes"], ["maxmemory", "0"]]);
    assert.deepEqual([...settingsFromReply("OK")], []);
  });
});
