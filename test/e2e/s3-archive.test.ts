/*
 * The server with its archive in a bucket of the S3 test server (a real S3-protocol server on a
 * loopback port), over real gRPC: archive, restart, fetch; the original's archive synced into the
 * bucket; bucket → directory → server; a kill -9 mid-upload; the start-up check; the store going away.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { status } from "@grpc/grpc-js";
import { ORIGINAL_ARCHIVE } from "../support/fixtures.js";
import { RegistryClient } from "../support/registry-client.js";
import { killAllS3TestServers, type S3TestServer, startS3TestServer } from "../support/s3-test-server.js";
import { killAllServers, runFailingServer, type ServerProcess, spawnServer } from "../support/server-process.js";

const BUCKET = "models";
const MiB = 1024 * 1024;
const tempDirs: string[] = [];

after(async () => {
  killAllServers();
  killAllS3TestServers();
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-s3-e2e-"));
  tempDirs.push(dir);
  return dir;
}

function s3Env(s3: S3TestServer, prefix: string): Record<string, string> {
  return { ...s3.awsEnv(), COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/${prefix}`, COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true" };
}

async function withServer<T>(env: Record<string, string>, run: (client: RegistryClient, server: ServerProcess) => Promise<T>): Promise<T> {
  const server = await spawnServer(env);
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  try {
    return await run(client, server);
  } finally {
    client.close();
    server.child.kill("SIGTERM");
    await server.exited;
  }
}

async function listKeys(client: S3Client, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((o) => (o.Key ?? "").slice(prefix.length)));
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort();
}

/** What `aws s3 sync <dir> s3://bucket/prefix` does to an empty prefix. */
async function syncDirToBucket(client: S3Client, dir: string, prefix: string): Promise<void> {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const file = path.join(entry.parentPath, entry.name);
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: prefix + path.relative(dir, file), Body: await readFile(file) }));
    }
  }
}

/** What `aws s3 sync s3://bucket/prefix <dir>` does to an empty directory. */
async function syncBucketToDir(client: S3Client, prefix: string, dir: string): Promise<void> {
  for (const key of await listKeys(client, prefix)) {
    const reply = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: prefix + key }));
    const target = path.join(dir, key);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, await (reply.Body as NonNullable<typeof reply.Body>).transformToByteArray());
  }
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

