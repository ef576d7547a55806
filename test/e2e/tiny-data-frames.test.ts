/**
 * Requests whose DATA comes in tiny HTTP/2 frames (data-chunk-guard.ts, grpc-frame-reader.ts): each
 * frame's piece costs node:http2, grpc-js and our reader ~120 bytes besides its data, so a message
 * in 1-byte frames made the server hold ~126 bytes per byte (2 MiB: 264 MB) whichever path served
 * it. A stream whose pieces average under 64 bytes past the first 4096 is now reset with
 * ENHANCE_YOUR_CALM; a message spread over frames of any size is held in one buffer and decodes
 * byte for byte.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { constants } from "node:http2";
import { describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { exposeGc } from "../../src/expose-gc.js";
import { CreateVersionRequestChunkSchema } from "../../src/gen/cogment/api/model_registry_pb.js";
import { createLogger } from "../../src/logger.js";
import { FREE_DATA_CHUNKS, MIN_AVERAGE_DATA_BYTES } from "../../src/rpc/data-chunk-guard.js";
import { CREATE_VERSION_PATH } from "../../src/rpc/create-version-stream.js";
import { RawHttp2Client } from "../support/raw-http2-client.js";
import { jsonLogSink } from "../support/log-capture.js";
import { type TestServer, startTestServer } from "../support/test-server.js";

const SERVICE = "/cogmentAPI.ModelRegistrySP";
const ENHANCE_YOUR_CALM = constants.NGHTTP2_ENHANCE_YOUR_CALM;
const gc = exposeGc();

function grpcFrame(message: Uint8Array): Buffer {
  const framed = Buffer.alloc(5 + message.byteLength);
  framed.writeUInt32BE(message.byteLength, 1);
  framed.set(message, 5);
  return framed;
}

async function startLoggedServer(): Promise<{ server: TestServer; logLines: Record<string, unknown>[] }> {
  const logLines: Record<string, unknown>[] = [];
  const sink = jsonLogSink(logLines);
  return { server: await startTestServer({}, {}, createLogger("warn", sink)), logLines };
}

function heldMemory(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

function tinyChunkResets(logLines: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return logLines
    .filter((line) => typeof line.msg === "string" && line.msg.startsWith("request stream reset (ENHANCE_YOUR_CALM)"))
    .map(({ dataChunks, dataBytes, minAverageBytes }) => ({ dataChunks, dataBytes, minAverageBytes }));
}

describe("a request in 1-byte DATA frames is cut off, on both paths", () => {
  for (const method of ["CreateVersion", "CreateOrUpdateModel"] as const) {
    test(`${method}: a 2 MiB message announced, then 1-byte frames: reset after ${FREE_DATA_CHUNKS + 1} pieces; the server's memory stays put`, async (t) => {
      const { server, logLines } = await startLoggedServer();
      t.after(() => server.close());
      const client = await RawHttp2Client.connect(server.server.port);
      t.after(() => client.close());
      const messageBytes = 2 * 1024 * 1024;
      const before = heldMemory();
      const id = client.open(`${SERVICE}/${method}`);
      const message = Buffer.alloc(5 + messageBytes, 0x42);
      message.writeUInt32BE(messageBytes, 1);
      message[0] = 0;
      const sent = await client.send(id, message, 1, false);
      await client.until(() => client.stream(id).resetCode !== undefined);
      assert.equal(client.stream(id).resetCode, ENHANCE_YOUR_CALM);
      assert.ok(sent < messageBytes, `all ${sent} bytes went through`);
      // One byte a piece (a 1-byte frame cannot be cut between two socket reads): the 4097th goes over.
      assert.deepEqual(tinyChunkResets(logLines), [{ dataChunks: FREE_DATA_CHUNKS + 1, dataBytes: FREE_DATA_CHUNKS + 1, minAverageBytes: MIN_AVERAGE_DATA_BYTES }]);
      const grown = heldMemory() - before;
      // Before the guard: 264 MB for these 2 MiB. Now what the client could send before its reset.
      assert.ok(grown < 16 * 1024 * 1024, `the server holds ${grown} more bytes`);
      assert.equal(client.goawayCodes.length, 0);
      assert.equal(server.server.fastPathCalls(CREATE_VERSION_PATH), method === "CreateVersion" ? 1 : 0);
      // The connection and the server carry on.
      await server.client.createModel("after");
      const stored = await server.client.publish("after", Buffer.from("still serving"));
      assert.equal(stored.version_number, 1);
    });
  }
});

/** A CreateVersion request of `data` for `modelId`, in messages of `messageBytes`. */
function createVersionRequest(modelId: string, data: Buffer, messageBytes: number): Buffer {
  const messages = [
    create(CreateVersionRequestChunkSchema, { msg: { case: "header", value: { versionInfo: { modelId, dataSize: BigInt(data.byteLength) } } } }),
  ];
  for (let at = 0; at < data.byteLength; at += messageBytes) {
    messages.push(create(CreateVersionRequestChunkSchema, { msg: { case: "body", value: { dataChunk: data.subarray(at, at + messageBytes) } } }));
  }
  return Buffer.concat(messages.map((message) => grpcFrame(toBinary(CreateVersionRequestChunkSchema, message))));
}

