/*
 * Redis shared mode: a transient version's bytes are read from Redis only for the very version the
 * reader was given. A model deleted and created again numbers from 1 again, and a client may give the
 * same creation_timestamp twice: neither a number nor a timestamp tells two versions apart, the
 * data_hash and data_size do.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { modelHashTag } from "../../src/redis/index.js";
import { startDelayProxy } from "../support/delay-proxy.js";
import { startMonitor } from "../support/redis-monitor.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startServerInstance, untilServing } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

/** How late A gets its command replies: B deletes the model and creates version 1 again meanwhile. */
const REPLY_DELAY_MS = 1000;
/** One creation_timestamp for both lives of version 1, as a client replaying its uploads would send. */
const CREATION_TIMESTAMP = "1700000000123456789";

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

describe("Redis shared mode: the bytes of a transient version read through", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("a read of version 1 whose model is deleted and version 1 created again meanwhile (same creation_timestamp) never gets the new version's bytes", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const archiveDir = await makeArchiveDir(t);
    const proxy = await startDelayProxy(redis.port, REPLY_DELAY_MS, { subscribersOnTime: true });
    t.after(() => proxy.close());
    const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
    const a = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    const b = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    await untilServing(a);
    await untilServing(b);
    const modelId = "reborn";
    const first = randomBytes(3000);
    const second = randomBytes(3000);
    await b.client.createModel(modelId);
    assert.equal((await b.client.publish(modelId, first, { creation_timestamp: CREATION_TIMESTAMP })).version_number, 1);

    // In the order Redis runs them: a client's GET of version 1's info (A's reads), a script's SET of it (a commit).
    const infoKey = `cmr:${modelHashTag(modelId)}:v:1`;
    const seen: ("read" | "committed")[] = [];
    let firstRead: () => void = () => undefined;
    const firstReadSeen = new Promise<void>((resolve) => (firstRead = resolve));
    await startMonitor(t, redis.url, (args, source) => {
      const command = args[0]?.toLowerCase();
      if (args[1] !== infoKey) {
        return;
      }
      if (source !== "lua" && command === "get") {
        seen.push("read");
        firstRead();
      } else if (source === "lua" && command === "set") {
        seen.push("committed");
      }
    });

    // A finds version 1 (the first one); its reply comes a second late, and B meanwhile makes another version 1.
    const read = a.client.retrieveData(modelId, 1).then(
      (data) => ({ data }),
      (error: grpc.ServiceError) => ({ error }),
    );
    await firstReadSeen;
    await b.client.deleteModel(modelId);
    await b.client.createModel(modelId);
    const again = await b.client.publish(modelId, second, { creation_timestamp: CREATION_TIMESTAMP });
    assert.deepEqual([again.version_number, again.creation_timestamp], [1, CREATION_TIMESTAMP]);
    const outcome = await read;
    while (seen.length < 3) {
      await sleep(10);
    }
    // The race happened: A read the new version 1's info while it served the first one.
    assert.deepEqual(seen, ["read", "committed", "read"]);

    if ("data" in outcome) {
      const whose = sha256(outcome.data) === sha256(second) ? "the new version 1's" : sha256(outcome.data) === sha256(first) ? "the first version 1's" : "other";
      assert.fail(`A answered OK with ${outcome.data.byteLength} bytes: ${whose}`);
    }
    assert.equal(outcome.error.code, grpc.status.NOT_FOUND, outcome.error.message);
    assert.equal(
      outcome.error.details,
      'version 1 of model "reborn" not found (the transient version is no longer in Redis: it expired, Redis evicted it (maxmemory), or its model was deleted and created again)',
    );
    // Asked again, A serves the version 1 there is now.
    assert.equal(sha256(await a.client.retrieveData(modelId, 1)), sha256(second));
  });
});
