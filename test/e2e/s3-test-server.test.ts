/*
 * Proves, with the official AWS SDK, each behaviour of the S3 test server (s3rver 5.0.0 + the fixes of
 * test/support/s3rver-patches.ts) that the S3 archive backend and its tests rely on. If one of these
 * fails, the backend's S3 tests prove nothing.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { killAllS3TestServers, type S3TestServer, startS3TestServer } from "../support/s3-test-server.js";

const BUCKET = "proof";
const MiB = 1024 * 1024;

async function body(client: S3Client, key: string, range?: string): Promise<Buffer> {
  const reply = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: range }));
  return Buffer.from(await (reply.Body as NonNullable<typeof reply.Body>).transformToByteArray());
}

async function keys(client: S3Client, prefix: string): Promise<string[]> {
  const reply = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (reply.Contents ?? []).map((object) => object.Key ?? "");
}

async function s3Failure(promise: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof S3ServiceException, `expected an S3 error, got ${String(error)}`);
    return { name: error.name, status: error.$metadata.httpStatusCode };
  }
  assert.fail("expected the request to fail");
}

describe("S3 test server, checked with the official AWS SDK", () => {
  let server: S3TestServer;
  let client: S3Client;
  before(async () => {
    server = await startS3TestServer([BUCKET]);
    client = server.client({ maxAttempts: 1 });
  });
  after(async () => {
    client.destroy();
    await server.close();
    killAllS3TestServers();
  });

  it("stores a Buffer body and a stream body (aws-chunked with a checksum trailer) byte for byte", async () => {
    const data = randomBytes(300_000);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "bodies/buffer", Body: data }));
    assert.deepEqual(await body(client, "bodies/buffer"), data);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "bodies/stream", Body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), ContentLength: data.length }));
    assert.deepEqual(await body(client, "bodies/stream"), data);
  });

  it("assembles a lib-storage multipart upload and serves ranged reads of it", async () => {
    const data = randomBytes(12 * MiB + 123);
    const upload = new Upload({ client, params: { Bucket: BUCKET, Key: "multi/object", Body: Readable.from([data]) }, partSize: 5 * MiB, queueSize: 2 });
    await upload.done();
    assert.deepEqual(await body(client, "multi/object"), data);
    assert.deepEqual(await body(client, "multi/object", "bytes=5242870-5242889"), data.subarray(5242870, 5242890));
    const reply = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "multi/object", Range: `bytes=${data.length - 10}-` }));
    assert.equal(reply.ContentRange, `bytes ${data.length - 10}-${data.length - 1}/${data.length}`);
    assert.equal(reply.ContentLength, 10);
    await reply.Body?.transformToByteArray();
  });

  it("aborts a multipart upload: nothing listed, the upload is gone", async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "aborted/object" }));
    await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "aborted/object", UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }));
    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: "aborted/object", UploadId }));
    assert.deepEqual(await keys(client, "aborted/"), []);
    assert.deepEqual(await s3Failure(client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: "aborted/object", UploadId }))), { name: "NoSuchUpload", status: 404 });
    const completing = client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: "aborted/object", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: "x" }] } }));
    assert.equal((await s3Failure(completing)).status !== 200, true);
    assert.deepEqual(await keys(client, "aborted/"), []);
  });

  it("pages ListObjectsV2 with continuation tokens", async () => {
    const names = ["a", "b", "c", "d", "e"].map((name) => `paged/${name}`);
    await Promise.all(names.map((Key) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: Key }))));
    const pages: string[][] = [];
    let token: string | undefined;
    do {
      const reply = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "paged/", MaxKeys: 2, ContinuationToken: token }));
      pages.push((reply.Contents ?? []).map((object) => object.Key ?? ""));
      token = reply.IsTruncated === true ? reply.NextContinuationToken : undefined;
    } while (token !== undefined);
    assert.deepEqual(pages, [["paged/a", "paged/b"], ["paged/c", "paged/d"], ["paged/e"]]);
  });

  it("lists the common prefixes of a delimiter listing", async () => {
    await Promise.all(["tree/m1/x", "tree/m1/y", "tree/m2/x", "tree/top"].map((Key) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: "" }))));
    const reply = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "tree/", Delimiter: "/" }));
    assert.deepEqual((reply.CommonPrefixes ?? []).map((p) => p.Prefix), ["tree/m1/", "tree/m2/"]);
    assert.deepEqual((reply.Contents ?? []).map((o) => o.Key), ["tree/top"]);
  });

  it("refuses If-None-Match: * writes to an existing key with 412, on PUT and on CompleteMultipartUpload", async () => {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cond/put", Body: "first", IfNoneMatch: "*" }));
    assert.deepEqual(await s3Failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cond/put", Body: "second", IfNoneMatch: "*" }))), { name: "PreconditionFailed", status: 412 });
    assert.equal((await body(client, "cond/put")).toString(), "first");

    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "cond/put" }));
    const { ETag } = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "cond/put", UploadId, PartNumber: 1, Body: "third" }));
    const completing = client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: "cond/put", UploadId, IfNoneMatch: "*", MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] } }));
    assert.deepEqual(await s3Failure(completing), { name: "PreconditionFailed", status: 412 });
    assert.equal((await body(client, "cond/put")).toString(), "first");
  });

  it("writes with If-Match only over the object of that ETag (412 for another, 404 NoSuchKey for none), on PUT, CopyObject and CompleteMultipartUpload", async () => {
    const first = await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "match/put", Body: "first", IfNoneMatch: "*" }));
    assert.match(first.ETag ?? "", /^"[0-9a-f]{32}"$/);
    assert.equal((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "match/put" }))).ETag, first.ETag, "HEAD gives the ETag the PUT returned");
    const second = await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "match/put", Body: "second", IfMatch: first.ETag }));
    assert.equal((await body(client, "match/put")).toString(), "second");
    // The first ETag no longer names the object: refused, the object stays.
    assert.deepEqual(await s3Failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "match/put", Body: "stale", IfMatch: first.ETag }))), { name: "PreconditionFailed", status: 412 });
    assert.deepEqual(await s3Failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "match/none", Body: "x", IfMatch: first.ETag }))), { name: "NoSuchKey", status: 404 });
    assert.deepEqual(await keys(client, "match/none"), []);

    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "match/source", Body: "copied" }));
    const copying = (IfMatch: string | undefined) =>
      client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "match/put", CopySource: `${BUCKET}/match/source`, IfMatch }));
    assert.deepEqual(await s3Failure(copying(first.ETag)), { name: "PreconditionFailed", status: 412 });
    assert.equal((await body(client, "match/put")).toString(), "second");
    const copied = await copying(second.ETag);
    assert.equal((await body(client, "match/put")).toString(), "copied");
    assert.deepEqual(await s3Failure(client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "match/put", CopySource: `${BUCKET}/match/source`, IfNoneMatch: "*" }))), {
      name: "PreconditionFailed",
      status: 412,
    });

    const completing = async (IfMatch: string | undefined) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "match/put" }));
      const { ETag } = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: "match/put", UploadId, PartNumber: 1, Body: "assembled" }));
      return client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: "match/put", UploadId, IfMatch, MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] } }));
    };
    assert.deepEqual(await s3Failure(completing(second.ETag)), { name: "PreconditionFailed", status: 412 });
    assert.equal((await body(client, "match/put")).toString(), "copied");
    await completing(copied.CopyObjectResult?.ETag);
    assert.equal((await body(client, "match/put")).toString(), "assembled");
  });

  it("deletes with If-Match only the object of that ETag (412 for another); a missing object is 204 as without it", async () => {
    const stored = await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "match/delete", Body: "kept" }));
    assert.deepEqual(await s3Failure(client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "match/delete", IfMatch: '"0123456789abcdef0123456789abcdef"' }))), {
      name: "PreconditionFailed",
      status: 412,
    });
    assert.equal((await body(client, "match/delete")).toString(), "kept");
    const deleted = await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "match/delete", IfMatch: stored.ETag }));
    assert.equal(deleted.$metadata.httpStatusCode, 204);
    assert.deepEqual(await keys(client, "match/delete"), []);
    const again = await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "match/delete", IfMatch: stored.ETag }));
    assert.equal(again.$metadata.httpStatusCode, 204);
  });

  it("never lists or serves a PUT cut mid-body", async () => {
    const controller = new AbortController();
    const slowBody = Readable.from(
      (async function* () {
        yield randomBytes(MiB);
        // Time for the first MiB to reach the server, which starts writing the object.
        await new Promise((resolve) => setTimeout(resolve, 500));
        controller.abort();
        yield randomBytes(MiB);
      })(),
    );
    const put = client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cut/object", Body: slowBody, ContentLength: 2 * MiB }), { abortSignal: controller.signal });
    await assert.rejects(put);
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the server see the closed socket
    assert.deepEqual(await keys(client, "cut/"), []);
    assert.equal((await s3Failure(body(client, "cut/object"))).status, 404);
  });
});
