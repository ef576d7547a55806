/*
 * The S3 archive under store faults, end to end: server process → fault proxy (s3-fault-proxy.ts) →
 * S3 test server. Throttling and 5xx are retried by the SDK's standard retry; exhausted retries fail
 * the call with UNAVAILABLE and the store's reason, with nothing half-visible; a stalled request
 * times out; a download that breaks mid-body is resumed; a read whose object changed fails with ABORTED;
 * AWS_MAX_ATTEMPTS is honoured.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { status } from "@grpc/grpc-js";
import { failure } from "../support/grpc-failure.js";
import { RegistryClient } from "../support/registry-client.js";
import { type S3FaultProxy, startS3FaultProxy } from "../support/s3-fault-proxy.js";
import { killAllS3TestServers, type S3TestServer, startS3TestServer } from "../support/s3-test-server.js";
import { killAllServers, logLinesWhen, runFailingServer, type ServerProcess, spawnServer } from "../support/server-process.js";

const BUCKET = "models";
const MiB = 1024 * 1024;

describe("archive on S3: store faults", () => {
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

  /** The server with its archive under `prefix`, reaching the store through the proxy. */
  async function withServer<T>(prefix: string, env: Record<string, string>, run: (client: RegistryClient, server: ServerProcess) => Promise<T>): Promise<T> {
    const server = await spawnServer({
      ...s3.awsEnv(),
      AWS_ENDPOINT_URL_S3: proxy.endpoint,
      COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/${prefix}`,
      COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true",
      ...env,
    });
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    try {
      return await run(client, server);
    } finally {
      proxy.clear();
      client.close();
      server.child.kill("SIGTERM");
      await server.exited;
    }
  }

  async function listKeys(prefix: string): Promise<string[]> {
    const page = await s3Client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
    return (page.Contents ?? []).map((o) => (o.Key ?? "").slice(prefix.length)).filter((key) => !key.startsWith(".") && !key.includes("/.")).sort();
  }

  /** The object as the store holds it, read around the proxy. */
  async function storedObject(key: string): Promise<Buffer> {
    const reply = await s3Client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return Buffer.from(await (reply.Body as NonNullable<typeof reply.Body>).transformToByteArray());
  }

  const requestsTo = (method: string, path: RegExp) => proxy.requests.filter((r) => r.method === method && path.test(r.path));

  test("one 503 SlowDown on the data PUT is retried: the version is stored whole and reads back byte-exact", async () => {
    const data = randomBytes(MiB + 3);
    const dataPath = /\/slow\/m\/m-v000001\.data(\?|$)/;
    const rule = proxy.inject({ method: "PUT", path: dataPath, fault: { kind: "slow-down" }, times: 1 });
    await withServer("slow/", {}, async (client) => {
      await client.createModel("m");
      const info = await client.publish("m", data, { archived: true });
      assert.equal(info.version_number, 1);
      assert.equal(rule.hits, 1);
      assert.deepEqual(
        requestsTo("PUT", dataPath).map((r) => r.fault),
        ["slow-down", undefined],
      );
      assert.ok((await storedObject("slow/m/m-v000001.data")).equals(data));
      assert.ok((await client.retrieveData("m", 1)).equals(data));
    });
    assert.deepEqual(await listKeys("slow/"), ["m/m-v000001.data", "m/m-v000001.yaml", "m/m.yaml"]);
  });

  test("a persistent 500 on the data upload: UNAVAILABLE naming the bucket and the store's reason, nothing listed, the server keeps serving", async () => {
    const kept = Buffer.from("version one");
    // Over one 8 MiB part: a multipart upload whose UploadPart requests all fail.
    const big = randomBytes(9 * MiB);
    const dataPath = /\/broken\/m\/m-v000002\.data\?/;
    await withServer("broken/", {}, async (client, server) => {
      await client.createModel("m");
      await client.publish("m", kept, { archived: true });
      const rule = proxy.inject({ method: "PUT", path: dataPath, fault: { kind: "internal-error" } });
      const failed = await failure(client.publish("m", big, { archived: true }));
      assert.equal(failed.code, status.UNAVAILABLE);
      assert.match(
        failed.details,
        /^archive bucket "models": writing broken\/m\/m-v000002\.data failed: InternalError: We encountered an internal error\. Please try again\., HTTP 500, after 3 attempts$/,
      );
      assert.ok(rule.hits >= 3, `UploadPart attempts: ${rule.hits}`);
      assert.ok(requestsTo("PUT", dataPath).every((r) => /partNumber=/.test(r.path)));
      // Nothing half-visible: no data, no info, no version.
      assert.deepEqual(await listKeys("broken/"), ["m/m-v000001.data", "m/m-v000001.yaml", "m/m.yaml"]);
      assert.deepEqual((await client.retrieveVersionInfos({ model_id: "m" })).version_infos.map((v) => v.version_number), [1]);
      assert.equal(server.child.exitCode, null);
      // The store is back: the next version takes the number the failed one never had.
      proxy.clear();
      assert.equal((await client.publish("m", big, { archived: true })).version_number, 2);
      assert.ok((await storedObject("broken/m/m-v000002.data")).equals(big));
      assert.ok((await client.retrieveData("m", 1)).equals(kept));
    });
  });

  test("a stalled GET times out: UNAVAILABLE within attempts × ARCHIVE_S3_TIMEOUT plus backoff; then reads work again", async () => {
    const data = randomBytes(2 * MiB);
    const dataPath = /\/stall\/m\/m-v000001\.data(\?|$)/;
    // A 4 MiB budget: a 2 MiB archived version is never cached, every read goes to the store.
    const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: "1s", COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(4 * MiB) };
    await withServer("stall/", env, async (client, server) => {
      await client.createModel("m");
      await client.publish("m", data, { archived: true });
      proxy.inject({ method: "GET", path: dataPath, fault: { kind: "stall" } });
      const startedAt = Date.now();
      const failed = await failure(client.retrieveData("m", 1));
      const elapsedMs = Date.now() - startedAt;
      assert.equal(failed.code, status.UNAVAILABLE);
      assert.match(failed.details, /^archive bucket "models": reading stall\/m\/m-v000001\.data failed: TimeoutError: .*timed out after 1000 ms of inactivity.*, after 3 attempts$/);
      assert.equal(requestsTo("GET", dataPath).length, 3);
      // 3 attempts of 1 s, plus the standard mode's backoff (under 0.1 s + 0.2 s) and the HEAD: never a hang.
      assert.ok(elapsedMs >= 3000 && elapsedMs < 15_000, `failed after ${elapsedMs} ms`);
      proxy.clear();
      assert.ok((await client.retrieveData("m", 1)).equals(data));
      assert.equal(server.child.exitCode, null);
    });
  });

  test("a download cut mid-body is resumed from where it broke: the client gets every byte, status OK", async () => {
    const data = randomBytes(3 * MiB + 5);
    const dataPath = /\/cut\/m\/m-v00000[12]\.data(\?|$)/;
    const v1Path = /\/cut\/m\/m-v000001\.data(\?|$)/;
    const v2Path = /\/cut\/m\/m-v000002\.data(\?|$)/;
    const env = { COGMENT_MODEL_REGISTRY_ARCHIVE_S3_TIMEOUT: "1s", COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(4 * MiB) };
    await withServer("cut/", env, async (client, server) => {
      await client.createModel("m");
      await client.publish("m", data, { archived: true });
      await client.publish("m", data, { archived: true });

      // Reset after 1 MiB, once.
      proxy.inject({ method: "GET", path: v1Path, fault: { kind: "cut-body", afterBytes: MiB }, times: 1 });
      assert.ok((await client.retrieveData("m", 1)).equals(data));
      const reads = requestsTo("GET", v1Path);
      assert.equal(reads.length, 2);
      assert.equal(reads[0]?.range, `bytes=0-${data.length - 1}`);
      assert.match(reads[1]?.range ?? "", new RegExp(`^bytes=([0-9]+)-${data.length - 1}$`));
      const resumedAt = Number(/^bytes=([0-9]+)-/.exec(reads[1]?.range ?? "")?.[1]);
      assert.ok(resumedAt > 0 && resumedAt <= MiB, `resumed at ${resumedAt}`);

      // Silent after 1 MiB, once: the idle timeout ends that response, and the read resumes.
      proxy.inject({ method: "GET", path: v2Path, fault: { kind: "cut-body", afterBytes: MiB, then: "stall" }, times: 1 });
      assert.ok((await client.retrieveData("m", 2)).equals(data));
      assert.equal(requestsTo("GET", v2Path).length, 2);
      assert.equal((await logLinesWhen(server, (line) => line.msg === "resuming an archive read whose response broke" && line.key === "cut/m/m-v000002.data")).length, 1);

      // Cut every time: the read gives up after 3 resumptions with UNAVAILABLE.
      const before = requestsTo("GET", dataPath).length;
      proxy.inject({ method: "GET", path: v1Path, fault: { kind: "cut-body", afterBytes: 64 * 1024 } });
      const failed = await failure(client.retrieveData("m", 1));
      assert.equal(failed.code, status.UNAVAILABLE);
      assert.match(failed.details, /^archive bucket "models": reading cut\/m\/m-v000001\.data failed: Error: aborted \(after 3 resumed reads\)$/);
      assert.equal(requestsTo("GET", dataPath).length - before, 4);
      proxy.clear();
      assert.ok((await client.retrieveData("m", 1)).equals(data));
    });
  });

  test("a read whose object changed under it (412 on its If-Match): ABORTED saying so, not ALREADY_EXISTS; the next read works", async () => {
    const data = randomBytes(2 * MiB + 3);
    const v1Path = /\/changed\/m\/m-v000001\.data(\?|$)/;
    await withServer("changed/", { COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(MiB) }, async (client, server) => {
      await client.createModel("m");
      await client.publish("m", data, { archived: true });
      proxy.inject({ method: "GET", path: v1Path, fault: { kind: "precondition-failed" }, times: 1 });
      const failed = await failure(client.retrieveData("m", 1));
      assert.equal(failed.code, status.ABORTED);
      assert.equal(
        failed.details,
        'archive bucket "models": reading changed/m/m-v000001.data failed: PreconditionFailed: At least one of the pre-conditions you specified did not hold, HTTP 412; ' +
          "the object changed while it was being read, retry the call",
      );
      assert.ok((await client.retrieveData("m", 1)).equals(data));
      assert.equal(server.child.exitCode, null);
    });
  });

  test("AWS_MAX_ATTEMPTS sets the attempts per request (5 here; 3 without it)", async () => {
    const dataPath = /\/attempts\/m\/m-v000001\.data(\?|$)/;
    await withServer("attempts/", { AWS_MAX_ATTEMPTS: "5" }, async (client) => {
      await client.createModel("m");
      const rule = proxy.inject({ method: "PUT", path: dataPath, fault: { kind: "internal-error" } });
      const failed = await failure(client.publish("m", Buffer.from("small"), { archived: true }));
      assert.equal(failed.code, status.UNAVAILABLE);
      assert.match(failed.details, /^archive bucket "models": writing attempts\/m\/m-v000001\.data failed: InternalError: We encountered an internal error\. Please try again\., HTTP 500, after 5 attempts$/);
      assert.equal(rule.hits, 5);
    });
    const bad = await runFailingServer({ ...s3.awsEnv(), COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/x`, AWS_MAX_ATTEMPTS: "0" });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /failed to start: AWS_MAX_ATTEMPTS="0" is invalid: expected an integer from 1/);
  });
});
