/*
 * COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS on a real Redis Cluster (three masters, one replica
 * each): each WAIT goes to the master of the written model's slot (and, for a model's creation, to
 * the master of `cmr:models` too). A replica stopped (SIGSTOP) fails the writes of its master's
 * models only: a WAIT sent to any other node would return at once with its replica's acknowledgment.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { startRedisCluster } from "../support/redis-cluster.js";
import { killAllRedisServers } from "../support/redis-server.js";
import { rejectsWithStatus } from "../support/registry-client.js";
import { startServerInstance } from "../support/server-instance.js";
import { killAllServers, removeArchiveAfterServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { exactly } from "../support/exact-text.js";

describe("REDIS_WAIT_REPLICAS on a Redis Cluster", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("WAIT reaches the master of the model's slot (and of cmr:models for a creation)", async (t) => {
    const cluster = await startRedisCluster(t, { masters: 3, replicas: 1, nodeTimeoutMs: 5000 });
    const archiveDir = await makeArchiveDir();
    removeArchiveAfterServers(t, archiveDir);
    const instance = await startServerInstance(t, {
      COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
      COGMENT_MODEL_REGISTRY_REDIS_URL: cluster.url,
      COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: "1",
      COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "1s",
    });
    const masterOf = async (key: string): Promise<number> => cluster.ownerOfSlot(await cluster.keySlot(key));
    const replicaOf = async (master: number): Promise<number> => {
      const port = /^slave0:ip=[^,]+,port=(\d+),state=online/m.exec(await cluster.cli(master, "info", "replication"))?.[1];
      assert.ok(port !== undefined, `master ${master} has no online replica`);
      return Number(port);
    };
    // The replicas' first sync follows the cluster's creation: wait until each master has its replica online.
    const deadline = Date.now() + 30_000;
    for (const node of cluster.nodes) {
      let info: string;
      while (/^role:master/m.test((info = await cluster.cli(node.port, "info", "replication"))) && !/^slave0:.*state=online/m.test(info)) {
        assert.ok(Date.now() < deadline, `no replica of ${node.port} came online`);
        await sleep(50);
      }
    }
    const indexMaster = await masterOf("cmr:models");
    // One model on each master, by name.
    const models = new Map<number, string>();
    for (let i = 0; models.size < 3; i++) {
      const master = await masterOf(`cmr:${modelHashTag(`model-${i}`)}:model`);
      if (!models.has(master)) {
        models.set(master, `model-${i}`);
      }
    }
    for (const model of models.values()) {
      await instance.client.createModel(model);
      assert.equal((await instance.client.publish(model, Buffer.from(`${model} one`))).version_number, 1);
    }
    // Right after the acknowledgment, the master's replica has the version (a replica serves reads after READONLY).
    for (const [master, model] of models) {
      const onReplica = new Redis(await replicaOf(master), "127.0.0.1");
      t.after(() => onReplica.disconnect());
      await onReplica.call("READONLY");
      assert.equal(await onReplica.get(`cmr:${modelHashTag(model)}:counter`), "1");
    }

    const otherMaster = [...models.keys()].find((master) => master !== indexMaster) as number;
    const stalledPort = await replicaOf(otherMaster);
    const replica = cluster.nodes.find((node) => node.port === stalledPort);
    assert.ok(replica !== undefined);
    const stalledModel = models.get(otherMaster) as string;
    replica.pause();
    try {
      await rejectsWithStatus(
        instance.client.publish(stalledModel, Buffer.from("two")),
        grpc.status.UNAVAILABLE,
        exactly(
          `version 2 of model "${stalledModel}" is committed on the Redis primary but only 0 of 1 replicas acknowledged it within 1000 ms (COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS): it may be lost if the primary fails over`,
        ),
      );
      // The other masters' models are written and confirmed as usual.
      for (const [master, model] of models) {
        if (master !== otherMaster) {
          assert.equal((await instance.client.publish(model, Buffer.from("two"))).version_number, 2);
        }
      }
    } finally {
      replica.resume();
    }
    assert.equal((await instance.client.publish(stalledModel, Buffer.from("three"))).version_number, 3);

    // A creation also waits on the master of cmr:models, even for a model whose own master is fine.
    const indexReplicaPort = await replicaOf(indexMaster);
    const onIndexReplica = cluster.nodes.find((node) => node.port === indexReplicaPort);
    assert.ok(onIndexReplica !== undefined);
    let created = "";
    for (let i = 0; created === ""; i++) {
      if ((await masterOf(`cmr:${modelHashTag(`new-${i}`)}:model`)) !== indexMaster) {
        created = `new-${i}`;
      }
    }
    onIndexReplica.pause();
    try {
      await rejectsWithStatus(
        instance.client.createModel(created),
        grpc.status.UNAVAILABLE,
        exactly(
          `model "${created}" is created on the Redis primary but only 0 of 1 replicas acknowledged it within 1000 ms (COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS): it may be lost if the primary fails over`,
        ),
      );
    } finally {
      onIndexReplica.resume();
    }
    assert.equal((await instance.client.publish(created, Buffer.from("one"))).version_number, 1);
  });
});
