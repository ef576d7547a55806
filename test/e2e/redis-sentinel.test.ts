import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test, type TestContext } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { modelHashTag } from "../../src/redis/index.js";
import { onCleanup } from "../support/cleanup.js";
import { HealthClient } from "../support/health-client.js";
import { INSPECT_CLIENT_NAME, MASTER_NAME, type SentinelDeployment, killAllSentinels, startSentinelDeployment } from "../support/redis-sentinel.js";
import { freeLoopbackPort, killAllRedisServers } from "../support/redis-server.js";
import { type RegistryClient, rejectsWithStatus, type WireVersionInfo } from "../support/registry-client.js";
import { type VersionUpdateFollower, followVersionUpdates } from "../support/version-update-follower.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers, removeArchiveAfterServers } from "../support/server-process.js";
import { makeArchiveDir } from "../support/test-server.js";

type Instance = ServerInstance & { readonly health: HealthClient };

/** Longer than any call may take by the documented bound (2 s per Redis command): a call still running then hangs. */
const HANG_MS = 10_000;

async function startInstances(t: TestContext, url: string, count: number, env: Record<string, string> = {}): Promise<Instance[]> {
  const archiveDir = await makeArchiveDir();
  removeArchiveAfterServers(t, archiveDir);
  return Promise.all(
    Array.from({ length: count }, async () => {
      const instance = await startServerInstance(t, { COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, COGMENT_MODEL_REGISTRY_REDIS_URL: url, ...env });
      const health = new HealthClient(instance.address);
      t.after(() => health.close());
      return { ...instance, health };
    }),
  );
}

async function waitForHealth(instance: Instance, wanted: string, timeoutMs = 30_000): Promise<string> {
  let seen = await instance.health.check("");
  for (const deadline = Date.now() + timeoutMs; seen !== wanted && Date.now() < deadline; seen = await instance.health.check("")) {
    await sleep(50);
  }
  return seen;
}

/** `Redis at master "<name>" of Sentinels 127.0.0.1:<p1>,... is unreachable: `, as a pattern. */
function unreachable(sentinelPorts: readonly number[]): RegExp {
  const sentinels = sentinelPorts.map((port) => `127\\.0\\.0\\.1:${port}`).join(",");
  return new RegExp(`^Redis at master "${MASTER_NAME}" of Sentinels ${sentinels} is unreachable: `);
}

/** Collects a VersionUpdate stream's version numbers and its end. */
function follow(client: RegistryClient, modelId: string): VersionUpdateFollower {
  return followVersionUpdates(client, modelId, 20_000);
}

