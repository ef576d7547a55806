import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { RetrieveVersionDataReplyChunkSchema } from "../../src/gen/cogment/api/model_registry_pb.js";
import { EncodedVersionData, GRPC_FRAME_PREFIX_LENGTH, chunkHeaderLength, frameHeaderLength, planChunkLayout } from "../../src/data/index.js";

function pattern(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + 3) % 256;
  return data;
}

describe("chunk layout", () => {
  test("plans chunk counts and total bytes exactly", () => {
    // Every chunk: a 5-byte gRPC prefix, then the message (tag + varint length + data).
    assert.deepEqual(planChunkLayout(0, 10), { dataSize: 0, chunkSize: 10, chunkCount: 1, totalBytes: 5 });
    assert.deepEqual(planChunkLayout(10, 10), { dataSize: 10, chunkSize: 10, chunkCount: 1, totalBytes: 17 });
    assert.deepEqual(planChunkLayout(25, 10), { dataSize: 25, chunkSize: 10, chunkCount: 3, totalBytes: 46 });
    // 2 MiB (2^21) needs a 4-byte varint, so 5 header bytes per full chunk; the 1 MiB tail needs 3 + 1.
    assert.deepEqual(planChunkLayout(5 * 1024 * 1024, 2 * 1024 * 1024), {
      dataSize: 5 * 1024 * 1024,
      chunkSize: 2 * 1024 * 1024,
      chunkCount: 3,
      totalBytes: 5 * 1024 * 1024 + 3 * 5 + 5 + 5 + 4,
    });
    assert.equal(GRPC_FRAME_PREFIX_LENGTH, 5);
    assert.equal(frameHeaderLength(0), 5);
    assert.equal(frameHeaderLength(127), 7);
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

  test("a plain Uint8Array (not a Buffer), from an offset into its memory, is written across chunk boundaries", () => {
    const data = pattern(1000);
    const backing = new Uint8Array(1100);
    backing.set(data, 50);
    const source = new Uint8Array(backing.buffer, 50, 1000);
    const encoded = EncodedVersionData.allocate(1000, 128);
    encoded.write(0, source.subarray(0, 300));
    encoded.write(300, source.subarray(300));
    assert.ok(encoded.toContiguous().equals(data));
    assert.equal(backing[49], 0, "the source is left as it was");
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
    test(`${size} bytes in chunks of ${chunk}: each frame is a gRPC length prefix and a RetrieveVersionDataReplyChunk`, () => {
      const data = pattern(size);
      const encoded = EncodedVersionData.allocate(size, chunk);
      // Write in odd-sized pieces that straddle chunk boundaries.
      for (let offset = 0; offset < size; offset += 13) {
        encoded.write(offset, data.subarray(offset, offset + 13));
      }
      const frames = encoded.frames();
      assert.equal(frames.length, size === 0 ? 1 : Math.ceil(size / chunk));
      for (const frame of frames) {
        assert.equal(frame[0], 0, "not compressed");
        assert.equal(frame.readUInt32BE(1), frame.byteLength - 5, "the prefix holds the message length");
      }
      const decoded = frames.map((f) => Buffer.from(fromBinary(RetrieveVersionDataReplyChunkSchema, f.subarray(5)).dataChunk));
      assert.ok(decoded.every((d, i) => d.length === (i < decoded.length - 1 ? chunk : size - chunk * (decoded.length - 1))));
      assert.ok(Buffer.concat(decoded).equals(data));
      assert.ok(encoded.toContiguous().equals(data));
      assert.equal(encoded.bytes.byteLength, planChunkLayout(size, chunk).totalBytes);
    });
  }

  test("frames are zero-copy views of one SharedArrayBuffer, the same array for every reader", () => {
    const encoded = EncodedVersionData.allocate(5000, 1000);
    const first = encoded.frames();
    assert.equal(encoded.frames(), first);
    for (const frame of first) {
      assert.equal(frame.buffer, encoded.shared);
    }
    for (const segment of encoded.dataSegments()) {
      assert.ok(segment.buffer instanceof SharedArrayBuffer);
      assert.equal(segment.buffer, encoded.shared);
    }
    const wrapped = EncodedVersionData.fromShared(encoded.shared, 5000, 1000);
    encoded.write(0, Buffer.from([42]));
    assert.equal(wrapped.toContiguous()[0], 42, "another view of the same memory sees the write");
  });

  test("a version of one chunk: its one frame is the whole buffer, byte for byte the frame the multi-chunk path cuts", () => {
    const data = pattern(32);
    const single = EncodedVersionData.allocate(16, 2 * 1024 * 1024);
    single.write(0, data.subarray(0, 16));
    const frames = single.frames();
    assert.equal(frames.length, 1);
    assert.equal(frames[0], single.bytes, "no second view of the buffer");
    assert.notEqual(single.frames(), frames, "a new one-element array per call, nothing kept per version");
    assert.equal(single.frames()[0], single.bytes);
    // 5-byte prefix (uncompressed, message length 18), tag 0x0a, length 16, the data.
    assert.deepEqual([...(frames[0] as Buffer)], [0, 0, 0, 0, 18, 0x0a, 16, ...data.subarray(0, 16)]);
    const multi = EncodedVersionData.allocate(32, 16);
    multi.write(0, data);
    assert.equal(multi.frames().length, 2);
    assert.ok((multi.frames()[0] as Buffer).equals(frames[0] as Buffer));
  });

  test("the encoded data is its own layout: the same figures planChunkLayout gives", () => {
    for (const [size, chunk] of [
      [0, 7],
      [1, 1],
      [16, 2 * 1024 * 1024],
      [128, 127],
      [300_001, 100_000],
    ] as const) {
      const encoded = EncodedVersionData.allocate(size, chunk);
      const { dataSize, chunkSize, chunkCount, totalBytes } = encoded.layout;
      assert.deepEqual({ dataSize, chunkSize, chunkCount, totalBytes }, planChunkLayout(size, chunk));
    }
    const larger = new SharedArrayBuffer(100);
    const wrapped = EncodedVersionData.fromShared(larger, 10, 4);
    assert.equal(wrapped.totalBytes, planChunkLayout(10, 4).totalBytes, "a view of the layout's bytes, not of all the memory");
    assert.equal(wrapped.shared, larger);
  });
});
