/*
 * The S3 archive when a commit or a model deletion is cut short, end to end: server process → fault
 * proxy (s3-fault-proxy.ts) → S3 test server. What a crash or a lost reply leaves in the bucket must
 * neither block the model's later versions nor let a number name other bytes than a client saw.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { status } from "@grpc/grpc-js";
import { encodeVersionInfo } from "../../src/archive/yaml-codec.js";
import { failure } from "../support/grpc-failure.js";
import { RegistryClient } from "../support/registry-client.js";
import { type S3FaultProxy, startS3FaultProxy } from "../support/s3-fault-proxy.js";
import { killAllS3TestServers, type S3TestServer, startS3TestServer } from "../support/s3-test-server.js";
import { killAllServers, logLinesWhen, type ServerProcess, spawnServer } from "../support/server-process.js";

const BUCKET = "models";

describe("archive on S3: commits and deletions cut short", () => {
  let s3: S3TestServer;
  let s3Client: S3Client;
  let proxy: S3FaultProxy;

  before(async () => {
    s3 = await startS3TestServer([BUCKET]);
    s3Client = s3.client();
    proxy = await startS3FaultProxy(s3.port);
  });

  after(async () => {
    killAllServers();
    await proxy?.close();
    s3Client?.destroy();
    await s3?.close(); // and its directory
    killAllS3TestServers();
  });

  /** A server with its archive under `prefix`, reaching the store through the proxy. */
  async function startServer(prefix: string, env: Record<string, string> = {}): Promise<{ server: ServerProcess; client: RegistryClient }> {
    const server = await spawnServer({
      ...s3.awsEnv(),
      AWS_ENDPOINT_URL_S3: proxy.endpoint,
      COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/${prefix}`,
      COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true",
      ...env,
    });
    return { server, client: new RegistryClient(`127.0.0.1:${server.port}`) };
  }

  async function stop({ server, client }: { server: ServerProcess; client: RegistryClient }, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    proxy.clear();
    client.close();
    server.child.kill(signal);
    await server.exited;
  }

  /** Runs `run` on a server, stopped afterwards whatever happens. */
  async function withServer<T>(prefix: string, run: (client: RegistryClient, server: ServerProcess) => Promise<T>): Promise<T> {
    const started = await startServer(prefix);
    try {
      return await run(started.client, started.server);
    } finally {
      await stop(started);
    }
  }

  async function listKeys(prefix: string): Promise<string[]> {
    const page = await s3Client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
    return (page.Contents ?? []).map((o) => (o.Key ?? "").slice(prefix.length)).sort();
  }

  async function storedText(key: string): Promise<string> {
    const reply = await s3Client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return (reply.Body as NonNullable<typeof reply.Body>).transformToString("utf8");
  }

  const put = (key: string, body: string) => s3Client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(body) }));
  const numbers = async (client: RegistryClient, modelId: string): Promise<number[]> =>
    (await client.retrieveVersionInfos({ model_id: modelId })).version_infos.map((v) => v.version_number);

  test("a data object left by a crash between a version's data and its info does not block the model's archived versions", async () => {
    await withServer("orphan/", async (client) => {
      await client.createModel("m");
      assert.equal((await client.publish("m", Buffer.from("one"), { archived: true })).version_number, 1);
    });
    // What a kill between the data PUT and the info PUT of version 2 leaves.
    await put("orphan/m/m-v000002.data", "bytes of a version never committed");
    await withServer("orphan/", async (client, server) => {
      const published: number[] = [];
      for (const data of ["two", "three", "four"]) {
        published.push((await client.publish("m", Buffer.from(data), { archived: true })).version_number);
      }
      assert.deepEqual(published, [2, 3, 4]);
      assert.equal((await client.retrieveData("m", 2)).toString(), "two");
      assert.deepEqual(
        (await logLinesWhen(server, (line) => line.msg === "overwriting a leftover data object: no version info refers to it (a commit interrupted before its info was written)")).map((line) => line.key),
        ["orphan/m/m-v000002.data"],
      );
    });
    assert.equal(await storedText("orphan/m/m-v000002.data"), "two");
  });

  test("a 409 ConditionalRequestConflict on a version's data write (another write of the key in flight) is tried again; on its info, the commit fails ABORTED and uses up the number", async () => {
    await withServer("conflict/", async (client) => {
      await client.createModel("m");
      const dataRule = proxy.inject({ method: "PUT", path: /^\/models\/conflict\/m\/m-v000001\.data(\?|$)/, fault: { kind: "conditional-conflict" }, times: 2 });
      assert.equal((await client.publish("m", Buffer.from("first"), { archived: true })).version_number, 1);
      assert.equal(dataRule.hits, 2);
      assert.equal((await client.retrieveData("m", 1)).toString(), "first");

      const infoRule = proxy.inject({ method: "PUT", path: /^\/models\/conflict\/m\/m-v000002\.yaml(\?|$)/, fault: { kind: "conditional-conflict" }, times: 1 });
      const failed = await failure(client.publish("m", Buffer.from("second"), { archived: true }));
      assert.equal(infoRule.hits, 1);
      assert.equal(failed.code, status.ABORTED);
      assert.match(
        failed.details,
        /^archive bucket "models": writing conflict\/m\/m-v000002\.yaml failed: ConditionalRequestConflict: A conflicting operation occurred\. If using PutObject you can retry the request\., HTTP 409; another write of the object was in flight, retry the call$/,
      );
      assert.equal((await client.publish("m", Buffer.from("third"), { archived: true })).version_number, 3);
      assert.deepEqual(await numbers(client, "m"), [1, 3]);
    });
    assert.deepEqual(
      (await listKeys("conflict/m/")).filter((key) => !key.startsWith(".")),
      ["m-v000001.data", "m-v000001.yaml", "m-v000003.data", "m-v000003.yaml", "m.yaml"],
    );
  });

  test("the lost reply of a version's info PUT: the retry's 412 finds our own info, the version is committed, its number never reused", async () => {
    await withServer("lost-reply/", async (client) => {
      await client.createModel("m");
      const rule = proxy.inject({ method: "PUT", path: /^\/models\/lost-reply\/m\/m-v000001\.yaml(\?|$)/, fault: { kind: "lose-reply" }, times: 1 });
      assert.equal((await client.publish("m", Buffer.from("first"), { archived: true })).version_number, 1);
      assert.equal(rule.hits, 1);
      assert.equal((await client.publish("m", Buffer.from("transient"))).version_number, 2);
      assert.equal((await client.retrieveData("m", 1)).toString(), "first");
    });
    await withServer("lost-reply/", async (client) => {
      assert.deepEqual(await numbers(client, "m"), [1]);
      assert.equal((await client.retrieveData("m", 1)).toString(), "first");
      assert.equal((await client.publish("m", Buffer.from("next"), { archived: true })).version_number, 3);
    });
  });

  test("an info of the claimed number already in the store (another writer, an earlier failure): ALREADY_EXISTS, the number is used up", async () => {
    await withServer("info-taken/", async (client) => {
      await client.createModel("m");
      assert.equal((await client.publish("m", Buffer.from("one"), { archived: true })).version_number, 1);
      const foreign = encodeVersionInfo({
        modelId: "m",
        versionNumber: 2,
        creationTimestamp: 1n,
        archived: true,
        dataHash: "another writer's",
        dataSize: 5,
        userData: {},
      });
      await put("info-taken/m/m-v000002.yaml", foreign);
      const failed = await failure(client.publish("m", Buffer.from("two"), { archived: true }));
      assert.equal(failed.code, status.ALREADY_EXISTS);
      assert.match(
        failed.details,
        /^archive bucket "models": writing info-taken\/m\/m-v000002\.yaml failed: PreconditionFailed: At least one of the pre-conditions you specified did not hold, HTTP 412$/,
      );
      // Our data is removed; the other record is left alone, and its number is never handed out here.
      assert.equal(await storedText("info-taken/m/m-v000002.yaml"), foreign);
      assert.equal((await client.publish("m", Buffer.from("transient"))).version_number, 3);
      assert.equal((await client.publish("m", Buffer.from("four"), { archived: true })).version_number, 4);
      assert.deepEqual(await numbers(client, "m"), [1, 3, 4]);
    });
    assert.deepEqual(
      (await listKeys("info-taken/m/")).filter((key) => !key.startsWith(".")),
      ["m-v000001.data", "m-v000001.yaml", "m-v000002.yaml", "m-v000004.data", "m-v000004.yaml", "m.yaml"],
    );
  });

  test("a model deletion failing at its last step keeps the numbering records: after a crash numbers go on, never again from 1", async () => {
    let started = await startServer("delete/");
    try {
      const { client } = started;
      await client.createModel("m");
      for (const data of ["a", "b", "c"]) {
        await client.publish("m", Buffer.from(data), { archived: true });
      }
      proxy.inject({ method: "DELETE", path: /^\/models\/delete\/m\/m\.yaml(\?|$)/, fault: { kind: "internal-error" } });
      const failed = await failure(client.deleteModel("m"));
      assert.equal(failed.code, status.UNAVAILABLE);
      assert.equal(
        failed.details,
        'archive bucket "models": deleting delete/m/m.yaml failed: InternalError: We encountered an internal error. Please try again., HTTP 500, after 3 attempts',
      );
      proxy.clear();
      // The model stays; what this server lists matches what the bucket still holds.
      assert.deepEqual((await client.retrieveModels({})).model_infos.map((m) => m.model_id), ["m"]);
      assert.deepEqual(await numbers(client, "m"), []);
      assert.deepEqual(await listKeys("delete/m/"), [".cogment-ts-next-version", ".cogment-ts-version-record", "m.yaml"]);
      await stop(started, "SIGKILL"); // the process dies before a graceful stop could write anything
      started = await startServer("delete/");
      assert.deepEqual((await started.client.retrieveModels({})).model_infos.map((m) => m.model_id), ["m"]);
      // Above the durable mark (1 + 1024): after a crash the record of an object store is not trusted.
      assert.equal((await started.client.publish("m", Buffer.from("new"), { archived: true })).version_number, 1025);
      // Deleted whole this time, the numbering records last.
      await started.client.deleteModel("m");
      assert.deepEqual(await listKeys("delete/m/"), []);
    } finally {
      await stop(started);
    }
  });

  test("a stalled store does not stall transient versions: their numbering record goes out in the background; after a crash numbers go on above the mark", { timeout: 120_000 }, async () => {
    // A record PUT that hangs would hold each commit 3 × 10 min if commits waited for it.
    let started = await startServer("stall/", { COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: "10m" });
    try {
      const { client } = started;
      await client.createModel("m");
      assert.equal((await client.publish("m", Buffer.from("warm"))).version_number, 1); // the run's first record, awaited
      const rule = proxy.inject({ method: "PUT", path: /^\/models\/stall\/m\/\.cogment-ts-version-record(\?|$)/, fault: { kind: "stall" } });
      const published: number[] = [];
      for (const data of ["x0", "x1", "x2"]) {
        published.push((await client.publish("m", Buffer.from(data))).version_number);
      }
      assert.deepEqual(published, [2, 3, 4]);
      assert.equal(rule.hits, 1, "one record PUT in flight (hanging); the newest value waits behind it");
      assert.equal((await client.retrieveData("m", 4)).toString(), "x2");
      await stop(started, "SIGKILL");
      started = await startServer("stall/");
      assert.equal((await started.client.publish("m", Buffer.from("after"))).version_number, 1025, "never 2, 3 or 4 again");
    } finally {
      await stop(started);
    }
  });
});