/** The call's outcome, or a failure of the test if it is still running after HANG_MS. */
async function withinBound<T>(call: Promise<T>): Promise<{ value: T } | { error: grpc.ServiceError }> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a call made during the failover was still running after ${HANG_MS} ms`)), HANG_MS);
  });
  try {
    return await Promise.race([call.then((value) => ({ value }), (error: grpc.ServiceError) => ({ error })), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every call made while the instance is not SERVING fails fast with UNAVAILABLE naming Redis; returns how many failed and the health states seen. */
async function callThroughFailover(instance: Instance, deployment: SentinelDeployment, modelId: string): Promise<{ failed: number; states: Set<string> }> {
  const states = new Set<string>();
  let failed = 0;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const state = await instance.health.check("");
    states.add(state);
    if (state === "SERVING" && states.has("NOT_SERVING")) {
      return { failed, states };
    }
    assert.ok(Date.now() < deadline, `still ${[...states].join(", ")} 30 s after the primary went down`);
    for (const outcome of [
      await withinBound(instance.client.retrieveVersionInfos({ model_id: modelId })),
      await withinBound(instance.client.retrieveModels()),
    ]) {
      if ("error" in outcome) {
        failed++;
        assert.equal(outcome.error.code, grpc.status.UNAVAILABLE, outcome.error.message);
        assert.match(outcome.error.details, unreachable(deployment.sentinelPorts));
      }
    }
    await sleep(50);
  }
}

/**
 * The documented bound on a call while Redis does not answer is 2 s (one command's timeout); a call
 * still running after this long (the bound and a margin for a loaded machine) breaks it.
 */
const HUNG_CALL_LIMIT_MS = 5000;

/** Runs `call`, timing it; a failure must be UNAVAILABLE naming Redis (`cause`: what follows the name). */
async function timedCall<T>(deployment: SentinelDeployment, call: () => Promise<T>): Promise<{ value?: T; cause?: string; ms: number }> {
  const started = performance.now();
  const outcome = await withinBound(call());
  const ms = Math.round(performance.now() - started);
  if (!("error" in outcome)) {
    return { value: outcome.value, ms };
  }
  assert.equal(outcome.error.code, grpc.status.UNAVAILABLE, outcome.error.message);
  const prefix = unreachable(deployment.sentinelPorts);
  assert.match(outcome.error.details, prefix);
  return { cause: outcome.error.details.replace(prefix, ""), ms };
}

interface HangOutcome {
  readonly failed: number;
  readonly slowestMs: number;
  readonly states: Set<string>;
  /** Versions the uploads made meanwhile committed (once the instance was on the promoted replica). */
  readonly committed: number[];
}

/**
 * Calls (a listing, a read of chunked version 1, an upload) through `instance` from the moment its
 * primary hangs until it was NOT_SERVING and is SERVING again.
 */
async function callsThroughHang(instance: Instance, deployment: SentinelDeployment, modelId: string): Promise<HangOutcome> {
  const outcome: HangOutcome = { failed: 0, slowestMs: 0, states: new Set(), committed: [] };
  let slowestMs = 0;
  let failed = 0;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const state = await instance.health.check("");
    outcome.states.add(state);
    if (state === "SERVING" && outcome.states.has("NOT_SERVING")) {
      return { ...outcome, failed, slowestMs };
    }
    assert.ok(Date.now() < deadline, `still ${[...outcome.states].join(", ")} 60 s after the primary hung`);
    // Concurrent: several commands wait on the stopped primary at once.
    const [listing, read, upload] = await Promise.all([
      timedCall(deployment, () => instance.client.retrieveVersionInfos({ model_id: modelId })),
      timedCall(deployment, () => instance.client.retrieveData(modelId, 1)),
      timedCall(deployment, () => instance.client.publish(modelId, randomBytes(2 * 1024 * 1024 + 1))),
    ]);
    for (const { value, ms } of [listing, read, upload]) {
      failed += value === undefined ? 1 : 0;
      slowestMs = Math.max(slowestMs, ms);
    }
    if (upload.value !== undefined) {
      outcome.committed.push(upload.value.version_number);
    }
    await sleep(50);
  }
}

/** The clients in CLIENT LIST's output that are not a Sentinel's, the replication link or the test's own. */
function registryClients(list: string): string[] {
  return list
    .split("\n")
    .filter((line) => line.trim() !== "")
    .filter((line) => !/ name=sentinel-/.test(line) && !line.includes(` name=${INSPECT_CLIENT_NAME} `) && !/ flags=\S*M/.test(line));
}

/**
 * The first call through an instance after a failover, made again while it fails fast with UNAVAILABLE
 * naming the Sentinels (at most 30 s): health SERVING does not mean the instance is done moving. A
 * Sentinel's +switch-master that reaches it after it already reconnected to the new primary makes
 * ioredis's failover detector reconnect once more (the Sentinels switch one after the other).
 */
async function firstCallAfterFailover<T>(deployment: SentinelDeployment, call: () => Promise<T>): Promise<T> {
  for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
    const outcome = await withinBound(call());
    if (!("error" in outcome)) {
      return outcome.value;
    }
    assert.equal(outcome.error.code, grpc.status.UNAVAILABLE, outcome.error.message);
    assert.match(outcome.error.details, unreachable(deployment.sentinelPorts));
    assert.ok(Date.now() < deadline, `calls still fail 30 s after the failover: ${outcome.error.message}`);
  }
}

describe("Redis Sentinel (COGMENT_MODEL_REGISTRY_REDIS_URL=redis+sentinel://...)", () => {
  after(() => {
    killAllServers();
    killAllSentinels();
    killAllRedisServers();
  });

  test("two instances through the Sentinels share models and versions; kill -9 of the primary: calls fail fast with UNAVAILABLE, then both go on through the promoted replica", async (t) => {
    const deployment = await startSentinelDeployment(t);
    const [primary, replica] = deployment.nodes;
    assert.equal(await deployment.primary(), primary);
    const [a, b] = (await startInstances(t, deployment.url, 2)) as [Instance, Instance];
    assert.equal(await waitForHealth(a, "SERVING"), "SERVING");
    assert.equal(await waitForHealth(b, "SERVING"), "SERVING");
    // Logs name the Sentinels and the master, never a password.
    const started = a.process.logLines.find((line) => line.msg === "shared state on Redis: several instances form one registry");
    assert.equal(started?.redis, `redis+sentinel://${deployment.sentinelPorts.map((port) => `127.0.0.1:${port}`).join(",")}/${MASTER_NAME}/0`);

    await a.client.createModel("ha", { team: "vision" });
    assert.deepEqual((await b.client.retrieveModels()).model_infos, [{ model_id: "ha", user_data: { team: "vision" } }]);
    const chunked = randomBytes(5 * 1024 * 1024 + 17); // three chunk keys of 2 MiB
    assert.equal((await a.client.publish("ha", chunked)).version_number, 1);
    assert.deepEqual(await b.client.retrieveData("ha", 1), chunked);
    assert.equal((await b.client.publish("ha", Buffer.from("archived through B"), { archived: true })).version_number, 2);
    const onA = follow(a.client, "ha");
    const onB = follow(b.client, "ha");
    await onA.until(() => onA.numbers.length === 1, "the current latest on A");
    await onB.until(() => onB.numbers.length === 1, "the current latest on B");
    assert.equal((await a.client.publish("ha", Buffer.from("three"))).version_number, 3);
    await onB.until(() => onB.numbers.at(-1) === 3, "version 3 on B");
    const tag = modelHashTag("ha");
    // Replication is asynchronous: the test makes sure the replica has every write before the crash
    // (what a failover can lose otherwise is in docs/redis-mode.md).
    assert.equal(await deployment.inspect(primary).call("WAIT", "1", "5000"), 1);

    await primary.stop("SIGKILL");
    // No node can be the primary before the Sentinels agree it is down (1 s): the upload fails at once.
    await rejectsWithStatus(a.client.publish("ha", Buffer.from("during")), grpc.status.UNAVAILABLE, unreachable(deployment.sentinelPorts));
    const duringA = await callThroughFailover(a, deployment, "ha");
    assert.ok(duringA.failed >= 1, "calls made during the failover failed");
    assert.deepEqual([...duringA.states].sort(), ["NOT_SERVING", "SERVING"]);
    await deployment.waitForPrimary(replica);
    assert.equal(await waitForHealth(b, "SERVING"), "SERVING");
    assert.equal(a.process.child.exitCode, null, "A stays up");
    assert.equal(b.process.child.exitCode, null, "B stays up");

    // Through the promoted replica: numbering goes on above 3 (nothing reused), chunked data both ways.
    const after1 = randomBytes(4 * 1024 * 1024 + 3);
    assert.equal((await firstCallAfterFailover(deployment, () => b.client.publish("ha", after1))).version_number, 4);
    assert.deepEqual(await firstCallAfterFailover(deployment, () => a.client.retrieveData("ha", 4)), after1);
    assert.equal((await a.client.publish("ha", Buffer.from("five"))).version_number, 5);
    assert.equal((await b.client.retrieveData("ha", 5)).toString(), "five");
    assert.deepEqual(await b.client.retrieveData("ha", 1), chunked);
    assert.deepEqual(await a.client.retrieveData("ha", 1), chunked);
    assert.equal((await a.client.retrieveData("ha", 2)).toString(), "archived through B");
    assert.equal((await b.client.retrieveData("ha", 3)).toString(), "three");
    assert.deepEqual(
      (await a.client.retrieveVersionInfos({ model_id: "ha" })).version_infos.map((info) => info.version_number),
      [1, 2, 3, 4, 5],
    );
    // Version 4's chunks are on the new primary.
    const promoted = deployment.inspect(replica);
    assert.deepEqual(await Promise.all([0, 1, 2].map((i) => promoted.strlen(`cmr:${tag}:d:4:${i}`))), [2 * 1024 * 1024, 2 * 1024 * 1024, 3]);
    // The VersionUpdate streams opened before the failover go on: every version once, in order.
    for (const stream of [onA, onB]) {
      await stream.until(() => stream.numbers.at(-1) === 5, "version 5");
      assert.equal(stream.error, undefined);
      assert.deepEqual(stream.numbers, [...new Set(stream.numbers)].sort((x, y) => x - y));
      assert.deepEqual(stream.numbers.slice(-2), [4, 5]);
      stream.cancel();
    }
  });

  test("a hung primary (SIGSTOP): calls fail within the bound with UNAVAILABLE naming Redis, NOT_SERVING, the instances follow the promoted replica by themselves, and the old primary resumed rejoins as a replica", async (t) => {
    const deployment = await startSentinelDeployment(t);
    const [primary, replica] = deployment.nodes;
    const instances = await startInstances(t, deployment.url, 3);
    for (const instance of instances) {
      assert.equal(await waitForHealth(instance, "SERVING"), "SERVING");
    }
    const [a, b, c] = instances as [Instance, Instance, Instance];
    await a.client.createModel("stuck");
    const chunked = randomBytes(5 * 1024 * 1024 + 17);
    assert.equal((await a.client.publish("stuck", chunked)).version_number, 1);
    assert.equal((await b.client.publish("stuck", Buffer.from("archived through B"), { archived: true })).version_number, 2);
    // Every instance's chunk connection is open to the primary (B and C read version 1 through it).
    assert.deepEqual(await b.client.retrieveData("stuck", 1), chunked);
    assert.deepEqual(await c.client.retrieveData("stuck", 1), chunked);
    const streams = instances.map((instance) => follow(instance.client, "stuck"));
    for (const stream of streams) {
      await stream.until(() => stream.numbers.length === 1, "the current latest");
    }
    assert.equal(await deployment.inspect(primary).call("WAIT", "1", "5000"), 1);

    // Registered after the deployment: runs before its processes are killed, also when the test fails.
    onCleanup(t, () => primary.resume());
    // The primary stops while an upload's chunks are being written: chunk SETs wait on the stopped node.
    const pendingChunks = `cmr:${modelHashTag("stuck")}:p:*`;
    const watcher = deployment.inspect(primary);
    const inFlight = timedCall(deployment, () => a.client.publish("stuck", randomBytes(48 * 1024 * 1024))).then((outcome) => ({
      ...outcome,
      settledAt: performance.now(),
    }));
    for (const deadline = Date.now() + 30_000; (await watcher.keys(pendingChunks)).length === 0; ) {
      assert.ok(Date.now() < deadline, "the upload's first chunk never reached the primary");
    }
    primary.pause();
    const pausedAt = performance.now();
    // Each instance: calls made until it was NOT_SERVING and is SERVING again all fail, each within the
    // bound, with UNAVAILABLE naming Redis; none hangs on the stopped primary.
    const during = await Promise.all(instances.map((instance) => callsThroughHang(instance, deployment, "stuck")));
    for (const [index, outcome] of during.entries()) {
      assert.ok(outcome.failed >= 1, `instance ${index}: calls made during the hang failed`);
      assert.deepEqual([...outcome.states].sort(), ["NOT_SERVING", "SERVING"], `instance ${index}`);
      assert.ok(outcome.slowestMs <= HUNG_CALL_LIMIT_MS, `instance ${index}: a call took ${outcome.slowestMs} ms`);
    }
    const upload = await inFlight;
    assert.equal(upload.value, undefined, "the upload in flight when the primary stopped failed");
    // Its chunk SETs wait on the stopped primary: they fail with the command connection's first
    // timeout (or by their own watchdog when the kernel did not take them whole), not only once the
    // Sentinels named another primary (a 2 MiB write would otherwise be given 10 s: slow links).
    assert.match(
      upload.cause ?? "",
      /^(no reply within 2000 ms on the (command|subscriber) connection, nor any byte on the chunk connection|the chunk connection made no progress for 2000 ms)$/,
    );
    const uploadFailedAfter = Math.round(upload.settledAt - pausedAt);
    assert.ok(uploadFailedAfter <= HUNG_CALL_LIMIT_MS, `the upload failed ${uploadFailedAfter} ms after the primary stopped`);
    await deployment.waitForPrimary(replica);

    // Uploads that ran once an instance was on the promoted replica (before its health said so) took the next numbers.
    const committedDuring = during.flatMap((outcome) => outcome.committed).sort((x, y) => x - y);
    assert.deepEqual(committedDuring, committedDuring.map((_, i) => 3 + i));
    const third = 3 + committedDuring.length;
    // Through the promoted replica, every instance by itself: numbering goes on, chunked data both ways.
    const thirdData = randomBytes(4 * 1024 * 1024 + 3);
    assert.equal((await firstCallAfterFailover(deployment, () => c.client.publish("stuck", thirdData))).version_number, third);
    assert.deepEqual(await firstCallAfterFailover(deployment, () => a.client.retrieveData("stuck", third)), thirdData);
    assert.deepEqual(await firstCallAfterFailover(deployment, () => b.client.retrieveData("stuck", third)), thirdData);
    assert.equal((await firstCallAfterFailover(deployment, () => b.client.publish("stuck", Buffer.from("four")))).version_number, third + 1);
    assert.equal((await firstCallAfterFailover(deployment, () => a.client.publish("stuck", Buffer.from("five")))).version_number, third + 2);
    const promoted = deployment.inspect(replica);
    const tag = modelHashTag("stuck");
    assert.deepEqual(await Promise.all([0, 1, 2].map((i) => promoted.strlen(`cmr:${tag}:d:${third}:${i}`))), [2 * 1024 * 1024, 2 * 1024 * 1024, 3]);

    // The old primary resumed: the Sentinels turn it into a replica of the new one; the instances stay there.
    primary.resume();
    const old = deployment.inspect(primary);
    for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
      const info = await old.info("replication").catch(() => "");
      if (info.includes("role:slave") && info.includes(`master_port:${replica.port}`) && info.includes("master_link_status:up")) {
        break;
      }
      assert.ok(Date.now() < deadline, `the old primary did not rejoin as a replica: ${info}`);
    }
    assert.equal(await deployment.primary(), replica);
    const last = third + 3;
    assert.equal((await c.client.publish("stuck", Buffer.from("six"))).version_number, last);
    assert.equal(await promoted.call("WAIT", "1", "5000"), 1);
    const numbers = Array.from({ length: last }, (_, i) => i + 1);
    for (const instance of instances) {
      assert.deepEqual(
        (await instance.client.retrieveVersionInfos({ model_id: "stuck" })).version_infos.map((info) => info.version_number),
        numbers,
      );
      assert.deepEqual(await instance.client.retrieveData("stuck", 1), chunked);
      assert.equal((await instance.client.retrieveData("stuck", 2)).toString(), "archived through B");
      assert.deepEqual(await instance.client.retrieveData("stuck", third), thirdData);
      assert.equal((await instance.client.retrieveData("stuck", last)).toString(), "six");
    }
    // The old primary, now a replica, holds every acknowledged version, and no instance is connected to it.
    assert.deepEqual(await old.zrange(`cmr:${tag}:numbers`, 0, -1), numbers.map(String));
    assert.equal(await old.strlen(`cmr:${tag}:d:${third}:2`), 3);
    for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
      const clients = registryClients((await old.client("LIST")) as string);
      if (clients.length === 0) {
        break;
      }
      assert.ok(Date.now() < deadline, `instances are still connected to the old primary: ${clients.join("; ")}`);
    }
    // The VersionUpdate streams opened before the hang go on: every version once, in order, ending with the last.
    for (const stream of streams) {
      await stream.until(() => stream.numbers.at(-1) === last, `version ${last}`);
      assert.equal(stream.error, undefined);
      assert.deepEqual(stream.numbers, [...new Set(stream.numbers)].sort((x, y) => x - y));
      assert.deepEqual(stream.numbers.slice(-4), [third, third + 1, third + 2, last]);
      stream.cancel();
    }
  });

  test("SENTINEL FAILOVER (the old primary stays up): both instances move to the new primary, chunk bytes included", async (t) => {
    const deployment = await startSentinelDeployment(t);
    const [primary, replica] = deployment.nodes;
    const [a, b] = (await startInstances(t, deployment.url, 2)) as [Instance, Instance];
    assert.equal(await waitForHealth(a, "SERVING"), "SERVING");
    assert.equal(await waitForHealth(b, "SERVING"), "SERVING");
    await a.client.createModel("moved");
    const before = randomBytes(3 * 1024 * 1024);
    assert.equal((await a.client.publish("moved", before)).version_number, 1);
    assert.deepEqual(await b.client.retrieveData("moved", 1), before);
    const onB = follow(b.client, "moved");
    await onB.until(() => onB.numbers.length === 1, "the current latest on B");
    assert.equal(await deployment.inspect(primary).call("WAIT", "1", "5000"), 1);

    await deployment.failover();
    await deployment.waitForPrimary(replica);
    // The old primary runs on, and stays a primary itself until the Sentinels reconfigure it (their next
    // INFO to it, up to 10 s later): the instances must follow the Sentinels, not the node they were on.
    // Calls may fail (UNAVAILABLE) until the instances are on the new primary; then uploads land there.
    for (const instance of [a, b]) {
      assert.equal(await waitForHealth(instance, "SERVING"), "SERVING");
    }
    let published: WireVersionInfo | undefined;
    const after = randomBytes(3 * 1024 * 1024 + 5);
    for (const deadline = Date.now() + 30_000; published === undefined; await sleep(100)) {
      const outcome = await withinBound(a.client.publish("moved", after));
      if ("error" in outcome) {
        assert.equal(outcome.error.code, grpc.status.UNAVAILABLE, outcome.error.message);
        assert.match(outcome.error.details, unreachable(deployment.sentinelPorts));
        assert.ok(Date.now() < deadline, `uploads still fail 30 s after the failover: ${outcome.error.message}`);
      } else {
        published = outcome.value;
      }
    }
    assert.equal(published.version_number, 2);
    assert.deepEqual(await firstCallAfterFailover(deployment, () => b.client.retrieveData("moved", 2)), after);
    assert.equal((await b.client.publish("moved", Buffer.from("three"))).version_number, 3);
    assert.equal((await a.client.retrieveData("moved", 3)).toString(), "three");
    const tag = modelHashTag("moved");
    assert.equal(await deployment.inspect(replica).strlen(`cmr:${tag}:d:2:1`), 1024 * 1024 + 5);
    await onB.until(() => onB.numbers.at(-1) === 3, "version 3 on B");
    assert.deepEqual(onB.numbers, [...new Set(onB.numbers)].sort((x, y) => x - y));
    assert.equal(onB.error, undefined);
    onB.cancel();
    // A graceful stop closes the Sentinel connections too (the failover detector's among them).
    a.process.child.kill("SIGTERM");
    assert.equal(await a.process.exited, 0);
    assert.equal(a.process.logLines.at(-1)?.msg, "stopped");
  });

  test("passwords: the URL's for the data nodes, sentinel_password for the Sentinels; neither is logged; a wrong one is UNAVAILABLE naming Redis", async (t) => {
    const deployment = await startSentinelDeployment(t, { dataPassword: "data-secret", sentinelPassword: "watch-secret" });
    const hosts = deployment.sentinelPorts.map((port) => `127.0.0.1:${port}`).join(",");
    const [good, wrongSentinel, wrongData] = (await Promise.all([
      startInstances(t, `redis+sentinel://:data-secret@${hosts}/${MASTER_NAME}?sentinel_password=watch-secret`, 1),
      startInstances(t, `redis+sentinel://:data-secret@${hosts}/${MASTER_NAME}?sentinel_password=wrong-secret`, 1),
      startInstances(t, `redis+sentinel://:wrong-secret@${hosts}/${MASTER_NAME}?sentinel_password=watch-secret`, 1),
    ])).flat() as [Instance, Instance, Instance];
    assert.equal(await waitForHealth(good, "SERVING"), "SERVING");
    await good.client.createModel("guarded");
    const data = randomBytes(2 * 1024 * 1024 + 9);
    assert.equal((await good.client.publish("guarded", data)).version_number, 1);
    assert.deepEqual(await good.client.retrieveData("guarded", 1), data);
    assert.equal(await deployment.inspect(deployment.nodes[0]).strlen(`cmr:${modelHashTag("guarded")}:d:1:1`), 9);

    const refused = new RegExp(`${unreachable(deployment.sentinelPorts).source}.*WRONGPASS invalid username-password pair`);
    for (const instance of [wrongSentinel, wrongData]) {
      assert.equal(await instance.health.check(""), "NOT_SERVING");
      await rejectsWithStatus(instance.client.retrieveModels(), grpc.status.UNAVAILABLE, refused);
    }
    // Which password was refused: the Sentinels' (none of them answers), or the data node's.
    await rejectsWithStatus(wrongSentinel.client.createModel("x"), grpc.status.UNAVAILABLE, /is unreachable: All sentinels are unreachable\. .* Last error: WRONGPASS/);
    await rejectsWithStatus(wrongData.client.createModel("x"), grpc.status.UNAVAILABLE, /is unreachable: WRONGPASS/);
    const started = good.process.logLines.find((line) => line.msg === "shared state on Redis: several instances form one registry");
    assert.equal(started?.redis, `redis+sentinel://:***@${hosts}/${MASTER_NAME}/0?sentinel_password=***`);
    for (const instance of [good, wrongSentinel, wrongData]) {
      assert.doesNotMatch(JSON.stringify(instance.process.logLines), /secret/);
    }
  });

  test("min-replicas-to-write 1 (recommended): with no replica in sync, writes fail with UNAVAILABLE naming Redis and take no number, reads go on; with the replica back, writes go on", async (t) => {
    const deployment = await startSentinelDeployment(t);
    const [primary, replica] = deployment.nodes;
    const primaryClient = deployment.inspect(primary);
    await primaryClient.config("SET", "min-replicas-to-write", "1");
    await primaryClient.config("SET", "min-replicas-max-lag", "1");
    const goodReplicas = async (): Promise<string | undefined> => /min_slaves_good_slaves:(\d+)/.exec(await primaryClient.info("replication"))?.[1];
    const [a] = (await startInstances(t, deployment.url, 1)) as [Instance];
    assert.equal(await waitForHealth(a, "SERVING"), "SERVING");
    await a.client.createModel("safe");
    const first = randomBytes(2 * 1024 * 1024 + 1);
    assert.equal((await a.client.publish("safe", first)).version_number, 1);

    await replica.stop("SIGKILL");
    for (const deadline = Date.now() + 30_000; (await goodReplicas()) !== "0"; await sleep(50)) {
      assert.ok(Date.now() < deadline, "the primary still counts its replica as good");
    }
    const refused = new RegExp(`${unreachable(deployment.sentinelPorts).source}NOREPLICAS Not enough good replicas to write\\.( script: [0-9a-f]{40}, on @user_script:[0-9]+\\.)?$`);
    await rejectsWithStatus(a.client.publish("safe", randomBytes(3 * 1024 * 1024)), grpc.status.UNAVAILABLE, refused);
    await rejectsWithStatus(a.client.publish("safe", Buffer.from("small")), grpc.status.UNAVAILABLE, refused);
    await rejectsWithStatus(a.client.createModel("other"), grpc.status.UNAVAILABLE, refused);
    assert.deepEqual(await a.client.retrieveData("safe", 1), first);
    assert.deepEqual((await a.client.retrieveModels()).model_infos, [{ model_id: "safe", user_data: {} }]);
    assert.equal(await a.health.check(""), "SERVING", "Redis answers: only its writes are refused");

    await replica.start();
    for (const deadline = Date.now() + 30_000; (await goodReplicas()) !== "1"; await sleep(50)) {
      assert.ok(Date.now() < deadline, "the replica did not come back in sync");
    }
    const second = randomBytes(2 * 1024 * 1024 + 2);
    assert.equal((await a.client.publish("safe", second)).version_number, 2);
    assert.deepEqual(await a.client.retrieveData("safe", 2), second);
  });

  test("rediss+sentinel://: TLS to the Sentinels, the data nodes and the chunk connection, through a failover; a certificate the instance cannot check is UNAVAILABLE", async (t) => {
    const deployment = await startSentinelDeployment(t, { tls: true });
    const [primary, replica] = deployment.nodes;
    assert.match(deployment.url, /^rediss\+sentinel:\/\//);
    const [[trusting], [untrusting]] = (await Promise.all([
      startInstances(t, deployment.url, 1, { NODE_EXTRA_CA_CERTS: deployment.caFile as string }),
      startInstances(t, deployment.url, 1),
    ])) as [[Instance], [Instance]];
    assert.equal(await waitForHealth(trusting, "SERVING"), "SERVING");
    await trusting.client.createModel("sealed");
    const first = randomBytes(3 * 1024 * 1024 + 1);
    assert.equal((await trusting.client.publish("sealed", first)).version_number, 1);
    assert.deepEqual(await trusting.client.retrieveData("sealed", 1), first);
    const tag = modelHashTag("sealed");
    assert.equal(await deployment.inspect(primary).strlen(`cmr:${tag}:d:1:1`), 1024 * 1024 + 1);

    // Without the CA, no Sentinel can be checked. (ioredis reports the refused handshake as a closed
    // connection, not the certificate error: docs/redis-mode.md.)
    assert.equal(await untrusting.health.check(""), "NOT_SERVING");
    await rejectsWithStatus(
      untrusting.client.retrieveModels(),
      grpc.status.UNAVAILABLE,
      new RegExp(`${unreachable(deployment.sentinelPorts).source}All sentinels are unreachable\\. .* Last error: Connection is closed\\.$`),
    );

    assert.equal(await deployment.inspect(primary).call("WAIT", "1", "5000"), 1);
    await deployment.failover();
    await deployment.waitForPrimary(replica);
    let published: WireVersionInfo | undefined;
    const second = randomBytes(2 * 1024 * 1024 + 2);
    for (const deadline = Date.now() + 30_000; published === undefined; await sleep(100)) {
      const outcome = await withinBound(trusting.client.publish("sealed", second));
      if ("error" in outcome) {
        assert.equal(outcome.error.code, grpc.status.UNAVAILABLE, outcome.error.message);
        assert.ok(Date.now() < deadline, `uploads still fail 30 s after the failover: ${outcome.error.message}`);
      } else {
        published = outcome.value;
      }
    }
    assert.equal(published.version_number, 2);
    assert.deepEqual(await trusting.client.retrieveData("sealed", 2), second);
    assert.equal(await deployment.inspect(replica).strlen(`cmr:${tag}:d:2:1`), 2);
  });

  test("no Sentinel reachable: NOT_SERVING, and calls fail at once with UNAVAILABLE naming the master and the Sentinels", async (t) => {
    const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
    const [instance] = (await startInstances(t, `redis+sentinel://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}/${MASTER_NAME}`, 1)) as [Instance];
    assert.equal(await instance.health.check(""), "NOT_SERVING");
    await rejectsWithStatus(instance.client.retrieveModels(), grpc.status.UNAVAILABLE, unreachable(ports));
    await rejectsWithStatus(instance.client.createModel("nowhere"), grpc.status.UNAVAILABLE, unreachable(ports));
    await rejectsWithStatus(instance.client.publish("nowhere", Buffer.from("x")), grpc.status.UNAVAILABLE, unreachable(ports));
    const warning = instance.process.logLines.find((line) => String(line.msg).startsWith("Redis is not usable yet"));
    assert.equal(warning?.redis, `master "${MASTER_NAME}" of Sentinels 127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`);
    assert.equal(instance.process.child.exitCode, null, "the instance stays up");
  });
});
