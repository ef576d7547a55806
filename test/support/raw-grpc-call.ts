/**
 * One gRPC call of raw request bytes over node:http2 (no gRPC library between the test and the
 * wire): for requests a gRPC client would never send (messages cut short, two where one is due,
 * bytes that are not valid UTF-8 where a string is).
 */
import { type IncomingHttpHeaders, connect } from "node:http2";

const SERVICE = "/cogmentAPI.ModelRegistrySP/";

export interface RawCallOutcome {
  /** grpc-status, or undefined when none came back. */
  readonly code: number | undefined;
  /** grpc-message, percent-decoded. */
  readonly details: string | undefined;
}

/** A gRPC message: the 5-byte prefix (not compressed, length) and the message. */
export function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([prefix, message]);
}

/** A protobuf length-delimited field (`number` < 16, `bytes` < 128 bytes). */
export function lengthDelimited(number: number, bytes: Buffer): Buffer {
  if (number >= 16 || bytes.byteLength >= 128) {
    throw new Error("lengthDelimited: field number < 16 and fewer than 128 bytes only");
  }
  return Buffer.concat([Buffer.from([(number << 3) | 2, bytes.byteLength]), bytes]);
}

/** Sends `bytes` as the request stream of `method` (then END_STREAM) and reads the status. */
export function rawGrpcCall(address: string, method: string, bytes: Buffer): Promise<RawCallOutcome> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://${address}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": SERVICE + method, "content-type": "application/grpc", te: "trailers" });
    stream.on("error", reject);
    let answer: IncomingHttpHeaders | undefined;
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) {
        answer = headers; // a status without a message: trailers-only
      }
    });
    stream.on("trailers", (trailers) => (answer = trailers));
    stream.resume();
    stream.on("close", () => {
      session.close();
      const message = answer?.["grpc-message"];
      resolve({
        code: answer === undefined ? undefined : Number(answer["grpc-status"]),
        details: typeof message === "string" ? decodeURIComponent(message) : undefined,
      });
    });
    stream.end(bytes);
  });
}
