import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";

/**
 * What a message spread over several pieces of data may be given at first: one HTTP/2 DATA frame
 * at this server's SETTINGS_MAX_FRAME_SIZE (node:http2's default, 16 KiB). A smaller message gets
 * exactly its own size.
 */
export const MIN_MESSAGE_CAPACITY = 16 * 1024;
/**
 * A spread message's buffer grows to this many times the bytes received of it (at least
 * MIN_MESSAGE_CAPACITY), never beyond its announced length: the length is the client's word, so a
 * 5-byte prefix announcing 64 MiB gets 16 KiB, not 64 MiB.
 */
export const MESSAGE_GROWTH = 4;
/**
 * Once 1/ANNOUNCED_SHARE of a message has arrived, its buffer is made at its announced length at
 * once: a 1 MiB message in 16 KiB DATA frames is copied into 64 KiB, then into its final 1 MiB
 * buffer, instead of also through a 320 KiB one (an allocation and a copy fewer per message). So a
 * buffer is at most ANNOUNCED_SHARE times the bytes received (or MIN_MESSAGE_CAPACITY); the part
 * not yet written is address space, not resident memory (Buffer.allocUnsafeSlow does not fill it).
 */
export const ANNOUNCED_SHARE = 16;

/** A message cut short: the bytes of its frame received, and the frame's length (prefix included). */
export interface IncompleteMessage {
  readonly receivedBytes: number;
  readonly frameBytes: number;
}

/** ES2024's ArrayBuffer.transfer, which the project's TypeScript lib (ES2023) does not declare. */
interface DetachableArrayBuffer extends ArrayBuffer {
  transfer(newByteLength?: number): ArrayBuffer;
}

const NO_MESSAGE = Buffer.alloc(0);

/**
 * Cuts the gRPC messages (5-byte prefix: compressed flag, 32-bit length) out of a request stream's
 * data, as grpc-js's StreamDecoder (1.14) does, with its limit and its error: a message whose
 * announced length is over `maxMessageBytes` (-1: no limit) throws
 * "Received message larger than max (N vs M)" as soon as its prefix is read, and the messages cut
 * from the same data before it are dropped. A message within one piece of data is a view of it
 * (grpc-js copies every one). One spread over several is copied, piece by piece as they come, into
 * one buffer of its own that ends at exactly its size: the memory held for an incomplete message
 * follows the bytes received, whatever the number of pieces (grpc-js keeps a view per piece, ~120
 * bytes of memory per piece: a message sent in 1-byte DATA frames cost the server ~126 bytes per
 * byte). The buffer given is its ArrayBuffer's only view, so the upload can free it at once
 * (release-received-bytes.ts).
 * Gives the messages with their prefix, as grpc-js does; the compressed flag is left to the caller.
 */
export class GrpcFrameReader {
  readonly #maxMessageBytes: number;
  /** The first bytes of a prefix split between two pieces of data (made when first needed: most calls never split one). */
  #prefix: Buffer | undefined = undefined;
  #prefixBytes = 0;
  /** The message being read when it spans several pieces of data, prefix included; its length is its capacity. */
  #message: Buffer = NO_MESSAGE;
  /** Bytes of #message received so far. */
  #messageBytes = 0;
  /** Bytes of the message being read (prefix included); 0 while its prefix is read. */
  #frameBytes = 0;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Bytes of memory held for the message being read (its buffer and the split prefix's), for tests and accounting. */
  get heldBytes(): number {
    return this.#message.byteLength + (this.#prefix?.byteLength ?? 0);
  }

  /**
   * The message being read, cut short if the data ends here: its bytes received and its size (prefix
   * included; the prefix's 5 bytes while the prefix itself is incomplete); undefined between messages.
   */
  get incomplete(): IncompleteMessage | undefined {
    if (this.#prefixBytes > 0) {
      return { receivedBytes: this.#prefixBytes, frameBytes: GRPC_FRAME_PREFIX_LENGTH };
    }
    return this.#frameBytes > 0 ? { receivedBytes: this.#messageBytes, frameBytes: this.#frameBytes } : undefined;
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
          this.#append(data, at, end);
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
        this.#append(prefix, 0, GRPC_FRAME_PREFIX_LENGTH);
        if (this.#frameBytes === GRPC_FRAME_PREFIX_LENGTH) {
          (messages ??= []).push(this.#takeMessage());
        }
        continue;
      }
      const take = Math.min(this.#frameBytes - this.#messageBytes, end - at);
      this.#append(data, at, at + take);
      at += take;
      if (this.#messageBytes === this.#frameBytes) {
        (messages ??= []).push(this.#takeMessage());
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

  /** Copies `source[from, to)` (never past the message's end) into the message's buffer, grown first if needed. */
  #append(source: Buffer, from: number, to: number): void {
    const filled = this.#messageBytes + (to - from);
    if (filled > this.#message.byteLength) {
      this.#grow(filled);
    }
    source.copy(this.#message, this.#messageBytes, from, to);
    this.#messageBytes = filled;
  }

  /** A buffer for at least `needed` bytes: GROWTH times them (or MIN_MESSAGE_CAPACITY), the message's size once a share of it came. */
  #grow(needed: number): void {
    const frameBytes = this.#frameBytes;
    const capacity = needed * ANNOUNCED_SHARE >= frameBytes ? frameBytes : Math.min(frameBytes, Math.max(needed * MESSAGE_GROWTH, MIN_MESSAGE_CAPACITY));
    // Never a slice of Node's shared pool: the message must be its buffer's only view.
    const grown = Buffer.allocUnsafeSlow(capacity);
    const old = this.#message;
    if (this.#messageBytes > 0) {
      old.copy(grown, 0, 0, this.#messageBytes);
      // Ours alone, and dead now: freed at once rather than at the next collection.
      (old.buffer as DetachableArrayBuffer).transfer(0);
    }
    this.#message = grown;
  }

  #takeMessage(): Buffer {
    const message = this.#message;
    this.#message = NO_MESSAGE;
    this.#messageBytes = 0;
    this.#frameBytes = 0;
    return message;
  }
}
