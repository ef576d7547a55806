import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type TestContext, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type CoreConfig, openCore } from "../../src/core.js";
import { CreateVersionRequestChunkSchema } from "../../src/gen/cogment/api/model_registry_pb.js";
import { createLogger } from "../../src/logger.js";
import { disabledServerMetrics } from "../../src/metrics/disabled-metrics.js";
import { parseRedisUrl } from "../../src/redis/redis-url.js";
import type { Registry, VersionRecord } from "../../src/registry/index.js";
import { CreateVersionUpload } from "../../src/rpc/create-version-call.js";
import { NO_UPLOAD_LIMITS } from "../../src/rpc/upload-watchdog.js";
import { onCleanup } from "../support/cleanup.js";
import { startRedisServer } from "../support/redis-server.js";

// A body message's buffer is freed (detached: src/rpc/release-received-bytes.ts) once the upload
// copied its bytes, also when the upload's append waits for something: a streamed archived upload
// (the disk) and a transient upload of an instance sharing a Redis (the chunk writes). Before, only
// uploads whose append returned nothing freed them; the others left each buffer to a garbage
// collection (what release-received-bytes.ts explains for single mode).

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK_BYTES = 256 * KiB;

/** The core of a registry on a temporary archive (and on `redisUrl` when given), disposed after the test. */
async function openTestCore(t: TestContext, redisUrl?: string): Promise<Registry> {
  const archiveDir = await mkdtemp(path.join(tmpdir(), "mr-released-"));
  const config: CoreConfig = {
    archiveDir,
    archiveS3: undefined,
    archiveS3ForcePathStyle: false,
    archiveS3TimeoutMs: 30_000,
    // Small: an archived upload of a few MiB is streamed to disk, not held in memory.
    cacheMaxBytes: 2 * MiB,
    cacheExpirationMs: 0,
    cachePruneCount: 5,
    sentChunkSize: MiB,
    ...(redisUrl === undefined ? {} : { redis: parseRedisUrl(redisUrl) }),
  };
  const core = await openCore(config, createLogger("silent"), { sha256: "node-crypto", timeArchiveWrites: disabledServerMetrics().timeArchiveWrites });
  // Through onCleanup: disposed before the Redis the test started first is stopped.
  onCleanup(t, async () => {
    await core[Symbol.asyncDispose]();
    await rm(archiveDir, { recursive: true, force: true });
  });
  return core.registry;
}

/** `count` body chunks, each the only view of an ArrayBuffer of its own (as grpc-js reassembles a message), with distinct bytes. */
function ownBufferChunks(count: number, seed: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => {
    const chunk = new Uint8Array(new ArrayBuffer(CHUNK_BYTES));
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + index * 7 + seed) % 251;
    return chunk;
  });
}

/** Uploads `chunks` through CreateVersionUpload, as both gRPC paths feed it; resolves to the stored version. */
async function upload(registry: Registry, modelId: string, chunks: readonly Uint8Array[], archived: boolean): Promise<VersionRecord> {
  let paused = false;
  const source = { pause: () => (paused = true), resume: () => (paused = false), isPaused: () => paused };
  const answered = new Promise<Buffer>((resolve, reject) => {
    const call = new CreateVersionUpload(registry, source, (error, reply) => (error ? reject(error) : resolve(reply as Buffer)), NO_UPLOAD_LIMITS);
    const dataSize = chunks.reduce((total, chunk) => total + chunk.byteLength, 0);
    call.received(
      create(CreateVersionRequestChunkSchema, {
        msg: { case: "header", value: { versionInfo: { modelId, archived, dataSize: BigInt(dataSize), dataHash: "" } } },
      }),
    );
    for (const chunk of chunks) {
      call.received(create(CreateVersionRequestChunkSchema, { msg: { case: "body", value: { dataChunk: chunk } } }));
    }
    call.end();
  });
  await answered;
  const { versions } = await registry.listVersions(modelId, [], 100, "");
  return versions.at(-1) as VersionRecord;
}

function sha256Of(chunks: readonly Uint8Array[]): string {
  const hash = createHash("sha256");
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest("base64");
}

test("an archived upload streamed to disk frees every body message's buffer once its bytes are written", async (t) => {
  const registry = await openTestCore(t);
  await registry.createOrUpdateModel({ modelId: "m", userData: {} });
  const chunks = ownBufferChunks(16, 1); // 4 MiB: above the 2 MiB budget, so streamed to disk
  const expected = sha256Of(chunks);
  const version = await upload(registry, "m", chunks, true);
  assert.deepEqual(
    chunks.map((chunk) => (chunk.buffer as ArrayBuffer & { detached: boolean }).detached),
    chunks.map(() => true),
  );
  // The bytes were copied before their buffers went: the stored data is the upload's.
  assert.deepEqual([version.versionNumber, version.archived, version.dataSize, version.dataHash], [1, true, 16 * CHUNK_BYTES, expected]);
});

test("a transient upload of an instance sharing a Redis frees every body message's buffer once its bytes are stored", async (t) => {
  const redis = await startRedisServer(t);
  const registry = await openTestCore(t, redis.url);
  await registry.createOrUpdateModel({ modelId: "shared", userData: {} });
  const chunks = ownBufferChunks(6, 2); // 1.5 MiB: held in memory and written to Redis in chunks
  const expected = sha256Of(chunks);
  const version = await upload(registry, "shared", chunks, false);
  assert.deepEqual(
    chunks.map((chunk) => (chunk.buffer as ArrayBuffer & { detached: boolean }).detached),
    chunks.map(() => true),
  );
  assert.deepEqual([version.versionNumber, version.archived, version.dataSize, version.dataHash], [1, false, 6 * CHUNK_BYTES, expected]);
  // And what went to Redis is the upload's bytes: a second instance reads it through Redis (hash-checked).
  const other = await openTestCore(t, redis.url);
  const read = await other.openVersionData("shared", 1);
  t.after(() => read.release(false));
  let framed = 0;
  for await (const frame of read.frames) framed += frame.byteLength;
  assert.ok(framed > version.dataSize, `the second instance served ${framed} framed bytes for ${version.dataSize} of data`);
});