/** CreateVersion below grpc-js (create-version-stream.ts), and through it: grpc-js takes a call with two deadlines. */
const PATHS = [
  { name: "below grpc-js", headers: [], fastPathCalls: 1 },
  {
    name: "through grpc-js",
    headers: [
      ["grpc-timeout", "60S"],
      ["grpc-timeout", "60S"],
    ],
    fastPathCalls: 0,
  },
] as const;

/*
 * node:http2 gives a frame cut between two socket reads as two pieces, so the count of pieces is
 * the count of frames plus at most one per socket read: the cases below stay clear of the limit.
 */
describe("an average well above the limit is served, one well under it is not", () => {
  const data = randomBytes(600_000);
  const request = createVersionRequest("framed", data, 64 * 1024);
  for (const path of PATHS) {
    test(`CreateVersion ${path.name}, ${request.byteLength} bytes in frames of ${2 * MIN_AVERAGE_DATA_BYTES} bytes: stored`, async (t) => {
      const { server, logLines } = await startLoggedServer();
      t.after(() => server.close());
      await server.client.createModel("framed");
      const client = await RawHttp2Client.connect(server.server.port);
      t.after(() => client.close());
      const id = client.open(`${SERVICE}/CreateVersion`, path.headers);
      assert.equal(await client.send(id, request, 2 * MIN_AVERAGE_DATA_BYTES, true), request.byteLength);
      await client.until(() => client.stream(id).ended || client.stream(id).resetCode !== undefined);
      assert.equal(client.stream(id).resetCode, undefined);
      assert.equal(client.stream(id).headerFrames, 2); // the response's headers, its trailers
      assert.deepEqual(await server.client.retrieveData("framed", 1), data);
      assert.equal(server.server.fastPathCalls(CREATE_VERSION_PATH), path.fastPathCalls);
      assert.deepEqual(tinyChunkResets(logLines), []);
    });

    test(`CreateVersion ${path.name}, the same in frames of ${MIN_AVERAGE_DATA_BYTES / 2} bytes: reset at piece ${FREE_DATA_CHUNKS + 1}, nothing stored`, async (t) => {
      const { server, logLines } = await startLoggedServer();
      t.after(() => server.close());
      await server.client.createModel("framed");
      const client = await RawHttp2Client.connect(server.server.port);
      t.after(() => client.close());
      const id = client.open(`${SERVICE}/CreateVersion`, path.headers);
      const frameBytes = MIN_AVERAGE_DATA_BYTES / 2;
      await client.send(id, request, frameBytes, true);
      await client.until(() => client.stream(id).resetCode !== undefined);
      assert.equal(client.stream(id).resetCode, ENHANCE_YOUR_CALM);
      assert.equal(client.stream(id).headerFrames, 0);
      const [reset, ...others] = tinyChunkResets(logLines);
      assert.deepEqual(others, []);
      assert.equal(reset?.dataChunks, FREE_DATA_CHUNKS + 1);
      // 4097 pieces: frames of 32 bytes, but for the few that arrived cut in two.
      const bytes = reset?.dataBytes as number;
      assert.ok(bytes <= (FREE_DATA_CHUNKS + 1) * frameBytes && bytes > (FREE_DATA_CHUNKS + 1 - 64) * frameBytes, `${bytes} bytes`);
      const { version_infos } = await server.client.retrieveVersionInfos({ model_id: "framed" });
      assert.deepEqual(version_infos, []);
      assert.equal(server.server.fastPathCalls(CREATE_VERSION_PATH), path.fastPathCalls);
    });
  }
});

describe("CreateVersion below grpc-js: the same version whatever the framing", () => {
  test("1 MiB + 3 bytes in 100 KiB messages, sent in DATA frames of 64 to 16 384 bytes at random: stored byte for byte", async (t) => {
    const { server, logLines } = await startLoggedServer();
    t.after(() => server.close());
    await server.client.createModel("framing");
    const data = randomBytes(1024 * 1024 + 3);
    const request = createVersionRequest("framing", data, 100 * 1024);
    const client = await RawHttp2Client.connect(server.server.port);
    t.after(() => client.close());
    for (const seed of [1, 2, 3]) {
      const id = client.open(`${SERVICE}/CreateVersion`);
      // Pieces of 64 to 16 384 bytes: the cuts fall anywhere in the prefixes and messages.
      let state = seed;
      for (let at = 0; at < request.byteLength; ) {
        state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
        const length = Math.min(64 + (state % (16_384 - 63)), request.byteLength - at);
        await client.send(id, request.subarray(at, at + length), length, at + length === request.byteLength);
        at += length;
      }
      await client.until(() => client.stream(id).ended || client.stream(id).resetCode !== undefined);
      assert.equal(client.stream(id).resetCode, undefined);
      assert.equal(client.stream(id).ended, true);
      assert.deepEqual(await server.client.retrieveData("framing", seed), data);
    }
    assert.equal(server.server.fastPathCalls(CREATE_VERSION_PATH), 3);
    assert.deepEqual(tinyChunkResets(logLines), []);
  });
});
