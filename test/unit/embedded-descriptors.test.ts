import { test } from "node:test";
import assert from "node:assert/strict";
import { type DescFile, type DescMessage, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { fileDesc } from "@bufbuild/protobuf/codegenv2";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as common from "../../src/gen/cogment/api/common_pb.js";
import * as registry from "../../src/gen/cogment/api/model_registry_pb.js";
import * as health from "../../src/gen/grpc/health/v1/health_pb.js";

/** Each generated file, as embedded (scripts/embed-descriptors.mjs) and as protoc-gen-es serialized it. */
const commonSerialized = fileDesc(common.file_cogment_api_common_serialized);
const files: readonly (readonly [string, DescFile, DescFile])[] = [
  ["common", common.file_cogment_api_common, commonSerialized],
  ["model_registry", registry.file_cogment_api_model_registry, fileDesc(registry.file_cogment_api_model_registry_serialized, [commonSerialized])],
  ["health", health.file_grpc_health_v1_health, fileDesc(health.file_grpc_health_v1_health_serialized)],
];

/** Everything about a message that decides its wire form and its JSON names. */
function shape(message: DescMessage): unknown {
  return {
    typeName: message.typeName,
    fields: message.fields.map((field) => ({
      name: field.name,
      number: field.number,
      kind: field.fieldKind,
      scalar: "scalar" in field ? field.scalar : undefined,
      jsonName: field.jsonName,
      localName: field.localName,
      oneof: field.oneof?.name,
      packed: field.fieldKind === "list" ? field.packed : undefined,
      presence: field.presence,
      message: field.message?.typeName,
      enum: field.enum?.typeName,
      mapKey: field.fieldKind === "map" ? field.mapKey : undefined,
      mapKind: field.fieldKind === "map" ? field.mapKind : undefined,
      listKind: field.fieldKind === "list" ? field.listKind : undefined,
    })),
    nested: message.nestedMessages.map(shape),
  };
}

test("the embedded descriptors are the serialized ones: same FileDescriptorProto bytes, messages, services, enums", () => {
  for (const [name, embedded, serialized] of files) {
    assert.deepEqual(toBinary(FileDescriptorProtoSchema, embedded.proto), toBinary(FileDescriptorProtoSchema, serialized.proto), name);
    assert.deepEqual(embedded.messages.map(shape), serialized.messages.map(shape), name);
    assert.deepEqual(
      embedded.services.map((service) => service.methods.map((method) => [method.name, method.methodKind, method.input.typeName, method.output.typeName])),
      serialized.services.map((service) => service.methods.map((method) => [method.name, method.methodKind, method.input.typeName, method.output.typeName])),
      name,
    );
    assert.deepEqual(
      embedded.enums.map((entry) => entry.values.map((value) => [value.name, value.number])),
      serialized.enums.map((entry) => entry.values.map((value) => [value.name, value.number])),
      name,
    );
  }
  assert.equal(registry.file_cogment_api_model_registry.services[0]?.methods.length, 9);
});

test("messages with maps, a oneof, 64-bit and bytes fields encode to the same bytes through both", () => {
  const serializedRegistry = files[1]?.[2];
  assert.ok(serializedRegistry);
  const other = (typeName: string): DescMessage => {
    const found = serializedRegistry.messages.find((message) => message.typeName === typeName);
    assert.ok(found, typeName);
    return found;
  };
  const header = create(registry.CreateVersionRequestChunkSchema, {
    msg: {
      case: "header",
      value: {
        versionInfo: { modelId: "m", versionNumber: 3, creationTimestamp: 1700000000000000000n, archived: true, dataHash: "h", dataSize: 12n, userData: { a: "b", é: "ü" } },
      },
    },
  });
  const bytes = toBinary(registry.CreateVersionRequestChunkSchema, header);
  assert.deepEqual(toBinary(other("cogmentAPI.CreateVersionRequestChunk"), fromBinary(other("cogmentAPI.CreateVersionRequestChunk"), bytes)), bytes);
  const decoded = fromBinary(registry.CreateVersionRequestChunkSchema, bytes);
  assert.equal(decoded.msg.case, "header");
  assert.equal(decoded.msg.value?.versionInfo?.userData["é"], "ü");
  assert.equal(decoded.msg.value?.versionInfo?.creationTimestamp, 1700000000000000000n);
  const body = create(registry.CreateVersionRequestChunkSchema, { msg: { case: "body", value: { dataChunk: new Uint8Array([1, 2, 3]) } } });
  const bodyBytes = toBinary(registry.CreateVersionRequestChunkSchema, body);
  assert.deepEqual(toBinary(other("cogmentAPI.CreateVersionRequestChunk"), fromBinary(other("cogmentAPI.CreateVersionRequestChunk"), bodyBytes)), bodyBytes);
  assert.deepEqual([...bodyBytes], [0x12, 0x05, 0x0a, 0x03, 1, 2, 3]);
});
