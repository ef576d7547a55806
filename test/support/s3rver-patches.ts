/*
 * Test-time fixes to @20minutes/s3rver 5.0.0, the S3-protocol server the tests run. Each one makes it
 * behave as S3 does for a request the S3 archive backend sends; test/e2e/s3-test-server.test.ts proves
 * every fixed behaviour with the official AWS SDK. Written here, not copied from anywhere.
 *
 * As published, s3rver 5.0.0:
 *  1. has no AbortMultipartUpload (DELETE ?uploadId= is "MethodNotAllowed");
 *  2. ignores `If-None-Match: *` on PutObject, CopyObject and CompleteMultipartUpload (it overwrites),
 *     and `If-Match` on them and on DeleteObject (it writes or deletes whatever the object's ETag);
 *  3. writes an object in place: a cut PUT leaves a truncated object that is listed and read; and
 *     resolves a PUT with a Buffer body before the bytes are on disk;
 *  4. rejects `x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER` (aws-chunked bodies with a
 *     trailing checksum, which the SDK sends for a stream body of unknown hash) and would store the
 *     framing if it accepted them;
 *  5. encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 refuses unless Node runs
 *     with --openssl-legacy-provider (the launcher passes that flag; nothing to patch here);
 *  6. computes the signature of a bucket request (ListObjectsV2) over `/bucket` where the SDK signs
 *     `/bucket/`: the test server runs with allowMismatchedSignatures (the access key is still checked).
 * Limits that stay, so no test relies on them: with a delimiter, common prefixes do not count against
 * max-keys (a delimiter listing is one page however many prefixes); no ListMultipartUploads; no
 * validation of body checksums or Content-MD5; no faults of its own (no 503 SlowDown, no 5xx): the
 * fault tests stop the server instead; `If-None-Match` is honoured only as `*` on writes; `If-Match`
 * on a write or a DeleteObject holds one ETag or `*` (no lists); a conditional request to one key
 * waits for the one before it (AWS answers such a race 409 ConditionalRequestConflict instead), and
 * an unconditional write is not ordered with them; the lock holds within this one process only
 * (which is all the tests run). ETags are compared without their quotes.
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";

const require = createRequire(import.meta.url);

/** The parts of a Koa context the patches use. */
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  req: IncomingMessage;
  request: { body?: unknown };
  header: Record<string, string | string[] | undefined>;
  set(name: string, value: string): void;
  get(name: string): string;
}
type Next = () => Promise<void>;
type Middleware = (ctx: KoaContext, next: Next) => Promise<void>;

interface FilesystemStoreLike {
  rootDirectory: string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  existsObject(bucket: string, key: string): Promise<boolean>;
  /** Rejects (ENOENT) when the object does not exist; `etag` is quoted. */
  getMetadata(bucket: string, key: string): Promise<{ etag: string }>;
}

export interface S3rverLike {
  middleware: Middleware[];
  store: FilesystemStoreLike;
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

type S3rverConstructor = new (options: Record<string, unknown>) => S3rverLike;

function xmlError(ctx: KoaContext, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.set("Content-Type", "application/xml");
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
}

/** `/bucket/key...` of a path-style request; undefined for a bucket or service request. */
function bucketAndKey(requestPath: string): { bucket: string; key: string } | undefined {
  const match = /^\/([^/]+)\/(.+)$/s.exec(requestPath);
  if (match === null) {
    return undefined;
  }
  return { bucket: decodeURIComponent(match[1] ?? ""), key: decodeURIComponent(match[2] ?? "") };
}

const header = (ctx: KoaContext, name: string): string | undefined => {
  const value = ctx.headers[name];
  return Array.isArray(value) ? value[0] : value;
};

/** Patch 1: AbortMultipartUpload removes the upload's parts; NoSuchUpload if there is none. */
function abortMultipartUpload(store: FilesystemStoreLike): Middleware {
  return async (ctx, next) => {
    const target = bucketAndKey(ctx.path);
    const uploadId = ctx.query.uploadId;
    if (ctx.method !== "DELETE" || target === undefined || typeof uploadId !== "string") {
      return next();
    }
    if (!/^[0-9a-f]+$/.test(uploadId)) {
      return xmlError(ctx, 404, "NoSuchUpload", "The specified upload does not exist.");
    }
    const uploadDir = path.join(store.getResourcePath(target.bucket, undefined, "uploads"), uploadId);
    try {
      await rm(uploadDir, { recursive: true });
    } catch {
      return xmlError(ctx, 404, "NoSuchUpload", "The specified upload does not exist.");
    }
    ctx.status = 204;
    ctx.body = "";
  };
}

/** The object's ETag without its quotes, undefined when there is no such object. */
async function currentETag(store: FilesystemStoreLike, bucket: string, key: string): Promise<string | undefined> {
  try {
    return (await store.getMetadata(bucket, key)).etag.replaceAll('"', "");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return undefined;
    }
    throw error;
  }
}

