/*
 * Back to shared mode on a Redis that kept its data (AOF) after a single-mode run on the same archive
 * (issue #17): what the single-mode run did (models created, updated and deleted, archived versions,
 * the numbers it handed out) reaches Redis before the shared instances serve, once, whichever
 * instance starts first. Real redis-server and server processes.
 */
import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { TestContext } from "node:test";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import type { RegistryClient } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, runFailingServer } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

const RECONCILED = "Redis brought in line with the archive after a single-mode run on it: its models, archived versions, user data, deletions and version numbers";

async function stop(instance: ServerInstance): Promise<void> {
  instance.client.close();
  instance.process.child.kill("SIGTERM");
  assert.equal(await instance.process.exited, 0);
}

/** The call's result, or its gRPC status and details: one value to compare whatever happened. */
async function outcome<T>(call: Promise<T>): Promise<T | string> {
  try {
    return await call;
  } catch (error) {
    const { code, details } = error as { code?: number; details?: string };
    return `status ${code}: ${details}`;
  }
}

/** Every model with its user data and versions ("3a": archived version 3, "4t": transient). */
async function listing(client: RegistryClient): Promise<Record<string, { userData: Record<string, string>; versions: string[] }>> {
  const listed: Record<string, { userData: Record<string, string>; versions: string[] }> = {};
  for (const model of (await client.retrieveModels()).model_infos) {
    const { version_infos } = await client.retrieveVersionInfos({ model_id: model.model_id });
    listed[model.model_id] = { userData: model.user_data, versions: version_infos.map((v) => `${v.version_number}${v.archived ? "a" : "t"}`) };
  }
  return listed;
}

const numberOf = async (client: RegistryClient, modelId: string, data: string, archived = false): Promise<number | string> =>
  outcome(client.publish(modelId, Buffer.from(data), { archived }).then((info) => info.version_number));

const dataOf = async (client: RegistryClient, modelId: string, versionNumber: number): Promise<string> =>
  outcome(client.retrieveData(modelId, versionNumber).then((data) => data.toString()));

function redisClient(t: TestContext, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  t.after(() => client.disconnect());
  return client;
}

/** A Redis with AOF and an archive directory: the settings of a single-mode and of a shared instance on them, and a client to look into Redis. */
async function modeSwitchSetup(t: TestContext): Promise<{
  readonly archiveDir: string;
  readonly single: Record<string, string>;
  readonly shared: Record<string, string>;
  readonly check: Redis;
}> {
  const redis = await startRedisServer(t, { appendOnly: true });
  const archiveDir = await makeArchiveDir(t);
  const single = { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir };
  return { archiveDir, single, shared: { ...single, COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url }, check: redisClient(t, redis.url) };
}

