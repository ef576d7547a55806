import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CreateVersionRequestChunkSchema } from "../../src/gen/cogment/api/model_registry_pb.js";
import { decodeBodyChunk } from "../../src/rpc/body-chunk-decoder.js";
import { modelRegistryServiceDefinition } from "../../src/rpc/model-registry-service.js";
import { MalformedRequest } from "../../src/rpc/service-definition.js";

function bodyMessage(data: Uint8Array): Buffer {
  return Buffer.from(toBinary(CreateVersionRequestChunkSchema, create(CreateVersionRequestChunkSchema, { msg: { case: "body", value: { dataChunk: data } } })));
}

function filled(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff);
}

/** protobuf-es's answer, or the MalformedRequest the service definition makes of its error. */
function protobufEs(bytes: Buffer): unknown {
  try {
    return fromBinary(CreateVersionRequestChunkSchema, bytes);
  } catch (error) {
    return new MalformedRequest(CreateVersionRequestChunkSchema.typeName, (error as Error).message);
  }
}

const deserialize = modelRegistryServiceDefinition.createVersion?.requestDeserialize as (bytes: Buffer) => unknown;

describe("decodeBodyChunk", () => {
  for (const size of [1, 2, 127, 128, 1024, 16_383, 16_384, 65_536, 2_097_151, 2_097_152]) {
    test(`a body of ${size} bytes: what protobuf-es gives, the data a view of the message`, () => {
      const message = bodyMessage(filled(size));
      const decoded = decodeBodyChunk(message);
      assert.notEqual(decoded, undefined);
      assert.deepEqual(decoded, fromBinary(CreateVersionRequestChunkSchema, message));
      assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
      assert.deepEqual(Object.keys(decoded ?? {}), ["$typeName", "msg"]);
      const chunk = decoded?.msg.case === "body" ? decoded.msg.value.dataChunk : undefined;
      assert.ok(chunk instanceof Buffer);
      assert.equal(chunk.buffer, message.buffer);
      assert.equal(chunk.byteOffset, message.byteOffset + message.byteLength - size);
      assert.equal(chunk.byteLength, size);
    });
  }

  test("non-minimal varint lengths read as protobuf-es reads them", () => {
    // body length 7 as 0x87 0x00, data length 3 as 0x83 0x80 0x00
    const message = Buffer.from([0x12, 0x87, 0x00, 0x0a, 0x83, 0x80, 0x00, 9, 8, 7]);
    const decoded = decodeBodyChunk(message);
    assert.notEqual(decoded, undefined);
    assert.deepEqual(decoded, fromBinary(CreateVersionRequestChunkSchema, message));
  });

  const header = Buffer.from(
    toBinary(
      CreateVersionRequestChunkSchema,
      create(CreateVersionRequestChunkSchema, { msg: { case: "header", value: { versionInfo: { modelId: "m", dataSize: 3n } } } }),
    ),
  );
  const body = bodyMessage(Uint8Array.of(1, 2, 3));
  const others: Record<string, Buffer> = {
    "a header": header,
    "an empty message": Buffer.alloc(0),
    "an empty body": Buffer.from([0x12, 0x00]),
    "a body with an empty data_chunk": Buffer.from([0x12, 0x02, 0x0a, 0x00]),
    "a body with an unknown field after the data": Buffer.concat([Buffer.from([0x12, 0x07]), body.subarray(2), Buffer.from([0x10, 0x01])]),
    "a body with an unknown field before the data": Buffer.from([0x12, 0x07, 0x10, 0x01, 0x0a, 0x03, 1, 2, 3]),
    "an unknown field after the body": Buffer.concat([body, Buffer.from([0x18, 0x05])]),
    "two bodies": Buffer.concat([body, body]),
    "a header after a body": Buffer.concat([body, header]),
    "a body after a header": Buffer.concat([header, body]),
    "a body truncated in its data": body.subarray(0, body.byteLength - 1),
    "a body longer than the message": Buffer.from([0x12, 0x09, 0x0a, 0x03, 1, 2, 3]),
    "a data_chunk longer than its body": Buffer.from([0x12, 0x05, 0x0a, 0x04, 1, 2, 3]),
    "a data_chunk shorter than its body": Buffer.from([0x12, 0x05, 0x0a, 0x02, 1, 2, 3]),
    "a body as a varint": Buffer.from([0x10, 0x05, 0x0a, 0x03, 1, 2, 3]),
    "a data_chunk as a varint": Buffer.from([0x12, 0x05, 0x08, 0x03, 1, 2, 3]),
    "a length varint without its end": Buffer.from([0x12, 0x85, 0x80, 0x80, 0x80, 0x80]),
    "a length varint of five bytes": Buffer.from([0x12, 0x85, 0x80, 0x80, 0x80, 0x00, 0x0a, 0x03, 1, 2, 3]),
    "a wire type that does not exist": Buffer.from([0x17, 0x05, 0x0a, 0x03, 1, 2, 3]),
  };
  for (const [name, bytes] of Object.entries(others)) {
    test(`${name}: left to protobuf-es, whose answer or error the method gives`, () => {
      assert.equal(decodeBodyChunk(bytes), undefined);
      assert.deepEqual(deserialize(bytes), protobufEs(bytes));
    });
  }

  test("the CreateVersion method decodes a body message with it, and a header with protobuf-es", () => {
    assert.deepEqual(deserialize(body), fromBinary(CreateVersionRequestChunkSchema, body));
    assert.deepEqual(deserialize(header), fromBinary(CreateVersionRequestChunkSchema, header));
    const malformed = deserialize(Buffer.from([0x12, 0x09, 0x0a]));
    assert.ok(malformed instanceof MalformedRequest);
    assert.equal(malformed.typeName, "cogmentAPI.CreateVersionRequestChunk");
  });
});