/**
 * Patch 2, as AWS S3 answers them: on a PUT (PutObject, CopyObject) or a CompleteMultipartUpload,
 * `If-None-Match: *` fails with 412 if the key exists; `If-Match: <etag>` fails with 404 NoSuchKey if
 * it does not and with 412 if its ETag is another. On a DeleteObject, `If-Match` fails with 412 if
 * the ETag is another, and a missing object is 204 as without it. Conditional requests to one key
 * are serialised in this process, so check-then-write cannot race.
 */
function conditionalWrites(store: FilesystemStoreLike): Middleware {
  const tails = new Map<string, Promise<void>>();
  return async (ctx, next) => {
    const target = bucketAndKey(ctx.path);
    const isWrite = (ctx.method === "PUT" && ctx.query.uploadId === undefined) || (ctx.method === "POST" && typeof ctx.query.uploadId === "string");
    const isDelete = ctx.method === "DELETE" && ctx.query.uploadId === undefined;
    const ifNoneMatch = header(ctx, "if-none-match");
    const ifMatch = header(ctx, "if-match")?.replaceAll('"', "");
    const conditional = (isWrite && (ifNoneMatch === "*" || ifMatch !== undefined)) || (isDelete && ifMatch !== undefined);
    if (target === undefined || !conditional) {
      return next();
    }
    const lockKey = `${target.bucket}/${target.key}`;
    const previous = tails.get(lockKey) ?? Promise.resolve();
    let release = (): void => {};
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    tails.set(lockKey, tail);
    await previous;
    try {
      const etag = await currentETag(store, target.bucket, target.key);
      if (isWrite && ifNoneMatch === "*" && etag !== undefined) {
        return xmlError(ctx, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
      }
      if (ifMatch !== undefined && etag === undefined && isWrite) {
        return xmlError(ctx, 404, "NoSuchKey", "The specified key does not exist.");
      }
      if (ifMatch !== undefined && etag !== undefined && ifMatch !== "*" && ifMatch !== etag) {
        return xmlError(ctx, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
      }
      await next();
    } finally {
      release();
      if (tails.get(lockKey) === tail) {
        tails.delete(lockKey);
      }
    }
  };
}

/** Patch 3: an object's content goes to a temporary file renamed into place once complete. */
function atomicObjectContent(storeClass: { prototype: object }): void {
  Object.defineProperty(storeClass.prototype, "putContent", {
    configurable: true,
    writable: true,
    value: async function putContent(objectPath: string, content: Buffer | Readable): Promise<[number, string]> {
      const md5 = createHash("md5");
      const tempPath = `${objectPath}.tmp-${randomBytes(8).toString("hex")}`;
      let size = 0;
      const source = Buffer.isBuffer(content) ? Readable.from([content]) : content;
      try {
        await pipeline(
          source,
          new Transform({
            transform(chunk: Buffer, _encoding, callback: TransformCallback) {
              md5.update(chunk);
              size += chunk.length;
              callback(null, chunk);
            },
          }),
          createWriteStream(tempPath),
        );
        await rename(tempPath, objectPath);
      } catch (error) {
        await rm(tempPath, { force: true });
        throw error;
      }
      return [size, md5.digest("hex")];
    },
  });
}

/**
 * Patch 4: decodes `aws-chunked` bodies whose chunks carry no signature and end with trailing headers
 * (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`): `<hex size>\r\n<bytes>\r\n` ... `0\r\n<trailers>\r\n\r\n`.
 */
class UnsignedChunkDecoder extends Transform {
  private buffered: Buffer = Buffer.alloc(0);
  private remaining = -1; // bytes left in the current chunk; -1 while reading a size line
  private done = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    try {
      this.drain();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    callback(this.done ? null : new Error("aws-chunked body ended before its last chunk"));
  }

  private drain(): void {
    while (!this.done) {
      if (this.remaining < 0) {
        const lineEnd = this.buffered.indexOf("\r\n");
        if (lineEnd < 0) {
          return;
        }
        const sizeText = this.buffered.subarray(0, lineEnd).toString("latin1").split(";")[0] ?? "";
        const size = Number.parseInt(sizeText, 16);
        if (!Number.isSafeInteger(size) || size < 0) {
          throw new Error(`bad aws-chunked size line ${JSON.stringify(sizeText)}`);
        }
        this.buffered = this.buffered.subarray(lineEnd + 2);
        if (size === 0) {
          this.done = true; // the trailers that follow are not needed
          return;
        }
        this.remaining = size;
      }
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, this.buffered.length);
        if (take === 0) {
          return;
        }
        this.push(this.buffered.subarray(0, take));
        this.buffered = this.buffered.subarray(take);
        this.remaining -= take;
      }
      if (this.remaining === 0) {
        if (this.buffered.length < 2) {
          return;
        }
        this.buffered = this.buffered.subarray(2);
        this.remaining = -1;
      }
    }
  }
}

