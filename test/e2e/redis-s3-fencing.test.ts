/*
 * Several instances on one Redis and one S3 bucket: an instance whose claim of a version number ran
 * out while it was stalled (SIGSTOP here; a GC pause, a VM freeze, a network stall) must neither
 * replace nor remove the objects of the version another instance committed under that number, and a
 * reader must never be given that version's info with other bytes. A's requests reach the bucket
 * through the fault proxy, which holds the one that must arrive late (a request sent just before
 * the stall, or a stalled instance's next one).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test, type TestContext } from "node:test";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import * as grpc from "@grpc/grpc-js";
import { failure, type GrpcFailure } from "../support/grpc-failure.js";
import { killAllRedisServers, startRedisServer } from "../support/redis-server.js";
import { type S3FaultProxy, startS3FaultProxy } from "../support/s3-fault-proxy.js";
import { killAllS3TestServers, type S3TestServer, startS3TestServer } from "../support/s3-test-server.js";
import { type ServerInstance, startServerInstance } from "../support/server-instance.js";
import { killAllServers } from "../support/server-process.js";

const BUCKET = "models";
const MiB = 1024 * 1024;
const MODEL = "net";
const DATA_KEY = `shared/${MODEL}/${MODEL}-v000001.data`;
const DATA_PUT = /^\/models\/shared\/net\/net-v000001\.data(\?|$)/;
const INFO_PUT = /^\/models\/shared\/net\/net-v000001\.yaml(\?|$)/;
const MARK_OF_1 = /^\/models\/shared\/net\/\.cogment-ts-pending-v000001(\?|$)/;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

/** A 4 MiB cache: an archived version over 1 MiB is streamed (a temporary object copied into place), a smaller one held in memory. */
const STREAMED = { COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(4 * MiB) };

interface Shared {
  readonly s3: S3TestServer;
  readonly proxy: S3FaultProxy;
  /** An instance's settings: this Redis, this bucket, reached directly. */
  readonly env: Record<string, string>;
}

