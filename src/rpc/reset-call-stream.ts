import { constants } from "node:http2";
import { handlerCallStream } from "./grpc-internals.js";

/**
 * Resets the HTTP/2 stream under a grpc-js server call with RST_STREAM(CANCEL): the messages still
 * queued for it are dropped at once, which no status can do (trailers wait behind queued data that a
 * client no longer reads). grpc-js clients report CANCELLED. grpc-js (1.14) has no public way to
 * reach the stream (grpc-internals.ts follows its call chain); false when a grpc-js upgrade changed
 * that shape.
 */
export function resetCallStream(call: object): boolean {
  const stream = handlerCallStream(call);
  if (stream === undefined) {
    return false;
  }
  if (!stream.closed && !stream.destroyed) {
    stream.close(constants.NGHTTP2_CANCEL);
  }
  return true;
}
