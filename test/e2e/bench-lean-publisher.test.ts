import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { GrpcStatusError } from "../../bench/load/grpc-call-status.js";
import { Http2Publisher, STAMP_BYTES, decodeCreateVersionReply, encodeCreateVersion } from "../../bench/load/http2-publisher.js";
import { type TestServer, startTestServer } from "../support/test-server.js";

const MiB = 1024 * 1024;

function stamp(sequence: number): Buffer {
  const bytes = Buffer.alloc(STAMP_BYTES);
  bytes.writeUInt32LE(sequence, 0);
  bytes.writeUInt32LE(0xc0ffee, 12);
  return bytes;
}

describe("bench: the lean node:http2 publisher (http2-publisher.ts)", () => {
  let server: TestServer;
  const publishers: Http2Publisher[] = [];

  before(async () => {
    server = await startTestServer();
    await server.client.createModel("lean");
  });

  after(async () => {
    for (const publisher of publishers) {
      publisher.close();
    }
    await server?.close();
  });

  function publisher(versionBytes: number, chunkBytes: number, archived = false, modelId = "lean"): Http2Publisher {
    const made = new Http2Publisher(server.address, modelId, versionBytes, { chunkBytes, archived, timeoutMs: 30_000 });
    publishers.push(made);
    return made;
  }

  test("uploads distinct versions the server accepts, with the exact bytes, size and hash", async () => {
    const lean = publisher(MiB, MiB);
    const first = await lean.publish(stamp(1));
    const firstData = lean.data();
    const second = await lean.publish(stamp(2));
    const secondData = lean.data();
    assert.deepEqual(first, { versionNumber: 1, dataSize: MiB });
    assert.deepEqual(second, { versionNumber: 2, dataSize: MiB });
    assert.deepEqual(firstData.subarray(0, STAMP_BYTES), stamp(1));
    assert.deepEqual(secondData.subarray(0, STAMP_BYTES), stamp(2));
    assert.deepEqual(firstData.subarray(STAMP_BYTES), secondData.subarray(STAMP_BYTES), "only the stamp differs");

    assert.deepEqual(await server.client.retrieveData("lean", 1), firstData);
    assert.deepEqual(await server.client.retrieveData("lean", 2), secondData);
    const { version_infos: infos } = await server.client.retrieveVersionInfos({ model_id: "lean", version_numbers: [1, 2] });
    assert.deepEqual(
      infos.map((info) => [info.version_number, info.archived, Number(info.data_size), info.data_hash]),
      [
        [1, false, MiB, createHash("sha256").update(firstData).digest("base64")],
        [2, false, MiB, createHash("sha256").update(secondData).digest("base64")],
      ],
    );
  });

  test("several body messages (a last one shorter), archived", async () => {
    await server.client.createModel("lean-chunks");
    const versionBytes = 2 * MiB + 1000;
    const lean = publisher(versionBytes, MiB, true, "lean-chunks");
    assert.deepEqual(await lean.publish(stamp(7)), { versionNumber: 1, dataSize: versionBytes });
    const data = lean.data();
    assert.equal(data.byteLength, versionBytes);
    assert.deepEqual(await server.client.retrieveData("lean-chunks", 1), data);
    const { version_infos: infos } = await server.client.retrieveVersionInfos({ model_id: "lean-chunks", version_numbers: [1] });
    assert.equal(infos[0]?.archived, true);
  });

  test("a gRPC error status is reported with its code and message", async () => {
    const lean = publisher(1024, 1024, false, "no-such-model");
    await assert.rejects(lean.publish(stamp(1)), (error: unknown) => {
      assert.ok(error instanceof GrpcStatusError);
      assert.equal(error.code, 5);
      assert.match(error.message, /^gRPC status 5: .*no-such-model/);
      return true;
    });
  });

  test("the encoded request and a reply decode as the proto says", () => {
    const { request, dataOffset } = encodeCreateVersion("m", 3, { chunkBytes: 2, archived: false });
    // header: frame(5) + [0a len [0a len [0a 01 'm' 31 <8 bytes>]]]; bodies: frame(5) + [12 len [0a len data]]
    const info = Buffer.from([0x0a, 0x01, 0x6d, 0x31, 3, 0, 0, 0, 0, 0, 0, 0]);
    const header = Buffer.concat([Buffer.from([0x0a, info.byteLength + 2, 0x0a, info.byteLength]), info]);
    assert.deepEqual(request.subarray(0, 5 + header.byteLength), Buffer.concat([Buffer.from([0, 0, 0, 0, header.byteLength]), header]));
    const bodies = request.subarray(5 + header.byteLength);
    assert.deepEqual([...bodies.subarray(0, 9)], [0, 0, 0, 0, 6, 0x12, 4, 0x0a, 2]);
    assert.equal(dataOffset, 5 + header.byteLength + 9);
    assert.deepEqual([...bodies.subarray(11, 20)], [0, 0, 0, 0, 5, 0x12, 3, 0x0a, 1]);
    assert.equal(bodies.byteLength, 11 + 10);

    const reply = Buffer.from([0x0a, 0x0b, 0x10, 0x07, 0x31, 3, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeCreateVersionReply(Buffer.concat([Buffer.from([0, 0, 0, 0, reply.byteLength]), reply])), { versionNumber: 7, dataSize: 3 });
    assert.throws(() => decodeCreateVersionReply(Buffer.from([0, 0, 0, 0, 2, 0x0a, 0x00])), /^Error: CreateVersionReply: version_number undefined$/);
    assert.throws(() => decodeCreateVersionReply(Buffer.from([0, 0, 0, 0, 3, 0x0a])), /^Error: CreateVersionReply: message of 3 bytes in 1$/);
  });
});
