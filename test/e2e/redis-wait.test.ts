/*
 * COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: real redis-server processes, a primary and a replica
 * (`--replicaof`), server instances in their own processes. The replica gets the replication stream
 * through a proxy that holds it 200 ms (test/support/delay-proxy.ts), so without the WAIT an
 * acknowledged write is certainly not on the replica yet when the test looks.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { Code, RegistryError } from "../../src/errors/index.js";
import { RedisRegistryStore, modelHashTag } from "../../src/redis/index.js";
import { startDelayProxy } from "../support/delay-proxy.js";
import { HealthClient } from "../support/health-client.js";
import { type RedisTestServer, killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { killAllSentinels, startSentinelDeployment } from "../support/redis-sentinel.js";
import { rejectsWithStatus } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, logLinesWhen, removeArchiveAfterServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { exactly } from "../support/exact-text.js";

const MIB = 1024 * 1024;
const REPLICATION_DELAY_MS = 200;

interface Pair {
  readonly primary: RedisTestServer;
  readonly replica: RedisTestServer;
  /** A plain client of the replica, to read what it holds. */
  readonly onReplica: Redis;
}

/**
 * A primary and one replica of it, resolves once the replica is online. `delayed`: the replica gets the
 * replication stream through the proxy that holds it REPLICATION_DELAY_MS.
 */
async function startPair(t: TestContext, { delayed }: { delayed: boolean }): Promise<Pair> {
  const primary = await startRedisServer(t, { appendOnly: true });
  let upstream = primary.port;
  if (delayed) {
    const proxy = await startDelayProxy(primary.port, REPLICATION_DELAY_MS);
    t.after(() => proxy.close());
    upstream = proxy.port;
  }
  const replica = await startRedisServer(t, { appendOnly: true, extraArgs: ["--replicaof", "127.0.0.1", String(upstream)] });
  const onReplica = new Redis(replica.url);
  t.after(() => onReplica.disconnect());
  const onPrimary = new Redis(primary.url);
  try {
    const deadline = Date.now() + 30_000;
    while (!/^slave0:.*state=online/m.test(await onPrimary.info("replication")) || !/master_link_status:up/.test(await onReplica.info("replication"))) {
      assert.ok(Date.now() < deadline, "the replica did not come online");
      await sleep(50);
    }
  } finally {
    onPrimary.disconnect();
  }
  return { primary, replica, onReplica };
}

async function tempArchive(t: TestContext): Promise<string> {
  const archiveDir = await makeArchiveDir();
  removeArchiveAfterServers(t, archiveDir);
  return archiveDir;
}

function startInstance(t: TestContext, archiveDir: string, redisUrl: string, env: Record<string, string> = {}): Promise<ServerInstance> {
  return startServerInstance(t, {
    COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
    COGMENT_MODEL_REGISTRY_REDIS_URL: redisUrl,
    COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: "1",
    ...env,
  });
}

function unconfirmed(what: string, timeoutMs: number): RegExp {
  return exactly(
    `${what} on the Redis primary but only 0 of 1 replicas acknowledged it within ${timeoutMs} ms (COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS): it may be lost if the primary fails over`,
  );
}

/** The keys of `model` the replica holds, without its prefix and hash tag (`counter`, `v:1`, `d:1:0`, ...), sorted. */
async function replicaKeys(onReplica: Redis, model: string): Promise<string[]> {
  const prefix = `cmr:${modelHashTag(model)}:`;
  const keys = await onReplica.keys(`${prefix}*`);
  return keys.map((key) => key.slice(prefix.length)).sort();
}

