/*
 * Listing and update replies assembled from stored bytes.
 *
 * Model and version records never change once made (a model's update makes a new record), so a
 * record's ModelInfo (by protobuf-es) / ModelVersionInfo (written here, protobuf-es's bytes) is
 * encoded once, the first time a reply carries it, and kept beside the record (a WeakMap: it goes with the record). A reply is then
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
import { ModelInfoSchema } from "../gen/cogment/api/model_registry_pb.js";
import type { ModelRecord, VersionRecord } from "../registry/index.js";
import { toWireModel } from "./convert.js";
import {
  ARCHIVED_TAG,
  CREATION_TIMESTAMP_TAG,
  DATA_HASH_TAG,
  DATA_SIZE_TAG,
  ENTRY_KEY_TAG,
  ENTRY_VALUE_TAG,
  MODEL_ID_TAG,
  USER_DATA_TAG,
  VERSION_NUMBER_TAG,
} from "./version-info-tags.js";

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
    encoded = encodeVersionInfo(version).toString("latin1");
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

const TWO_POW_32 = 2 ** 32;

function stringFieldLength(byteLength: number): number {
  return 1 + varintLength(byteLength) + byteLength;
}

function writeStringField(target: Buffer, offset: number, tag: number, text: string, byteLength: number): number {
  target[offset++] = tag;
  offset = writeVarint(target, offset, byteLength);
  return offset + target.write(text, offset, byteLength, "utf8");
}

/**
 * ModelVersionInfo written directly, as protobuf-es's toBinary writes it (the first reply that
 * carries a version is its CreateVersion reply, so this runs once per version): fields in number
 * order, proto3's defaults (empty, 0, false) left out, each user_data entry as a message with its
 * key and value both written, entries in the object's key order. test/unit/encoded-infos.test.ts
 * compares the bytes with protobuf-es's for every field's edge cases.
 */
function encodeVersionInfo(version: VersionRecord): Buffer {
  const plan = planVersionInfo(version);
  const target = Buffer.allocUnsafe(plan.length);
  writeVersionInfo(version, plan, target, 0);
  return target;
}

/** The sizes encodeVersionInfo needs before it writes. */
interface VersionInfoPlan {
  readonly length: number;
  readonly modelIdBytes: number;
  readonly dataHashBytes: number;
  readonly keys: readonly string[];
  /** Per user_data entry: key bytes, value bytes, entry bytes. */
  readonly entrySizes: readonly number[];
}

function planVersionInfo(version: VersionRecord): VersionInfoPlan {
  const { modelId, versionNumber, creationTimestamp, archived, dataHash, dataSize, userData } = version;
  const modelIdBytes = Buffer.byteLength(modelId, "utf8");
  const dataHashBytes = Buffer.byteLength(dataHash, "utf8");
  let length = 0;
  if (modelIdBytes > 0) {
    length += stringFieldLength(modelIdBytes);
  }
  if (versionNumber !== 0) {
    length += 1 + varintLength(versionNumber);
  }
  if (creationTimestamp !== 0n) {
    length += 9;
  }
  if (archived) {
    length += 2;
  }
  if (dataHashBytes > 0) {
    length += stringFieldLength(dataHashBytes);
  }
  if (dataSize !== 0) {
    length += 9;
  }
  const keys = Object.keys(userData);
  /** Per entry: key bytes, value bytes, entry bytes. */
  const entrySizes: number[] = [];
  for (const key of keys) {
    const keyBytes = Buffer.byteLength(key, "utf8");
    const valueBytes = Buffer.byteLength(userData[key] as string, "utf8");
    const entry = stringFieldLength(keyBytes) + stringFieldLength(valueBytes);
    entrySizes.push(keyBytes, valueBytes, entry);
    length += 1 + varintLength(entry) + entry;
  }
  return { length, modelIdBytes, dataHashBytes, keys, entrySizes };
}

/** Writes the ModelVersionInfo planned by planVersionInfo at `start` of `target`. */
function writeVersionInfo(version: VersionRecord, plan: VersionInfoPlan, target: Buffer, start: number): void {
  const { modelId, versionNumber, creationTimestamp, archived, dataHash, dataSize, userData } = version;
  const { length, modelIdBytes, dataHashBytes, keys, entrySizes } = plan;
  let offset = start;
  if (modelIdBytes > 0) {
    offset = writeStringField(target, offset, MODEL_ID_TAG, modelId, modelIdBytes);
  }
  if (versionNumber !== 0) {
    target[offset++] = VERSION_NUMBER_TAG;
    offset = writeVarint(target, offset, versionNumber);
  }
  if (creationTimestamp !== 0n) {
    target[offset++] = CREATION_TIMESTAMP_TAG;
    offset = target.writeBigUInt64LE(creationTimestamp, offset);
  }
  if (archived) {
    target[offset++] = ARCHIVED_TAG;
    target[offset++] = 1;
  }
  if (dataHashBytes > 0) {
    offset = writeStringField(target, offset, DATA_HASH_TAG, dataHash, dataHashBytes);
  }
  if (dataSize !== 0) {
    target[offset++] = DATA_SIZE_TAG;
    offset = target.writeUInt32LE(dataSize % TWO_POW_32, offset);
    offset = target.writeUInt32LE(Math.floor(dataSize / TWO_POW_32), offset);
  }
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index] as string;
    target[offset++] = USER_DATA_TAG;
    offset = writeVarint(target, offset, entrySizes[index * 3 + 2] as number);
    offset = writeStringField(target, offset, ENTRY_KEY_TAG, key, entrySizes[index * 3] as number);
    offset = writeStringField(target, offset, ENTRY_VALUE_TAG, userData[key] as string, entrySizes[index * 3 + 1] as number);
  }
  if (offset - start !== length) {
    throw new Error(`ModelVersionInfo encoding: wrote ${offset - start} bytes of ${length}`);
  }
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

/**
 * `framedInfosReply([encodedVersionInfo(version)])`, the same bytes, written straight into the
 * frame when the version's encoding is not kept yet, and not kept: CreateVersion's reply. A version
 * may never be listed or sent again (a stream of small uploads); one that is gets its encoding
 * kept then. Kept from here, every such version would leave a string and a WeakMap entry behind
 * for the young generation's collector to copy and the old one's to trace.
 */
export function framedVersionReply(version: VersionRecord): Buffer {
  const encoded = versionInfos.get(version);
  if (encoded !== undefined) {
    return framedInfosReply([encoded]);
  }
  const plan = planVersionInfo(version);
  const length = 1 + varintLength(plan.length) + plan.length;
  const frame = Buffer.allocUnsafe(GRPC_FRAME_PREFIX_LENGTH + length);
  frame[0] = 0; // not compressed
  frame.writeUInt32BE(length, 1);
  frame[GRPC_FRAME_PREFIX_LENGTH] = INFO_TAG;
  const at = writeVarint(frame, GRPC_FRAME_PREFIX_LENGTH + 1, plan.length);
  writeVersionInfo(version, plan, frame, at);
  return frame;
}
