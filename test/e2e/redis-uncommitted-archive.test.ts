/*
 * An instance killed between putting an archived version's files in place and its commit script
 * (issue #17): no client was told of that version, and its number is handed out again by the next
 * claim. The archive records which archived commits completed (a pending mark, docs/redis-mode.md,
 * "Numbering and the archive"), so the files left behind are never listed: not by an import into an
 * empty Redis, not by a single-mode server on the archive, not by the reconciliation after it.
 *
 * The kill is exact: instance A talks to Redis through a proxy that holds back the commit script
 * (its EVALSHA), and A is killed once it sent it; its files are then in place (checked).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { access, readdir } from "node:fs/promises";
import path from "node:path";
import { after, describe, test, type TestContext } from "node:test";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { COMMIT_VERSION } from "../../src/redis/redis-scripts.js";
import { startHoldProxy } from "../support/hold-proxy.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { killAllS3TestServers, startS3TestServer } from "../support/s3-test-server.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

const sha256 = (data: string): string => createHash("sha256").update(data).digest("base64");
const BUCKET = "models";
const SKIPPED_LINE = "archived version skipped: its commit did not complete (an instance stopped between putting its files in place and committing it)";

async function stop(instance: ServerInstance): Promise<void> {
  instance.client.close();
  instance.process.child.kill("SIGTERM");
  assert.equal(await instance.process.exited, 0);
}

const listing = async (instance: ServerInstance, modelId: string): Promise<[number, boolean, string][]> =>
  (await instance.client.retrieveVersionInfos({ model_id: modelId })).version_infos.map((v) => [v.version_number, v.archived, v.data_hash]);

const skippedLines = (instance: ServerInstance): unknown[][] =>
  instance.process.logLines.filter((line) => line.msg === SKIPPED_LINE).map((line) => [line.modelId, line.versionNumber]);

/** Where the archive is, and what its files of one version are (to check they were put in place). */
interface ArchiveUnderTest {
  readonly env: Record<string, string>;
  versionFiles(modelId: string, versionNumber: number): Promise<string[]>;
  /** The names of the model's pending marks (versions whose commit is not known to have completed). */
  pendingMarks(modelId: string): Promise<string[]>;
}

async function directoryArchive(t: TestContext): Promise<ArchiveUnderTest> {
  const archiveDir = await makeArchiveDir(t);
  return {
    env: { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir },
    async versionFiles(modelId, versionNumber) {
      const names = [`${modelId}-v${String(versionNumber).padStart(6, "0")}.data`, `${modelId}-v${String(versionNumber).padStart(6, "0")}.yaml`];
      const found: string[] = [];
      for (const name of names) {
        if (await access(path.join(archiveDir, modelId, name)).then(() => true, () => false)) {
          found.push(name);
        }
      }
      return found;
    },
    async pendingMarks(modelId) {
      return (await readdir(path.join(archiveDir, modelId))).filter((name) => name.startsWith(".cogment-ts-pending-")).sort();
    },
  };
}