describe("REDIS_WAIT_REPLICAS: a write is acknowledged once replicated", () => {
  after(() => {
    killAllServers();
    killAllSentinels();
    killAllRedisServers();
  });

  test("right after each acknowledgment, the replica already holds the write (commits, transient and archived; model create; deletion)", async (t) => {
    const { primary, onReplica } = await startPair(t, { delayed: true });
    const archiveDir = await tempArchive(t);
    const instance = await startInstance(t, archiveDir, primary.url);
    const model = "replicated";
    await instance.client.createModel(model, { stage: "one" });
    assert.equal(await onReplica.hget(`cmr:${modelHashTag(model)}:model`, "userData"), JSON.stringify({ stage: "one" }));
    assert.equal(await onReplica.zscore("cmr:models", model), "0");

    const transient = randomBytes(3 * MIB);
    assert.equal((await instance.client.publish(model, transient)).version_number, 1);
    assert.deepEqual(await replicaKeys(onReplica, model), ["counter", "d:1:0", "d:1:1", "model", "numbers", "reserved", "v:1"]);
    const chunks = [await onReplica.getBuffer(`cmr:${modelHashTag(model)}:d:1:0`), await onReplica.getBuffer(`cmr:${modelHashTag(model)}:d:1:1`)];
    assert.ok(Buffer.concat(chunks as Buffer[]).equals(transient));

    assert.equal((await instance.client.publish(model, Buffer.from("archived"), { archived: true })).version_number, 2);
    assert.equal(await onReplica.get(`cmr:${modelHashTag(model)}:counter`), "2");
    assert.equal(JSON.parse((await onReplica.get(`cmr:${modelHashTag(model)}:v:2`)) ?? "{}").archived, true);

    await instance.client.createModel(model, { stage: "two" });
    assert.equal(await onReplica.hget(`cmr:${modelHashTag(model)}:model`, "userData"), JSON.stringify({ stage: "two" }));

    await instance.client.deleteModel(model);
    // The deletion's hold on the model (`deleting`) is released after the WAIT, so the replica may not
    // have its release yet: not part of what the WAIT confirms (a failover keeping it only delays a
    // creation until its lease runs out).
    assert.deepEqual((await replicaKeys(onReplica, model)).filter((key) => key !== "deleting"), ["generation"]);
    assert.equal(instance.process.logLines.filter((line) => String(line.msg).includes("connected replicas")).length, 0);
  });

  test("a replica that does not answer (SIGSTOP): UNAVAILABLE saying the write is on the primary; the instance serves on, numbering goes on without reuse once the replica is back", async (t) => {
    const { primary, replica, onReplica } = await startPair(t, { delayed: false });
    const archiveDir = await tempArchive(t);
    // A small cache: the 3 MiB archived version below is streamed to disk (the other commit path).
    const instance = await startInstance(t, archiveDir, primary.url, {
      COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "500ms",
      COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(4 * MIB),
    });
    const health = new HealthClient(instance.address);
    t.after(() => health.close());
    const model = "stalled";
    await instance.client.createModel(model);
    assert.equal((await instance.client.publish(model, Buffer.from("one"))).version_number, 1);

    replica.pause();
    try {
      await rejectsWithStatus(instance.client.publish(model, Buffer.from("two")), grpc.status.UNAVAILABLE, unconfirmed(`version 2 of model "${model}" is committed`, 500));
      const archived = randomBytes(3 * MIB);
      await rejectsWithStatus(
        instance.client.publish(model, archived, { archived: true }),
        grpc.status.UNAVAILABLE,
        unconfirmed(`version 3 of model "${model}" is committed`, 500),
      );
      await rejectsWithStatus(instance.client.createModel("new-model"), grpc.status.UNAVAILABLE, unconfirmed(`model "new-model" is created`, 500));
      await rejectsWithStatus(instance.client.createModel(model, { k: "v" }), grpc.status.UNAVAILABLE, unconfirmed(`model "${model}" is updated`, 500));

      // Committed all the same, and served: the client was told the write may only be lost on a failover.
      assert.equal(await health.check(""), "SERVING");
      const infos = (await instance.client.retrieveVersionInfos({ model_id: model })).version_infos;
      assert.deepEqual(
        infos.map((info) => [info.version_number, info.archived]),
        [
          [1, false],
          [2, false],
          [3, true],
        ],
      );
      assert.equal((await instance.client.retrieveData(model, 2)).toString(), "two");
      assert.ok((await instance.client.retrieveData(model, 3)).equals(archived));
      assert.deepEqual(
        (await instance.client.retrieveModels()).model_infos.map((info) => [info.model_id, info.user_data]),
        [
          ["new-model", {}],
          [model, { k: "v" }],
        ],
      );
      const warnings = await logLinesWhen(instance.process, (line) => line.level === 40 && String(line.msg).includes("on the Redis primary but only 0 of 1"), 4);
      assert.equal(warnings.length, 4);

      // A deletion not replicated keeps the archive files: a failover may bring the model back.
      await rejectsWithStatus(
        instance.client.publish("new-model", Buffer.from("kept"), { archived: true }),
        grpc.status.UNAVAILABLE,
        unconfirmed('version 1 of model "new-model" is committed', 500),
      );
      const files = await readdir(archiveDir, { recursive: true });
      await rejectsWithStatus(
        instance.client.deleteModel("new-model"),
        grpc.status.UNAVAILABLE,
        exactly(
          `model "new-model" is deleted on the Redis primary but only 0 of 1 replicas acknowledged it within 500 ms (COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS): it may be lost if the primary fails over; its archive files were kept`,
        ),
      );
      assert.deepEqual((await readdir(archiveDir, { recursive: true })).sort(), files.sort());
      assert.ok(files.includes(path.join("new-model", "new-model-v000001.data")), `the model's files: ${files.join(", ")}`);
      assert.deepEqual((await instance.client.retrieveModels()).model_infos.map((info) => info.model_id), [model]);
    } finally {
      replica.resume();
    }

    // The replica catches up: what was unconfirmed is there under its number, and numbering goes on above it.
    assert.equal((await instance.client.publish(model, Buffer.from("four"))).version_number, 4);
    assert.equal(await onReplica.get(`cmr:${modelHashTag(model)}:counter`), "4");
    assert.deepEqual(
      (await replicaKeys(onReplica, model)).filter((key) => key.startsWith("v:")),
      ["v:1", "v:2", "v:3", "v:4"],
    );
    assert.equal((await instance.client.retrieveData(model, 2)).toString(), "two");
  });

  test("an acknowledged commit survives the primary's crash: the promoted replica has it and numbering goes on above it", async (t) => {
    const { primary, replica, onReplica } = await startPair(t, { delayed: true });
    const archiveDir = await tempArchive(t);
    const before = await startInstance(t, archiveDir, primary.url);
    const model = "failed-over";
    await before.client.createModel(model);
    const data = randomBytes(3 * MIB);
    assert.equal((await before.client.publish(model, data)).version_number, 1);
    assert.equal((await before.client.publish(model, Buffer.from("archived"), { archived: true })).version_number, 2);
    await primary.stop("SIGKILL"); // right after the acknowledgment, the replication stream still held 200 ms by the proxy
    await onReplica.replicaof("NO", "ONE");

    // The promoted node has no replica of its own (Sentinel would turn the old primary into one): no wait there.
    const promoted = await startInstance(t, archiveDir, replica.url, { COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: "0" });
    const infos = (await promoted.client.retrieveVersionInfos({ model_id: model })).version_infos;
    assert.deepEqual(
      infos.map((info) => [info.version_number, info.archived]),
      [
        [1, false],
        [2, true],
      ],
    );
    assert.ok((await promoted.client.retrieveData(model, 1)).equals(data));
    assert.equal((await promoted.client.retrieveData(model, 2)).toString(), "archived");
    assert.equal((await promoted.client.publish(model, Buffer.from("after"))).version_number, 3);
  });

  test("through Sentinel: the wait runs on the primary the Sentinels name; after kill -9 of the primary, the promoted replica has every version and numbering goes on", async (t) => {
    const deployment = await startSentinelDeployment(t);
    const [primary, replica] = deployment.nodes;
    const instance = await startInstance(t, await tempArchive(t), deployment.url, { COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "1s" });
    const health = new HealthClient(instance.address);
    t.after(() => health.close());
    const waitForServing = async (): Promise<void> => {
      const deadline = Date.now() + 30_000;
      while ((await health.check("")) !== "SERVING") {
        assert.ok(Date.now() < deadline, "not SERVING");
        await sleep(50);
      }
    };
    await waitForServing();
    const model = "sentinel-waited";
    await instance.client.createModel(model);
    assert.equal((await instance.client.publish(model, Buffer.from("one"))).version_number, 1);
    assert.equal(await deployment.inspect(replica).get(`cmr:${modelHashTag(model)}:counter`), "1");
    replica.pause();
    try {
      await rejectsWithStatus(instance.client.publish(model, Buffer.from("two")), grpc.status.UNAVAILABLE, unconfirmed(`version 2 of model "${model}" is committed`, 1000));
    } finally {
      replica.resume();
    }
    const three = randomBytes(3 * MIB);
    assert.equal((await instance.client.publish(model, three)).version_number, 3);

    await primary.stop("SIGKILL"); // no WAIT of the test's own: the registry's was enough
    await deployment.waitForPrimary(replica);
    await waitForServing();
    assert.deepEqual(
      (await instance.client.retrieveVersionInfos({ model_id: model })).version_infos.map((info) => info.version_number),
      [1, 2, 3],
    );
    assert.ok((await instance.client.retrieveData(model, 3)).equals(three));
    // The promoted primary has no replica left: the next commit is numbered on, and said unconfirmed.
    await rejectsWithStatus(instance.client.publish(model, Buffer.from("four")), grpc.status.UNAVAILABLE, unconfirmed(`version 4 of model "${model}" is committed`, 1000));
    assert.equal((await instance.client.retrieveData(model, 4)).toString(), "four");
  });

  test("concurrent writes with the replica stopped share WAITs: each is answered as unconfirmed, no command behind them times out, the connection stays healthy", async (t) => {
    const { primary, replica } = await startPair(t, { delayed: false });
    // The default 2 s command timeout: six WAITs of 1 s stacked on the connection would exceed it.
    const store = RedisRegistryStore.create(primary.url, { expirationMs: 0, waitReplicas: 1, waitTimeoutMs: 1000 });
    t.after(() => store.close());
    await store.connection.waitUntilHealthy(30_000);
    const healthChanges: boolean[] = [];
    store.connection.on("health", (healthy) => healthChanges.push(healthy));
    const models = Array.from({ length: 6 }, (_, i) => `concurrent-${i}`);
    const generations = await Promise.all(models.map(async (modelId) => (await store.putModel({ modelId, userData: {} })).generation));
    replica.pause();
    try {
      const commits = models.map((modelId, i) =>
        store.commitVersion(
          { modelId, creationTimestamp: 1_700_000_000_000_000_000n, archived: true, dataHash: "h", dataSize: 0, userData: {} },
          generations[i] as number,
        ),
      );
      const read = store.getModel("concurrent-0"); // queued behind the WAITs
      const outcomes = await Promise.allSettled(commits);
      assert.deepEqual(await read, { modelId: "concurrent-0", userData: {} });
      for (const [i, outcome] of outcomes.entries()) {
        assert.equal(outcome.status, "rejected");
        const error = (outcome as PromiseRejectedResult).reason as unknown;
        assert.ok(error instanceof RegistryError);
        assert.equal(error.code, Code.UNAVAILABLE);
        assert.match(error.message, unconfirmed(`version 1 of model "${models[i]}" is committed`, 1000));
      }
    } finally {
      replica.resume();
    }
    assert.deepEqual(healthChanges, [], "the command connection was never dropped");
    assert.equal(store.healthy, true);
  });

  test("fewer replicas online than asked: a warning at start, and the instance serves (writes fail UNAVAILABLE)", async (t) => {
    const { primary } = await startPair(t, { delayed: false });
    const instance = await startInstance(t, await tempArchive(t), primary.url, {
      COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS: "2",
      COGMENT_MODEL_REGISTRY_REDIS_WAIT_TIMEOUT: "100ms",
    });
    const health = new HealthClient(instance.address);
    t.after(() => health.close());
    assert.equal(await health.check(""), "SERVING");
    const deadline = Date.now() + 30_000;
    let warning: Record<string, unknown> | undefined;
    while ((warning = instance.process.logLines.find((line) => String(line.msg).includes("connected replicas"))) === undefined) {
      assert.ok(Date.now() < deadline, "no warning about the replicas");
      await sleep(20);
    }
    assert.equal(
      warning.msg,
      "the Redis primary has 1 connected replicas, fewer than COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS=2: until more replicas are connected, every commit, model change and deletion is done on the primary but fails UNAVAILABLE after the WAIT timeout",
    );
    assert.equal(warning.level, 40);
    assert.equal(warning.connectedReplicas, 1);
    await rejectsWithStatus(
      instance.client.createModel("m"),
      grpc.status.UNAVAILABLE,
      exactly(
        `model "m" is created on the Redis primary but only 1 of 2 replicas acknowledged it within 100 ms (COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS): it may be lost if the primary fails over`,
      ),
    );
  });
});
