import assert from "node:assert/strict";
import { describe, test } from "node:test";
import grpcJsStreamDecoder from "@grpc/grpc-js/build/src/stream-decoder.js";
import { GrpcFrameReader } from "../../src/rpc/grpc-frame-reader.js";
import { createVersionStreams } from "../../src/rpc/create-version-stream.js";

const { StreamDecoder } = grpcJsStreamDecoder;

function frame(size: number, flag = 0): Buffer {
  const framed = Buffer.alloc(5 + size);
  framed.writeUInt8(flag, 0);
  framed.writeUInt32BE(size, 1);
  for (let i = 0; i < size; i++) {
    framed[5 + i] = (i * 13 + size) & 0xff;
  }
  return framed;
}

/** A deterministic pseudo-random split of `bytes` into pieces of 1 to `maxPiece` bytes. */
function split(bytes: Buffer, seed: number, maxPiece: number): Buffer[] {
  const pieces: Buffer[] = [];
  let state = seed;
  for (let at = 0; at < bytes.byteLength; ) {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    const length = 1 + (state % maxPiece);
    pieces.push(bytes.subarray(at, at + length));
    at += length;
  }
  return pieces;
}

/** What each reader gives for the pieces: the messages of each write, or the error a write threw. */
function run(write: (piece: Buffer) => Buffer[], pieces: readonly Buffer[]): (Buffer[] | string)[] {
  const results: (Buffer[] | string)[] = [];
  for (const piece of pieces) {
    try {
      results.push(write(piece));
    } catch (error) {
      results.push((error as Error).message);
      break;
    }
  }
  return results;
}

describe("GrpcFrameReader: grpc-js's StreamDecoder, message for message", () => {
  const stream = Buffer.concat([frame(0), frame(1), frame(4), frame(5), frame(300, 1), frame(0), frame(17_000), frame(3)]);
  for (const [seed, maxPiece] of [
    [1, 1],
    [2, 3],
    [3, 7],
    [4, 64],
    [5, 5_000],
    [6, 40_000],
  ] as const) {
    test(`the same messages from the same data cut into pieces of up to ${maxPiece} bytes`, () => {
      const pieces = split(stream, seed, maxPiece);
      const ours = new GrpcFrameReader(20_000);
      const theirs = new StreamDecoder(20_000);
      assert.deepEqual(
        run((piece) => ours.write(piece), pieces),
        run((piece) => theirs.write(piece), pieces),
      );
    });
  }

  test("a message over the limit: the same error, as soon as its length is read; earlier messages of that data dropped", () => {
    const data = Buffer.concat([frame(3), frame(101)]);
    for (const pieces of [[data], split(data, 9, 2)]) {
      const expected = run((piece) => new StreamDecoder(100).write(piece), [data]);
      assert.deepEqual(expected, ["Received message larger than max (101 vs 100)"]);
      const theirs = new StreamDecoder(100);
      const ours = new GrpcFrameReader(100);
      assert.deepEqual(
        run((piece) => ours.write(piece), pieces),
        run((piece) => theirs.write(piece), pieces),
      );
    }
  });

  test("-1: no limit", () => {
    assert.deepEqual(new GrpcFrameReader(-1).write(frame(70_000)), [frame(70_000)]);
  });
});

describe("createVersionStreams: which calls it takes", () => {
  const plain = { ":path": "/cogmentAPI.ModelRegistrySP/CreateVersion", "content-type": "application/grpc" };
  test("a plain CreateVersion call, identity or application/grpc+proto included", () => {
    const streams = createVersionStreams({} as Parameters<typeof createVersionStreams>[0]);
    assert.equal(streams.takes(plain), true);
    assert.equal(streams.takes({ ...plain, "grpc-encoding": "identity", "content-type": "application/grpc+proto" }), true);
    assert.equal(streams.takes({ ...plain, "grpc-timeout": "10S" }), true);
  });

  test("not another method, several deadlines, a compression, another content type, or once stopped", () => {
    const streams = createVersionStreams({} as Parameters<typeof createVersionStreams>[0]);
    for (const headers of [
      { ...plain, ":path": "/cogmentAPI.ModelRegistrySP/RetrieveVersionInfos" },
      { ...plain, "grpc-timeout": "10S, 20S" },
      { ...plain, "grpc-encoding": "gzip" },
      { ...plain, "content-type": "application/grpc+json" },
      { ...plain, "content-type": undefined },
    ]) {
      assert.equal(streams.takes(headers), false, JSON.stringify(headers));
    }
    streams.stopTaking();
    assert.equal(streams.takes(plain), false);
    assert.equal(streams.served, 0);
  });
});