async function sharedSetup(t: TestContext): Promise<Shared> {
  const s3 = await startS3TestServer([BUCKET]);
  t.after(() => s3.close());
  const proxy = await startS3FaultProxy(s3.port);
  t.after(() => proxy.close());
  const redis = await startRedisServer(t);
  const env = {
    ...s3.awsEnv(),
    COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/shared`,
    COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true",
    COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url,
  };
  return { s3, proxy, env };
}

/** Stops the instance's process (SIGSTOP); it is let run again after the test whatever happens. */
function stall(t: TestContext, instance: ServerInstance): { resume(): void } {
  const pid = instance.process.child.pid as number;
  const resume = (): void => {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // already gone
    }
  };
  process.kill(pid, "SIGSTOP");
  t.after(resume);
  return { resume };
}

/** Waits (polling, no fixed delay) until `condition` holds; fails after 60 s naming `what`. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await sleep(5);
  }
}

const heldRequests = (proxy: S3FaultProxy): number => proxy.requests.filter((request) => request.fault === "hold").length;

async function storedData(s3: S3TestServer): Promise<Buffer> {
  const client = s3.client();
  try {
    const reply = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: DATA_KEY }));
    return Buffer.from(await (reply.Body as NonNullable<typeof reply.Body>).transformToByteArray());
  } finally {
    client.destroy();
  }
}

/** A publish whose outcome is awaited later, its settling observable meanwhile. */
function pending(publish: Promise<unknown>): { readonly settled: () => boolean; readonly failure: Promise<GrpcFailure> } {
  let settled = false;
  const outcome = publish.finally(() => (settled = true));
  return { settled: () => settled, failure: failure(outcome) };
}

describe("Redis mode with the archive on S3: the objects of a claim that ran out", () => {
  after(() => {
    killAllServers();
    killAllRedisServers();
    killAllS3TestServers();
  });

  for (const [upload, settings, size] of [
    ["held in memory", {}, MiB],
    ["streamed to a temporary object", STREAMED, 3 * MiB],
  ] as const) {
    test(`a stalled instance's info PUT arriving after another instance committed the number leaves that version's data in place (upload ${upload})`, async (t) => {
      const { s3, proxy, env } = await sharedSetup(t);
      const a = await startServerInstance(t, { ...env, ...settings, AWS_ENDPOINT_URL_S3: proxy.endpoint });
      const b = await startServerInstance(t, { ...env, ...settings });
      await a.client.createModel(MODEL);

      // A writes its data object, sends its info PUT (held by the proxy) and stalls past its lease.
      proxy.inject({ method: "PUT", path: INFO_PUT, fault: { kind: "hold" }, times: 1 });
      const publishA = pending(a.client.publish(MODEL, randomBytes(size), { archived: true }));
      await until(() => heldRequests(proxy) === 1, "A's info PUT is held");
      const stalledA = stall(t, a);

      // B claims number 1 once A's lease ran out, replaces A's data object (no info refers to it) and commits.
      const dataB = randomBytes(size);
      const versionB = await b.client.publish(MODEL, dataB, { archived: true });
      assert.equal(versionB.version_number, 1);
      assert.equal(versionB.data_hash, sha256(dataB));

      // A runs again and its info PUT reaches the bucket: refused (B's info is there), A's commit fails.
      stalledA.resume();
      assert.equal(proxy.releaseHeld(), 1);
      const failureA = await publishA.failure;
      assert.equal(failureA.code, grpc.status.ALREADY_EXISTS, failureA.details);
      assert.match(
        failureA.details,
        /^archive bucket "models": writing shared\/net\/net-v000001\.yaml failed: PreconditionFailed: At least one of the pre-conditions you specified did not hold, HTTP 412$/,
      );

      // Version 1 is B's: its data object is still there (A removes only its own), read through an instance without B's copy.
      assert.equal(sha256(await storedData(s3).catch((error: unknown) => Buffer.from(String(error)))), sha256(dataB), "the data object of version 1 is B's");
      const c = await startServerInstance(t, env);
      assert.equal(sha256(await c.client.retrieveData(MODEL, 1)), sha256(dataB));
      assert.equal((await a.client.publish(MODEL, Buffer.from("after"), { archived: true })).version_number, 2);
    });
  }

  test("a stalled instance's late data PUT does not replace the data of the number's next holder: readers get the bytes of the info they are given", async (t) => {
    const { s3, proxy, env } = await sharedSetup(t);
    const a = await startServerInstance(t, { ...env, AWS_ENDPOINT_URL_S3: proxy.endpoint });
    // B's requests go through the proxy too, so that its info PUT can be held.
    const b = await startServerInstance(t, { ...env, AWS_ENDPOINT_URL_S3: proxy.endpoint });
    await a.client.createModel(MODEL);

    // A holds the claim of number 1, sends its data PUT (held) and stalls past its lease.
    proxy.inject({ method: "PUT", path: DATA_PUT, fault: { kind: "hold" }, times: 1 });
    const publishA = pending(a.client.publish(MODEL, randomBytes(MiB), { archived: true }));
    await until(() => heldRequests(proxy) === 1, "A's data PUT is held");
    const stalledA = stall(t, a);

    // B claims number 1, writes its data object; its info PUT is held.
    proxy.inject({ method: "PUT", path: INFO_PUT, fault: { kind: "hold" }, times: 2 });
    const dataB = randomBytes(MiB);
    const publishB = b.client.publish(MODEL, dataB, { archived: true });
    await until(() => heldRequests(proxy) === 2, "B's info PUT is held");

    // A runs again: its data PUT finds B's object, with no info yet. Before, A took it for a leftover
    // and overwrote it, then sent its info (held here as the second info PUT).
    stalledA.resume();
    assert.equal(proxy.releaseHeld(DATA_PUT), 1);
    await until(() => publishA.settled() || heldRequests(proxy) === 3, "A fails or sends its info");

    // B's info (the first info PUT held) goes in and B commits version 1.
    assert.equal(proxy.releaseHeld(INFO_PUT, 1), 1);
    const versionB = await publishB;
    assert.equal(versionB.version_number, 1);
    assert.equal(versionB.data_hash, sha256(dataB));
    const c = await startServerInstance(t, env);
    const read = await c.client.retrieveData(MODEL, 1).catch((error: grpc.ServiceError) => Buffer.from(`${error.code}: ${error.details}`));
    assert.equal(sha256(read), sha256(dataB), `version 1 read through another instance: ${read.subarray(0, 200).toString()}`);
    assert.equal(sha256(await storedData(s3)), sha256(dataB));

    proxy.releaseHeld();
    const failureA = await publishA.failure;
    assert.equal(failureA.code, grpc.status.ABORTED, failureA.details);
    assert.match(
      failureA.details,
      /^the claim of version number 1 of model "net" expired before the version's objects were put in place \(the lease of 5000 ms ran out: this instance was stalled or could not reach Redis\); its objects were not put in place, try again$/,
    );
    assert.equal(sha256(await c.client.retrieveData(MODEL, 1)), sha256(dataB));
  });

  test("the holder of a number replaces a data object a writer left under it without its info, with a warning", async (t) => {
    const { s3, env } = await sharedSetup(t);
    const a = await startServerInstance(t, env);
    await a.client.createModel(MODEL);
    const client = s3.client();
    t.after(() => client.destroy());
    // What an instance killed between its data and its info PUT leaves behind.
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: DATA_KEY, Body: "never committed" }));

    const data = randomBytes(MiB);
    assert.equal((await a.client.publish(MODEL, data, { archived: true })).version_number, 1);
    assert.equal(sha256(await storedData(s3)), sha256(data));
    const listing = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `shared/${MODEL}/${MODEL}-v` }));
    assert.deepEqual(
      (listing.Contents ?? []).map((object) => object.Key),
      [DATA_KEY, `shared/${MODEL}/${MODEL}-v000001.yaml`],
    );
    const warned = a.process.logLines.filter((line) => String(line.msg).startsWith("overwriting a leftover data object"));
    assert.deepEqual(
      warned.map((line) => line.key),
      [DATA_KEY],
    );
  });

  test("the pending mark cannot be written: the commit fails UNAVAILABLE and nothing of the version is listed, in Redis or the bucket; the number is used by the next commit", async (t) => {
    const { s3, proxy, env } = await sharedSetup(t);
    const a = await startServerInstance(t, { ...env, AWS_ENDPOINT_URL_S3: proxy.endpoint });
    await a.client.createModel(MODEL);
    // Every attempt of the mark's PUT fails (the SDK retries 500s).
    proxy.inject({ method: "PUT", path: MARK_OF_1, fault: { kind: "internal-error" } });
    const refused = await failure(a.client.publish(MODEL, randomBytes(64 * 1024), { archived: true }));
    assert.equal(refused.code, grpc.status.UNAVAILABLE, refused.details);
    assert.equal(
      refused.details,
      `archive bucket "models": writing shared/${MODEL}/.cogment-ts-pending-v000001 failed: InternalError: We encountered an internal error. Please try again., HTTP 500, after 3 attempts`,
    );
    assert.ok(proxy.requests.filter((request) => request.fault === "internal-error").length >= 1);
    assert.deepEqual((await a.client.retrieveVersionInfos({ model_id: MODEL })).version_infos, []);
    const client = s3.client();
    t.after(() => client.destroy());
    const infos = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `shared/${MODEL}/${MODEL}-v000001.yaml` }));
    assert.deepEqual(infos.Contents ?? [], [], "no info object: the version was never put in place");

    proxy.clear();
    const data = Buffer.from("after the failure");
    assert.equal((await a.client.publish(MODEL, data, { archived: true })).version_number, 1);
    assert.equal(sha256(await a.client.retrieveData(MODEL, 1)), sha256(data));
    const marks = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `shared/${MODEL}/.cogment-ts-pending-v` }));
    assert.deepEqual(marks.Contents ?? [], [], "the successful commit removed its mark");
  });

  test("the pending mark cannot be removed after the commit: UNAVAILABLE saying the version is committed but not recorded in the archive; it is listed and served, the mark stays", async (t) => {
    const { s3, proxy, env } = await sharedSetup(t);
    const a = await startServerInstance(t, { ...env, AWS_ENDPOINT_URL_S3: proxy.endpoint });
    await a.client.createModel(MODEL);
    // Every attempt of the mark's DELETE fails (the SDK retries 500s).
    proxy.inject({ method: "DELETE", path: MARK_OF_1, fault: { kind: "internal-error" } });
    const data = randomBytes(64 * 1024);
    const refused = await failure(a.client.publish(MODEL, data, { archived: true }));
    assert.equal(refused.code, grpc.status.UNAVAILABLE, refused.details);
    assert.match(
      refused.details,
      /^version 1 of model "net" was committed, but the archive could not record that its commit completed \(.*InternalError.*\): it is listed and served while Redis keeps it, but an import of the archive into an empty Redis would not list it$/,
    );
    assert.ok(proxy.requests.filter((request) => request.fault === "internal-error").length >= 1);
    const listed = await a.client.retrieveVersionInfos({ model_id: MODEL, version_numbers: [-1] });
    assert.deepEqual(
      listed.version_infos.map((info) => [info.version_number, info.archived, info.data_hash]),
      [[1, true, sha256(data)]],
    );
    assert.equal(sha256(await a.client.retrieveData(MODEL, 1)), sha256(data));
    const logged = a.process.logLines.filter((line) => line.msg === "an archived version was committed in Redis, but its pending mark could not be removed from the archive");
    assert.deepEqual(
      logged.map((line) => [line.modelId, line.versionNumber]),
      [[MODEL, 1]],
    );

    // The store answers again: the next archived commit removes its own mark as usual; version 1's stays.
    proxy.clear();
    assert.equal((await a.client.publish(MODEL, Buffer.from("two"), { archived: true })).version_number, 2);
    const client = s3.client();
    t.after(() => client.destroy());
    const marks = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `shared/${MODEL}/.cogment-ts-pending-v` }));
    assert.deepEqual(
      (marks.Contents ?? []).map((object) => object.Key),
      [`shared/${MODEL}/.cogment-ts-pending-v000001`],
    );
  });
});

