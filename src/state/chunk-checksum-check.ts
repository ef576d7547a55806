import { crc32 } from "node:zlib";
import type { ChunkChecksums } from "../redis/index.js";

/** Whether `checksums` can check data of `dataSize` bytes held in `chunkCount` chunk keys (one CRC per chunk, every chunk non-empty). */
export function checksumsFit(checksums: ChunkChecksums, dataSize: number, chunkCount: number): boolean {
  return chunkCount > 0 && checksums.crc32.length === chunkCount && Math.ceil(dataSize / checksums.chunkBytes) === chunkCount;
}

/**
 * Checks a version's data against the CRC-32 its writer stored for each chunk, as the pieces pass in
 * order (pieces of any size: socket reads, or whole chunks). Nothing is buffered: the caller keeps
 * the bytes and serves only the `verified` ones.
 *
 * Owns: the position in the data, the running CRC of the chunk being read, the verified length, and
 * the first mismatch. Invariants: `verified` only grows and is always a chunk's end (or 0); once a
 * mismatch is found, add() takes nothing more and `verified` stays at the start of the bad chunk.
 * Bytes beyond the last chunk are ignored, neither checked nor counted (the caller counts what it
 * receives and fails data of the wrong size).
 */
export class ChunkChecksumCheck {
  #position = 0;
  #chunk = 0;
  #crc = 0;
  #chunkEnd: number;
  #verified = 0;
  #mismatch: string | undefined = undefined;

  constructor(
    private readonly checksums: ChunkChecksums,
    private readonly dataSize: number,
  ) {
    this.#chunkEnd = Math.min(checksums.chunkBytes, dataSize);
  }

  /** The leading bytes that matched their chunk's CRC so far. */
  get verified(): number {
    return this.#verified;
  }

  /** What did not match, e.g. `chunk 3 (bytes 6291456 to 8388607) has CRC-32 0x1a2b3c4d, its info says 0x5e6f7a8b`; undefined while all did. */
  get mismatch(): string | undefined {
    return this.#mismatch;
  }

  /** Takes the next piece of the data; returns `verified`. */
  add(piece: Uint8Array): number {
    let offset = 0;
    while (offset < piece.byteLength && this.#mismatch === undefined && this.#chunk < this.checksums.crc32.length) {
      const taken = Math.min(this.#chunkEnd - this.#position, piece.byteLength - offset);
      this.#crc = crc32(piece.subarray(offset, offset + taken), this.#crc);
      this.#position += taken;
      offset += taken;
      if (this.#position === this.#chunkEnd) {
        this.#endChunk();
      }
    }
    return this.#verified;
  }

  #endChunk(): void {
    const expected = this.checksums.crc32[this.#chunk] ?? 0;
    if (this.#crc !== expected) {
      const start = this.#chunk * this.checksums.chunkBytes;
      this.#mismatch = `chunk ${this.#chunk} (bytes ${start} to ${this.#chunkEnd - 1}) has CRC-32 ${hex(this.#crc)}, its info says ${hex(expected)}`;
      return;
    }
    this.#verified = this.#chunkEnd;
    this.#chunk += 1;
    this.#crc = 0;
    this.#chunkEnd = Math.min(this.#chunkEnd + this.checksums.chunkBytes, this.dataSize);
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}