describe("back to shared mode on a Redis that kept its data, after a single-mode run on the archive", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("the single-mode run's models, archived versions, user data, deletions and numbers reach Redis; its numbers are never handed out again", async (t) => {
    const { archiveDir, single, shared, check } = await modeSwitchSetup(t);

    // 1. Shared mode.
    const first = await startServerInstance(t, shared);
    await first.client.createModel("m", { stage: "shared" });
    assert.deepEqual(
      [
        await numberOf(first.client, "m", "m1", true),
        await numberOf(first.client, "m", "m2"),
        await numberOf(first.client, "m", "m3", true),
        await numberOf(first.client, "m", "m4"),
        await numberOf(first.client, "m", "m5"),
      ],
      [1, 2, 3, 4, 5],
    );
    await first.client.createModel("gone");
    assert.equal(await numberOf(first.client, "gone", "g1", true), 1);
    await first.client.createModel("again", { life: "first" });
    assert.deepEqual([await numberOf(first.client, "again", "old1", true), await numberOf(first.client, "again", "old2")], [1, 2]);
    await first.client.createModel("kept");
    assert.equal(await numberOf(first.client, "kept", "k1"), 1);
    await stop(first);

    // 2. An incident: single mode on the archive. It numbers above the block shared mode recorded.
    const incident = await startServerInstance(t, single);
    assert.deepEqual(
      [
        await numberOf(incident.client, "m", "m1025", true),
        await numberOf(incident.client, "m", "m1026"),
        await numberOf(incident.client, "m", "m1027", true),
        await numberOf(incident.client, "m", "m1028"),
      ],
      [1025, 1026, 1027, 1028],
    );
    await incident.client.createModel("m", { stage: "single" });
    await incident.client.createModel("n", { from: "single" });
    assert.deepEqual([await numberOf(incident.client, "n", "n1", true), await numberOf(incident.client, "n", "n2")], [1, 2]);
    await incident.client.deleteModel("gone");
    await incident.client.deleteModel("again");
    await incident.client.createModel("again", { life: "second" });
    assert.equal(await numberOf(incident.client, "again", "new1", true), 1);
    await stop(incident);
    assert.match(await readFile(path.join(archiveDir, ".cogment-ts-single-mode-run"), "utf8"), /^started=\S+ run=[0-9a-f-]{36}\n$/);

    // 3. Shared mode again, same Redis (it kept everything), two instances starting at once.
    const [a, b] = await Promise.all([startServerInstance(t, shared), startServerInstance(t, shared)]);
    const observed = {
      listing: await listing(a.client),
      gone: await outcome(b.client.retrieveVersionInfos({ model_id: "gone" }).then((reply) => reply.version_infos.length)),
      data: [await dataOf(b.client, "m", 1025), await dataOf(a.client, "m", 1027), await dataOf(b.client, "n", 1), await dataOf(a.client, "again", 1)],
      next: {
        m: await numberOf(b.client, "m", "m-next"),
        n: await numberOf(a.client, "n", "n-next"),
        again: await numberOf(b.client, "again", "again-next"),
        kept: await numberOf(a.client, "kept", "kept-next"),
      },
    };
    assert.deepEqual(observed, {
      listing: {
        again: { userData: { life: "second" }, versions: ["1a"] },
        kept: { userData: {}, versions: ["1t"] },
        m: { userData: { stage: "single" }, versions: ["1a", "2t", "3a", "4t", "5t", "1025a", "1027a"] },
        n: { userData: { from: "single" }, versions: ["1a"] },
      },
      gone: `status 5: model "gone" not found`,
      data: ["m1025", "m1027", "n1", "new1"],
      // Above what single mode handed out, transient versions (1026, 1028; n's 2) included.
      next: { m: 1029, n: 3, again: 2, kept: 2 },
    });
    const reconciled = [...a.process.logLines, ...b.process.logLines].filter((line) => line.msg === RECONCILED);
    assert.deepEqual(
      reconciled.map((line) => [line.models, line.created, line.replaced, line.deleted]),
      [[4, 1, 1, 1]],
      "one instance brought Redis in line, the other waited for it",
    );
    // The transient latest before the import (m's 5) is no longer the latest: it expires like any other.
    assert.ok((await check.pttl(`cmr:${modelHashTag("m")}:v:5`)) > 0);
    await stop(a);
    await stop(b);

    // 4. Single mode once more: above everything shared mode handed out.
    const later = await startServerInstance(t, single);
    assert.deepEqual(
      [await numberOf(later.client, "m", "m-single"), await numberOf(later.client, "n", "n-single"), await numberOf(later.client, "again", "again-single")],
      [2053, 1027, 1026],
    );
    await stop(later);

    // 5. And shared again: that run's numbers are skipped too.
    const last = await startServerInstance(t, shared);
    assert.deepEqual([await numberOf(last.client, "m", "m-shared"), await numberOf(last.client, "n", "n-shared")], [2054, 1028]);
    await stop(last);
  });

  test("a number handed out twice (a transient version in Redis, an archived one in the archive) stops the start, naming the way out", async (t) => {
    const { archiveDir, single, shared, check } = await modeSwitchSetup(t);

    const first = await startServerInstance(t, shared);
    await first.client.createModel("m");
    assert.equal(await numberOf(first.client, "m", "transient one"), 1);
    await stop(first);
    // What a shared run whose numbering records could not be written leaves: none in the archive, none known to Redis.
    await rm(path.join(archiveDir, "m", ".cogment-ts-next-version"));
    await rm(path.join(archiveDir, "m", ".cogment-ts-version-record"));
    await check.del(`cmr:${modelHashTag("m")}:reserved`);

    const incident = await startServerInstance(t, single);
    assert.equal(await numberOf(incident.client, "m", "archived one", true), 1);
    await stop(incident);

    const failed = await runFailingServer(shared);
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      /failed to start: model "m": the archive holds archived versions numbered 1, written by a single-mode server since this Redis imported the archive, while Redis holds transient versions under the same numbers: .* Way out: stop every instance, then either delete the model with a single-mode server on this archive \(its archived versions go with it\), or remove this registry's keys from Redis \(prefix "cmr:"\) so that the archive is imported afresh \(Redis's transient versions are lost\)\n$/,
    );
    assert.equal(await check.get(`cmr:${modelHashTag("m")}:v:1`).then((info) => (info === null ? "gone" : (JSON.parse(info) as { archived: boolean }).archived)), false);
  });
});
