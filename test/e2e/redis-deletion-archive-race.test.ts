/*
 * Redis shared mode: a deletion removes the model's archive files after its Redis script. Another
 * instance must not create the model again in between (the removal would take the new model's files):
 * its creation is refused (UNAVAILABLE, retryable) until the deleting instance removed them.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { startDelayProxy } from "../support/delay-proxy.js";
import { rejectsWithStatus } from "../support/registry-client.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startServerInstance, untilServing } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

describe("Redis shared mode: a deletion and the model created again through another instance", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("the model cannot be created again before the deleting instance removed its archive files; an archived version committed then stays readable", async (t) => {
    const redis = await startRedisServer(t);
    const archiveDir = await makeArchiveDir(t);
    // A's replies from Redis come 400 ms late (a slow link): its deletion's steps after the script are slow.
    const proxy = await startDelayProxy(redis.port, 400);
    t.after(() => proxy.close());
    const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
    const a = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    const b = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    await untilServing(a);
    await untilServing(b);
    const modelId = "reborn";
    await b.client.createModel(modelId);
    await b.client.publish(modelId, randomBytes(1000), { archived: true });

    const events = new Redis(redis.url);
    events.on("error", () => undefined);
    t.after(() => events.disconnect());
    await events.subscribe("cmr:events");
    const deletedInRedis = new Promise<void>((resolve) =>
      events.on("message", (_channel: string, message: string) => {
        if ((JSON.parse(message) as { type: string }).type === "deleted") {
          resolve();
        }
      }),
    );
    const deletion = a.client.deleteModel(modelId);
    await deletedInRedis;

    // The model is gone from Redis, but A has not removed its files yet: B may not create it again.
    await rejectsWithStatus(
      b.client.createModel(modelId),
      grpc.status.UNAVAILABLE,
      /^model "reborn" is being deleted \(its archive files are being removed\): try again in a moment$/,
    );
    // Tried again (as a client does on UNAVAILABLE) until A's deletion is done; then an archived version 1.
    for (;;) {
      const refusal = await b.client.createModel(modelId).then(
        () => undefined,
        (error: grpc.ServiceError) => error,
      );
      if (refusal === undefined) {
        break;
      }
      assert.equal(refusal.code, grpc.status.UNAVAILABLE, refusal.message);
      await sleep(50);
    }
    const data = randomBytes(4096);
    assert.equal((await b.client.publish(modelId, data, { archived: true })).version_number, 1);
    await deletion;

    const infos = await b.client.retrieveVersionInfos({ model_id: modelId });
    assert.deepEqual(
      infos.version_infos.map((info) => [info.version_number, info.data_hash]),
      [[1, sha256(data)]],
    );
    // A fresh instance has no cached copy: it reads the archive.
    const c = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    await untilServing(c);
    assert.equal(sha256(await c.client.retrieveData(modelId, 1)), sha256(data));
  });

  test("a creation refused while another instance deletes the model leaves no model info in the archive: an import does not bring the model back", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const archiveDir = await makeArchiveDir(t);
    const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
    const b = await startServerInstance(t, env);
    await untilServing(b);
    await b.client.createModel("kept");
    const modelId = "reborn";
    // Another instance's deletion of the model holds it while it removes the model's files; whether the
    // removal came before B's write of the model info or after, the model must not be created.
    const inspect = new Redis(redis.url);
    inspect.on("error", () => undefined);
    t.after(() => inspect.disconnect());
    await inspect.set(`cmr:${modelHashTag(modelId)}:deleting`, "another instance's deletion", "PX", 60_000);

    await rejectsWithStatus(
      b.client.createModel(modelId),
      grpc.status.UNAVAILABLE,
      /^model "reborn" is being deleted \(its archive files are being removed\): try again in a moment$/,
    );
    // Neither the model's info nor its directory (the server's own root files, ".cogment-ts-…", aside).
    assert.deepEqual((await readdir(archiveDir)).filter((name) => !name.startsWith(".")), ["kept"]);

    // Redis loses its data: a new instance imports the archive, which must not hold the refused model.
    await inspect.flushall();
    const c = await startServerInstance(t, env);
    await untilServing(c);
    assert.deepEqual(
      (await c.client.retrieveModels()).model_infos.map((model) => model.model_id),
      ["kept"],
    );
  });
});
