import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type Cluster, Redis } from "ioredis";
import { RedisRegistryStore, modelHashTag } from "../../src/redis/index.js";
import { keySlot } from "../../src/redis/cluster-slot.js";
import { parseNatMap } from "../../src/redis/nat-map.js";
import { HealthClient } from "../support/health-client.js";
import { type RedisTestCluster, startRedisCluster } from "../support/redis-cluster.js";
import { MASTER_NAME, killAllSentinels, startSentinelDeployment } from "../support/redis-sentinel.js";
import { killAllRedisServers } from "../support/redis-server.js";
import { rejectsWithStatus } from "../support/registry-client.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, removeArchiveAfterServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { followVersionUpdates } from "../support/version-update-follower.js";
import { commitTransientVersion, copiedVersionData } from "../support/redis-store-versions.js";
import { literally } from "../support/exact-text.js";

/*
 * A Redis Cluster whose nodes announce (CLUSTER SLOTS, MOVED, ASK) loopback ports of their own on which
 * nothing answers, as the nodes of a cluster in Docker or Kubernetes announce addresses the instances
 * outside cannot use: with COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP every connection of an instance
 * (ioredis's, the subscriber's, the chunk connections) reaches the nodes at their real ports; without
 * it the instance says UNAVAILABLE naming Redis, and never waits longer than the 2 s bound. Then
 * Sentinels naming the primary at an address that refuses connections (the same map), and a TLS
 * cluster whose certificates name only a host name (COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS).
 */

let cluster: RedisTestCluster;

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function startInstance(t: TestContext, archiveDir: string, natMap: string | undefined): Promise<ServerInstance> {
  return startServerInstance(t, {
    COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
    COGMENT_MODEL_REGISTRY_REDIS_URL: cluster.url,
    ...(natMap === undefined ? {} : { COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP: natMap }),
  });
}

async function archiveDirFor(t: TestContext): Promise<string> {
  const archiveDir = await makeArchiveDir();
  removeArchiveAfterServers(t, archiveDir);
  return archiveDir;
}

/** One model id per master of `of`, in the order of its nodes. */
async function modelsOnEveryMasterOf(of: RedisTestCluster, prefix: string): Promise<string[]> {
  const byMaster = new Map<number, string>();
  for (let n = 0; byMaster.size < of.nodes.length; n++) {
    const id = `${prefix}-${n}`;
    const master = await of.ownerOfSlot(keySlot(`cmr:${modelHashTag(id)}:model`));
    if (!byMaster.has(master)) {
      byMaster.set(master, id);
    }
  }
  return of.nodes.map((node) => byMaster.get(node.port) as string);
}

function modelsOnEveryMaster(prefix: string): Promise<string[]> {
  return modelsOnEveryMasterOf(cluster, prefix);
}

/** The ports CLUSTER SLOTS names for the masters, as a client of the cluster reads them. */
async function portsInClusterSlots(): Promise<number[]> {
  const client = new Redis({ host: "127.0.0.1", port: cluster.nodes[0]?.port, maxRetriesPerRequest: 1 });
  try {
    const ranges = await client.cluster("SLOTS");
    return [...new Set(ranges.flatMap(([, , master]) => (master === undefined ? [] : [master[1]])))].sort((x, y) => x - y);
  } finally {
    client.disconnect();
  }
}

/** Settles with `promise`, or rejects once `ms` passed: a call that hangs fails the test instead of holding it. */
async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

