/**
 * Incremental parser of a RetrieveVersionData response body: gRPC length-prefixed
 * messages (1 flag byte, 4-byte big-endian length), each a
 * RetrieveVersionDataReplyChunk whose only field is `bytes data_chunk = 1`.
 * Data bytes go straight from the received HTTP/2 frames into the hash: no
 * message is ever reassembled or copied.
 */
import { type Hash, createHash } from "node:crypto";

const FIELD_1_BYTES = 0x0a;

export class GrpcFrameHasher {
  private readonly hash: Hash | undefined;
  /** Header bytes of the current gRPC frame or protobuf field, while they straddle chunks. */
  private header: number[] = [];
  private state: "prefix" | "field" | "data" = "prefix";
  /** Bytes left in the current gRPC message. */
  private messageLeft = 0;
  /** Data bytes left in the current data_chunk field. */
  private dataLeft = 0;
  dataBytes = 0;
  messages = 0;

  /**
   * `consume`: where the data pieces go instead of the SHA-256 (e.g. a comparison with the expected
   * bytes, ExpectedBytes); digestBase64() then has nothing to give.
   */
  constructor(private readonly consume?: (piece: Uint8Array) => void) {
    this.hash = consume === undefined ? createHash("sha256") : undefined;
  }

  /** Feeds one received chunk; `onData` sees the length of each data piece found. */
  push(chunk: Uint8Array, onData?: (length: number) => void): void {
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.state === "prefix") {
        this.header.push(chunk[offset++] as number);
        if (this.header.length === 5) {
          if (this.header[0] !== 0) {
            throw new Error("compressed gRPC message: not supported by the bench reader");
          }
          this.messageLeft = (((this.header[1] as number) << 24) >>> 0) + ((this.header[2] as number) << 16) + ((this.header[3] as number) << 8) + (this.header[4] as number);
          this.header = [];
          this.messages++;
          this.state = this.messageLeft === 0 ? "prefix" : "field";
        }
      } else if (this.state === "field") {
        const byte = chunk[offset++] as number;
        this.messageLeft--;
        this.header.push(byte);
        if (this.header[0] !== FIELD_1_BYTES) {
          throw new Error(`unexpected protobuf tag 0x${(this.header[0] as number).toString(16)} in RetrieveVersionDataReplyChunk`);
        }
        if (this.header.length > 1 && (byte & 0x80) === 0) {
          this.dataLeft = decodeVarint(this.header, 1);
          this.header = [];
          if (this.dataLeft > this.messageLeft) {
            throw new Error(`data_chunk of ${this.dataLeft} bytes overruns its ${this.messageLeft}-byte message`);
          }
          this.state = this.dataLeft === 0 ? this.afterField() : "data";
        } else if (this.header.length > 6) {
          throw new Error("data_chunk length varint too long");
        }
      } else {
        const take = Math.min(this.dataLeft, chunk.byteLength - offset);
        const piece = chunk.subarray(offset, offset + take);
        if (this.hash === undefined) {
          this.consume?.(piece);
        } else {
          this.hash.update(piece);
        }
        this.dataBytes += take;
        onData?.(take);
        offset += take;
        this.dataLeft -= take;
        this.messageLeft -= take;
        if (this.dataLeft === 0) {
          this.state = this.afterField();
        }
      }
    }
  }

  /** True when no frame, field or data is half-received. */
  get atBoundary(): boolean {
    return this.state === "prefix" && this.header.length === 0;
  }

  digestBase64(): string {
    if (this.hash === undefined) {
      throw new Error("the data went to its consumer, not to a hash");
    }
    return this.hash.digest("base64");
  }

  private afterField(): "prefix" | "field" {
    return this.messageLeft === 0 ? "prefix" : "field";
  }
}

function decodeVarint(bytes: readonly number[], from: number): number {
  let value = 0;
  let scale = 1;
  for (let i = from; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    value += (byte & 0x7f) * scale;
    scale *= 128;
  }
  return value;
}
