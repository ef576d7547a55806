import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { CreateVersionRequestChunkSchema } from "../../src/gen/cogment/api/model_registry_pb.js";
import { decodeBodyChunk } from "../../src/rpc/body-chunk-decoder.js";
import { FRAMING_MAX_BYTES, MIN_RELEASED_BYTES, releaseReceivedBytes } from "../../src/rpc/release-received-bytes.js";

const MiB = 1024 * 1024;

const isDetached = (buffer: ArrayBufferLike): boolean => (buffer as ArrayBuffer & { readonly detached: boolean }).detached;

/** A body message framed as grpc-js hands it over: one buffer of its own, the 5-byte prefix first. */
function receivedBody(dataBytes: number): Uint8Array {
  const message = toBinary(CreateVersionRequestChunkSchema, create(CreateVersionRequestChunkSchema, { msg: { case: "body", value: { dataChunk: new Uint8Array(dataBytes).fill(7) } } }));
  const framed = Buffer.concat([Buffer.alloc(5), message]);
  const decoded = decodeBodyChunk(framed.subarray(5));
  assert.equal(decoded?.msg.case, "body");
  return decoded.msg.value.dataChunk;
}

test("the data of a 1 MiB body message: its buffer is detached and its memory freed", () => {
  const data = receivedBody(MiB);
  const buffer = data.buffer;
  assert.equal(buffer.byteLength - data.byteLength, 5 + 4 + 4, "prefix, body tag + length, data_chunk tag + length");
  assert.equal(releaseReceivedBytes(data), true);
  assert.equal(isDetached(buffer), true);
  assert.equal(buffer.byteLength, 0);
  assert.equal(data.byteLength, 0, "the view is empty");
  assert.equal(releaseReceivedBytes(data), false, "a second call: nothing left to free");
});

test("the smallest data released: MIN_RELEASED_BYTES, one byte less is left alone", () => {
  const smaller = receivedBody(MIN_RELEASED_BYTES - 1);
  assert.equal(releaseReceivedBytes(smaller), false);
  assert.equal(isDetached(smaller.buffer), false);
  assert.equal(smaller.byteLength, MIN_RELEASED_BYTES - 1);
  const smallest = receivedBody(MIN_RELEASED_BYTES);
  assert.equal(releaseReceivedBytes(smallest), true);
  assert.equal(isDetached(smallest.buffer), true);
});

test("a view whose buffer holds more than FRAMING_MAX_BYTES besides it is left alone, up to that it is released", () => {
  const over = new Uint8Array(new ArrayBuffer(MiB + FRAMING_MAX_BYTES + 1), FRAMING_MAX_BYTES + 1);
  assert.equal(releaseReceivedBytes(over), false);
  assert.equal(isDetached(over.buffer), false);
  assert.equal(over.byteLength, MiB);
  const within = new Uint8Array(new ArrayBuffer(MiB + FRAMING_MAX_BYTES), FRAMING_MAX_BYTES);
  assert.equal(releaseReceivedBytes(within), true);
  assert.equal(isDetached(within.buffer), true);
});

test("a slice of a larger buffer (another message's bytes beside it) is left alone and stays readable", () => {
  const shared = Buffer.alloc(2 * MiB, 3);
  const first = shared.subarray(0, MiB);
  assert.equal(releaseReceivedBytes(first), false);
  assert.equal(shared.subarray(MiB)[0], 3);
  assert.equal(first[MiB - 1], 3);
});

test("shared memory is never released", () => {
  const data = new Uint8Array(new SharedArrayBuffer(MiB));
  assert.equal(releaseReceivedBytes(data), false);
  assert.equal(data.byteLength, MiB);
});
