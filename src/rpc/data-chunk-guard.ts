/*
 * A bound on what a request stream's DATA costs per byte, whatever method it calls.
 *
 * node:http2 hands each DATA frame's data (each piece of it within one socket read) to the stream
 * as a Buffer of its own, a view of the socket read that holds it; whoever reads the stream keeps
 * those until a message is whole (grpc-js's StreamDecoder keeps one view per piece), and the
 * stream's readable buffer keeps them while it is paused (grpc-js pauses it while a message is
 * handled, CreateVersion while the registry waits; the stream's receive window, 8 MiB by default,
 * is what the client may send meanwhile). Each costs ~120 bytes of memory besides its data: a
 * client sending a message in 1-byte DATA frames made the server hold ~126 bytes per byte, so one
 * 64 MiB message (the receive limit) would take ~8 GB. No option of grpc-js or node:http2 bounds
 * this (maxSessionMemory counts received data only while node:http2 parses it).
 *
 * So a stream may receive FREE_DATA_CHUNKS pieces of any size; beyond those its pieces must average
 * MIN_AVERAGE_DATA_BYTES or more, which bounds the pieces' overhead to about twice the data. A
 * stream going under is reset with ENHANCE_YOUR_CALM (clients report RESOURCE_EXHAUSTED; grpc-js:
 * "Bandwidth exhausted or memory limit exceeded"), its piece dropped, its call cancelled as for any
 * reset. Stock clients send each message in one DATA frame, or in frames of 16 KiB.
 */
import { type ServerHttp2Stream, constants } from "node:http2";

/** DATA pieces a stream may receive whatever their size (a request in small frames stays fine). */
export const FREE_DATA_CHUNKS = 4096;
/** Beyond FREE_DATA_CHUNKS, the least average size of a stream's DATA pieces, in bytes. */
export const MIN_AVERAGE_DATA_BYTES = 64;

/** What a reset stream had received, the piece that went over included. */
export interface TinyDataChunks {
  readonly chunks: number;
  readonly bytes: number;
}

type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * Watches the DATA pieces node:http2 pushes into `stream` (its readable side: `push`, called for
 * each, before any listener or buffer sees it) and resets the stream when they go under the
 * average; `onReset` (one callback for every stream) is told once, with `context`.
 */
export function guardDataChunks<Context>(
  stream: ServerHttp2Stream,
  context: Context,
  onReset: (context: Context, received: TinyDataChunks) => void,
): void {
  const push = stream.push as Push;
  let chunks = 0;
  let bytes = 0;
  let reset = false;
  stream.push = function pushGuarded(this: ServerHttp2Stream, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) {
      if (reset) {
        return false;
      }
      chunks++;
      bytes += (chunk as Uint8Array).byteLength;
      if (chunks > FREE_DATA_CHUNKS && bytes < chunks * MIN_AVERAGE_DATA_BYTES) {
        reset = true;
        this.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
        onReset(context, { chunks, bytes });
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  } as ServerHttp2Stream["push"];
}
