/*
 * The memory of a received upload message, given back as soon as its bytes were copied.
 *
 * grpc-js reassembles every request message over 4 KiB into a buffer of its own (Buffer.concat of
 * the HTTP/2 DATA chunks: the 5-byte gRPC prefix and the message), and a body message's data_chunk
 * is a view of it. Once the upload copied the data into the version's memory that buffer is dead,
 * but V8 frees an ArrayBuffer's memory only when a collection finds it unreachable: under 4
 * publishers of 1 MiB versions, 1 MiB of dead buffers per MiB received, which filled V8's external
 * memory allowance, started its incremental marking again and again, and made the memory guard's
 * forced young collections full mark-compacts (issue #15, docs/performance.md). Detaching the
 * buffer (`transfer(0)`) frees its memory at once, and the next message's buffer reuses the same,
 * already mapped, pages.
 *
 * CreateVersion served below grpc-js (create-version-stream.ts) cuts its messages with GrpcFrameReader:
 * one spread over several DATA chunks is copied into a buffer of its own, one within a chunk is a
 * view of node:http2's read buffer, which other streams' bytes may share. A message of
 * MIN_RELEASED_BYTES or more is never within one chunk: this server accepts DATA frames of at most
 * 16 KiB (node:http2's default SETTINGS_MAX_FRAME_SIZE, which the server does not raise).
 *
 * Only a buffer that can hold nothing but this message is detached: a view of at least
 * MIN_RELEASED_BYTES (far above Node's pooled 4 KiB slices) covering its whole ArrayBuffer but for
 * at most FRAMING_MAX_BYTES (the gRPC prefix, the tags and lengths of `body` and `data_chunk`).
 * Anything else (a SharedArrayBuffer, a slice of a larger buffer) is left to the garbage collector.
 */

/** Smaller views are left alone: a detach saves nothing there, and small buffers may be pooled slices. */
export const MIN_RELEASED_BYTES = 64 * 1024;
/**
 * What a message buffer may hold besides the data: 5 bytes of gRPC prefix, and two tags with
 * lengths of at most 5 bytes each (CreateVersionRequestChunk.body.data_chunk): 17 bytes, rounded up.
 */
export const FRAMING_MAX_BYTES = 32;

/** ES2024's ArrayBuffer members, which the project's TypeScript lib (ES2023) does not declare. */
interface DetachableArrayBuffer extends ArrayBuffer {
  readonly detached: boolean;
  transfer(newByteLength?: number): ArrayBuffer;
}

/**
 * Frees the memory of `bytes`'s buffer now when that buffer holds only this received message; the
 * caller must hold no other view of it and must not read `bytes` again. True when freed.
 */
export function releaseReceivedBytes(bytes: Uint8Array): boolean {
  const buffer = bytes.buffer;
  if (
    bytes.byteLength < MIN_RELEASED_BYTES ||
    !(buffer instanceof ArrayBuffer) ||
    (buffer as DetachableArrayBuffer).detached ||
    buffer.byteLength - bytes.byteLength > FRAMING_MAX_BYTES
  ) {
    return false;
  }
  try {
    (buffer as DetachableArrayBuffer).transfer(0);
    return true;
  } catch {
    return false; // a buffer its creator made non-detachable
  }
}
