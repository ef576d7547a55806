/**
 * Where each reply chunk of a version lives inside one buffer.
 *
 * A version's data is stored already encoded as the sequence of
 * `RetrieveVersionDataReplyChunk` messages it will be sent as: for every chunk,
 * the protobuf header of field 1 (tag 0x0a and the varint length) followed by
 * the chunk's bytes. Every reader then gets zero-copy views of the same memory,
 * and the upload copies each received byte exactly once, into its final place.
 */
export interface ChunkLayout {
  readonly dataSize: number;
  readonly chunkSize: number;
  readonly chunkCount: number;
  /** Bytes of the whole encoded buffer (data plus chunk headers). */
  readonly totalBytes: number;
}

const BYTES_FIELD_TAG = 0x0a; // field 1, wire type 2 (length-delimited)

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

export function planChunkLayout(dataSize: number, chunkSize: number): ChunkLayout {
  if (!Number.isSafeInteger(dataSize) || dataSize < 0) {
    throw new RangeError(`dataSize must be a non-negative safe integer, got ${dataSize}`);
  }
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunkSize must be a positive safe integer, got ${chunkSize}`);
  }
  const chunkCount = dataSize === 0 ? 1 : Math.ceil(dataSize / chunkSize);
  const lastLength = dataSize - (chunkCount - 1) * chunkSize;
  const fullStride = chunkHeaderLength(chunkSize) + chunkSize;
  const totalBytes = (chunkCount - 1) * fullStride + chunkHeaderLength(lastLength) + lastLength;
  return { dataSize, chunkSize, chunkCount, totalBytes };
}

export function chunkDataLength(layout: ChunkLayout, index: number): number {
  return index === layout.chunkCount - 1 ? layout.dataSize - index * layout.chunkSize : layout.chunkSize;
}

/** Offset of chunk `index`'s message (its header) in the encoded buffer. */
export function chunkMessageOffset(layout: ChunkLayout, index: number): number {
  return index * (chunkHeaderLength(layout.chunkSize) + layout.chunkSize);
}

/** Offset of chunk `index`'s first data byte in the encoded buffer. */
export function chunkDataOffset(layout: ChunkLayout, index: number): number {
  return chunkMessageOffset(layout, index) + chunkHeaderLength(chunkDataLength(layout, index));
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

/** Writes the header of every chunk into `target` (which must be layout.totalBytes long). */
export function writeChunkHeaders(layout: ChunkLayout, target: Uint8Array): void {
  for (let index = 0; index < layout.chunkCount; index++) {
    encodeChunkHeader(chunkDataLength(layout, index), target, chunkMessageOffset(layout, index));
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
