import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CreateVersionRequestChunkSchema, type ModelVersionInfo } from "../../src/gen/cogment/api/model_registry_pb.js";
import { decodeBodyChunk, decodeHeaderChunk } from "../../src/rpc/body-chunk-decoder.js";
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

function headerMessage(versionInfo: Partial<Omit<ModelVersionInfo, "$typeName">>): Buffer {
  return Buffer.from(toBinary(CreateVersionRequestChunkSchema, create(CreateVersionRequestChunkSchema, { msg: { case: "header", value: { versionInfo } } })));
}

/** A header message around version_info bytes written by hand. */
function headerAround(info: readonly number[]): Buffer {
  return Buffer.from([0x0a, info.length + 2, 0x0a, info.length, ...info]);
}

describe("decodeHeaderChunk", () => {
  const plain: Record<string, Partial<Omit<ModelVersionInfo, "$typeName">>> = {
    "every field default (an empty version_info)": {},
    "the bench's header: model id and size": { modelId: "model-7", dataSize: 1024n },
    "every field set": {
      modelId: "models/cart-pole_v1.2",
      versionNumber: 268_435_455,
      creationTimestamp: 18_446_744_073_709_551_615n,
      archived: true,
      dataHash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
      dataSize: 2n ** 53n + 1n,
      userData: { step: "12", lr: "0.001", "": "", "0": "digits first" },
    },
    "archived false, zero size and timestamp written out": { modelId: "x", archived: false, dataSize: 0n, creationTimestamp: 0n },
    "a long model id and user data value (two-byte lengths)": { modelId: "m".repeat(300), userData: { blob: "v".repeat(20_000) } },
    "many user data entries": { userData: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`key-${i}`, `value-${i}`])) },
  };
  for (const [name, info] of Object.entries(plain)) {
    test(`${name}: what protobuf-es gives, keys in the same order`, () => {
      const message = headerMessage(info);
      const decoded = decodeHeaderChunk(message);
      assert.notEqual(decoded, undefined);
      const expected = fromBinary(CreateVersionRequestChunkSchema, message);
      assert.deepEqual(decoded, expected);
      const ours = decoded?.msg.case === "header" ? decoded.msg.value.versionInfo : undefined;
      const theirs = expected.msg.case === "header" ? expected.msg.value.versionInfo : undefined;
      assert.deepEqual(Object.keys(ours ?? {}), Object.keys(theirs ?? {}));
      assert.deepEqual(Object.keys(ours?.userData ?? {}), Object.keys(theirs?.userData ?? {}));
      assert.deepEqual(deserialize(message), expected);
    });
  }

  test("a repeated user data key: the last value at the first key's place, as protobuf-es", () => {
    const entry = (key: string, value: string): number[] => [0x3a, key.length + value.length + 4, 0x0a, key.length, ...Buffer.from(key), 0x12, value.length, ...Buffer.from(value)];
    const message = headerAround([...entry("a", "1"), ...entry("b", "2"), ...entry("a", "3")]);
    const decoded = decodeHeaderChunk(message);
    assert.notEqual(decoded, undefined);
    assert.deepEqual(decoded, fromBinary(CreateVersionRequestChunkSchema, message));
    assert.deepEqual(decoded?.msg.case === "header" ? decoded.msg.value.versionInfo?.userData : undefined, { a: "3", b: "2" });
  });

  const left: Record<string, Buffer> = {
    "a body": bodyMessage(Uint8Array.of(1, 2, 3)),
    "a header without version_info": Buffer.from([0x0a, 0x00]),
    "non-ASCII model id": headerMessage({ modelId: "modèle" }),
    "non-ASCII user data": headerMessage({ userData: { clé: "v" } }),
    "a __proto__ user data key": headerMessage({ userData: { ["__proto__"]: "v" } }),
    "fields out of number order": headerAround([0x31, 1, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x01, 0x6d]),
    "a field twice": headerAround([0x0a, 0x01, 0x6d, 0x0a, 0x01, 0x6e]),
    "an unknown field": headerAround([0x0a, 0x01, 0x6d, 0x40, 0x01]),
    "a version number of five varint bytes": headerAround([0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    "archived as 2": headerAround([0x20, 0x02]),
    "a fixed64 cut short": headerAround([0x31, 1, 0, 0]),
    "a string longer than version_info": headerAround([0x0a, 0x05, 0x6d]),
    "a user data entry of a value then a key": headerAround([0x3a, 0x06, 0x12, 0x01, 0x76, 0x0a, 0x01, 0x6b]),
    "a user data entry without its value": headerAround([0x3a, 0x03, 0x0a, 0x01, 0x6b]),
    "a user data entry with an extra field": headerAround([0x3a, 0x08, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76, 0x18, 0x01]),
    "version_info shorter than the header": Buffer.from([0x0a, 0x05, 0x0a, 0x02, 0x0a, 0x00, 0x10]),
    "a header and a body in one message": Buffer.concat([headerMessage({ modelId: "m" }), bodyMessage(Uint8Array.of(1))]),
    "a truncated header": headerMessage({ modelId: "model" }).subarray(0, 6),
  };
  for (const [name, bytes] of Object.entries(left)) {
    test(`${name}: left to protobuf-es, whose answer or error the method gives`, () => {
      assert.equal(decodeHeaderChunk(bytes), undefined);
      assert.deepEqual(deserialize(bytes), protobufEs(bytes));
    });
  }
});