describe("archive on S3-compatible storage", () => {
  let s3: S3TestServer;
  let s3Client: S3Client;
  after(() => s3?.close()); // and its directory (a test closes it earlier; closing again is harmless)

  test("start the S3 test server", async () => {
    s3 = await startS3TestServer([BUCKET]);
    s3Client = s3.client();
  });

  test("archived versions survive a restart; the bucket synced to a directory opens in a directory server", async () => {
    const env = s3Env(s3, "restart/");
    const big = randomBytes(20 * MiB + 7);
    const small = Buffer.from("small weights");
    await withServer(env, async (client) => {
      await client.createModel("net", { team: "rl" });
      assert.equal((await client.publish("net", small, { archived: true, user_data: { step: "1000" } })).version_number, 1);
      assert.equal((await client.publish("net", big, { archived: true })).version_number, 2);
      assert.equal((await client.publish("net", Buffer.from("transient"))).version_number, 3);
    });
    const keys = await listKeys(s3Client, "restart/");
    assert.deepEqual(
      keys.filter((key) => !key.startsWith(".") && !key.includes("/.")),
      ["net/net-v000001.data", "net/net-v000001.yaml", "net/net-v000002.data", "net/net-v000002.yaml", "net/net.yaml"],
    );
    const expectInfos = async (client: RegistryClient): Promise<void> => {
      const { version_infos } = await client.retrieveVersionInfos({ model_id: "net" });
      assert.deepEqual(
        version_infos.map((v) => [v.version_number, v.archived, v.data_size, v.data_hash, v.user_data]),
        [
          [1, true, String(small.length), sha256(small), { step: "1000" }],
          [2, true, String(big.length), sha256(big), {}],
        ],
      );
      assert.ok((await client.retrieveData("net", 2)).equals(big));
      assert.ok((await client.retrieveData("net", 1)).equals(small));
      assert.deepEqual((await client.retrieveModels()).model_infos, [{ model_id: "net", user_data: { team: "rl" } }]);
    };
    await withServer(env, expectInfos);

    const dir = await tempDir();
    await syncBucketToDir(s3Client, "restart/", dir);
    await withServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: dir }, expectInfos);
  });

  test("the original server's archive, synced into the bucket, opens as it does from its directory", async () => {
    await syncDirToBucket(s3Client, ORIGINAL_ARCHIVE, "original/");
    const read = async (client: RegistryClient) => ({
      models: (await client.retrieveModels()).model_infos,
      versions: (await client.retrieveVersionInfos({ model_id: "policy_net" })).version_infos,
      v2: await client.retrieveData("policy_net", 2),
    });
    const fromBucket = await withServer(s3Env(s3, "original/"), read);
    const fromDirectory = await withServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: await copyOf(ORIGINAL_ARCHIVE) }, read);
    assert.deepEqual(fromBucket, fromDirectory);
    assert.deepEqual(fromBucket.versions.map((v) => v.version_number), [1, 2, 4]);
    assert.ok(fromBucket.v2.equals(await readFile(path.join(ORIGINAL_ARCHIVE, "policy_net/policy_net-v000002.data"))));
  });

  test("kill -9 mid-upload: no torn version, nothing listed; the next version takes the next number", async () => {
    const env = s3Env(s3, "killed/");
    const server = await spawnServer(env);
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    await client.createModel("cut");
    const { call, reply } = client.openCreateVersion();
    reply.catch(() => {});
    call.write({ header: { version_info: { model_id: "cut", archived: true, data_size: String(64 * MiB), data_hash: "", creation_timestamp: "0", user_data: {}, version_number: 0 } } });
    for (let i = 0; i < 24; i++) {
      if (!call.write({ body: { data_chunk: randomBytes(MiB) } })) {
        await new Promise((resolve) => call.once("drain", resolve));
      }
    }
    // Parts of the multipart upload are on their way when the server dies.
    await new Promise((resolve) => setTimeout(resolve, 500));
    server.child.kill("SIGKILL");
    await server.exited;
    client.close();
    const keys = await listKeys(s3Client, "killed/");
    assert.deepEqual(keys.filter((key) => key.endsWith(".data") || /-v\d+\.yaml$/.test(key)), []);
    await withServer(env, async (again) => {
      assert.deepEqual((await again.retrieveVersionInfos({ model_id: "cut" })).version_infos, []);
      const next = await again.publish("cut", Buffer.from("whole"), { archived: true });
      assert.ok(next.version_number >= 1);
      assert.deepEqual((await again.retrieveVersionInfos({ model_id: "cut" })).version_infos.map((v) => v.version_number), [next.version_number]);
    });
  });

  test("the model deleted while its version streams to the bucket: the uploader gets NOT_FOUND, no object and no multipart upload left", async () => {
    const env = { ...s3Env(s3, "deleted/"), COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(16 * MiB) };
    await withServer(env, async (client) => {
      await client.createModel("m");
      const { call, reply } = client.openCreateVersion();
      call.on("error", () => undefined);
      let failed = false;
      const settled = reply.then(
        () => undefined,
        () => {
          failed = true;
        },
      );
      call.write({ header: { version_info: { model_id: "m", archived: true, data_size: String(64 * MiB), data_hash: "", creation_timestamp: "0", user_data: {} } } });
      const chunk = Buffer.alloc(MiB, 9);
      const send = async (count: number): Promise<void> => {
        for (let i = 0; i < count && !failed; i++) {
          if (!call.write({ body: { data_chunk: chunk } })) {
            await Promise.race([new Promise((resolve) => call.once("drain", resolve)), settled]);
          }
        }
      };
      await send(12);
      // s3rver keeps each multipart upload in progress as a directory here: the version's parts are being uploaded.
      const uploads = path.join(s3.directory, BUCKET, "._S3rver_uploads");
      const pendingUploads = async (): Promise<number> => (await readdir(uploads).catch(() => [])).length;
      for (let tries = 0; tries < 3000 && (await pendingUploads()) === 0; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(await pendingUploads(), 1);
      await client.deleteModel("m");
      await send(52);
      call.end();
      await assert.rejects(reply, { code: status.NOT_FOUND, details: 'model "m" not found (it was deleted while the version was uploading)' });
      for (let tries = 0; tries < 3000 && (await pendingUploads()) > 0; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(await pendingUploads(), 0, "the multipart upload is aborted");
      assert.deepEqual((await listKeys(s3Client, "deleted/")).filter((key) => !key.startsWith(".cogment-ts-")), [], "nothing of the model is left");
    });
  });

  test("start-up check: a missing bucket, an unreachable store and a wrong configuration stop the server with a message", async () => {
    const missing = await runFailingServer({ ...s3.awsEnv(), COGMENT_MODEL_REGISTRY_ARCHIVE_URL: "s3://no-such-bucket/p", COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true" });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /failed to start: archive bucket "no-such-bucket": writing p\/\.cogment-ts-write-check \(start-up check\) failed: NoSuchBucket: /);

    const unreachable = await runFailingServer({ ...s3Env(s3, "x/"), AWS_ENDPOINT_URL_S3: "http://127.0.0.1:1", AWS_MAX_ATTEMPTS: "1" });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /failed to start: archive bucket "models": writing x\/\.cogment-ts-write-check \(start-up check\) failed: .*ECONNREFUSED/);

    const both = await runFailingServer({ ...s3Env(s3, "x/"), COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: "/tmp/somewhere" });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /COGMENT_MODEL_REGISTRY_ARCHIVE_DIR and COGMENT_MODEL_REGISTRY_ARCHIVE_URL are both set/);

    const badUrl = await runFailingServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_URL: "https://models.example/p" });
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /COGMENT_MODEL_REGISTRY_ARCHIVE_URL="https:\/\/models.example\/p" is invalid: not of the form s3:\/\/bucket\[\/prefix\]; expected s3:\/\/bucket or s3:\/\/bucket\/prefix/);
  });

  test("the store going away: archive calls fail with UNAVAILABLE naming the bucket; the server stays up", async () => {
    const env = s3Env(s3, "outage/");
    await withServer(env, async (client, server) => {
      await client.createModel("m");
      await client.publish("m", Buffer.from("archived"), { archived: true });
      await s3.close();
      const failure = await client.publish("m", Buffer.from("more"), { archived: true }).then(
        () => assert.fail("expected UNAVAILABLE"),
        (error: { code: number; details: string }) => error,
      );
      assert.equal(failure.code, status.UNAVAILABLE);
      assert.match(failure.details, /^archive bucket "models": writing outage\/m\/m-v000002\.data failed: .*ECONNREFUSED/);
      // Transient versions and what is in memory keep working.
      const transient = await client.publish("m", Buffer.from("transient"));
      assert.equal(transient.version_number, 2);
      assert.ok((await client.retrieveData("m", 2)).equals(Buffer.from("transient")));
      assert.equal(server.child.exitCode, null);
    });
  });
});

async function copyOf(dir: string): Promise<string> {
  const target = path.join(await tempDir(), "archive");
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const file = path.join(entry.parentPath, entry.name);
      const out = path.join(target, path.relative(dir, file));
      await mkdir(path.dirname(out), { recursive: true });
      await writeFile(out, await readFile(file));
    }
  }
  return target;
}