async function bucketArchive(t: TestContext): Promise<ArchiveUnderTest> {
  const s3 = await startS3TestServer([BUCKET]);
  t.after(() => s3.close());
  return {
    env: { ...s3.awsEnv(), COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/shared`, COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true" },
    async versionFiles(modelId, versionNumber) {
      const prefix = `shared/${modelId}/${modelId}-v${String(versionNumber).padStart(6, "0")}.`;
      const reply = await s3.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
      return (reply.Contents ?? []).map((object) => path.posix.basename(object.Key ?? "")).sort();
    },
    async pendingMarks(modelId) {
      const reply = await s3.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `shared/${modelId}/.cogment-ts-pending-` }));
      return (reply.Contents ?? []).map((object) => path.posix.basename(object.Key ?? "")).sort();
    },
  };
}

/**
 * Model m with archived version 1; then instance A's archived version 2 ("lost") put in place and A
 * killed right before its commit script (`killed: "before"`), or right after it ran, before A heard
 * its reply (`"after"`). Returns B, which serves on, and the Redis both use.
 */
async function leaveUncommittedVersion(t: TestContext, archive: ArchiveUnderTest, killed: "before" | "after" = "before") {
  const redis = await startRedisServer(t, { appendOnly: true });
  const proxy = await startHoldProxy(t, redis.port, COMMIT_VERSION.sha1, killed === "before" ? "command" : "reply");
  const a = await startServerInstance(t, { ...archive.env, COGMENT_MODEL_REGISTRY_REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
  const b = await startServerInstance(t, { ...archive.env, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
  await b.client.createModel("m");
  assert.equal((await b.client.publish("m", Buffer.from("one"), { archived: true })).version_number, 1);

  const lost = a.client.publish("m", Buffer.from("lost"), { archived: true });
  lost.catch(() => undefined); // its instance is killed: the call fails (UNAVAILABLE)
  await proxy.held;
  assert.deepEqual(await archive.versionFiles("m", 2), ["m-v000002.data", "m-v000002.yaml"], "A's files are in place");
  a.client.close();
  a.process.child.kill("SIGKILL");
  await a.process.exited;
  return { redis, b };
}

/** What an import of the archive into an empty Redis gives, the next number it hands out, and the versions it skipped (warned). */
async function importIntoEmptyRedis(
  t: TestContext,
  archive: ArchiveUnderTest,
  expected: { readonly versions: [number, boolean, string][]; readonly next: number; readonly skipped: unknown[][] },
): Promise<void> {
  const empty = await startRedisServer(t);
  const c = await startServerInstance(t, { ...archive.env, COGMENT_MODEL_REGISTRY_REDIS_URL: empty.url });
  assert.deepEqual(await listing(c, "m"), expected.versions);
  assert.equal((await c.client.publish("m", Buffer.from("after import"))).version_number, expected.next);
  await stop(c); // every log line read
  assert.deepEqual(skippedLines(c), expected.skipped);
}

describe("archived files under a number whose commit never completed (an instance killed before its commit script)", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
    killAllS3TestServers();
  });

  for (const [name, makeArchive] of [
    ["archive directory", directoryArchive],
    ["archive on S3", bucketArchive],
  ] as const) {
    test(`${name}: the number committed again as a transient version; an import into an empty Redis and a single-mode server list only committed versions`, async (t) => {
      const archive = await makeArchive(t);
      const { b } = await leaveUncommittedVersion(t, archive);
      // The next claim (once A's lease ran out) gets number 2, for other bytes.
      assert.equal((await b.client.publish("m", Buffer.from("two"))).version_number, 2);
      assert.equal((await b.client.publish("m", Buffer.from("three"), { archived: true })).version_number, 3);
      assert.deepEqual(await listing(b, "m"), [
        [1, true, sha256("one")],
        [2, false, sha256("two")],
        [3, true, sha256("three")],
      ]);
      await stop(b);
      // A's mark stays (its commit never completed); B's were removed once Redis committed 1 and 3.
      assert.deepEqual(await archive.pendingMarks("m"), [".cogment-ts-pending-v000002"]);

      // Redis lost its data: what the archive holds is imported; A's version 2 was never committed.
      // Numbering goes on above the archive's records (a block ahead of the numbers handed out).
      await importIntoEmptyRedis(t, archive, {
        versions: [
          [1, true, sha256("one")],
          [3, true, sha256("three")],
        ],
        next: 1025,
        skipped: [["m", 2]],
      });

      const single = await startServerInstance(t, archive.env);
      assert.deepEqual(await listing(single, "m"), [
        [1, true, sha256("one")],
        [3, true, sha256("three")],
      ]);
      await stop(single);
      assert.deepEqual(skippedLines(single), [["m", 2]]);
    });
  }

  test("the number committed again as an archived version: its files replace the leftovers and it is listed after an import", async (t) => {
    const archive = await directoryArchive(t);
    const { b } = await leaveUncommittedVersion(t, archive);
    assert.equal((await b.client.publish("m", Buffer.from("two"), { archived: true })).version_number, 2);
    assert.equal((await b.client.retrieveData("m", 2)).toString(), "two");
    await stop(b);
    assert.deepEqual(await archive.pendingMarks("m"), [], "A's mark was replaced by B's, removed once B's commit completed");
    await importIntoEmptyRedis(t, archive, {
      versions: [
        [1, true, sha256("one")],
        [2, true, sha256("two")],
      ],
      next: 1025,
      skipped: [],
    });
  });

  test("the commit script ran but its instance was killed before it heard the reply: the version counts as not committed in the archive, its number is never handed out again", async (t) => {
    const archive = await directoryArchive(t);
    const { b } = await leaveUncommittedVersion(t, archive, "after");
    // Committed in Redis (and announced) while Redis keeps its data; its client was never told.
    assert.deepEqual(await listing(b, "m"), [
      [1, true, sha256("one")],
      [2, true, sha256("lost")],
    ]);
    assert.equal((await b.client.publish("m", Buffer.from("three"), { archived: true })).version_number, 3);
    await stop(b);
    assert.deepEqual(await archive.pendingMarks("m"), [".cogment-ts-pending-v000002"]);
    await importIntoEmptyRedis(t, archive, {
      versions: [
        [1, true, sha256("one")],
        [3, true, sha256("three")],
      ],
      next: 1025,
      skipped: [["m", 2]],
    });
  });

  test("a single-mode run, then shared mode again on the Redis that kept its data: the reconciliation does not take the leftovers for a number handed out twice", async (t) => {
    const archive = await directoryArchive(t);
    const { redis, b } = await leaveUncommittedVersion(t, archive);
    assert.equal((await b.client.publish("m", Buffer.from("two"))).version_number, 2);
    await stop(b);

    const single = await startServerInstance(t, archive.env);
    assert.deepEqual(await listing(single, "m"), [[1, true, sha256("one")]]);
    assert.equal((await single.client.publish("m", Buffer.from("single"), { archived: true })).version_number, 1025);
    await stop(single);

    // Before: the start failed, the archive's leftover 2 taken for an archived version under the
    // number of Redis's transient version 2 ("numbers were handed out twice").
    const again = await startServerInstance(t, { ...archive.env, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url });
    assert.deepEqual(await listing(again, "m"), [
      [1, true, sha256("one")],
      [2, false, sha256("two")],
      [1025, true, sha256("single")],
    ]);
    await stop(again);
  });
});
