import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type Cluster, Redis } from "ioredis";
import { RedisRegistryStore, modelHashTag } from "../../src/redis/index.js";
import { keySlot } from "../../src/redis/cluster-slot.js";
import { toRegistryError } from "../../src/redis/redis-errors.js";
import { dataChunkKey, modelKeys, pendingChunkKey, versionInfoKey } from "../../src/redis/redis-keys.js";
import { COMMIT_VERSION, DELETE_MODEL } from "../../src/redis/redis-scripts.js";
import { HealthClient } from "../support/health-client.js";
import { type RedisTestCluster, startRedisCluster } from "../support/redis-cluster.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { RegistryClient, rejectsWithStatus, type WireVersionInfo } from "../support/registry-client.js";
import { type VersionUpdateFollower, followVersionUpdates } from "../support/version-update-follower.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, spawnServer, removeArchiveAfterServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { commitTransientVersion, copiedVersionData } from "../support/redis-store-versions.js";
import { exactly } from "../support/exact-text.js";

/*
 * Several instances on one archive directory and one Redis Cluster of three masters (started once for
 * the file, emptied before each test): every feature of Redis mode, with models whose keys live on
 * different masters.
 */

let cluster: RedisTestCluster;

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function startInstances(t: TestContext, archiveDir: string, count: number, redisUrl = cluster.url): Promise<ServerInstance[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redisUrl }),
    ),
  );
}

async function archiveDirFor(t: TestContext): Promise<string> {
  const archiveDir = await makeArchiveDir();
  removeArchiveAfterServers(t, archiveDir);
  return archiveDir;
}

/** The port of the master holding a model's keys (its hash slot). */
async function masterOf(modelId: string): Promise<number> {
  return cluster.ownerOfSlot(await cluster.keySlot(`cmr:${modelHashTag(modelId)}:model`));
}

/** One model id per master, in the order of the masters' ports: `prefix-<n>` for the first n that lands there. */
async function modelsOnEveryMaster(prefix: string): Promise<string[]> {
  const byMaster = new Map<number, string>();
  for (let n = 0; byMaster.size < cluster.nodes.length; n++) {
    const id = `${prefix}-${n}`;
    const master = await masterOf(id);
    if (!byMaster.has(master)) {
      byMaster.set(master, id);
    }
  }
  return cluster.nodes.map((node) => byMaster.get(node.port) as string);
}

async function versionNumbers(client: RegistryClient, modelId: string): Promise<number[]> {
  const { version_infos } = await client.retrieveVersionInfos({ model_id: modelId });
  return version_infos.map((v) => v.version_number);
}

/** Collects a VersionUpdate stream's version numbers and its end. */
function follow(client: RegistryClient, modelId: string): VersionUpdateFollower {
  return followVersionUpdates(client, modelId, 30_000);
}

async function waitForHealth(health: HealthClient, wanted: string, timeoutMs = 30_000): Promise<void> {
  assert.equal(await health.waitFor(wanted, timeoutMs), wanted);
}

