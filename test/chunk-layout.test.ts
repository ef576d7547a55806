import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { RetrieveVersionDataReplyChunkSchema } from "../src/gen/cogment/api/model_registry_pb.js";
import { EncodedVersionData, chunkHeaderLength, planChunkLayout } from "../src/data/index.js";

function pattern(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + 3) % 256;
  return data;
}

describe("chunk layout", () => {
  test("plans chunk counts and total bytes exactly", () => {
    assert.deepEqual(planChunkLayout(0, 10), { dataSize: 0, chunkSize: 10, chunkCount: 1, totalBytes: 0 });
    assert.deepEqual(planChunkLayout(10, 10), { dataSize: 10, chunkSize: 10, chunkCount: 1, totalBytes: 12 });
    assert.deepEqual(planChunkLayout(25, 10), { dataSize: 25, chunkSize: 10, chunkCount: 3, totalBytes: 31 });
    // 2 MiB (2^21) needs a 4-byte varint, so 5 header bytes per full chunk; the 1 MiB tail needs 3 + 1.
    assert.deepEqual(planChunkLayout(5 * 1024 * 1024, 2 * 1024 * 1024), {
      dataSize: 5 * 1024 * 1024,
      chunkSize: 2 * 1024 * 1024,
      chunkCount: 3,
      totalBytes: 5 * 1024 * 1024 + 5 + 5 + 4,
    });
    assert.equal(chunkHeaderLength(0), 0);
    assert.equal(chunkHeaderLength(127), 2);
    assert.equal(chunkHeaderLength(128), 3);
    assert.equal(chunkHeaderLength(16384), 4);
  });

  test("rejects impossible layouts", () => {
    assert.throws(() => planChunkLayout(-1, 10), RangeError);
    assert.throws(() => planChunkLayout(10, 0), RangeError);
    assert.throws(() => planChunkLayout(1.5, 10), RangeError);
  });

  for (const [size, chunk] of [
    [0, 7],
    [1, 1],
    [127, 127],
    [128, 127],
    [1000, 128],
    [70_000, 16_384],
    [300_001, 100_000],
  ] as const) {
    test(`${size} bytes in chunks of ${chunk}: each message decodes as a RetrieveVersionDataReplyChunk`, () => {
      const data = pattern(size);
      const encoded = EncodedVersionData.allocate(size, chunk);
      // Write in odd-sized pieces that straddle chunk boundaries.
      for (let offset = 0; offset < size; offset += 13) {
        encoded.write(offset, data.subarray(offset, offset + 13));
      }
      const messages = encoded.messages();
      assert.equal(messages.length, size === 0 ? 1 : Math.ceil(size / chunk));
      const decoded = messages.map((m) => Buffer.from(fromBinary(RetrieveVersionDataReplyChunkSchema, m).dataChunk));
      assert.ok(decoded.every((d, i) => d.length === (i < decoded.length - 1 ? chunk : size - chunk * (decoded.length - 1))));
      assert.ok(Buffer.concat(decoded).equals(data));
      assert.ok(encoded.toContiguous().equals(data));
      assert.equal(encoded.bytes.byteLength, planChunkLayout(size, chunk).totalBytes);
    });
  }

  test("messages are zero-copy views of one SharedArrayBuffer, the same array for every reader", () => {
    const encoded = EncodedVersionData.allocate(5000, 1000);
    const first = encoded.messages();
    assert.equal(encoded.messages(), first);
    for (const message of first) {
      assert.equal(message.buffer, encoded.shared);
    }
    for (const segment of encoded.dataSegments()) {
      assert.ok(segment.buffer instanceof SharedArrayBuffer);
      assert.equal(segment.buffer, encoded.shared);
    }
    const wrapped = EncodedVersionData.fromShared(encoded.shared, 5000, 1000);
    encoded.write(0, Buffer.from([42]));
    assert.equal(wrapped.toContiguous()[0], 42, "another view of the same memory sees the write");
  });
});
