import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { modelHashTag } from "../../src/redis/index.js";
import { HealthClient } from "../support/health-client.js";
import { type RedisTestServer, killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { startMonitor } from "../support/redis-monitor.js";
import { keepSubscribersOut, pubsubConnections } from "../support/redis-subscribers.js";
import { RegistryClient, rejectsWithStatus, type WireVersionInfo } from "../support/registry-client.js";
import { type VersionUpdateFollower, followVersionUpdates } from "../support/version-update-follower.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, removeArchiveAfterServers, spawnServer } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";
import { startThrottleProxy } from "../support/throttle-proxy.js";

type Instance = ServerInstance;

interface Cluster {
  readonly redis: RedisTestServer;
  readonly archiveDir: string;
  readonly instances: Instance[];
}

function startInstance(t: TestContext, archiveDir: string, redisUrl: string, env: Record<string, string> = {}): Promise<Instance> {
  return startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: redisUrl, ...env });
}

/** One Redis (AOF on), one shared archive directory, `count` server instances on them. */
async function startCluster(
  t: TestContext,
  options: { count?: number; env?: Record<string, string>; archiveDir?: string } = {},
): Promise<Cluster> {
  const redis = await startRedisServer(t, { appendOnly: true });
  const archiveDir = options.archiveDir ?? (await makeArchiveDir());
  removeArchiveAfterServers(t, archiveDir);
  const instances = await Promise.all(
    Array.from({ length: options.count ?? 3 }, () => startInstance(t, archiveDir, redis.url, options.env)),
  );
  return { redis, archiveDir, instances };
}