describe("a Redis Cluster whose nodes announce addresses the instances cannot reach (NAT, containers)", () => {
  before(async () => {
    cluster = await startRedisCluster(undefined, { masters: 3, nodeTimeoutMs: 1000, announceUnreachablePorts: true });
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

  test("with REDIS_NAT_MAP, two instances upload to every master, read each other's chunked versions, follow them (VersionUpdate), also after their subscribers were cut", async (t) => {
    // The setting the map is for: the cluster names its masters only at ports where nothing answers.
    assert.deepEqual(await portsInClusterSlots(), [...cluster.announcedPorts].sort((x, y) => x - y));
    assert.equal(cluster.announcedPorts.some((port) => cluster.nodes.some((node) => node.port === port)), false);

    const archiveDir = await archiveDirFor(t);
    const a = await startInstance(t, archiveDir, cluster.natMap);
    const b = await startInstance(t, archiveDir, cluster.natMap);
    for (const instance of [a, b]) {
      const health = new HealthClient(instance.address);
      t.after(() => health.close());
      assert.equal(await health.waitFor("SERVING", 30_000), "SERVING");
    }
    const models = await modelsOnEveryMaster("nat");
    const large = randomBytes(5 * 1024 * 1024 + 17);
    for (const model of models) {
      await a.client.createModel(model);
      assert.equal((await a.client.publish(model, Buffer.from("v1"))).version_number, 1);
    }
    const streams = models.map((model) => followVersionUpdates(b.client, model, 30_000));
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 1, "the current latest");
    }
    for (const model of models) {
      // 2 MiB chunk keys written by A's chunk connection to the model's master, read by B's.
      assert.equal((await a.client.publish(model, large)).version_number, 2);
      assert.equal((await b.client.publish(model, Buffer.from("v3"), { archived: true })).version_number, 3);
      assert.equal(sha256(await b.client.retrieveData(model, 2)), sha256(large));
      assert.equal((await a.client.retrieveData(model, 3)).toString(), "v3");
    }
    for (const stream of streams) {
      await stream.until(() => stream.numbers.at(-1) === 3, "version 3");
      assert.deepEqual(stream.numbers, [1, 2, 3]);
    }
    const listed = [...models].sort().map((id) => ({ model_id: id, user_data: {} }));
    assert.deepEqual((await b.client.retrieveModels()).model_infos, listed);

    // Each subscriber connects again, to the next node it knows (the seed, or a node of ioredis's map: a reachable address).
    await Promise.all(cluster.nodes.map((node) => cluster.cli(node.port, "client", "kill", "type", "pubsub")));
    for (const model of models) {
      assert.equal((await a.client.publish(model, Buffer.from("v4"))).version_number, 4);
    }
    for (const stream of streams) {
      await stream.until(() => stream.numbers.at(-1) === 4, "version 4 after the subscriber connections were cut");
      assert.deepEqual(stream.numbers, [1, 2, 3, 4]);
    }
  });

  test("the chunk connections follow ASK and MOVED, which name the announced address, to where the map says: copies stay byte-exact", async (t) => {
    const store = RedisRegistryStore.create(cluster.url, { expirationMs: 0, chunkBytes: 1024, natMap: parseNatMap(cluster.natMap) });
    t.after(() => store.close());
    await store.connection.waitUntilHealthy(30_000);
    assert.equal(store.connection.mode, "cluster");
    const model = (await modelsOnEveryMaster("nat-chunks"))[0] as string;
    const data = randomBytes(5 * 1024 + 7);
    const version = await commitTransientVersion(store, model, data);
    assert.equal(version.chunkCount, 6);
    const copy = (): Promise<Buffer> => copiedVersionData(store, version);
    assert.deepEqual(await copy(), data);

    const slot = keySlot(`cmr:${modelHashTag(model)}:model`);
    const source = await cluster.ownerOfSlot(slot);
    const target = (cluster.nodes.find((node) => node.port !== source) as { port: number }).port;
    const targetAnnounced = cluster.announcedPorts[cluster.nodes.findIndex((node) => node.port === target)];
    const move = cluster.slotMove(slot, source, target);
    t.after(async () => {
      for (const { port } of cluster.nodes) {
        await cluster.cli(port, "cluster", "setslot", String(slot), "stable"); // a failed test leaves no slot migrating
      }
    });
    await move.begin();
    const moved = [1, 3].map((i) => `cmr:${modelHashTag(model)}:d:1:${i}`);
    await move.migrate(moved);
    // What the chunk connection is told: the target as the cluster announces it.
    const plain = new Redis({ host: "127.0.0.1", port: source, maxRetriesPerRequest: 1 });
    t.after(() => plain.disconnect());
    await assert.rejects(plain.get(moved[0] as string), { message: `ASK ${slot} 127.0.0.1:${targetAnnounced}` });
    assert.deepEqual(await copy(), data);
    await move.finish();
    const slots = (store.connection.commands as Cluster).slots;
    assert.equal(slots[slot]?.[0], `127.0.0.1:${source}`, "ioredis has not seen the move yet (its map holds the reachable address)");
    assert.deepEqual(await copy(), data);
    assert.equal(await store.connection.chunks.getBuffer(`cmr:${modelHashTag(model)}:d:1:5`).then((chunk) => chunk?.byteLength), 7);
  });

  // Last: it closes the listeners on the announced ports.
  test("without the map: health NOT_SERVING and every call UNAVAILABLE naming Redis, the masters as announced and the map, at once, whether the announced ports are silent or refuse", async (t) => {
    const archiveDir = await archiveDirFor(t);
    const seed = `Redis at 127.0.0.1:${cluster.nodes[0]?.port} (cluster) is unreachable: `;
    const masters = cluster.announcedPorts.map((port) => `127.0.0.1:${port}`).sort().join(", ");
    const advice = ` (the cluster announces its masters at ${masters}: if those addresses are not reachable from here, e.g. behind NAT or in containers, map them to reachable ones with COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP)`;
    /** Calls RetrieveModels until its UNAVAILABLE matches `expected` (the first ones may come before the instance tried the nodes). */
    const failsWith = async (instance: ServerInstance, expected: RegExp): Promise<void> => {
      for (const deadline = Date.now() + 30_000; ; ) {
        const error = await settlesWithin(instance.client.retrieveModels(), 10_000, "RetrieveModels").then(
          () => assert.fail("RetrieveModels must fail without the map"),
          (failure: grpc.ServiceError) => failure,
        );
        assert.equal(error.code, grpc.status.UNAVAILABLE, error.message);
        assert.ok(error.details.startsWith(seed), error.details);
        if (expected.test(error.details) || Date.now() > deadline) {
          assert.match(error.details, expected);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    // Announced ports that take connections and never answer: ioredis's ready check times out (2 s).
    const silent = await startInstance(t, archiveDir, undefined);
    const health = new HealthClient(silent.address);
    t.after(() => health.close());
    await failsWith(silent, new RegExp(`^${literally(`${seed}no reply from the Cluster nodes within 2000 ms${advice}`)}$`));
    await rejectsWithStatus(settlesWithin(silent.client.createModel("m"), 10_000, "CreateModel"), grpc.status.UNAVAILABLE, new RegExp(`^${literally(seed)}`));
    assert.equal(await health.check(""), "NOT_SERVING");

    // Announced ports that refuse connections.
    await cluster.refuseAnnouncedPorts();
    const refused = await startInstance(t, archiveDir, undefined);
    await failsWith(
      refused,
      new RegExp(
        `^${literally(`${seed}cannot connect to the Cluster node `)}127\\.0\\.0\\.1:(${cluster.announcedPorts.join("|")}): ` +
          `connect ECONNREFUSED 127\\.0\\.0\\.1:\\1${literally(advice)}$`,
      ),
    );
  });
});

/**
 * The call's value once the instance serves it; until then every failure must be UNAVAILABLE matching
 * `unavailable` and come within 10 s (a failover: the instance reconnects by itself).
 */
async function onceServed<T>(call: () => Promise<T>, unavailable: RegExp, what: string): Promise<T> {
  for (const deadline = Date.now() + 30_000; ; await new Promise((resolve) => setTimeout(resolve, 100))) {
    const outcome = await settlesWithin(
      call().then(
        (value) => ({ value }),
        (error: grpc.ServiceError) => ({ error }),
      ),
      10_000,
      what,
    );
    if (!("error" in outcome)) {
      return outcome.value;
    }
    assert.equal(outcome.error.code, grpc.status.UNAVAILABLE, outcome.error.message);
    assert.match(outcome.error.details, unavailable);
    assert.ok(Date.now() < deadline, `${what} still fails after 30 s: ${outcome.error.message}`);
  }
}

describe("Sentinels that name the primary at an address the instances cannot reach (NAT, containers)", () => {
  after(() => {
    killAllServers();
    killAllSentinels();
    killAllRedisServers();
  });

  test("without REDIS_NAT_MAP: UNAVAILABLE naming the announced address and the map; with it, two instances share chunked versions and VersionUpdate, and follow a failover", async (t) => {
    const deployment = await startSentinelDeployment(t, { primaryBehindNat: true });
    const [primary, replica] = deployment.nodes;
    const sentinel = new Redis({ host: "127.0.0.1", port: deployment.sentinelPorts[0], maxRetriesPerRequest: 1 });
    t.after(() => sentinel.disconnect());
    assert.deepEqual(await sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME), ["127.0.0.1", String(deployment.announcedPrimaryPort)]);
    assert.notEqual(deployment.announcedPrimaryPort, primary.port);
    const unavailable = new RegExp(
      `^Redis at master "${MASTER_NAME}" of Sentinels ${deployment.sentinelPorts.map((port) => `127\\.0\\.0\\.1:${port}`).join(",")} is unreachable: `,
    );

    const archiveDir = await archiveDirFor(t);
    const start = (natMap: string | undefined): Promise<ServerInstance> =>
      startServerInstance(t, {
        COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
        COGMENT_MODEL_REGISTRY_REDIS_URL: deployment.url,
        ...(natMap === undefined ? {} : { COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP: natMap }),
      });
    const unmapped = await start(undefined);
    const hint = new RegExp(
      `${unavailable.source}${literally(`connect ECONNREFUSED 127.0.0.1:${deployment.announcedPrimaryPort} (the address the Sentinels name for the primary: if it is not reachable from here, e.g. behind NAT or in containers, map it to a reachable one with COGMENT_MODEL_REGISTRY_REDIS_NAT_MAP)`)}$`,
    );
    for (const deadline = Date.now() + 30_000; ; ) {
      // The first calls may come before the instance asked the Sentinels.
      const error = await settlesWithin(unmapped.client.retrieveModels(), 10_000, "RetrieveModels").then(
        () => assert.fail("RetrieveModels must fail without the map"),
        (failure: grpc.ServiceError) => failure,
      );
      assert.equal(error.code, grpc.status.UNAVAILABLE, error.message);
      assert.match(error.details, unavailable);
      if (hint.test(error.details) || Date.now() > deadline) {
        assert.match(error.details, hint);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const unmappedHealth = new HealthClient(unmapped.address);
    t.after(() => unmappedHealth.close());
    assert.equal(await unmappedHealth.check(""), "NOT_SERVING");

    const [a, b] = [await start(deployment.natMap), await start(deployment.natMap)];
    for (const instance of [a, b]) {
      const health = new HealthClient(instance.address);
      t.after(() => health.close());
      assert.equal(await health.waitFor("SERVING", 30_000), "SERVING");
    }
    const large = randomBytes(5 * 1024 * 1024 + 3);
    await a.client.createModel("behind-nat");
    const stream = followVersionUpdates(b.client, "behind-nat", 30_000);
    assert.equal((await a.client.publish("behind-nat", large)).version_number, 1);
    assert.equal((await b.client.publish("behind-nat", Buffer.from("v2"), { archived: true })).version_number, 2);
    // B reads A's chunks from the primary the map names (its chunk connection follows the command connection).
    assert.equal(sha256(await b.client.retrieveData("behind-nat", 1)), sha256(large));
    await stream.until(() => stream.numbers.at(-1) === 2, "version 2");
    const stored = deployment.inspect(primary);
    assert.equal(await stored.strlen(`cmr:${modelHashTag("behind-nat")}:d:1:0`), 2 * 1024 * 1024);

    // A failover: the Sentinels name the replica at its own address, which the map does not list.
    assert.equal(await stored.call("WAIT", "1", "5000"), 1);
    await primary.stop("SIGKILL");
    await deployment.waitForPrimary(replica);
    const larger = randomBytes(3 * 1024 * 1024 + 5);
    const afterFailover = await onceServed(() => a.client.publish("behind-nat", larger), unavailable, "a commit after the failover");
    assert.equal(afterFailover.version_number, 3);
    await stream.until(() => stream.numbers.at(-1) === 3, "version 3, after the failover");
    assert.deepEqual(stream.numbers, [1, 2, 3]);
    // B's chunk connection left the dead primary for the promoted replica, at its own address.
    assert.equal(sha256(await onceServed(() => b.client.retrieveData("behind-nat", 3), unavailable, "a read after the failover")), sha256(larger));
    assert.equal(await deployment.inspect(replica).strlen(`cmr:${modelHashTag("behind-nat")}:d:3:1`), 1024 * 1024 + 5);
  });
});

describe("a Redis Cluster on TLS whose certificates name a host name only (AWS ElastiCache with TLS): REDIS_CLUSTER_RESOLVE_SEEDS", () => {
  let tlsCluster: RedisTestCluster;
  before(async () => {
    tlsCluster = await startRedisCluster(undefined, { masters: 3, nodeTimeoutMs: 1000, tlsByHostName: true });
  });
  after(async () => {
    killAllServers();
    await tlsCluster?.close();
    killAllRedisServers();
  });

  test("false: the seed is reached by name and its certificate checked against it, two instances share chunked versions; true (ioredis's default): the seed's IP address fails the check, UNAVAILABLE", async (t) => {
    const archiveDir = await archiveDirFor(t);
    const start = (resolveSeeds: string): Promise<ServerInstance> =>
      startServerInstance(t, {
        COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
        COGMENT_MODEL_REGISTRY_REDIS_URL: tlsCluster.url,
        COGMENT_MODEL_REGISTRY_REDIS_CLUSTER_RESOLVE_SEEDS: resolveSeeds,
        NODE_EXTRA_CA_CERTS: tlsCluster.caFile as string,
      });
    assert.match(tlsCluster.url, /^rediss:\/\/localhost:\d+$/);

    const [a, b] = [await start("false"), await start("false")];
    for (const instance of [a, b]) {
      const health = new HealthClient(instance.address);
      t.after(() => health.close());
      assert.equal(await health.waitFor("SERVING", 30_000), "SERVING");
    }
    const models = await modelsOnEveryMasterOf(tlsCluster, "tls");
    const large = randomBytes(5 * 1024 * 1024 + 11);
    for (const model of models) {
      await a.client.createModel(model);
      assert.equal((await a.client.publish(model, large)).version_number, 1);
      assert.equal(sha256(await b.client.retrieveData(model, 1)), sha256(large));
    }

    const resolved = await start("true");
    const health = new HealthClient(resolved.address);
    t.after(() => health.close());
    const unavailable = new RegExp(`^Redis at localhost:${tlsCluster.announcedPorts[0]} \\(cluster\\) is unreachable: `);
    await rejectsWithStatus(settlesWithin(resolved.client.retrieveModels(), 10_000, "RetrieveModels"), grpc.status.UNAVAILABLE, unavailable);
    assert.equal(await health.check(""), "NOT_SERVING");
  });
});
