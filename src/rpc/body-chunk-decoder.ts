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
 */
import type { CreateVersionRequestChunk } from "../gen/cogment/api/model_registry_pb.js";

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
