import type { Readable } from "node:stream";

/**
 * Lets a grpc-js server call read at most one message ahead of its handler. grpc-js (1.14) builds
 * its request streams with Node's object-mode default of 16 messages read ahead, each up to the
 * receive limit (64 MiB here), all of it outside the memory budget; an upload that waits for the
 * disk (a streamed archived upload) would let them pile up. With one message ahead, what a slow
 * upload holds beyond its own buffer is one message plus its HTTP/2 stream window: grpc-js pauses
 * the HTTP/2 stream after every message until the next is asked for, so the client waits (flow
 * control). Node has no public setter for a readable's high-water mark; without the internal field
 * (a Node upgrade) this does nothing.
 */
export function readOneMessageAhead(call: Readable): void {
  const state = (call as unknown as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (state !== undefined && typeof state.highWaterMark === "number") {
    state.highWaterMark = 1;
  }
}
