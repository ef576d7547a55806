import {
  type ChunkLayout,
  chunkDataLength,
  chunkDataOffset,
  chunkFrameOffset,
  dataSegments,
  planChunkLayout,
  writeChunkHeaders,
} from "./chunk-layout.js";

/**
 * A version's bytes, stored as its encoded reply chunks in one SharedArrayBuffer
 * (see chunk-layout.ts). The shared memory lets worker threads hash and write
 * the data without a copy while the main thread keeps serving it.
 */
export class EncodedVersionData {
  readonly layout: ChunkLayout;
  readonly shared: SharedArrayBuffer;
  readonly bytes: Buffer;
  private frameViews: Buffer[] | undefined = undefined;

  private constructor(layout: ChunkLayout, shared: SharedArrayBuffer) {
    this.layout = layout;
    this.shared = shared;
    this.bytes = Buffer.from(shared, 0, layout.totalBytes);
  }

  /** Bytes that `allocate(dataSize, chunkSize)` will hold. */
  static planTotalBytes(dataSize: number, chunkSize: number): number {
    return planChunkLayout(dataSize, chunkSize).totalBytes;
  }

  /** Allocates the buffer for `dataSize` bytes sent in chunks of `chunkSize`, headers already written. */
  static allocate(dataSize: number, chunkSize: number): EncodedVersionData {
    const layout = planChunkLayout(dataSize, chunkSize);
    const data = new EncodedVersionData(layout, new SharedArrayBuffer(layout.totalBytes));
    writeChunkHeaders(layout, data.bytes);
    return data;
  }

  /**
   * The memory of `previous` (a version nobody reads any more) laid out for a new version of the
   * same encoded size: no allocation, and its pages are already mapped. The data bytes are stale
   * until overwritten; the headers are written again.
   */
  static reuse(previous: EncodedVersionData, dataSize: number, chunkSize: number): EncodedVersionData {
    const layout = planChunkLayout(dataSize, chunkSize);
    if (previous.shared.byteLength !== layout.totalBytes) {
      throw new RangeError(`cannot reuse ${previous.shared.byteLength} bytes for a layout of ${layout.totalBytes}`);
    }
    const data = new EncodedVersionData(layout, previous.shared);
    writeChunkHeaders(layout, data.bytes);
    return data;
  }

  /** Wraps memory shared by another thread (headers already written there). */
  static fromShared(shared: SharedArrayBuffer, dataSize: number, chunkSize: number): EncodedVersionData {
    const layout = planChunkLayout(dataSize, chunkSize);
    if (shared.byteLength < layout.totalBytes) {
      throw new RangeError(`shared buffer of ${shared.byteLength} bytes is smaller than the layout's ${layout.totalBytes}`);
    }
    return new EncodedVersionData(layout, shared);
  }

  get dataSize(): number {
    return this.layout.dataSize;
  }

  /** Copies `source` into the data at `position` (a data offset, not a buffer offset). */
  write(position: number, source: Uint8Array): void {
    const { chunkSize } = this.layout;
    let written = 0;
    while (written < source.byteLength) {
      const dataPosition = position + written;
      const index = Math.floor(dataPosition / chunkSize);
      const within = dataPosition - index * chunkSize;
      const room = chunkDataLength(this.layout, index) - within;
      const count = Math.min(room, source.byteLength - written);
      this.bytes.set(source.subarray(written, written + count), chunkDataOffset(this.layout, index) + within);
      written += count;
    }
  }

  /**
   * The reply messages as gRPC frames (length prefix included), zero-copy views,
   * the same array for every reader.
   */
  frames(): readonly Buffer[] {
    if (this.frameViews === undefined) {
      const views: Buffer[] = [];
      for (let index = 0; index < this.layout.chunkCount; index++) {
        const start = chunkFrameOffset(this.layout, index);
        const end = chunkDataOffset(this.layout, index) + chunkDataLength(this.layout, index);
        views.push(this.bytes.subarray(start, end));
      }
      this.frameViews = views;
    }
    return this.frameViews;
  }

  /** Zero-copy views of the raw data, chunk by chunk. */
  dataSegments(): Uint8Array[] {
    return dataSegments(this.layout, this.bytes);
  }

  /** Reads the data back into one contiguous buffer (a copy; for tests and small data). */
  toContiguous(): Buffer {
    return Buffer.concat(this.dataSegments());
  }
}
