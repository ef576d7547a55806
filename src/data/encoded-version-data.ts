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
 * Buffer's copy (a memmove) on any Uint8Array source: measured 46 µs per MiB into shared memory,
 * against 117 µs for TypedArray.prototype.set (docs/performance.md, issue #15, 1 MiB publishes).
 */
const copyBytes: (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number =
  Buffer.prototype.copy;

/**
 * A version's bytes, stored as its encoded reply chunks in one SharedArrayBuffer
 * (see chunk-layout.ts). The shared memory lets worker threads hash and write
 * the data without a copy while the main thread keeps serving it.
 *
 * A cache may hold many thousands of these (tiny versions), so the object is its own
 * ChunkLayout and keeps nothing it can derive: measured with bench/version-overhead.ts.
 * A plain ArrayBuffer would cost the same as the SharedArrayBuffer (measured: ~565 bytes of RSS per
 * 23-byte buffer with its Buffer view, either kind), so every version keeps shared memory.
 */
export class EncodedVersionData implements ChunkLayout {
  readonly dataSize: number;
  readonly chunkSize: number;
  /** The whole encoded buffer: exactly `totalBytes` of the shared memory. */
  readonly bytes: Buffer;
  private frameViews: readonly Buffer[] | undefined = undefined;

  private constructor(layout: ChunkLayout, shared: SharedArrayBuffer) {
    this.dataSize = layout.dataSize;
    this.chunkSize = layout.chunkSize;
    this.bytes = Buffer.from(shared, 0, layout.totalBytes);
  }

  get chunkCount(): number {
    return this.dataSize === 0 ? 1 : Math.ceil(this.dataSize / this.chunkSize);
  }

  get totalBytes(): number {
    return this.bytes.byteLength;
  }

  get layout(): ChunkLayout {
    return this;
  }

  /** The shared memory holding `bytes` (which may be longer than `totalBytes` when wrapped with fromShared). */
  get shared(): SharedArrayBuffer {
    return this.bytes.buffer as SharedArrayBuffer;
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

  /** Copies `source` into the data at `position` (a data offset, not a buffer offset). */
  write(position: number, source: Uint8Array): void {
    const { chunkSize } = this.layout;
    let written = 0;
    while (written < source.byteLength) {
      const dataPosition = position + written;
      const index = Math.floor(dataPosition / chunkSize);
      const within = dataPosition - index * chunkSize;
      const room = chunkDataLength(this, index) - within;
      const count = Math.min(room, source.byteLength - written);
      copyBytes.call(source, this.bytes, chunkDataOffset(this, index) + within, written, written + count);
      written += count;
    }
  }

  /**
   * The reply messages as gRPC frames (length prefix included), zero-copy views. A version of one
   * chunk is one frame, the whole buffer: a new one-element array per call (cheaper than keeping
   * one per cached version). Otherwise the same array for every reader.
   */
  frames(): readonly Buffer[] {
    if (this.chunkCount === 1) {
      return [this.bytes];
    }
    if (this.frameViews === undefined) {
      const views: Buffer[] = [];
      for (let index = 0; index < this.chunkCount; index++) {
        const start = chunkFrameOffset(this, index);
        const end = chunkDataOffset(this, index) + chunkDataLength(this, index);
        views.push(this.bytes.subarray(start, end));
      }
      this.frameViews = views;
    }
    return this.frameViews;
  }

  /** Zero-copy views of the raw data, chunk by chunk. */
  dataSegments(): Uint8Array[] {
    return dataSegments(this, this.bytes);
  }

  /** Reads the data back into one contiguous buffer (a copy; for tests and small data). */
  toContiguous(): Buffer {
    return Buffer.concat(this.dataSegments());
  }
}
