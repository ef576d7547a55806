/*
 * An instance reads Redis's settings at its first connection and logs what differs from the
 * recommended ones (docs/redis-mode.md, "Settings to use"), against real redis-servers.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startServerInstance } from "../support/server-instance.js";
import { killAllServers, logLinesWhen } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

const CHECKED = (line: Record<string, unknown>): boolean => typeof line.msg === "string" && line.msg.startsWith("Redis's ");

describe("Redis settings checked at the first connection", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("a Redis set against the advice: one warning per setting, naming it, what was found and what to set", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false, extraArgs: ["--maxmemory-policy", "allkeys-lru", "--rdbcompression", "yes"] });
    const instance = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: await makeArchiveDir(t), COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    const lines = await logLinesWhen(instance.process, CHECKED, 4);
    assert.deepEqual(
      lines.map((line) => [line.level, line.setting, line.found, line.recommended, line.redis]),
      [
        [40, "maxmemory-policy", "allkeys-lru", "volatile-lru", `127.0.0.1:${redis.port}`],
        [40, "maxmemory", "0", "the bytes the instances' transient versions may take", `127.0.0.1:${redis.port}`],
        [40, "appendonly", "no", "yes (with appendfsync always)", `127.0.0.1:${redis.port}`],
        [40, "rdbcompression", "yes", "no", `127.0.0.1:${redis.port}`],
      ],
    );
    assert.match(String(lines[0]?.msg), /^Redis's maxmemory-policy is allkeys-lru: under memory pressure it may evict models/);
    // The instance serves all the same.
    await instance.client.createModel("m");
    assert.equal((await instance.client.publish("m", Buffer.from("data"))).version_number, 1);
  });

  test("a Redis set as recommended: one line saying so, no warning", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: true, extraArgs: ["--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru", "--rdbcompression", "no"] });
    const instance = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: await makeArchiveDir(t), COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    const lines = await logLinesWhen(instance.process, CHECKED);
    assert.deepEqual(
      lines.map((line) => [line.level, line.msg, line.settings]),
      [
        [
          30,
          "Redis's settings are as docs/redis-mode.md recommends",
          { maxmemory: "67108864", "maxmemory-policy": "volatile-lru", appendonly: "yes", appendfsync: "always", rdbcompression: "no" },
        ],
      ],
    );
  });

  test("a user not allowed CONFIG: the check is skipped, and the log says so", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: true });
    const admin = new Redis(redis.url);
    admin.on("error", () => undefined);
    t.after(() => admin.disconnect());
    await admin.call("ACL", "SETUSER", "reg", "on", ">s3cret", "~*", "&*", "+@all", "-config");
    const url = `redis://reg:s3cret@127.0.0.1:${redis.port}`;
    const instance = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: await makeArchiveDir(t), COGMENT_MODEL_REGISTRY_REDIS_URL: url });
    const lines = await logLinesWhen(instance.process, CHECKED);
    assert.deepEqual(
      lines.map((line) => [line.level, line.msg]),
      [[30, "Redis's settings could not be read with CONFIG GET: they are not checked (see docs/redis-mode.md, \"Settings to use\")"]],
    );
    assert.match(String(lines[0]?.reason), /NOPERM/);
    await instance.client.createModel("m");
  });
});
