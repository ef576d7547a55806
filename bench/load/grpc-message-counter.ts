/**
 * Follows the gRPC length-prefixed framing of a response body (1 flag byte, 4-byte big-endian
 * length, the message) without decoding the messages: what a unary call's client must check to
 * know a reply arrived whole. Messages are counted, not kept.
 */
const PREFIX_BYTES = 5;

export class GrpcMessageCounter {
  private readonly prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixFilled = 0;
  /** Bytes left in the current message (after its prefix). */
  private messageLeft = 0;
  /** Body bytes received, prefixes included. */
  bytes = 0;
  messages = 0;

  push(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.messageLeft > 0) {
        const take = Math.min(this.messageLeft, chunk.byteLength - offset);
        this.messageLeft -= take;
        offset += take;
        continue;
      }
      this.prefix[this.prefixFilled++] = chunk[offset++] as number;
      if (this.prefixFilled === PREFIX_BYTES) {
        if (this.prefix[0] !== 0) {
          throw new Error("compressed gRPC message: not supported by the bench client");
        }
        this.prefixFilled = 0;
        this.messageLeft = this.prefix.readUInt32BE(1);
        this.messages++;
      }
    }
  }

  /** True when no message or prefix is half-received. */
  get atBoundary(): boolean {
    return this.prefixFilled === 0 && this.messageLeft === 0;
  }
}
