/**
 * Where each reply chunk of a version lives inside one buffer.
 *
 * A version's data is stored already framed as the sequence of gRPC messages it
 * will be sent as: for every chunk, the 5-byte gRPC length prefix (compressed
 * flag 0, big-endian message length), then the `RetrieveVersionDataReplyChunk`
 * message: the protobuf header of field 1 (tag 0x0a and the varint length)
 * followed by the chunk's bytes. Every reader then gets zero-copy views of the
 * same memory that go to the HTTP/2 stream as they are (see
 * rpc/pre-framed-messages.ts), and the upload copies each received byte exactly
 * once, into its final place.
 */
export interface ChunkLayout {
  readonly dataSize: number;
  readonly chunkSize: number;
  readonly chunkCount: number;
  /** Bytes of the whole encoded buffer (data plus frame prefixes and chunk headers). */
  readonly totalBytes: number;
}

const BYTES_FIELD_TAG = 0x0a; // field 1, wire type 2 (length-delimited)

/** The gRPC length prefix of every message on the wire: 1 byte compressed flag, 4 bytes length. */
export const GRPC_FRAME_PREFIX_LENGTH = 5;

export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

/** Header bytes of one chunk message; an empty chunk is the empty message (proto3 omits empty bytes). */
export function chunkHeaderLength(chunkDataLength: number): number {
  return chunkDataLength === 0 ? 0 : 1 + varintLength(chunkDataLength);
}

/** Bytes in front of a chunk's data: the gRPC frame prefix and the message header. */
export function frameHeaderLength(chunkDataLength: number): number {
  return GRPC_FRAME_PREFIX_LENGTH + chunkHeaderLength(chunkDataLength);
}

export function planChunkLayout(dataSize: number, chunkSize: number): ChunkLayout {
  if (!Number.isSafeInteger(dataSize) || dataSize < 0) {
    throw new RangeError(`dataSize must be a non-negative safe integer, got ${dataSize}`);
  }
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunkSize must be a positive safe integer, got ${chunkSize}`);
  }
  const chunkCount = dataSize === 0 ? 1 : Math.ceil(dataSize / chunkSize);
  const lastLength = dataSize - (chunkCount - 1) * chunkSize;
  const fullStride = frameHeaderLength(chunkSize) + chunkSize;
  const totalBytes = (chunkCount - 1) * fullStride + frameHeaderLength(lastLength) + lastLength;
  return { dataSize, chunkSize, chunkCount, totalBytes };
}

export function chunkDataLength(layout: ChunkLayout, index: number): number {
  return index === layout.chunkCount - 1 ? layout.dataSize - index * layout.chunkSize : layout.chunkSize;
}

/** Offset of chunk `index`'s gRPC frame (its length prefix) in the encoded buffer. */
export function chunkFrameOffset(layout: ChunkLayout, index: number): number {
  return index * (frameHeaderLength(layout.chunkSize) + layout.chunkSize);
}

/** Offset of chunk `index`'s first data byte in the encoded buffer. */
export function chunkDataOffset(layout: ChunkLayout, index: number): number {
  return chunkFrameOffset(layout, index) + frameHeaderLength(chunkDataLength(layout, index));
}

/** Writes the message header of a chunk of `length` data bytes at `offset`; returns the header length. */
export function encodeChunkHeader(length: number, target: Uint8Array, offset: number): number {
  if (length === 0) {
    return 0;
  }
  let position = offset;
  target[position++] = BYTES_FIELD_TAG;
  let value = length;
  while (value >= 0x80) {
    target[position++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  target[position++] = value;
  return position - offset;
}

/**
 * Writes the gRPC frame prefix and the message header of a chunk of `length`
 * data bytes at `offset`; returns the bytes written (frameHeaderLength(length)).
 */
export function encodeFrameHeader(length: number, target: Uint8Array, offset: number): number {
  const messageLength = chunkHeaderLength(length) + length;
  target[offset] = 0; // not compressed
  new DataView(target.buffer, target.byteOffset + offset + 1, 4).setUint32(0, messageLength);
  return GRPC_FRAME_PREFIX_LENGTH + encodeChunkHeader(length, target, offset + GRPC_FRAME_PREFIX_LENGTH);
}

/** Writes the frame header of every chunk into `target` (which must be layout.totalBytes long). */
export function writeChunkHeaders(layout: ChunkLayout, target: Uint8Array): void {
  for (let index = 0; index < layout.chunkCount; index++) {
    encodeFrameHeader(chunkDataLength(layout, index), target, chunkFrameOffset(layout, index));
  }
}

/** Views of the data bytes of every chunk, in order (zero-copy). */
export function dataSegments(layout: ChunkLayout, encoded: Uint8Array): Uint8Array[] {
  const segments: Uint8Array[] = [];
  for (let index = 0; index < layout.chunkCount; index++) {
    const offset = chunkDataOffset(layout, index);
    segments.push(encoded.subarray(offset, offset + chunkDataLength(layout, index)));
  }
  return segments;
}
