/*
 * CreateVersion's body messages read without protobuf-es.
 *
 * Every message of an upload after its header is `body = 2 { data_chunk = 1 }`: on the wire, the
 * tag 0x12, a length, the tag 0x0a, a length and the data, ending exactly where the message ends.
 * Such a message is read here into the object protobuf-es's fromBinary gives for it (the same
 * plain objects, keys in the same order, the data a view of the received bytes as protobuf-es's is),
 * without its reader, its read context and its default-filled messages. Anything else (a header, an
 * empty or absent data_chunk, unknown or repeated fields, a truncated message) goes to protobuf-es
 * as before, so its answers and its errors are unchanged (test/unit/body-chunk-decoder.test.ts).
 *
 * The header (the first message of every upload) is read here too when it is plain: its
 * ModelVersionInfo's fields in number order, once each, ASCII text (decodeHeaderChunk below);
 * protobuf-es's reader, its read context and its messages were ~1 KiB of garbage per call.
 */
import type { CreateVersionRequestChunk, ModelVersionInfo } from "../gen/cogment/api/model_registry_pb.js";
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

const BODY_TAG = (2 << 3) | 2; // field 2 (body), length-delimited
const DATA_CHUNK_TAG = (1 << 3) | 2; // field 1 (data_chunk), length-delimited
/** Lengths are read up to four varint bytes (under 256 MiB); longer ones go to protobuf-es. */
const MAX_LENGTH_BYTES = 4;

/** Where the last length read by readLength ended (a module variable: no object per read). */
let lengthEnd = 0;

/** A varint length at `at` (its end in lengthEnd); -1 when not a varint of at most 4 bytes before `end`. */
function readLength(bytes: Uint8Array, at: number, end: number): number {
  let value = 0;
  for (let i = 0; i < MAX_LENGTH_BYTES && at + i < end; i++) {
    const byte = bytes[at + i] as number;
    value |= (byte & 0x7f) << (7 * i);
    if (byte < 0x80) {
      lengthEnd = at + i + 1;
      return value;
    }
  }
  return -1;
}

/**
 * The CreateVersionRequestChunk a body message with data decodes to, its data a view of `bytes`;
 * undefined for any other message (to be decoded by protobuf-es).
 */
