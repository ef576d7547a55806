/**
 * The bytes a read must deliver, kept in a file the bench wrote from its own copy of the data: the
 * raw reader compares every received byte with them (cheaper than a SHA-256 on the reader's side,
 * and stricter). The file is read in 1 MiB windows into one reused buffer.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

const WINDOW_BYTES = 1 << 20;

export class ExpectedBytes {
  private readonly fd: number;
  private readonly size: number;
  private readonly window = Buffer.allocUnsafe(WINDOW_BYTES);
  private windowStart = 0;
  private windowEnd = 0;
  /** Bytes compared so far. */
  private position = 0;
  private matched = true;

  constructor(file: string) {
    this.fd = openSync(file, "r");
    this.size = fstatSync(this.fd).size;
  }

  /** Compares the next received piece with the bytes expected there. */
  check(piece: Uint8Array): void {
    let offset = 0;
    while (offset < piece.byteLength && this.matched) {
      if (this.position >= this.windowEnd) {
        if (this.position >= this.size) {
          this.matched = false; // more bytes than expected
          break;
        }
        this.windowStart = this.position;
        this.windowEnd = this.position + readSync(this.fd, this.window, 0, WINDOW_BYTES, this.position);
      }
      const count = Math.min(piece.byteLength - offset, this.windowEnd - this.position);
      const from = this.position - this.windowStart;
      this.matched = Buffer.from(piece.buffer, piece.byteOffset + offset, count).equals(this.window.subarray(from, from + count));
      offset += count;
      this.position += count;
    }
    if (!this.matched) {
      this.position += piece.byteLength - offset;
    }
  }

  /** Every byte received so far matched, and they were all the expected bytes. */
  get complete(): boolean {
    return this.matched && this.position === this.size;
  }

  close(): void {
    closeSync(this.fd);
  }
}
