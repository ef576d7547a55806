/*
 * Request message sizes each method accepts, checked on the received bytes before any decoding.
 *
 * The server takes messages up to MAX_RECEIVE_MESSAGE_BYTES (64 MiB, transports/grpc-server.ts)
 * for CreateVersion's body chunks. Decoding that much of anything else blocks the one thread that
 * serves every client for seconds (protobuf-es builds an element per packed number, a string per
 * repeated id or map key). grpc-js checks its one receive limit before deserializing; these limits
 * run first thing in each method's deserializer (service-definition.ts: FastRequestDecoder), on the
 * grpc-js path and on CreateVersion's fast path (create-version-stream.ts) alike.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "../errors/code.js";
import type { CreateVersionRequestChunk } from "../gen/cogment/api/model_registry_pb.js";
import { decodeBodyChunk, decodeCreateVersionChunk } from "./body-chunk-decoder.js";
import { RejectedRequest } from "./service-definition.js";
import { MAX_USER_DATA_BYTES } from "./validate.js";

/**
 * A request message of any method but CreateVersion: grpc-go's default receive limit (4 MiB), the
 * original server's, so no client of the original sends more.
 */
export const MAX_REQUEST_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * A CreateVersion message other than a plain body chunk (the header): its version_info carries at
 * most MAX_USER_DATA_BYTES of user_data keys and values, a model id and a hash; with the framing of
 * every user_data entry (at most 12 bytes each), that is well under 1 MiB.
 */
export const MAX_HEADER_MESSAGE_BYTES = 16 * MAX_USER_DATA_BYTES;

const HEADER_TAG = (1 << 3) | 2; // CreateVersionRequestChunk.header, length-delimited

function describeBytes(bytes: number): string {
  return `${bytes} bytes (${bytes / (1024 * 1024)} MiB)`;
}

/** A request message over `maxBytes`: RESOURCE_EXHAUSTED naming the method, the size and the limit. */
function tooLarge(method: string, bytes: number, maxBytes: number): RejectedRequest {
  return new RejectedRequest(
    Code.RESOURCE_EXHAUSTED,
    `${method}: the request message is ${bytes} bytes, more than this method accepts: ${describeBytes(maxBytes)}`,
  );
}

/**
 * Ids (RetrieveModels' model_ids) or numbers (RetrieveVersionInfos' version_numbers) one request may
 * name: each costs a lookup, and 4 MiB of request holds over a million of them. Far above what any
 * client asks at once (a page of a listing is what they name).
 */
export const MAX_NAMED_PER_REQUEST = 100_000;

/** The INVALID_ARGUMENT message for a request naming `count` elements of `field`; undefined within the limit. */
export function namedCountProblem(field: string, what: string, count: number): string | undefined {
  return count > MAX_NAMED_PER_REQUEST ? `${field} names ${count} ${what}; at most ${MAX_NAMED_PER_REQUEST} per request` : undefined;
}

/** A repeated field whose elements each cost the handler a lookup. */
interface NamedField {
  readonly name: string;
  readonly number: number;
  /** A packable scalar (varints): a length-delimited occurrence holds one element per varint. */
  readonly packedVarints: boolean;
  /** What its elements are, plural ("ids"). */
  readonly what: string;
}

/** By request message type. */
const NAMED_FIELDS: Readonly<Record<string, NamedField>> = {
  "cogmentAPI.RetrieveModelsRequest": { name: "model_ids", number: 1, packedVarints: false, what: "ids" },
  "cogmentAPI.RetrieveVersionInfosRequest": { name: "version_numbers", number: 2, packedVarints: true, what: "numbers" },
};

/** Where the last varint read by readVarint ended (a module variable: no object per read). */
let varintEnd = 0;

/** A varint at `at` of at most 10 bytes before `end` (exact below 2^53); -1 when there is none. */
function readVarint(bytes: Uint8Array, at: number, end: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && at + i < end; i++) {
    const byte = bytes[at + i] as number;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      varintEnd = at + i + 1;
      return value;
    }
    scale *= 0x80;
  }
  return -1;
}

