/*
 * Redis shared mode: an upload begun before its model was deleted and created again must not land in
 * the new model (docs/redis-mode.md, "Scripts": commitVersion), even on an instance that has not heard
 * of the deletion yet (its subscriber connection is down): the upload keeps the model's generation
 * read as it began, and the commit is refused when the model's is another.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { access } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { startMonitor } from "../support/redis-monitor.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { keepSubscribersOut, pubsubConnections } from "../support/redis-subscribers.js";
import { startServerInstance } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

describe("Redis shared mode: an upload begun before its model was deleted and created again", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  for (const archived of [false, true]) {
    const kind = archived ? "an archived" : "a transient";
    test(`${kind} upload begun on B fails NOT_FOUND when A deleted and re-created the model meanwhile, B not told of it`, async (t) => {
      const redis = await startRedisServer(t, { appendOnly: false });
      const archiveDir = await makeArchiveDir(t);
      const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
      const a = await startServerInstance(t, env);
      const b = await startServerInstance(t, env);
      const modelId = "stale";
      await a.client.createModel(modelId);
      // B's chunk connection is opened (at its first use) before new connections are refused below.
      await b.client.createModel("warm-up");
      await b.client.publish("warm-up", randomBytes(100));

      // B begins an upload of the model: the header (B reads the model) and the first half of the data.
      const modelKey = `cmr:${modelHashTag(modelId)}:model`;
      let beganOnB!: () => void;
      const modelReadByB = new Promise<void>((resolve) => (beganOnB = resolve));
      await startMonitor(t, redis.url, (args) => {
        if (args[0]?.toLowerCase() === "hget" && args[1] === modelKey) {
          beganOnB();
        }
      });
      const data = randomBytes(4000);
      const { call, reply } = b.client.openCreateVersion();
      reply.catch(() => undefined);
      call.write({
        header: {
          version_info: {
            model_id: modelId,
            archived,
            data_size: String(data.length),
            data_hash: "",
            creation_timestamp: "0",
            user_data: {},
            version_number: 0,
          },
        },
      });
      call.write({ body: { data_chunk: data.subarray(0, 2000) } });
      await modelReadByB;

      // Every subscriber connection is dropped and kept out (no room for it); command connections stay.
      const inspector = new Redis(redis.url);
      inspector.on("error", () => undefined);
      t.after(() => inspector.disconnect());
      await keepSubscribersOut(t, inspector);
      assert.equal(await pubsubConnections(inspector), 0);

      // A deletes the model and creates it again; then B's upload ends.
      await a.client.deleteModel(modelId);
      await a.client.createModel(modelId);
      call.write({ body: { data_chunk: data.subarray(2000) } });
      call.end();
      const outcome = await reply.then(
        (version) => `committed as version ${version.version_info.version_number} of the re-created model`,
        (error: { code?: number; details?: string }) => `failed ${error.code}: ${error.details}`,
      );
      assert.equal(outcome, `failed 5: model "${modelId}" not found (it was deleted while the version was uploading)`);
      assert.deepEqual((await a.client.retrieveVersionInfos({ model_id: modelId })).version_infos, []);
      // Nothing of it in the archive either.
      await assert.rejects(access(path.join(archiveDir, modelId, `${modelId}-v000001.data`)), { code: "ENOENT" });
      await inspector.call("CONFIG", "SET", "maxclients", "10000");
    });
  }
});
