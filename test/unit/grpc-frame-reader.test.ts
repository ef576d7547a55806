import assert from "node:assert/strict";
import { describe, test } from "node:test";
import grpcJsStreamDecoder from "@grpc/grpc-js/build/src/stream-decoder.js";
import { ANNOUNCED_SHARE, GrpcFrameReader, MESSAGE_GROWTH, MIN_MESSAGE_CAPACITY } from "../../src/rpc/grpc-frame-reader.js";

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

describe("GrpcFrameReader: memory held for a message spread over many pieces", () => {
  test("1-byte pieces: the held buffer follows the bytes received, not the number of pieces nor the announced length", () => {
    const announced = 64 * 1024 * 1024;
    const reader = new GrpcFrameReader(announced);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(announced, 1);
    assert.deepEqual(reader.write(prefix), []);
    // The client's 64 MiB is not believed: one DATA frame's worth.
    assert.equal(reader.heldBytes, MIN_MESSAGE_CAPACITY);
    const one = Buffer.from([0x42]);
    let received = 5;
    let largest = reader.heldBytes;
    for (let i = 0; i < 2 * 1024 * 1024; i++) {
      reader.write(one);
      received++;
      largest = Math.max(largest, reader.heldBytes);
      if ((received & 0xffff) === 0) {
        assert.ok(reader.heldBytes <= MESSAGE_GROWTH * received, `${reader.heldBytes} held for ${received} received`);
      }
    }
    // Grown at 16 385, 65 541, 262 165 and 1 048 661 bytes received (a sixteenth of 64 MiB never came).
    assert.equal(largest, 4 * 1_048_661);
    assert.ok(largest <= MESSAGE_GROWTH * received);
  });

  test("a 1 MiB message in 16 KiB pieces: 16 KiB, then 64 KiB, then its own size once a sixteenth of it came", () => {
    const framed = frame(1024 * 1024);
    const reader = new GrpcFrameReader(-1);
    const held: number[] = [];
    let message: Buffer[] = [];
    for (let at = 0; at < framed.byteLength; at += 16_384) {
      message = reader.write(Buffer.from(framed.subarray(at, at + 16_384)));
      if (held.at(-1) !== reader.heldBytes) {
        held.push(reader.heldBytes);
      }
    }
    // 16 384 received: 4 × that; 81 920 received, 16 × that ≥ 1 048 581: the whole message.
    assert.deepEqual(held, [MESSAGE_GROWTH * 16_384, framed.byteLength, 0]);
    assert.equal(ANNOUNCED_SHARE * 81_920 >= framed.byteLength, true);
    assert.deepEqual(message, [framed]);
  });

  test("a spread message is given in a buffer of exactly its size, its own (nothing else shares its memory)", () => {
    for (const size of [0, 1, 100, 20_000, 1024 * 1024]) {
      const framed = frame(size);
      const reader = new GrpcFrameReader(-1);
      const got: Buffer[] = [];
      for (const piece of split(framed, size + 1, Math.min(16_384, Math.max(1, Math.floor(framed.byteLength / 3))))) {
        got.push(...reader.write(Buffer.from(piece)));
      }
      assert.equal(got.length, 1, `size ${size}`);
      const [message] = got as [Buffer];
      assert.deepEqual(message, framed);
      assert.equal(message.byteOffset, 0);
      assert.equal(message.buffer.byteLength, framed.byteLength, `size ${size}`);
      assert.ok(reader.heldBytes === 0 || reader.heldBytes === 5, `size ${size}: ${reader.heldBytes} held after the message`);
    }
  });

  test("the held buffer is given up with the message: nothing held between messages but a split prefix's 5 bytes", () => {
    const reader = new GrpcFrameReader(-1);
    assert.equal(reader.heldBytes, 0);
    const framed = Buffer.concat([frame(40_000), frame(10)]);
    reader.write(framed.subarray(0, 30_000));
    assert.equal(reader.heldBytes, 40_005);
    assert.equal(reader.write(framed.subarray(30_000, 40_007)).length, 1);
    assert.equal(reader.heldBytes, 5);
    assert.equal(reader.write(framed.subarray(40_007)).length, 1);
    assert.equal(reader.heldBytes, 5);
  });
});

describe("GrpcFrameReader: fuzzed cuts give back every message, byte for byte", () => {
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
    return seed % n;
  };
  const sizes = [0, 1, 2, 4, 5, 6, 30, 100, 16_379, 16_384, 70_000] as const;
  test("20 000 rounds of 1 to 5 messages cut into pieces of 1 to 40 bytes, and 200 rounds cut at 1 to 20 000 bytes", () => {
    for (let round = 0; round < 20_200; round++) {
      const messages: Buffer[] = [];
      const count = 1 + random(5);
      for (let i = 0; i < count; i++) {
        const size = round < 20_000 ? (sizes[random(8)] as number) : (sizes[random(sizes.length)] as number);
        const framed = Buffer.alloc(5 + size);
        framed[0] = random(2);
        framed.writeUInt32BE(size, 1);
        for (let j = 5; j < framed.byteLength; j++) {
          framed[j] = random(256);
        }
        messages.push(framed);
      }
      const all = Buffer.concat(messages);
      const reader = new GrpcFrameReader(-1);
      const theirs = new StreamDecoder(-1);
      const ours: Buffer[] = [];
      const expected: Buffer[] = [];
      const maxPiece = round < 20_000 ? 40 : 20_000;
      for (let at = 0; at < all.byteLength; ) {
        const take = 1 + random(Math.min(maxPiece, all.byteLength - at));
        // A fresh buffer each time, as node:http2 hands over; copied out, as the reader's views may be of it.
        const piece = Buffer.from(all.subarray(at, at + take));
        for (const message of reader.write(piece)) {
          ours.push(Buffer.from(message));
        }
        expected.push(...theirs.write(piece));
        at += take;
      }
      assert.deepEqual(ours, messages, `round ${round}`);
      assert.deepEqual(ours, expected, `round ${round}`);
      // Nothing left but, perhaps, the 5-byte buffer of a prefix once split.
      assert.ok(reader.heldBytes === 0 || reader.heldBytes === 5, `round ${round}: ${reader.heldBytes}`);
    }
  });
});
