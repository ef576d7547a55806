/*
 * Issue #17 with the archive on S3-compatible storage (a real S3-protocol server on a loopback port)
 * instead of a shared directory: instances on one Redis and one bucket act as one registry, a
 * single-mode archive in the bucket is imported, archived versions live in the bucket and survive
 * every instance's restart.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import * as grpc from "@grpc/grpc-js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { killAllS3TestServers, startS3TestServer } from "../support/s3-test-server.js";
import { rejectsWithStatus } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";

const BUCKET = "models";
const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

async function stop(instance: ServerInstance): Promise<void> {
  instance.client.close();
  instance.process.child.kill("SIGTERM");
  assert.equal(await instance.process.exited, 0);
}

describe("several instances on one Redis with the archive on S3", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
    killAllS3TestServers();
  });

  test("a single-mode archive in the bucket is imported; archived versions go to the bucket, are read through any instance and survive restarts", async (t) => {
    const s3 = await startS3TestServer([BUCKET]);
    t.after(() => s3.close());
    const redis = await startRedisServer(t, { appendOnly: true });
    const archive = { ...s3.awsEnv(), COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/shared`, COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true" };
    const clustered = { ...archive, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };

    // Single mode first, on the same bucket and prefix.
    const first = randomBytes(2 * MiB + 3);
    const single = await startServerInstance(t, archive);
    await single.client.createModel("net", { team: "rl" });
    assert.equal((await single.client.publish("net", first, { archived: true })).version_number, 1);
    await stop(single);

    const a = await startServerInstance(t, clustered);
    const b = await startServerInstance(t, clustered);
    assert.deepEqual((await b.client.retrieveModels()).model_infos, [{ model_id: "net", user_data: { team: "rl" } }]);
    assert.ok((await b.client.retrieveData("net", 1)).equals(first), "the imported version, read from the bucket");

    const second = randomBytes(5 * MiB + 1);
    const third = randomBytes(MiB);
    assert.equal((await a.client.publish("net", second, { archived: true })).version_number, 2);
    assert.equal((await b.client.publish("net", third)).version_number, 3);
    assert.ok((await b.client.retrieveData("net", 2)).equals(second), "archived through A, read through B");
    assert.ok((await a.client.retrieveData("net", 3)).equals(third), "transient through B, read through A");

    const listing = await s3.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "shared/net/" }));
    const keys = (listing.Contents ?? []).map((object) => object.Key ?? "").filter((key) => !key.includes("/."));
    assert.deepEqual(keys.sort(), [
      "shared/net/net-v000001.data",
      "shared/net/net-v000001.yaml",
      "shared/net/net-v000002.data",
      "shared/net/net-v000002.yaml",
      "shared/net/net.yaml",
    ]);

    await stop(a);
    await stop(b);
    const c = await startServerInstance(t, clustered);
    const infos = await c.client.retrieveVersionInfos({ model_id: "net" });
    assert.deepEqual(
      infos.version_infos.map((v) => [v.version_number, v.archived, v.data_hash]),
      [
        [1, true, sha256(first)],
        [2, true, sha256(second)],
        [3, false, sha256(third)],
      ],
    );
    assert.ok((await c.client.retrieveData("net", 2)).equals(second), "from the bucket after every instance restarted");
    assert.ok((await c.client.retrieveData("net", 3)).equals(third), "the transient version, from Redis");
    assert.equal((await c.client.publish("net", Buffer.from("four"), { archived: true })).version_number, 4);
  });
  test("a number whose objects in the bucket are not the commit's is skipped across instances, never tried again", async (t) => {
    const s3 = await startS3TestServer([BUCKET]);
    t.after(() => s3.close());
    const redis = await startRedisServer(t, { appendOnly: true });
    const clustered = {
      ...s3.awsEnv(),
      COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/shared`,
      COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true",
      COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url,
    };
    const a = await startServerInstance(t, clustered);
    const b = await startServerInstance(t, clustered);
    await a.client.createModel("net");
    // An info object under number 1 that no version in Redis refers to (another writer's, or left by
    // a commit whose Redis commit failed after its info was written).
    const foreign = "model_id: net\nversion_number: 1\nforeign: true\n";
    const infoKey = "shared/net/net-v000001.yaml";
    await s3.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: infoKey, Body: foreign }));

    await rejectsWithStatus(
      a.client.publish("net", Buffer.from("first"), { archived: true }),
      grpc.status.ALREADY_EXISTS,
      /^archive bucket "models": writing shared\/net\/net-v000001\.yaml failed: PreconditionFailed: At least one of the pre-conditions you specified did not hold, HTTP 412$/,
    );
    // Through the other instance: number 1 is not claimed again (before: ALREADY_EXISTS at every try).
    assert.equal((await b.client.publish("net", Buffer.from("second"), { archived: true })).version_number, 2);
    assert.equal((await a.client.publish("net", Buffer.from("third"))).version_number, 3);
    assert.deepEqual(
      (await b.client.retrieveVersionInfos({ model_id: "net" })).version_infos.map((v) => [v.version_number, v.archived]),
      [
        [2, true],
        [3, false],
      ],
    );
    assert.equal((await a.client.retrieveData("net", 2)).toString(), "second");
    const stored = await s3.client().send(new GetObjectCommand({ Bucket: BUCKET, Key: infoKey }));
    assert.equal(await stored.Body?.transformToString(), foreign, "the foreign object is left as it was");
    const listing = await s3.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "shared/net/net-v000001" }));
    assert.deepEqual((listing.Contents ?? []).map((object) => object.Key), [infoKey], "the failed commit's data object was removed");
    const skipped = a.process.logLines.filter((line) => String(line.msg).startsWith("a version number was skipped"));
    assert.deepEqual(
      skipped.map((line) => [line.modelId, line.versionNumber, line.skipped, line.msg]),
      [
        [
          "net",
          1,
          true,
          "a version number was skipped: the archive holds objects under it that no version in Redis refers to (another writer's, or those of a commit that failed after writing them)",
        ],
      ],
    );
  });
});