/** A plain Redis client for a test to look at the keys (quiet once the server is gone). */
function inspect(t: TestContext, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  t.after(() => client.disconnect());
  return client;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Collects a VersionUpdate stream's version numbers and its end. */
function follow(client: RegistryClient, modelId: string): VersionUpdateFollower {
  return followVersionUpdates(client, modelId, 30_000);
}

async function versionNumbers(client: RegistryClient, modelId: string): Promise<number[]> {
  const { version_infos } = await client.retrieveVersionInfos({ model_id: modelId });
  return version_infos.map((v) => v.version_number);
}

describe("several instances on one Redis (COGMENT_MODEL_REGISTRY_REDIS_URL)", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
  });

  test("concurrent uploads through three instances get unique, gap-free numbers; every instance reads every write", async (t) => {
    const { instances } = await startCluster(t);
    const [a, b, c] = instances as [Instance, Instance, Instance];
    await a.client.createModel("shared", { team: "one" });
    // Read your writes: the model is there on the other instances at once.
    assert.deepEqual((await b.client.retrieveModels()).model_infos, [{ model_id: "shared", user_data: { team: "one" } }]);
    assert.deepEqual(await versionNumbers(c.client, "shared"), []);

    const published: { info: WireVersionInfo; data: Buffer; via: number }[] = [];
    await Promise.all(
      instances.flatMap((instance, via) =>
        Array.from({ length: 8 }, async (_, i) => {
          const data = randomBytes(1000 + via * 100 + i);
          const info = await instance.client.publish("shared", data, { archived: i % 3 === 0, user_data: { via: String(via) } });
          published.push({ info, data, via });
        }),
      ),
    );
    assert.deepEqual(
      published.map((p) => p.info.version_number).sort((x, y) => x - y),
      Array.from({ length: 24 }, (_, i) => i + 1),
    );
    for (const instance of instances) {
      const { version_infos } = await instance.client.retrieveVersionInfos({ model_id: "shared" });
      assert.deepEqual(
        version_infos,
        [...published].sort((x, y) => x.info.version_number - y.info.version_number).map((p) => p.info),
      );
    }
    // Each version's data read through the two instances that did not store it.
    for (const { info, data, via } of published) {
      for (const [index, instance] of instances.entries()) {
        if (index !== via) {
          assert.equal(sha256(await instance.client.retrieveData("shared", info.version_number)), sha256(data));
        }
      }
    }
    // Paging handles are the same on every instance.
    await a.client.createModel("shared-2");
    const page = await c.client.retrieveModels({ models_count: 1 });
    assert.deepEqual(page.model_infos.map((m) => m.model_id), ["shared"]);
    const next = await b.client.retrieveModels({ models_count: 1, model_handle: page.next_model_handle });
    assert.deepEqual(next.model_infos.map((m) => m.model_id), ["shared-2"]);
  });

  test("a poll of the latest version and a read of one version read that version's info only, whatever the model holds", async (t) => {
    const { redis, instances } = await startCluster(t, { count: 2 });
    const [a, b] = instances as [Instance, Instance];
    const check = inspect(t, redis.url);
    await a.client.createModel("many");
    const published: WireVersionInfo[] = [];
    for (let i = 0; i < 6; i++) {
      published.push(await a.client.publish("many", Buffer.from(`v${i}`)));
    }
    // MONITOR shows the commands scripts run too: how many of this model's keys a call read (GET:
    // version infos and data chunks), and whether it also read the model (HGET: a version found says
    // its model exists). Only this model's keys: an instance's own background reads (the archive
    // import's mark when a connection resumes, under load) are not the call's.
    const base = `cmr:${modelHashTag("many")}:`;
    const commands: string[][] = [];
    await startMonitor(t, redis.url, (args) => commands.push(args));
    let marks = 0;
    /** Where the commands Redis ran up to now end in `commands`: an ECHO sent now, once MONITOR showed it. */
    const synced = async (): Promise<number> => {
      const mark = `call-boundary-${++marks}`;
      await check.echo(mark);
      for (;;) {
        const at = commands.findIndex(([name, argument]) => name?.toLowerCase() === "echo" && argument === mark);
        if (at !== -1) {
          return at;
        }
        await sleep(1);
      }
    };
    let modelReads = 0;
    const infoReads = async (call: () => Promise<unknown>): Promise<number> => {
      const from = await synced();
      await call();
      const during = commands.slice(from + 1, await synced());
      const reads = (name: string): number => during.filter(([command, key]) => command?.toLowerCase() === name && key?.startsWith(base)).length;
      modelReads = reads("hget");
      return reads("get");
    };
    let latest: { version_infos: WireVersionInfo[]; next_version_handle: string } | undefined;
    assert.equal(await infoReads(async () => (latest = await b.client.retrieveVersionInfos({ model_id: "many", version_numbers: [-1] }))), 1);
    assert.equal(modelReads, 0);
    assert.deepEqual(latest, { version_infos: [published[5]], next_version_handle: "7" });
    // The data of version 3 (cached on neither instance's side: A holds it, B reads it through): its
    // info once for the call and once to open it in Redis, then its single chunk.
    let data: Buffer | undefined;
    assert.equal(await infoReads(async () => (data = await b.client.retrieveData("many", 3))), 3);
    assert.equal(modelReads, 0);
    assert.deepEqual(data, Buffer.from("v2"));
    // Absent: the full list gives the error, as before; a missing model is named as such.
    await assert.rejects(b.client.retrieveVersionInfos({ model_id: "none", version_numbers: [-1] }), {
      code: grpc.status.NOT_FOUND,
      details: 'model "none" not found',
    });
    await assert.rejects(b.client.retrieveVersionInfos({ model_id: "many", version_numbers: [9] }), {
      code: grpc.status.NOT_FOUND,
      details: 'version 9 of model "many" not found (it has 6 version(s); transient versions may have been evicted)',
    });
  });

  test("VersionUpdate streams on every instance get each version in order; a deletion through one ends them all (NOT_FOUND)", async (t) => {
    const { instances } = await startCluster(t);
    const [a, b, c] = instances as [Instance, Instance, Instance];
    await a.client.createModel("followed");
    await a.client.publish("followed", Buffer.from("v1"));
    const onB = follow(b.client, "followed");
    const onC = follow(c.client, "followed");
    await onB.until(() => onB.numbers.length >= 1, "the current latest on B");
    await onC.until(() => onC.numbers.length >= 1, "the current latest on C");
    for (let i = 2; i <= 6; i++) {
      await a.client.publish("followed", Buffer.from(`v${i}`));
    }
    for (const stream of [onB, onC]) {
      await stream.until(() => stream.numbers.at(-1) === 6, "version 6");
      assert.deepEqual(stream.numbers, [...stream.numbers].sort((x, y) => x - y), "in order");
      assert.equal(new Set(stream.numbers).size, stream.numbers.length, "no duplicate");
    }
    // B reads version 6's data (cached there by none) and keeps a copy; the deletion drops it.
    assert.equal((await b.client.retrieveData("followed", 6)).toString(), "v6");
    await a.client.deleteModel("followed");
    for (const stream of [onB, onC]) {
      await stream.until(() => stream.error !== undefined, "the end of the stream");
      assert.equal(stream.error?.code, grpc.status.NOT_FOUND);
      assert.match(stream.error?.details ?? "", /model "followed" was deleted/);
    }
    await rejectsWithStatus(b.client.retrieveVersionInfos({ model_id: "followed" }), grpc.status.NOT_FOUND, /model "followed" not found/);
    await rejectsWithStatus(c.client.retrieveData("followed", 6), grpc.status.NOT_FOUND, /model "followed" not found/);
    // Created again through C: numbering starts over, and B serves the new data, not its old copy.
    await c.client.createModel("followed");
    assert.equal((await c.client.publish("followed", Buffer.from("new one"))).version_number, 1);
    assert.equal((await b.client.retrieveData("followed", 1)).toString(), "new one");
  });

  test("an instance that only read a model drops its copy when another deletes it: the model's new version 1 is served, not the old one", async (t) => {
    const { instances } = await startCluster(t, { count: 2 });
    const [a, b] = instances as [Instance, Instance];
    await a.client.createModel("renewed");
    await a.client.publish("renewed", Buffer.from("old one"));
    await a.client.publish("renewed", Buffer.from("old archived"), { archived: true });
    // B reads both (it has no actor for the model: no upload, no subscription there) and caches them.
    assert.equal((await b.client.retrieveData("renewed", 1)).toString(), "old one");
    assert.equal((await b.client.retrieveData("renewed", 2)).toString(), "old archived");
    await a.client.deleteModel("renewed");
    await a.client.createModel("renewed");
    await a.client.publish("renewed", Buffer.from("new one"));
    await a.client.publish("renewed", Buffer.from("new archived"), { archived: true });
    assert.equal((await b.client.retrieveData("renewed", 1)).toString(), "new one");
    assert.equal((await b.client.retrieveData("renewed", 2)).toString(), "new archived");
  });

  test("a large transient version is stored in Redis in chunk keys and read back whole through the other instances", async (t) => {
    const { redis, instances } = await startCluster(t, { count: 2 });
    const [a, b] = instances as [Instance, Instance];
    await a.client.createModel("large");
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const info = await a.client.publish("large", data);
    assert.equal(info.version_number, 1);
    const inspector = inspect(t, redis.url);
    const base = `cmr:${modelHashTag("large")}:`;
    // 2 MiB chunks: 3 keys, the last one shorter.
    assert.deepEqual(
      await Promise.all([0, 1, 2, 3].map((i) => inspector.strlen(`${base}d:1:${i}`))),
      [2 * 1024 * 1024, 2 * 1024 * 1024, 1024 * 1024 + 123, 0],
    );
    const read = await b.client.retrieveVersionData("large", 1);
    assert.equal(sha256(Buffer.concat(read)), sha256(data));
    assert.ok(read.length > 1, "sent in several reply chunks");
  });

  test("a transient version that is no longer the latest expires from Redis after VERSION_CACHE_EXPIRATION, on every instance", async (t) => {
    const { instances } = await startCluster(t, { count: 2, env: { COGMENT_MODEL_REGISTRY_VERSION_CACHE_EXPIRATION: "1s" } });
    const [a, b] = instances as [Instance, Instance];
    await a.client.createModel("expiring");
    await a.client.publish("expiring", Buffer.from("old"));
    await a.client.publish("expiring", Buffer.from("archived"), { archived: true });
    await a.client.publish("expiring", Buffer.from("latest"));
    assert.equal((await b.client.retrieveData("expiring", 1)).toString(), "old");
    const deadline = Date.now() + 30_000;
    while ((await versionNumbers(b.client, "expiring")).includes(1) && Date.now() < deadline) {
      await sleep(100);
    }
    // The archived version and the latest stay.
    assert.deepEqual(await versionNumbers(b.client, "expiring"), [2, 3]);
    assert.deepEqual(await versionNumbers(a.client, "expiring"), [2, 3]);
    assert.equal((await b.client.retrieveData("expiring", 3)).toString(), "latest");
    await rejectsWithStatus(b.client.retrieveData("expiring", 1), grpc.status.NOT_FOUND, /version 1 of model "expiring"/);
  });

  test("kill -9 of an instance mid-upload leaves no version visible anywhere, and no gap", async (t) => {
    const { redis, instances } = await startCluster(t, { count: 2 });
    const [a, b] = instances as [Instance, Instance];
    await a.client.createModel("crash");
    const inspector = inspect(t, redis.url);
    // A transient and an archived upload in flight when the process dies; 3 MiB of the transient
    // one sent: its first 2 MiB chunk is already in Redis, under a pending key.
    for (const archived of [false, true]) {
      const { call, reply } = a.client.openCreateVersion();
      reply.catch(() => undefined);
      call.write({ header: { version_info: { model_id: "crash", archived, data_size: String(8 * 1024 * 1024), data_hash: "", user_data: {} } } });
      for (let i = 0; i < (archived ? 1 : 3); i++) {
        call.write({ body: { data_chunk: randomBytes(1024 * 1024) } });
      }
    }
    const pendingPattern = `cmr:${modelHashTag("crash")}:p:*`;
    const deadline = Date.now() + 30_000;
    while ((await inspector.keys(pendingPattern)).length === 0 && Date.now() < deadline) {
      await sleep(20);
    }
    a.process.child.kill("SIGKILL");
    await a.process.exited;
    const pending = await inspector.keys(pendingPattern);
    assert.equal(pending.length, 1, "the transient upload's first chunk was streamed into Redis");
    assert.ok((await inspector.pttl(pending[0] as string)) > 0, "a pending chunk expires");
    assert.deepEqual(await inspector.keys(`cmr:${modelHashTag("crash")}:d:*`), []);
    assert.deepEqual(await versionNumbers(b.client, "crash"), []);
    // An instance that died holding the model's number claim (between its archive files and its
    // commit): the claim runs out (lease 5 s) and the number is handed out once, without a gap.
    await inspector.set(`cmr:${modelHashTag("crash")}:claim`, "claim-of-a-dead-instance", "PX", 2000);
    assert.equal((await b.client.publish("crash", Buffer.from("after the crash"))).version_number, 1);
    assert.equal(await inspector.exists(`cmr:${modelHashTag("crash")}:claim`), 0);
    assert.equal((await b.client.publish("crash", Buffer.from("archived"), { archived: true })).version_number, 2);
    assert.deepEqual(await versionNumbers(b.client, "crash"), [1, 2]);
  });

  test("instances started on a single-mode archive with an empty Redis see its models and versions; numbering continues above them", async (t) => {
    const archiveDir = await makeArchiveDir();
    const single = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir });
    const singleClient = new RegistryClient(`127.0.0.1:${single.port}`);
    await singleClient.createModel("legacy", { origin: "single" });
    const archivedData = [Buffer.from("one"), Buffer.from("two"), Buffer.from("three")];
    for (const data of archivedData) {
      await singleClient.publish("legacy", data, { archived: true });
    }
    singleClient.close();
    single.child.kill("SIGTERM");
    await single.exited;

    const { instances } = await startCluster(t, { count: 2, archiveDir });
    const [a, b] = instances as [Instance, Instance];
    assert.deepEqual((await b.client.retrieveModels()).model_infos, [{ model_id: "legacy", user_data: { origin: "single" } }]);
    assert.deepEqual(await versionNumbers(a.client, "legacy"), [1, 2, 3]);
    assert.equal((await b.client.retrieveData("legacy", 2)).toString(), "two");
    assert.equal((await a.client.publish("legacy", Buffer.from("four"))).version_number, 4);
    assert.equal((await b.client.publish("legacy", Buffer.from("five"), { archived: true })).version_number, 5);
    assert.equal((await a.client.retrieveData("legacy", 5)).toString(), "five");
  });

  test("Redis stopped: calls fail with UNAVAILABLE naming Redis, health NOT_SERVING; restarted: the instances recover and catch up", async (t) => {
    const { redis, instances } = await startCluster(t, { count: 2 });
    const [a, b] = instances as [Instance, Instance];
    await a.client.createModel("outage");
    await a.client.publish("outage", Buffer.from("before"), { archived: true });
    const onB = follow(b.client, "outage");
    await onB.until(() => onB.numbers.length === 1, "the current latest");
    const health = new HealthClient(a.address);
    t.after(() => health.close());
    assert.equal(await health.check(""), "SERVING");

    await redis.stop("SIGKILL");
    const address = `Redis at 127\\.0\\.0\\.1:${redis.port} is unreachable`;
    await rejectsWithStatus(a.client.publish("outage", Buffer.from("during")), grpc.status.UNAVAILABLE, new RegExp(address));
    await rejectsWithStatus(b.client.retrieveVersionInfos({ model_id: "outage" }), grpc.status.UNAVAILABLE, new RegExp(address));
    await rejectsWithStatus(b.client.retrieveModels(), grpc.status.UNAVAILABLE, new RegExp(address));
    assert.equal(await health.check(""), "NOT_SERVING");
    assert.equal(a.process.child.exitCode, null, "the instance stays up");

    await redis.start();
    // Each instance reconnects on its own (its own backoff): both must be back before B is read.
    const healthOfB = new HealthClient(b.address);
    t.after(() => healthOfB.close());
    assert.equal(await health.waitFor("SERVING", 30_000), "SERVING");
    assert.equal(await healthOfB.waitFor("SERVING", 30_000), "SERVING");
    // AOF kept the numbering: the next version is 2, and B's stream (subscribed before) gets it.
    assert.equal((await a.client.publish("outage", Buffer.from("after"))).version_number, 2);
    await onB.until(() => onB.numbers.at(-1) === 2, "version 2 after the reconnection");
    assert.equal((await b.client.retrieveData("outage", 2)).toString(), "after");
    assert.equal((await b.client.retrieveData("outage", 1)).toString(), "before");
  });

  test("after the instances' subscriptions were cut, they catch up: VersionUpdate ends with the latest", async (t) => {
    const { redis, instances } = await startCluster(t, { count: 2 });
    const [a, b] = instances as [Instance, Instance];
    await a.client.createModel("cut");
    await a.client.publish("cut", Buffer.from("v1"));
    const onB = follow(b.client, "cut");
    await onB.until(() => onB.numbers.length === 1, "the current latest");
    const inspector = inspect(t, redis.url);
    // Commits published while the subscriber connections are being re-established.
    await inspector.call("CLIENT", "KILL", "TYPE", "pubsub");
    for (let i = 2; i <= 5; i++) {
      await a.client.publish("cut", Buffer.from(`v${i}`));
    }
    await onB.until(() => onB.numbers.at(-1) === 5, "version 5");
    assert.deepEqual(onB.numbers, [...onB.numbers].sort((x, y) => x - y), "in order");
  });

  test("a version read on an instance while its subscription was down still reaches that instance's VersionUpdate streams", async (t) => {
    const { redis, instances } = await startCluster(t, { count: 2 });
    const [a, b] = instances as [Instance, Instance];
    await a.client.createModel("unseen");
    // Each instance's connection for version data opened first (it is opened at its first use).
    await a.client.createModel("warm");
    await a.client.publish("warm", Buffer.from("w"));
    assert.equal((await b.client.retrieveData("warm", 1)).toString(), "w");
    const inspector = inspect(t, redis.url);
    // The subscriber connections are dropped and kept out (no room for them); the command connections stay.
    await keepSubscribersOut(t, inspector);
    assert.equal(await pubsubConnections(inspector), 0);

    // B never hears of "unseen"'s commits from the feed: v1 before its stream opens, v2 after.
    await a.client.publish("unseen", Buffer.from("v1"));
    const onB = follow(b.client, "unseen");
    t.after(() => onB.cancel());
    await onB.until(() => onB.numbers.length === 1, "the current latest");
    assert.equal((await a.client.publish("unseen", Buffer.from("v2"))).version_number, 2);
    // A read of the new latest through B while its subscription is still down.
    const read = await b.client.retrieveVersionInfos({ model_id: "unseen", version_numbers: [-1] });
    assert.deepEqual(
      read.version_infos.map((info) => info.version_number),
      [2],
    );
    assert.deepEqual(onB.numbers, [1]);

    await inspector.call("CONFIG", "SET", "maxclients", "10000");
    await onB.until(() => onB.numbers.at(-1) === 2, "version 2 from the catch-up");
    assert.deepEqual(onB.numbers, [1, 2]);
  });

  test("a model deleted and created again while an instance was cut off from Redis: its catch-up ends the old streams (NOT_FOUND)", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const archiveDir = await makeArchiveDir();
    removeArchiveAfterServers(t, archiveDir);
    const a = await startInstance(t, archiveDir, redis.url);
    const link = await startThrottleProxy(redis.port, 64 * 1024 * 1024, 1);
    t.after(() => link.close());
    const b = await startInstance(t, archiveDir, `redis://127.0.0.1:${link.port}`);
    await a.client.createModel("again");
    for (let i = 1; i <= 3; i++) {
      await a.client.publish("again", Buffer.from(`old ${i}`));
    }
    const onB = follow(b.client, "again");
    await onB.until(() => onB.numbers.at(-1) === 3, "the current latest");
    assert.equal((await b.client.retrieveData("again", 1)).toString(), "old 1");
    const health = new HealthClient(b.address);
    t.after(() => health.close());
    const healthIs = (wanted: string): Promise<string> => health.waitFor(wanted, 30_000);

    link.cut();
    assert.equal(await healthIs("NOT_SERVING"), "NOT_SERVING");
    await a.client.deleteModel("again");
    await a.client.createModel("again");
    await a.client.publish("again", Buffer.from("new 1"));
    link.restore();
    assert.equal(await healthIs("SERVING"), "SERVING");

    // Version numbers alone would say nothing happened (the new model's 1 is below the 3 seen).
    await onB.until(() => onB.error !== undefined, "the end of the old model's stream");
    assert.equal(onB.error?.code, grpc.status.NOT_FOUND);
    assert.equal((await b.client.retrieveData("again", 1)).toString(), "new 1");
    const fresh = follow(b.client, "again");
    t.after(() => fresh.cancel());
    await fresh.until(() => fresh.numbers.at(-1) === 1, "the new model's latest");
  });

  test("a Redis restarted empty (no persistence) gets the archive imported again: archived versions and numbering above them", async (t) => {
    const redis = await startRedisServer(t, { appendOnly: false });
    const archiveDir = await makeArchiveDir();
    removeArchiveAfterServers(t, archiveDir);
    const a = await startInstance(t, archiveDir, redis.url);
    await a.client.createModel("kept", { k: "v" });
    await a.client.publish("kept", Buffer.from("archived one"), { archived: true });
    await a.client.publish("kept", Buffer.from("transient two"));
    await redis.stop("SIGKILL");
    await redis.start();
    const deadline = Date.now() + 30_000;
    let listed: number[] = [];
    while (Date.now() < deadline) {
      listed = await versionNumbers(a.client, "kept").catch(() => []);
      if (listed.length > 0) {
        break;
      }
      await sleep(50);
    }
    // The transient version was in Redis only: gone (which is why the README asks for AOF); the
    // archived one is back, and numbering goes on above the archive's numbering record, which the
    // first claim wrote a block ahead (1 + 1024): number 2 is not handed out again.
    assert.deepEqual(listed, [1]);
    assert.deepEqual((await a.client.retrieveModels()).model_infos, [{ model_id: "kept", user_data: { k: "v" } }]);
    assert.equal((await a.client.retrieveData("kept", 1)).toString(), "archived one");
    assert.equal((await a.client.publish("kept", Buffer.from("three"))).version_number, 1025);
  });

  test("a password in REDIS_URL is used and never logged", async (t) => {
    const redis = await startRedisServer(t);
    // Set after the start (the helper's readiness PING has no password).
    await inspect(t, redis.url).config("SET", "requirepass", "pa55-w0rd-secret");
    const archiveDir = await makeArchiveDir();
    removeArchiveAfterServers(t, archiveDir);
    const url = `redis://:pa55-w0rd-secret@127.0.0.1:${redis.port}/0`;
    const a = await startInstance(t, archiveDir, url);
    await a.client.createModel("guarded");
    assert.equal((await a.client.publish("guarded", Buffer.from("x"))).version_number, 1);
    const logged = JSON.stringify(a.process.logLines);
    assert.ok(logged.includes(`redis://:***@127.0.0.1:${redis.port}/0`), logged.slice(0, 2000));
    assert.ok(!logged.includes("pa55-w0rd-secret"));
  });
});