export function decodeBodyChunk(bytes: Buffer): CreateVersionRequestChunk | undefined {
  const end = bytes.byteLength;
  if (end < 4 || bytes[0] !== BODY_TAG) {
    return undefined;
  }
  const bodyLength = readLength(bytes, 1, end);
  const bodyStart = lengthEnd;
  if (bodyLength < 0 || bodyStart + bodyLength !== end || bytes[bodyStart] !== DATA_CHUNK_TAG) {
    return undefined;
  }
  const dataLength = readLength(bytes, bodyStart + 1, end);
  const dataStart = lengthEnd;
  if (dataLength <= 0 || dataStart + dataLength !== end) {
    return undefined;
  }
  return {
    $typeName: "cogmentAPI.CreateVersionRequestChunk",
    msg: {
      case: "body",
      value: { $typeName: "cogmentAPI.CreateVersionRequestChunk.Body", dataChunk: bytes.subarray(dataStart, end) },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The header: `header = 1 { version_info = 1 { ModelVersionInfo } }`, the first message of every upload.

const HEADER_TAG = (1 << 3) | 2; // field 1 (header), length-delimited
const VERSION_INFO_TAG = (1 << 3) | 2; // field 1 (version_info), length-delimited

/** Bytes `start` to `end` as a string when all are ASCII (the same text as UTF-8); undefined otherwise. */
function asciiText(bytes: Buffer, start: number, end: number): string | undefined {
  for (let i = start; i < end; i++) {
    if ((bytes[i] as number) >= 0x80) {
      return undefined;
    }
  }
  return bytes.toString("latin1", start, end);
}

/** A length-delimited ASCII string at `at` (its end in lengthEnd); undefined when not one within `end`. */
function readText(bytes: Buffer, at: number, end: number): string | undefined {
  const length = readLength(bytes, at, end);
  const start = lengthEnd;
  if (length < 0 || start + length > end) {
    return undefined;
  }
  lengthEnd = start + length;
  return asciiText(bytes, start, start + length);
}

/**
 * The ModelVersionInfo from `start` to `end`, as protobuf-es gives it (every field, default-filled,
 * in declaration order); undefined for anything this reader does not take: fields out of number
 * order or repeated (but user_data's entries), a wire type or a field it does not know, non-ASCII
 * text, a version number of more than 4 varint bytes, `archived` other than 0 or 1, a map entry
 * other than exactly key then value, a `__proto__` key.
 */
function decodeVersionInfo(bytes: Buffer, start: number, end: number): ModelVersionInfo | undefined {
  let modelId = "";
  let versionNumber = 0;
  let creationTimestamp = 0n;
  let archived = false;
  let dataHash = "";
  let dataSize = 0n;
  const userData: Record<string, string> = {};
  let lastTag = 0;
  let at = start;
  while (at < end) {
    const tag = bytes[at++] as number;
    if (tag < lastTag || (tag === lastTag && tag !== USER_DATA_TAG)) {
      return undefined;
    }
    lastTag = tag;
    switch (tag) {
      case MODEL_ID_TAG:
      case DATA_HASH_TAG: {
        const text = readText(bytes, at, end);
        if (text === undefined) {
          return undefined;
        }
        if (tag === MODEL_ID_TAG) {
          modelId = text;
        } else {
          dataHash = text;
        }
        at = lengthEnd;
        break;
      }
      case VERSION_NUMBER_TAG:
        versionNumber = readLength(bytes, at, end);
        if (versionNumber < 0) {
          return undefined;
        }
        at = lengthEnd;
        break;
      case CREATION_TIMESTAMP_TAG:
      case DATA_SIZE_TAG: {
        if (at + 8 > end) {
          return undefined;
        }
        const value = bytes.readBigUInt64LE(at);
        if (tag === CREATION_TIMESTAMP_TAG) {
          creationTimestamp = value;
        } else {
          dataSize = value;
        }
        at += 8;
        break;
      }
      case ARCHIVED_TAG: {
        const value = bytes[at];
        if (at >= end || (value !== 0 && value !== 1)) {
          return undefined;
        }
        archived = value === 1;
        at++;
        break;
      }
      case USER_DATA_TAG: {
        const entryLength = readLength(bytes, at, end);
        const entryEnd = lengthEnd + entryLength;
        if (entryLength < 0 || entryEnd > end || bytes[lengthEnd] !== ENTRY_KEY_TAG) {
          return undefined;
        }
        const key = readText(bytes, lengthEnd + 1, entryEnd);
        if (key === undefined || key === "__proto__" || bytes[lengthEnd] !== ENTRY_VALUE_TAG) {
          return undefined;
        }
        const value = readText(bytes, lengthEnd + 1, entryEnd);
        if (value === undefined || lengthEnd !== entryEnd) {
          return undefined;
        }
        userData[key] = value;
        at = entryEnd;
        break;
      }
      default:
        return undefined;
    }
  }
  return {
    $typeName: "cogmentAPI.ModelVersionInfo",
    modelId,
    versionNumber,
    creationTimestamp,
    archived,
    dataHash,
    dataSize,
    userData,
  };
}

/**
 * The CreateVersionRequestChunk a header message with version_info decodes to; undefined for any
 * other message, and for a version_info decodeVersionInfo does not take (protobuf-es decodes those).
 */
export function decodeHeaderChunk(bytes: Buffer): CreateVersionRequestChunk | undefined {
  const end = bytes.byteLength;
  if (end < 4 || bytes[0] !== HEADER_TAG) {
    return undefined;
  }
  const headerLength = readLength(bytes, 1, end);
  const headerStart = lengthEnd;
  if (headerLength < 0 || headerStart + headerLength !== end || bytes[headerStart] !== VERSION_INFO_TAG) {
    return undefined;
  }
  const infoLength = readLength(bytes, headerStart + 1, end);
  const infoStart = lengthEnd;
  if (infoLength < 0 || infoStart + infoLength !== end) {
    return undefined;
  }
  const versionInfo = decodeVersionInfo(bytes, infoStart, end);
  if (versionInfo === undefined) {
    return undefined;
  }
  return {
    $typeName: "cogmentAPI.CreateVersionRequestChunk",
    msg: { case: "header", value: { $typeName: "cogmentAPI.CreateVersionRequestChunk.Header", versionInfo } },
  };
}

/** CreateVersion's request messages, body or header, read without protobuf-es when they can be. */
export function decodeCreateVersionChunk(bytes: Buffer): CreateVersionRequestChunk | undefined {
  return decodeBodyChunk(bytes) ?? decodeHeaderChunk(bytes);
}
