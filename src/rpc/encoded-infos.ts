/*
 * Listing and update replies assembled from stored bytes.
 *
 * Model and version records never change once made (a model's update makes a new record), so a
 * record's ModelInfo / ModelVersionInfo is encoded by protobuf-es once, the first time a reply
 * carries it, and kept beside the record (a WeakMap: it goes with the record). A reply is then
 * its gRPC frame prefix, each info as a length-delimited field 1 (what protobuf-es writes for a
 * repeated or singular message field), and the handle as field 2 when it is not empty (proto3
 * leaves an empty string out): byte for byte what protobuf-es's create() + toBinary() of the
 * whole reply give (test/unit/encoded-infos.test.ts), without building the reply's objects.
 *
 * The encodings are kept as one-byte strings: 16 bytes of header in the V8 heap, where a
 * Uint8Array would add an ArrayBuffer and an off-heap backing store per record.
 */
import { toBinary } from "@bufbuild/protobuf";
import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";
import { ModelInfoSchema, ModelVersionInfoSchema } from "../gen/cogment/api/model_registry_pb.js";
import type { ModelRecord, VersionRecord } from "../registry/index.js";
import { toWireModel, toWireVersion } from "./convert.js";

const INFO_TAG = (1 << 3) | 2; // field 1, length-delimited
const HANDLE_TAG = (2 << 3) | 2; // field 2, length-delimited

const versionInfos = new WeakMap<VersionRecord, string>();
const modelInfos = new WeakMap<ModelRecord, string>();

function asLatin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** The protobuf encoding of a version's ModelVersionInfo, as a one-byte string (one char per byte). */
export function encodedVersionInfo(version: VersionRecord): string {
  let encoded = versionInfos.get(version);
  if (encoded === undefined) {
    encoded = asLatin1(toBinary(ModelVersionInfoSchema, toWireVersion(version)));
    versionInfos.set(version, encoded);
  }
  return encoded;
}

/** The protobuf encoding of a model's ModelInfo, as a one-byte string (one char per byte). */
export function encodedModelInfo(model: ModelRecord): string {
  let encoded = modelInfos.get(model);
  if (encoded === undefined) {
    encoded = asLatin1(toBinary(ModelInfoSchema, toWireModel(model)));
    modelInfos.set(model, encoded);
  }
  return encoded;
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value >>>= 7;
    length++;
  }
  return length;
}

function writeVarint(target: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  target[offset++] = value;
  return offset;
}

/** A string's UTF-8 bytes as a one-byte string; ASCII (handles are decimal numbers) is that already. */
function utf8AsLatin1(text: string): string {
  return Buffer.byteLength(text, "utf8") === text.length ? text : Buffer.from(text, "utf8").toString("latin1");
}

function writeField(target: Buffer, offset: number, tag: number, encoded: string): number {
  target[offset++] = tag;
  offset = writeVarint(target, offset, encoded.length);
  return offset + target.write(encoded, offset, encoded.length, "latin1");
}

/**
 * A whole gRPC frame (uncompressed) of a reply whose field 1 is the given infos (each an
 * encoding from above) and whose field 2 is `handle`: RetrieveVersionInfosReply,
 * RetrieveModelsReply; VersionUpdateReply is one info and no handle.
 */
export function framedInfosReply(infos: readonly string[], handle = ""): Buffer {
  const handleBytes = handle === "" ? undefined : utf8AsLatin1(handle);
  let length = handleBytes === undefined ? 0 : 1 + varintLength(handleBytes.length) + handleBytes.length;
  for (const info of infos) {
    length += 1 + varintLength(info.length) + info.length;
  }
  const frame = Buffer.allocUnsafe(GRPC_FRAME_PREFIX_LENGTH + length);
  frame[0] = 0; // not compressed
  frame.writeUInt32BE(length, 1);
  let offset = GRPC_FRAME_PREFIX_LENGTH;
  for (const info of infos) {
    offset = writeField(frame, offset, INFO_TAG, info);
  }
  if (handleBytes !== undefined) {
    writeField(frame, offset, HANDLE_TAG, handleBytes);
  }
  return frame;
}
