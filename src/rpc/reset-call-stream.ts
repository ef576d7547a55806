import { type ServerHttp2Stream, constants } from "node:http2";

/**
 * Resets the HTTP/2 stream under a grpc-js server call with RST_STREAM(CANCEL): the messages still
 * queued for it are dropped at once, which no status can do (trailers wait behind queued data that a
 * client no longer reads). grpc-js clients report CANCELLED. grpc-js (1.14) has no public way to
 * reach the stream, so we follow its call chain (ServerWritableStreamImpl.call → the interceptors'
 * `nextCall` → BaseServerInterceptingCall.stream); false when a grpc-js upgrade changed that shape.
 */
export function resetCallStream(call: object): boolean {
  let link: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 16 && typeof link === "object" && link !== null; depth++) {
    const stream = (link as { stream?: unknown }).stream;
    if (isServerStream(stream)) {
      if (!stream.closed && !stream.destroyed) {
        stream.close(constants.NGHTTP2_CANCEL);
      }
      return true;
    }
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return false;
}

function isServerStream(value: unknown): value is ServerHttp2Stream {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { close?: unknown }).close === "function" &&
    typeof (value as { respond?: unknown }).respond === "function"
  );
}