describe("several instances on a Redis Cluster of three masters", () => {
  before(async () => {
    // Without full coverage: while one master is down, the others go on serving their slots.
    cluster = await startRedisCluster(undefined, { masters: 3, nodeTimeoutMs: 1000, requireFullCoverage: false });
  });
  beforeEach(async () => {
    await cluster.waitUntilOk();
    await Promise.all(cluster.nodes.map((node) => cluster.cli(node.port, "flushall")));
  });
  after(async () => {
    killAllServers();
    await cluster?.close();
    killAllRedisServers();
  });

  test("the model keys' slots are Redis's own (CLUSTER KEYSLOT), and the test models live on three different masters", async () => {
    const ids = await modelsOnEveryMaster("slot");
    for (const id of [...ids, "with {braces} and ünïcode", "a"]) {
      const key = `cmr:${modelHashTag(id)}:d:1:0`;
      assert.equal(keySlot(key), await cluster.keySlot(key));
    }
    assert.deepEqual(await Promise.all(ids.map(masterOf)), cluster.nodes.map((node) => node.port));
  });

  test("concurrent uploads through three instances on models of three masters: unique, gap-free; every instance reads every write, lists and pages the models", async (t) => {
    const instances = await startInstances(t, await archiveDirFor(t), 3);
    const models = await modelsOnEveryMaster("upload");
    for (const [index, model] of models.entries()) {
      await (instances[index] as ServerInstance).client.createModel(model, { master: String(index) });
    }
    // Read your writes: every model is listed at once on every instance, in byte order, paged alike.
    const listed = [...models].sort().map((id) => ({ model_id: id, user_data: { master: String(models.indexOf(id)) } }));
    for (const instance of instances) {
      assert.deepEqual((await instance.client.retrieveModels()).model_infos, listed);
    }
    const first = await instances[0]?.client.retrieveModels({ models_count: 2 });
    assert.deepEqual(first?.model_infos, listed.slice(0, 2));
    assert.equal(first?.next_model_handle, "2");
    const rest = await instances[2]?.client.retrieveModels({ models_count: 2, model_handle: "2" });
    assert.deepEqual(rest, { model_infos: listed.slice(2), next_model_handle: "3" });

    const published = new Map<string, { info: WireVersionInfo; data: Buffer; via: number }[]>(models.map((model) => [model, []]));
    await Promise.all(
      models.flatMap((model) =>
        instances.flatMap((instance, via) =>
          Array.from({ length: 4 }, async (_, i) => {
            const data = randomBytes(500 + via * 10 + i);
            const info = await instance.client.publish(model, data, { archived: i === 0, user_data: { via: String(via) } });
            published.get(model)?.push({ info, data, via });
          }),
        ),
      ),
    );
    for (const model of models) {
      const versions = (published.get(model) ?? []).sort((x, y) => x.info.version_number - y.info.version_number);
      assert.deepEqual(
        versions.map((v) => v.info.version_number),
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
      for (const instance of instances) {
        assert.deepEqual((await instance.client.retrieveVersionInfos({ model_id: model })).version_infos, versions.map((v) => v.info));
      }
      for (const { info, data, via } of versions) {
        const reader = instances[(via + 1) % instances.length] as ServerInstance;
        assert.equal(sha256(await reader.client.retrieveData(model, info.version_number)), sha256(data));
      }
    }
  });

  test("a multi-chunk transient version is stored on its model's master and read whole through another instance", async (t) => {
    const [a, b] = (await startInstances(t, await archiveDirFor(t), 2)) as [ServerInstance, ServerInstance];
    const models = await modelsOnEveryMaster("large");
    const data = randomBytes(5 * 1024 * 1024 + 123);
    for (const model of models) {
      await a.client.createModel(model);
      assert.equal((await a.client.publish(model, data)).version_number, 1);
      // 2 MiB chunk keys, on the master serving the model's slot.
      const master = await masterOf(model);
      const base = `cmr:${modelHashTag(model)}:d:1:`;
      const lengths = await Promise.all([0, 1, 2, 3].map(async (i) => (await cluster.cli(master, "strlen", `${base}${i}`)).trim()));
      assert.deepEqual(lengths, [String(2 * 1024 * 1024), String(2 * 1024 * 1024), String(1024 * 1024 + 123), "0"]);
      const read = await b.client.retrieveVersionData(model, 1);
      assert.equal(sha256(Buffer.concat(read)), sha256(data));
    }
  });

  test("VersionUpdate on every instance gets each version in order; a deletion through one ends the streams on all (NOT_FOUND)", async (t) => {
    const instances = (await startInstances(t, await archiveDirFor(t), 3)) as [ServerInstance, ServerInstance, ServerInstance];
    const [a, b, c] = instances;
    const models = await modelsOnEveryMaster("followed");
    for (const model of models) {
      await a.client.createModel(model);
      await a.client.publish(model, Buffer.from("v1"));
    }
    const streams = models.flatMap((model) => [b, c].map((instance) => ({ model, stream: follow(instance.client, model) })));
    for (const { stream } of streams) {
      await stream.until(() => stream.numbers.length >= 1, "the current latest");
    }
    for (let i = 2; i <= 4; i++) {
      for (const [index, model] of models.entries()) {
        await (instances[index] as ServerInstance).client.publish(model, Buffer.from(`v${i}`));
      }
    }
    for (const { stream } of streams) {
      await stream.until(() => stream.numbers.at(-1) === 4, "version 4");
      assert.deepEqual(stream.numbers, [...new Set(stream.numbers)].sort((x, y) => x - y), "in order, no duplicate");
    }
    assert.equal((await b.client.retrieveData(models[1] as string, 4)).toString(), "v4");
    for (const model of models) {
      await a.client.deleteModel(model);
    }
    for (const { model, stream } of streams) {
      await stream.until(() => stream.error !== undefined, "the end of the stream");
      assert.equal(stream.error?.code, grpc.status.NOT_FOUND);
      assert.equal(stream.error?.details, `model "${model}" was deleted: this VersionUpdate stream has no more versions to send`);
    }
    for (const model of models) {
      await rejectsWithStatus(c.client.retrieveData(model, 4), grpc.status.NOT_FOUND, new RegExp(`^model "${model}" not found`));
    }
    assert.deepEqual((await b.client.retrieveModels()).model_infos, []);
    // Created again: numbering starts over, and B serves the new data, not a copy of the old.
    await c.client.createModel(models[1] as string);
    assert.equal((await c.client.publish(models[1] as string, Buffer.from("new one"))).version_number, 1);
    assert.equal((await b.client.retrieveData(models[1] as string, 1)).toString(), "new one");
  });

  test("instances given several nodes (comma-separated) on a single-mode archive: its models are imported, numbering continues above them", async (t) => {
    const archiveDir = await archiveDirFor(t);
    const single = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
    const singleClient = new RegistryClient(`127.0.0.1:${single.port}`);
    const models = await modelsOnEveryMaster("legacy");
    for (const model of models) {
      await singleClient.createModel(model, { origin: "single" });
      for (const data of ["one", "two", "three"]) {
        await singleClient.publish(model, Buffer.from(`${model} ${data}`), { archived: true });
      }
    }
    singleClient.close();
    single.child.kill("SIGTERM");
    await single.exited;

    const seeds = cluster.nodes.map((node) => node.url).join(",");
    const [a, b] = (await startInstances(t, archiveDir, 2, seeds)) as [ServerInstance, ServerInstance];
    assert.deepEqual(
      (await b.client.retrieveModels()).model_infos,
      [...models].sort().map((id) => ({ model_id: id, user_data: { origin: "single" } })),
    );
    for (const model of models) {
      assert.deepEqual(await versionNumbers(a.client, model), [1, 2, 3]);
      assert.equal((await b.client.retrieveData(model, 2)).toString(), `${model} two`);
      assert.equal((await a.client.publish(model, Buffer.from("four"))).version_number, 4);
      assert.equal((await b.client.publish(model, Buffer.from("five"), { archived: true })).version_number, 5);
      assert.equal((await a.client.retrieveData(model, 4)).toString(), "four");
    }
    // The mark of the import is on one master; the models' infos each on their own.
    assert.equal((await cluster.cli(await cluster.ownerOfSlot(keySlot("cmr:archive-imported")), "exists", "cmr:archive-imported")).trim(), "1");
  });

  test("a model's slot moved to another master (MIGRATE, SETSLOT): reads, chunked reads and commits go on through every instance", async (t) => {
    const [a, b] = (await startInstances(t, await archiveDirFor(t), 2)) as [ServerInstance, ServerInstance];
    const model = (await modelsOnEveryMaster("moved"))[0] as string;
    await a.client.createModel(model);
    const large = randomBytes(5 * 1024 * 1024);
    await a.client.publish(model, Buffer.from("small one"));
    await a.client.publish(model, large);
    // Each instance has read the model, so each routes its keys (commands and chunks) to the old master.
    assert.equal(sha256(await b.client.retrieveData(model, 2)), sha256(large));
    assert.equal((await a.client.retrieveData(model, 1)).toString(), "small one");

    const slot = keySlot(`cmr:${modelHashTag(model)}:model`);
    const source = await cluster.ownerOfSlot(slot);
    const target = (cluster.nodes.find((node) => node.port !== source) as { port: number }).port;
    await moveSlot(slot, source, target);
    assert.equal(await cluster.ownerOfSlot(slot), target);

    assert.deepEqual(await versionNumbers(b.client, model), [1, 2]);
    assert.equal(sha256(await a.client.retrieveData(model, 2)), sha256(large));
    assert.equal((await b.client.retrieveData(model, 1)).toString(), "small one");
    assert.equal((await b.client.publish(model, large)).version_number, 3);
    assert.equal((await a.client.publish(model, Buffer.from("four"), { archived: true })).version_number, 4);
    assert.equal(sha256(await a.client.retrieveData(model, 3)), sha256(large));
    assert.equal((await b.client.retrieveData(model, 4)).toString(), "four");
    const lengths = await Promise.all([0, 1, 2].map(async (i) => (await cluster.cli(target, "strlen", `cmr:${modelHashTag(model)}:d:3:${i}`)).trim()));
    assert.deepEqual(lengths, [String(2 * 1024 * 1024), String(2 * 1024 * 1024), String(1024 * 1024)]);
  });

  test("while a model's slot migrates, a commit or a deletion that meets a key the node does not hold fails whole: no number taken, nothing written or deleted", async (t) => {
    const model = (await modelsOnEveryMaster("migrating"))[0] as string;
    const keys = modelKeys("cmr:", model);
    const slot = keySlot(keys.model);
    const source = await cluster.ownerOfSlot(slot);
    const target = (cluster.nodes.find((node) => node.port !== source) as { port: number }).port;
    const node = new Redis({ port: source, lazyConnect: true, maxRetriesPerRequest: 0 });
    node.on("error", () => undefined);
    t.after(() => node.disconnect());
    // A model deleted once (its generation key exists), version 1 transient in one chunk, and an upload
    // whose chunk was stored before the move began: every key the scripts read first is on the source.
    await node.hset(keys.model, "userData", "{}");
    await node.set(keys.generation, "1");
    await node.set(keys.counter, "1");
    await node.zadd(keys.numbers, 1, 1);
    await node.set(versionInfoKey(keys, 1), '{"versionNumber":1,"storedAtMs":1,"chunks":1}');
    await node.set(dataChunkKey(keys, 1, 0), "one");
    await node.set(pendingChunkKey(keys, "up", 0), "two");
    const move = cluster.slotMove(slot, source, target);
    t.after(async () => {
      for (const { port } of cluster.nodes) {
        await cluster.cli(port, "cluster", "setslot", String(slot), "stable"); // a failed test leaves no slot migrating
      }
    });
    await move.begin();
    const run = (script: typeof COMMIT_VERSION, keyList: string[], args: string[]) =>
      node.evalsha(script.sha1, keyList.length, ...keyList, ...args).catch(async (error: Error) => {
        if (!error.message.startsWith("NOSCRIPT")) {
          throw error;
        }
        return node.eval(script.source, keyList.length, ...keyList, ...args);
      });
    const commitArgs = [keys.base, "1", "up", "1", '"chunks":1,"archived":false}', "0", "cmr:test-events", "4294967295"];
    const modelKeyList = [keys.model, keys.generation, keys.counter, keys.numbers];

    // The new version's keys are not on the source: the commit fails before INCR, as UNAVAILABLE.
    const commitError = (await run(COMMIT_VERSION, modelKeyList, commitArgs).then(
      () => undefined,
      (error: unknown) => error,
    )) as Error | undefined;
    assert.ok(commitError !== undefined, "the commit must fail while the slot migrates");
    assert.match(commitError.message, /Script attempted to access a non local key/);
    assert.equal(toRegistryError("node", commitError).code, grpc.status.UNAVAILABLE);
    assert.equal(await node.get(keys.counter), "1");
    assert.deepEqual(await node.zrange(keys.numbers, 0, -1), ["1"]);
    assert.equal(await node.get(pendingChunkKey(keys, "up", 0)), "two");
    assert.equal(await node.pttl(dataChunkKey(keys, 1, 0)), -1, "the previous latest keeps no TTL");

    // Version 1's chunk already moved: the deletion fails before unlinking anything.
    await move.migrate([dataChunkKey(keys, 1, 0)]);
    const deleteError = (await run(DELETE_MODEL, modelKeyList, [keys.base, "cmr:test-events", JSON.stringify(model)]).then(
      () => undefined,
      (error: unknown) => error,
    )) as Error | undefined;
    assert.ok(deleteError !== undefined, "the deletion must fail while the slot migrates");
    assert.equal(toRegistryError("node", deleteError).code, grpc.status.UNAVAILABLE);
    assert.equal(await node.exists(keys.model, keys.counter, keys.numbers, versionInfoKey(keys, 1)), 4);
    assert.equal(await node.get(keys.generation), "1");

    // Once the move is done, the commit takes the next number: 2, no gap.
    await move.finish();
    const owner = new Redis({ port: target, lazyConnect: true, maxRetriesPerRequest: 0 });
    owner.on("error", () => undefined);
    t.after(() => owner.disconnect());
    const info = String(await owner.eval(COMMIT_VERSION.source, 4, ...modelKeyList, ...commitArgs));
    assert.match(info, /^\{"versionNumber":2,/);
    assert.equal(await owner.get(dataChunkKey(keys, 2, 0)), "two");
    assert.deepEqual(await owner.zrange(keys.numbers, 0, -1), ["1", "2"]);
  });

  test("after the subscriber connections were cut on every node, the instances catch up: VersionUpdate ends with the latest", async (t) => {
    const [a, b] = (await startInstances(t, await archiveDirFor(t), 2)) as [ServerInstance, ServerInstance];
    const models = await modelsOnEveryMaster("cut");
    for (const model of models) {
      await a.client.createModel(model);
      await a.client.publish(model, Buffer.from("v1"));
    }
    const streams = models.map((model) => follow(b.client, model));
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 1, "the current latest");
    }
    await Promise.all(cluster.nodes.map((node) => cluster.cli(node.port, "client", "kill", "type", "pubsub")));
    for (let i = 2; i <= 4; i++) {
      for (const model of models) {
        await a.client.publish(model, Buffer.from(`v${i}`));
      }
    }
    for (const stream of streams) {
      await stream.until(() => stream.numbers.at(-1) === 4, "version 4");
      assert.deepEqual(stream.numbers, [...new Set(stream.numbers)].sort((x, y) => x - y), "in order, no duplicate");
    }
  });

  test("a single Redis stays in single mode (one INFO cluster at connection), also for a user not allowed INFO", async (t) => {
    const single = await startRedisServer(t);
    await cluster.cli(single.port, "acl", "setuser", "reg", "on", ">secret", "~*", "&*", "+@all", "-info");
    for (const url of [single.url, single.url.replace("redis://", "redis://reg:secret@")]) {
      const store = RedisRegistryStore.create(url, { expirationMs: 0 });
      t.after(() => store.close());
      await store.connection.waitUntilHealthy(30_000);
      assert.equal(store.connection.mode, "single");
      assert.equal(store.connection.address, `127.0.0.1:${single.port}`);
      await store.putModel({ modelId: "alone", userData: {} });
      assert.deepEqual(await store.listModelIds(), ["alone"]);
    }
  });

  test("one URL naming a database other than 0 on a Cluster node is refused (never served from database 0), the reason in the errors", async (t) => {
    const store = RedisRegistryStore.create(`${cluster.url}/3`, { expirationMs: 0 });
    t.after(() => store.close());
    const reason =
      "the URL names database 3, but the Redis there is a Redis Cluster node, which has only database 0: remove /3 from COGMENT_MODEL_REGISTRY_REDIS_URL";
    await assert.rejects(store.connection.waitUntilHealthy(3_000), (error: Error) => {
      assert.equal(error.message, `Redis at ${cluster.url.replace("redis://", "")} is unreachable: ${reason}`);
      return true;
    });
    assert.equal(store.connection.mode, "detecting");
    assert.equal(store.connection.healthy, false);
  });

  test("the chunk connections follow ASK (a slot half migrated) and MOVED (moved, ioredis's map not told yet): copies stay byte-exact, in order", async (t) => {
    const store = RedisRegistryStore.create(cluster.url, { expirationMs: 0, chunkBytes: 1024 });
    t.after(() => store.close());
    await store.connection.waitUntilHealthy(30_000);
    assert.equal(store.connection.mode, "cluster");
    const model = (await modelsOnEveryMaster("chunks"))[0] as string;
    const data = randomBytes(5 * 1024 + 7);
    const version = await commitTransientVersion(store, model, data);
    assert.equal(version.chunkCount, 6);
    const copy = (): Promise<Buffer> => copiedVersionData(store, version);
    const read = async (): Promise<Buffer> => {
      const chunks: Buffer[] = [];
      for await (const chunk of store.readVersionData(version)) {
        chunks.push(chunk);
      }
      return Buffer.concat(chunks);
    };
    assert.deepEqual(await copy(), data);

    const slot = keySlot(`cmr:${modelHashTag(model)}:model`);
    const source = await cluster.ownerOfSlot(slot);
    const target = (cluster.nodes.find((node) => node.port !== source) as { port: number }).port;
    const move = cluster.slotMove(slot, source, target);
    await move.begin();
    // Chunks 1 and 3 are on the target already: the source answers ASK for them.
    await move.migrate([1, 3].map((i) => `cmr:${modelHashTag(model)}:d:1:${i}`));
    assert.deepEqual(await copy(), data);
    assert.deepEqual(await read(), data);
    await move.finish();
    const slots = (store.connection.commands as Cluster).slots;
    assert.equal(slots[slot]?.[0], `127.0.0.1:${source}`, "ioredis has not seen the move yet");
    assert.deepEqual(await copy(), data);
    assert.deepEqual(await read(), data);
    assert.equal(await store.connection.chunks.getBuffer(`cmr:${modelHashTag(model)}:d:1:5`).then((chunk) => chunk?.byteLength), 7);
  });

  test("a copy never has GETs in flight on two nodes: with another reader's ASK pending for one chunk, the copy's bytes stay in order", async (t) => {
    const store = RedisRegistryStore.create(cluster.url, { expirationMs: 0, chunkBytes: 1024 * 1024 });
    t.after(() => store.close());
    await store.connection.waitUntilHealthy(30_000);
    const model = (await modelsOnEveryMaster("asked"))[0] as string;
    const data = randomBytes(5 * 1024 * 1024);
    const version = await commitTransientVersion(store, model, data);
    assert.equal(version.chunkCount, 5);
    const slot = keySlot(`cmr:${modelHashTag(model)}:model`);
    const source = await cluster.ownerOfSlot(slot);
    const target = (cluster.nodes.find((node) => node.port !== source) as { port: number }).port;
    const move = cluster.slotMove(slot, source, target);
    t.after(async () => {
      for (const { port } of cluster.nodes) {
        await cluster.cli(port, "cluster", "setslot", String(slot), "stable");
      }
    });
    await move.begin();
    const third = `cmr:${modelHashTag(model)}:d:1:3`;
    await move.migrate([third]);
    // Another reader's GET of chunk 3 meets ASK: the next command for that key goes to the target.
    await assert.rejects(
      store.connection.chunks.getInto(third, () => undefined),
      (error: Error) => error.name === "ChunkRedirected",
    );
    for (let round = 0; round < 3; round++) {
      const pieces: Buffer[] = [];
      await store.copyVersionData(version, (piece) => pieces.push(Buffer.from(piece)));
      assert.equal(sha256(Buffer.concat(pieces)), sha256(data), `copy ${round}`);
    }
    await move.finish();
  });

  test("one master stopped: calls for its models fail UNAVAILABLE naming Redis, health NOT_SERVING, the other masters' models go on; restarted: recovery", async (t) => {
    const [a, b] = (await startInstances(t, await archiveDirFor(t), 2)) as [ServerInstance, ServerInstance];
    const models = await modelsOnEveryMaster("outage");
    for (const model of models) {
      await a.client.createModel(model);
      await a.client.publish(model, Buffer.from("before"), { archived: true });
    }
    const streams = models.map((model) => follow(b.client, model));
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 1, "the current latest");
    }
    const health = new HealthClient(a.address);
    t.after(() => health.close());
    assert.equal(await health.check(""), "SERVING");

    // The seed node: both instances' subscriber connections are on it, and must move to another node.
    const down = cluster.nodes[0] as (typeof cluster.nodes)[number];
    const [onDown, ...elsewhere] = models as [string, string, string];
    await down.stop("SIGKILL");
    const unreachable = new RegExp(`^Redis at 127\\.0\\.0\\.1:${down.port} \\(cluster\\) is unreachable: `);
    await rejectsWithStatus(a.client.publish(onDown, Buffer.from("during")), grpc.status.UNAVAILABLE, unreachable);
    await rejectsWithStatus(b.client.retrieveVersionInfos({ model_id: onDown }), grpc.status.UNAVAILABLE, unreachable);
    await waitForHealth(health, "NOT_SERVING");
    assert.equal(a.process.child.exitCode, null, "the instance stays up");
    assert.equal(b.process.child.exitCode, null, "the instance stays up");
    // The other masters' models: commits, reads and VersionUpdate (through a subscriber on another node).
    for (const [index, model] of elsewhere.entries()) {
      assert.equal((await a.client.publish(model, Buffer.from("during"))).version_number, 2);
      assert.equal((await b.client.retrieveData(model, 2)).toString(), "during");
      const stream = streams[index + 1] as ReturnType<typeof follow>;
      await stream.until(() => stream.numbers.at(-1) === 2, `version 2 of ${model} while a master is down`);
    }
    await rejectsWithStatus(a.client.publish(onDown, Buffer.from("during")), grpc.status.UNAVAILABLE, unreachable);

    await down.start();
    await cluster.waitUntilOk();
    // Each instance reconnects to the node on its own (its probe, its next call): both must be back.
    await waitForHealth(health, "SERVING");
    const healthOfB = new HealthClient(b.address);
    t.after(() => healthOfB.close());
    await waitForHealth(healthOfB, "SERVING");
    // AOF kept the numbering; B's stream (subscribed before) gets the new version.
    assert.equal((await a.client.publish(onDown, Buffer.from("after"))).version_number, 2);
    await streams[0]?.until(() => streams[0]?.numbers.at(-1) === 2, "version 2 after the recovery");
    assert.equal((await b.client.retrieveData(onDown, 2)).toString(), "after");
    for (const model of models) {
      assert.equal((await b.client.retrieveData(model, 1)).toString(), "before");
      assert.deepEqual(streams[models.indexOf(model)]?.numbers, [1, 2]);
    }
  });
  test("a hung master (SIGSTOP): errors name it, calls for its models fail at once after the first timeout, health NOT_SERVING, the other masters' models go on; SIGCONT: recovery", async (t) => {
    const [a, b] = (await startInstances(t, await archiveDirFor(t), 2)) as [ServerInstance, ServerInstance];
    const models = await modelsOnEveryMaster("hung");
    for (const model of models) {
      await a.client.createModel(model);
      await a.client.publish(model, Buffer.from("before"));
    }
    const healthA = new HealthClient(a.address);
    const healthB = new HealthClient(b.address);
    t.after(() => {
      healthA.close();
      healthB.close();
    });
    assert.equal(await healthA.check(""), "SERVING");

    // Not the seed (the instances were given nodes[0]): the errors must name the master that hung.
    const hung = cluster.nodes[1] as (typeof cluster.nodes)[number];
    const [, onHung, elsewhere] = models as [string, string, string];
    assert.equal(await masterOf(onHung), hung.port);
    hung.pause();
    t.after(() => hung.resume()); // also when the test fails: the next tests need it
    const prefix = `Redis at 127.0.0.1:${hung.port} (cluster) is unreachable: `;
    const failingFast = `${prefix}no reply within 2000 ms to an earlier command; calls for its slots fail at once until it answers again`;

    // The first call waits the 2 s bound and names the master; health turns NOT_SERVING with it.
    await rejectsWithStatus(a.client.retrieveVersionInfos({ model_id: onHung }), grpc.status.UNAVAILABLE, exactly(`${prefix}Command timed out`));
    assert.equal(await healthA.check(""), "NOT_SERVING");
    // Then every call for its models fails without being sent (the message says so), reads and commits alike.
    await rejectsWithStatus(a.client.retrieveVersionInfos({ model_id: onHung }), grpc.status.UNAVAILABLE, exactly(failingFast));
    await rejectsWithStatus(a.client.retrieveData(onHung, 1), grpc.status.UNAVAILABLE, exactly(failingFast));
    await rejectsWithStatus(a.client.publish(onHung, Buffer.from("during")), grpc.status.UNAVAILABLE, exactly(failingFast));
    // B made no call to it: its probe finds the master hung, and B fails fast too.
    await waitForHealth(healthB, "NOT_SERVING");
    await rejectsWithStatus(b.client.retrieveVersionInfos({ model_id: onHung }), grpc.status.UNAVAILABLE, exactly(failingFast));
    // The other masters' models: committed through one instance, read through the other.
    for (const model of models.filter((id) => id !== onHung)) {
      assert.equal((await a.client.publish(model, Buffer.from(`during ${model}`))).version_number, 2);
      assert.equal((await b.client.retrieveData(model, 2)).toString(), `during ${model}`);
    }
    assert.equal((await b.client.retrieveData(elsewhere, 1)).toString(), "before");

    hung.resume();
    await cluster.waitUntilOk();
    await waitForHealth(healthA, "SERVING");
    await waitForHealth(healthB, "SERVING");
    assert.equal((await a.client.publish(onHung, Buffer.from("after"))).version_number, 2);
    assert.equal((await b.client.retrieveData(onHung, 2)).toString(), "after");
    assert.equal((await b.client.retrieveData(onHung, 1)).toString(), "before");
  });
});

async function moveSlot(slot: number, source: number, target: number): Promise<void> {
  const move = cluster.slotMove(slot, source, target);
  await move.begin();
  await move.finish();
}
