import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import { modelHashTag } from "../../src/redis/index.js";
import { HealthClient } from "../support/health-client.js";
import { startRedisCluster } from "../support/redis-cluster.js";
import { killAllRedisServers } from "../support/redis-server.js";
import type { WireVersionInfo } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, removeArchiveAfterServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

describe("several instances on a Redis Cluster with replicas", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("a master killed, its replica promoted: commits, reads of transient data and VersionUpdate go on with the new master", async (t) => {
    const cluster = await startRedisCluster(t, { masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
    const archiveDir = await makeArchiveDir();
    removeArchiveAfterServers(t, archiveDir);
    const [a, b] = (await Promise.all(
      [0, 1].map(() =>
        startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: cluster.url }),
      ),
    )) as [ServerInstance, ServerInstance];
    const model = "failed-over";
    const slot = await cluster.keySlot(`cmr:${modelHashTag(model)}:model`);
    const master = await cluster.ownerOfSlot(slot);
    const large = randomBytes(5 * 1024 * 1024);
    await a.client.createModel(model);
    assert.equal((await a.client.publish(model, large)).version_number, 1);
    await cluster.cli(master, "wait", "1", "5000"); // replicated before the crash (Redis replicates asynchronously)
    const versions: number[] = [];
    let streamError: grpc.ServiceError | undefined;
    const stream = b.client.versionUpdate(model);
    stream.on("data", (message: { version_info: WireVersionInfo }) => versions.push(message.version_info.version_number));
    stream.on("error", (error: grpc.ServiceError) => (streamError = error));
    const until = async (predicate: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 30_000;
      while (!predicate()) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}; got ${versions.join(",")}, error ${streamError?.message}`);
        await sleep(20);
      }
    };
    await until(() => versions.length === 1, "the current latest");

    const killed = cluster.nodes.find((node) => node.port === master);
    await killed?.stop("SIGKILL");
    const survivor = cluster.nodes.find((node) => node.running())?.port;
    const failoverDeadline = Date.now() + 30_000;
    while ((await cluster.ownerOfSlot(slot, survivor).catch(() => master)) === master) {
      assert.ok(Date.now() < failoverDeadline, "the replica was not promoted");
      await sleep(50);
    }
    await cluster.waitUntilOk();
    const promoted = await cluster.ownerOfSlot(slot, survivor);
    assert.notEqual(promoted, master);

    // Each instance finds the new master on its own (its probe, its next call): both must be back.
    for (const instance of [a, b]) {
      const health = new HealthClient(instance.address);
      t.after(() => health.close());
      assert.equal(await health.waitFor("SERVING", 30_000), "SERVING");
    }
    assert.equal(sha256(await b.client.retrieveData(model, 1)), sha256(large));
    assert.equal((await a.client.publish(model, large)).version_number, 2);
    assert.equal((await b.client.publish(model, Buffer.from("three"), { archived: true })).version_number, 3);
    assert.equal(sha256(await b.client.retrieveData(model, 2)), sha256(large));
    await until(() => versions.at(-1) === 3, "version 3 after the failover");
    assert.deepEqual(versions, [1, 2, 3]);
    const lengths = await Promise.all([0, 1, 2].map(async (i) => (await cluster.cli(promoted, "strlen", `cmr:${modelHashTag(model)}:d:2:${i}`)).trim()));
    assert.deepEqual(lengths, [String(2 * 1024 * 1024), String(2 * 1024 * 1024), String(1024 * 1024)]);
  });
});
