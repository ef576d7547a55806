import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GrpcMessageCounter } from "../../bench/load/grpc-message-counter.js";

const message = (length: number, flag = 0): Buffer => {
  const bytes = Buffer.alloc(5 + length, 7);
  bytes[0] = flag;
  bytes.writeUInt32BE(length, 1);
  return bytes;
};

describe("bench: the raw client's gRPC message counter (grpc-message-counter.ts)", () => {
  test("counts whole messages fed a byte at a time, and knows when one is half-received", () => {
    const body = Buffer.concat([message(3), message(0), message(300)]);
    const counter = new GrpcMessageCounter();
    const boundaries: number[] = [];
    for (let offset = 0; offset < body.byteLength; offset++) {
      counter.push(body.subarray(offset, offset + 1));
      if (counter.atBoundary) {
        boundaries.push(offset + 1);
      }
    }
    assert.deepEqual(boundaries, [8, 13, 318]);
    assert.deepEqual([counter.messages, counter.bytes], [3, 318]);
  });

  test("several messages in one chunk; a cut inside a prefix or a message is not a boundary", () => {
    const counter = new GrpcMessageCounter();
    counter.push(Buffer.concat([message(10), message(20)]));
    assert.deepEqual([counter.messages, counter.bytes, counter.atBoundary], [2, 40, true]);
    counter.push(message(4).subarray(0, 3));
    assert.equal(counter.atBoundary, false);
    const cut = new GrpcMessageCounter();
    cut.push(message(4).subarray(0, 7));
    assert.deepEqual([cut.messages, cut.atBoundary], [1, false]);
  });

  test("a compressed message is refused", () => {
    assert.throws(() => new GrpcMessageCounter().push(message(2, 1)), /^Error: compressed gRPC message: not supported by the bench client$/);
  });
});