function unsignedTrailerBodies(v4: { aws4SignatureBodyParser: (ctx: KoaContext) => void; parseHeader: (headers: Record<string, unknown>) => unknown }): void {
  const TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  const originalBodyParser = v4.aws4SignatureBodyParser;
  const originalParseHeader = v4.parseHeader;
  v4.parseHeader = (headers) =>
    // The signature covers the literal header value, so only the format check needs to let it through.
    headers["x-amz-content-sha256"] === TRAILER ? withContentSha(headers, originalParseHeader) : originalParseHeader(headers);
  v4.aws4SignatureBodyParser = (ctx) => {
    if (ctx.header["x-amz-content-sha256"] === TRAILER) {
      ctx.request.body = ctx.req.pipe(new UnsignedChunkDecoder());
      return;
    }
    originalBodyParser(ctx);
  };
}

function withContentSha(headers: Record<string, unknown>, parse: (headers: Record<string, unknown>) => unknown): unknown {
  return parse({ ...headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" });
}

/**
 * Loads s3rver with every patch applied. Must run before anything else requires s3rver, because its
 * controllers copy `aws4SignatureBodyParser` out of the signature module when they load.
 */
export function loadPatchedS3rver(): { create(options: Record<string, unknown>): S3rverLike } {
  const v4 = require("@20minutes/s3rver/lib/signature/v4.js") as Parameters<typeof unsignedTrailerBodies>[0];
  unsignedTrailerBodies(v4);
  const storeClass = require("@20minutes/s3rver/lib/stores/filesystem.js") as { prototype: object };
  atomicObjectContent(storeClass);
  const S3rver = require("@20minutes/s3rver") as S3rverConstructor;
  return {
    create(options) {
      const server = new S3rver(options);
      // Before the router, which is the last middleware s3rver installs.
      const routerIndex = server.middleware.length - 1;
      server.middleware.splice(routerIndex, 0, abortMultipartUpload(server.store), conditionalWrites(server.store));
      return server;
    },
  };
}
