import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";

/**
 * Cuts the gRPC messages (5-byte prefix: compressed flag, 32-bit length) out of a request stream's
 * data, as grpc-js's StreamDecoder (1.14) does, with its limit and its error: a message whose
 * announced length is over `maxMessageBytes` (-1: no limit) throws
 * "Received message larger than max (N vs M)" as soon as its prefix is read, and the messages cut
 * from the same data before it are dropped. A message within one piece of data is a view of it
 * (grpc-js copies every one); one spread over several is copied once.
 * Gives the messages with their prefix, as grpc-js does; the compressed flag is left to the caller.
 */
export class GrpcFrameReader {
  readonly #maxMessageBytes: number;
  /** The first bytes of a prefix split between two pieces of data (made when first needed: most calls never split one). */
  #prefix: Buffer | undefined = undefined;
  #prefixBytes = 0;
  /** Pieces of the message being read, prefix included, when it spans several pieces of data. */
  #parts: Buffer[] = [];
  #partsBytes = 0;
  /** Bytes of the message being read (prefix included); 0 while its prefix is read. */
  #frameBytes = 0;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** The whole messages completed by `data`, in order. */
  write(data: Buffer): Buffer[] {
    // Made with its first message: a literal holds one element, where `[]` and push reserve 17.
    let messages: Buffer[] | undefined;
    let at = 0;
    const end = data.byteLength;
    while (at < end) {
      if (this.#frameBytes === 0) {
        if (this.#prefixBytes === 0 && end - at >= GRPC_FRAME_PREFIX_LENGTH) {
          // The common case: the whole prefix, perhaps the whole message, in this piece.
          const frameBytes = this.#frameLength(data.readUInt32BE(at + 1));
          if (end - at >= frameBytes) {
            const message = data.subarray(at, at + frameBytes);
            if (messages === undefined) {
              messages = [message];
            } else {
              messages.push(message);
            }
            at += frameBytes;
            continue;
          }
          this.#frameBytes = frameBytes;
          this.#parts = [data.subarray(at)];
          this.#partsBytes = end - at;
          return messages ?? [];
        }
        const prefix = (this.#prefix ??= Buffer.alloc(GRPC_FRAME_PREFIX_LENGTH));
        const take = Math.min(GRPC_FRAME_PREFIX_LENGTH - this.#prefixBytes, end - at);
        data.copy(prefix, this.#prefixBytes, at, at + take);
        this.#prefixBytes += take;
        at += take;
        if (this.#prefixBytes < GRPC_FRAME_PREFIX_LENGTH) {
          return messages ?? [];
        }
        this.#prefixBytes = 0;
        this.#frameBytes = this.#frameLength(prefix.readUInt32BE(1));
        this.#parts = [Buffer.from(prefix)];
        this.#partsBytes = GRPC_FRAME_PREFIX_LENGTH;
        if (this.#frameBytes === GRPC_FRAME_PREFIX_LENGTH) {
          (messages ??= []).push(this.#takeFrame());
        }
        continue;
      }
      const take = Math.min(this.#frameBytes - this.#partsBytes, end - at);
      this.#parts.push(data.subarray(at, at + take));
      this.#partsBytes += take;
      at += take;
      if (this.#partsBytes === this.#frameBytes) {
        (messages ??= []).push(this.#takeFrame());
      }
    }
    return messages ?? [];
  }

  #frameLength(messageBytes: number): number {
    if (this.#maxMessageBytes !== -1 && messageBytes > this.#maxMessageBytes) {
      throw new Error(`Received message larger than max (${messageBytes} vs ${this.#maxMessageBytes})`);
    }
    return GRPC_FRAME_PREFIX_LENGTH + messageBytes;
  }

  #takeFrame(): Buffer {
    const frame = Buffer.concat(this.#parts, this.#frameBytes);
    this.#parts = [];
    this.#partsBytes = 0;
    this.#frameBytes = 0;
    return frame;
  }
}
