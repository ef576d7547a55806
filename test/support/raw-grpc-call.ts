/**
 * gRPC calls of raw request bytes over node:http2 (no gRPC library between the test and the wire),
 * and the protobuf pieces to build them: for requests a gRPC client would never send (messages cut
 * short, two where one is due, strings that are not UTF-8, requests of millions of entries).
 */
import { type IncomingHttpHeaders, connect } from "node:http2";

const SERVICE = "/cogmentAPI.ModelRegistrySP/";

export interface RawCallOutcome {
  /** grpc-status, or undefined when none came back. */
  readonly code: number | undefined;
  /** grpc-message, percent-decoded. */
  readonly details: string | undefined;
}

export function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** A length-delimited protobuf field. */
export function field(number: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.byteLength), bytes]);
}

/** A varint protobuf field. */
export function varintField(number: number, value: number): Buffer {
  return Buffer.concat([varint(number << 3), varint(value)]);
}

/** A gRPC message: the 5-byte prefix (not compressed, length) and the message. */
export function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([prefix, message]);
}

/**
 * Sends `bytes` as they are as the request stream of `path` (then END_STREAM) and reads the status;
 * a stream or session error leaves the code undefined.
 */
export function rawCallAtPath(address: string, path: string, bytes: Buffer): Promise<RawCallOutcome> {
  return new Promise((resolve) => {
    const session = connect(`http://${address}`);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => undefined);
    let answer: IncomingHttpHeaders | undefined;
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) {
        answer = headers; // a status without a message: trailers-only
      }
    });
    stream.on("trailers", (trailers) => (answer = trailers));
    stream.resume();
    stream.on("close", () => {
      session.destroy();
      const message = answer?.["grpc-message"];
      resolve({
        code: answer === undefined ? undefined : Number(answer["grpc-status"]),
        details: typeof message === "string" ? decodeURIComponent(message) : undefined,
      });
    });
    stream.end(bytes);
  });
}

/** rawCallAtPath for a method of cogmentAPI.ModelRegistrySP. */
export function rawGrpcCall(address: string, method: string, bytes: Buffer): Promise<RawCallOutcome> {
  return rawCallAtPath(address, SERVICE + method, bytes);
}
