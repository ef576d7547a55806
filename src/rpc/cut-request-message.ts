import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";
import { type RegistryError, invalidArgument } from "../errors/index.js";

/** A gRPC message the request stream ended inside: its bytes received and its size, prefix included. */
export interface CutMessage {
  readonly receivedBytes: number;
  readonly frameBytes: number;
}

/**
 * INVALID_ARGUMENT for a CreateVersion request stream that ended inside a message (whichever path
 * served it: the fast path's GrpcFrameReader or grpc-js's, followed by GrpcFramePosition).
 */
export function cutRequestMessage(cut: CutMessage): RegistryError {
  const { receivedBytes, frameBytes } = cut;
  const where =
    receivedBytes < GRPC_FRAME_PREFIX_LENGTH
      ? `a message's ${GRPC_FRAME_PREFIX_LENGTH}-byte length prefix: ${receivedBytes} of its ${GRPC_FRAME_PREFIX_LENGTH} bytes`
      : `a message: ${receivedBytes - GRPC_FRAME_PREFIX_LENGTH} of its ${frameBytes - GRPC_FRAME_PREFIX_LENGTH} bytes`;
  return invalidArgument(`CreateVersion: the request stream ended inside ${where} were received`);
}

/**
 * Where a request stream's bytes stand among its gRPC messages (5-byte prefix: compressed flag,
 * 32-bit length), keeping none of them: grpc-js hands over whole messages only and ends the call
 * the same way whether the stream ended between two messages or inside one.
 */
export class GrpcFramePosition {
  /** Bytes of the prefix being read (0 between messages and while a message's payload is read). */
  #prefixBytes = 0;
  /** The announced length, gathered from the prefix's bytes 1 to 4. */
  #length = 0;
  /** Size of the message being read, prefix included; 0 while none is (between messages or in its prefix). */
  #frameBytes = 0;
  #frameReceived = 0;

  /** The next bytes of the request stream. */
  advance(data: Uint8Array): void {
    let at = 0;
    const end = data.byteLength;
    while (at < end) {
      if (this.#frameBytes === 0) {
        if (this.#prefixBytes > 0) {
          this.#length = this.#length * 256 + (data[at] as number);
        }
        this.#prefixBytes += 1;
        at += 1;
        if (this.#prefixBytes === GRPC_FRAME_PREFIX_LENGTH) {
          // An empty message is whole with its prefix.
          this.#frameBytes = this.#length === 0 ? 0 : GRPC_FRAME_PREFIX_LENGTH + this.#length;
          this.#frameReceived = GRPC_FRAME_PREFIX_LENGTH;
          this.#prefixBytes = 0;
          this.#length = 0;
        }
        continue;
      }
      const taken = Math.min(this.#frameBytes - this.#frameReceived, end - at);
      at += taken;
      this.#frameReceived += taken;
      if (this.#frameReceived === this.#frameBytes) {
        this.#frameBytes = 0;
      }
    }
  }

  /** The message the bytes so far end inside, undefined between messages. */
  get incomplete(): CutMessage | undefined {
    if (this.#prefixBytes > 0) {
      return { receivedBytes: this.#prefixBytes, frameBytes: GRPC_FRAME_PREFIX_LENGTH };
    }
    return this.#frameBytes > 0 ? { receivedBytes: this.#frameReceived, frameBytes: this.#frameBytes } : undefined;
  }
}
