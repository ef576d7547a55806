import { GRPC_FRAME_PREFIX_LENGTH } from "../data/index.js";
import type { Logger } from "../logger.js";
import { wrapMessageFraming } from "./grpc-internals.js";

/**
 * Sending stored gRPC frames as they are.
 *
 * grpc-js (1.14) frames every outgoing message by allocating a new buffer of
 * 5 + length bytes and copying the serialized message into it. For
 * RetrieveVersionData that copy was a third of the server's CPU and a per-reader
 * copy of every chunk in memory. Versions are stored already framed
 * (data/chunk-layout.ts), so a method whose serializer is marked here hands the
 * stored frame to the HTTP/2 stream unchanged: grpc-js's framing is wrapped
 * (grpc-internals.ts) to recognise such methods. Every other method, and any
 * value that is not a well-formed uncompressed frame, goes through grpc-js's own
 * code. If a grpc-js upgrade moves that method, we log and keep grpc-js's copying
 * path: slower, still correct (the marked serializer strips the prefix for it).
 */

const PRE_FRAMED = Symbol("cogment-ts.preFramed");

type FrameSerializer = ((frame: Buffer) => Buffer) & { readonly [PRE_FRAMED]: true };

/** A response serializer for values that are whole gRPC frames (see EncodedVersionData.frames). */
export function frameSerializer(): FrameSerializer {
  const strip = (frame: Buffer): Buffer => frame.subarray(GRPC_FRAME_PREFIX_LENGTH);
  return Object.assign(strip, { [PRE_FRAMED]: true as const });
}

/** An uncompressed gRPC frame whose length prefix matches its size. */
export function isWellFormedFrame(value: unknown): value is Buffer {
  return (
    Buffer.isBuffer(value) &&
    value.byteLength >= GRPC_FRAME_PREFIX_LENGTH &&
    value[0] === 0 &&
    value.readUInt32BE(1) === value.byteLength - GRPC_FRAME_PREFIX_LENGTH
  );
}

let installed = false;

/** Wraps grpc-js's message framing once per process; true when frames are now sent without a copy. */
export function installPreFramedSending(log: Logger): boolean {
  if (installed) {
    return true;
  }
  if (!wrapMessageFraming(sendsAsIs)) {
    log.warn("grpc-js internals changed: version data is sent through grpc-js's copying path");
    return false;
  }
  installed = true;
  return true;
}

function sendsAsIs(serialize: unknown, value: unknown): value is Buffer {
  return typeof serialize === "function" && (serialize as Partial<FrameSerializer>)[PRE_FRAMED] === true && isWellFormedFrame(value);
}