/**
 * How many elements of the repeated field `field` a message's bytes hold, read without decoding
 * them: one per occurrence, one per varint of a length-delimited occurrence of a packed field.
 * undefined when the bytes are not a plain message (a group, a truncated field): protobuf-es then
 * decodes them and gives its own answer.
 */
function countElements(bytes: Uint8Array, field: NamedField): number | undefined {
  const end = bytes.byteLength;
  let count = 0;
  let at = 0;
  while (at < end) {
    const tag = readVarint(bytes, at, end);
    if (tag < 0) {
      return undefined;
    }
    at = varintEnd;
    const wireType = tag % 8;
    const ours = Math.floor(tag / 8) === field.number;
    if (wireType === 0) {
      if (readVarint(bytes, at, end) < 0) {
        return undefined;
      }
      at = varintEnd;
      count += ours ? 1 : 0;
    } else if (wireType === 2) {
      const length = readVarint(bytes, at, end);
      const start = varintEnd;
      if (length < 0 || start + length > end) {
        return undefined;
      }
      at = start + length;
      if (ours && field.packedVarints) {
        for (let i = start; i < at; i++) {
          count += (bytes[i] as number) < 0x80 ? 1 : 0;
        }
      } else if (ours) {
        count++;
      }
    } else if (wireType === 1 || wireType === 5) {
      at += wireType === 1 ? 8 : 4;
    } else {
      return undefined;
    }
  }
  return at === end ? count : undefined;
}

/**
 * The checks every request message of `method` (all but CreateVersion's) passes before protobuf-es
 * decodes it: at most MAX_REQUEST_MESSAGE_BYTES (RESOURCE_EXHAUSTED), and for the methods that look
 * up each id or number named, at most MAX_NAMED_PER_REQUEST of them (INVALID_ARGUMENT); undefined
 * for a message that passes.
 */
export function requestChecks(method: DescMethod): (bytes: Buffer) => RejectedRequest | undefined {
  const named = NAMED_FIELDS[method.input.typeName];
  return (bytes) => {
    if (bytes.byteLength > MAX_REQUEST_MESSAGE_BYTES) {
      return tooLarge(method.name, bytes.byteLength, MAX_REQUEST_MESSAGE_BYTES);
    }
    if (named === undefined) {
      return undefined;
    }
    const problem = namedCountProblem(named.name, named.what, countElements(bytes, named) ?? 0);
    return problem === undefined ? undefined : new RejectedRequest(Code.INVALID_ARGUMENT, problem);
  };
}

/**
 * CreateVersion's request messages: a body chunk of any size (up to the receive limit) is read as
 * body-chunk-decoder.ts reads it; any other message over MAX_HEADER_MESSAGE_BYTES is refused with
 * INVALID_ARGUMENT before it is decoded, as its user_data would be once decoded.
 */
export function decodeCreateVersionMessage(bytes: Buffer): CreateVersionRequestChunk | RejectedRequest | undefined {
  if (bytes.byteLength <= MAX_HEADER_MESSAGE_BYTES) {
    return decodeCreateVersionChunk(bytes);
  }
  const body = decodeBodyChunk(bytes);
  if (body !== undefined) {
    return body;
  }
  const limit = `at most ${describeBytes(MAX_HEADER_MESSAGE_BYTES)}: its version_info.user_data may hold ${MAX_USER_DATA_BYTES} bytes`;
  return new RejectedRequest(
    Code.INVALID_ARGUMENT,
    bytes[0] === HEADER_TAG
      ? `CreateVersionRequestChunk: the header message is ${bytes.byteLength} bytes, too large to be valid: a header is ${limit}`
      : `CreateVersionRequestChunk: a message of ${bytes.byteLength} bytes that is not a body made of data_chunk alone; any other message is ${limit}`,
  );
}
