/*
 * Several instances on one Redis and one archive directory: an instance whose claim of a version
 * number ran out while it was stalled (SIGSTOP here; a GC pause, a VM freeze, Redis out of reach)
 * must not put its archived version's files where the number's next holder put its own.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startServerInstance } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";

/**
 * A model directory's files but the server's own (`.cogment-ts-…`: in shared mode, the numbering
 * records written a block ahead for a later single-mode start, and `..cogment-ts-….tmp-…`, their
 * temporary files while a write of them is under way), sorted: the versions' temporary files included.
 */
async function versionAndModelFiles(modelDir: string): Promise<string[]> {
  return (await readdir(modelDir)).filter((name) => !/^\.\.?cogment-ts-/.test(name)).sort();
}
import { makeArchiveDir } from "../support/test-server.js";

const MIB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

async function sharedSetup(t: TestContext): Promise<{ archiveDir: string; redisUrl: string; env: Record<string, string> }> {
  const redis = await startRedisServer(t);
  const archiveDir = await makeArchiveDir(t);
  const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url };
  return { archiveDir, redisUrl: redis.url, env };
}

describe("Redis mode: version files of a claim that ran out", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  /**
   * A publishes a 96 MiB archived version and is stopped (SIGSTOP) once `stopWhen` says it holds the
   * claim of number 1 and writes or flushes its files; B publishes meanwhile, gets number 1 once A's
   * lease ran out, then A runs again. Resolves to A's failure. `aEnv`: A's own settings.
   */
  async function stalledWriterScenario(
    t: TestContext,
    aEnv: Record<string, string>,
    stopWhen: "the claim is taken" | "its data file is being written",
  ): Promise<grpc.ServiceError> {
    const { archiveDir, redisUrl, env } = await sharedSetup(t);
    const a = await startServerInstance(t, { ...env, ...aEnv });
    const b = await startServerInstance(t, env);
    const modelId = "fenced";
    await a.client.createModel(modelId);
    const modelDir = path.join(archiveDir, modelId);

    const inspect = new Redis(redisUrl);
    inspect.on("error", () => undefined);
    t.after(() => inspect.disconnect());
    const claimKey = `cmr:${modelHashTag(modelId)}:claim`;
    // The temporary data file (".fenced-v000001.data.tmp-…") is made once A has the claim's reply.
    const stopNow = async (): Promise<boolean> =>
      stopWhen === "the claim is taken"
        ? (await inspect.get(claimKey)) !== null
        : (await readdir(modelDir).catch(() => [])).some((name) => name.startsWith(`.${modelId}-v000001.data.tmp-`));

    const dataA = randomBytes(96 * MIB);
    const publishA = a.client.publish(modelId, dataA, { archived: true, chunkBytes: 4 * MIB });
    publishA.catch(() => undefined);
    const pidA = a.process.child.pid as number;
    t.after(() => {
      try {
        process.kill(pidA, "SIGCONT");
      } catch {
        // already gone
      }
    });
    while (!(await stopNow())) {
      // polled without a pause: A must be stopped while it writes
    }
    process.kill(pidA, "SIGSTOP");

    const dataB = randomBytes(MIB);
    const versionB = await b.client.publish(modelId, dataB, { archived: true });
    assert.equal(versionB.version_number, 1);
    assert.equal(versionB.data_hash, sha256(dataB));

    process.kill(pidA, "SIGCONT");
    const failureA = await publishA.then(
      (version) => assert.fail(`A's publish was committed as version ${version.version_number}`),
      (error: grpc.ServiceError) => error,
    );

    // Version 1 is B's (acknowledged): the archive holds B's bytes and no file of A's.
    const onDisk = await readFile(path.join(modelDir, `${modelId}-v000001.data`));
    assert.equal(sha256(onDisk), sha256(dataB), `version 1's data file holds ${onDisk.length} bytes that are not B's; A's publish failed with: ${failureA.details}`);
    assert.deepEqual(await versionAndModelFiles(modelDir), [`${modelId}-v000001.data`, `${modelId}-v000001.yaml`, `${modelId}.yaml`]);
    // An instance without B's copy in its cache reads B's bytes from the archive.
    const c = await startServerInstance(t, env);
    assert.equal(sha256(await c.client.retrieveData(modelId, 1)), sha256(dataB));
    // And numbering goes on without a gap.
    assert.equal((await a.client.publish(modelId, Buffer.from("after"), { archived: true })).version_number, 2);
    return failureA;
  }

  test("an instance stalled past its claim's lease does not put its files over the version another instance committed under that number", async (t) => {
    // A's upload held in memory (the default cache), written to the archive once A holds the claim.
    const failureA = await stalledWriterScenario(t, {}, "its data file is being written");
    assert.equal(failureA.code, grpc.status.ABORTED, failureA.details);
    assert.match(
      failureA.details,
      /^the claim of version number 1 of model "fenced" expired before the version's files were put in place \(the lease of 5000 ms ran out: this instance was stalled or could not reach Redis\); its files were not put in place, try again$/,
    );
  });

  test("the same with the upload streamed to disk: the stalled instance's files stay out of the committed version's place", async (t) => {
    // A 64 MiB cache: the 96 MiB upload is streamed to a temporary file, flushed and put in place under the claim.
    // Nothing shows when A has the claim's reply: stopped as soon as Redis holds the claim, A may fail
    // on that reply (its command timed out while A was stopped: UNAVAILABLE, nothing written), or be
    // stopped while it flushes (the claim is checked after it: ABORTED). B's files stay either way.
    const failureA = await stalledWriterScenario(t, { COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(64 * MIB) }, "the claim is taken");
    const failures =
      /^(the claim of version number 1 of model "fenced" expired before the version's files were put in place |the claim of the version number expired before the commit |Redis at 127\.0\.0\.1:\d+ is unreachable: Command timed out$)/;
    assert.ok([grpc.status.ABORTED, grpc.status.UNAVAILABLE].includes(failureA.code), `${failureA.code}: ${failureA.details}`);
    assert.match(failureA.details, failures);
  });

  test("the holder of a number replaces the files a writer left under it without committing them (streamed to disk and in memory)", async (t) => {
    const { archiveDir, env } = await sharedSetup(t);
    // A 4 MiB cache: an archived version over 1 MiB is streamed to disk, a smaller one held in memory.
    const a = await startServerInstance(t, { ...env, COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(4 * MIB) });
    const modelId = "leftover";
    await a.client.createModel(modelId);
    // What an instance killed after putting its files in place, before its commit, leaves behind.
    const modelDir = path.join(archiveDir, modelId);
    await mkdir(modelDir, { recursive: true });
    for (const versionNumber of [1, 2]) {
      await writeFile(path.join(modelDir, `${modelId}-v00000${versionNumber}.data`), "never committed");
      await writeFile(path.join(modelDir, `${modelId}-v00000${versionNumber}.yaml`), "never committed\n");
    }

    const streamed = randomBytes(3 * MIB);
    const inMemory = randomBytes(1024);
    assert.equal((await a.client.publish(modelId, streamed, { archived: true })).version_number, 1);
    assert.equal((await a.client.publish(modelId, inMemory, { archived: true })).version_number, 2);
    assert.equal(sha256(await readFile(path.join(modelDir, `${modelId}-v000001.data`))), sha256(streamed));
    assert.equal(sha256(await readFile(path.join(modelDir, `${modelId}-v000002.data`))), sha256(inMemory));
    const names = [1, 2].flatMap((n) => [`${modelId}-v00000${n}.data`, `${modelId}-v00000${n}.yaml`]);
    assert.deepEqual(await versionAndModelFiles(modelDir), [...names, `${modelId}.yaml`].sort());
    const b = await startServerInstance(t, env);
    assert.equal(sha256(await b.client.retrieveData(modelId, 1)), sha256(streamed));
    assert.equal(sha256(await b.client.retrieveData(modelId, 2)), sha256(inMemory));
  });
});
