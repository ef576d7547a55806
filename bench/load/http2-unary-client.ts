/**
 * A lean client for small calls over node:http2: one connection, requests given as
 * whole gRPC messages, the reply checked for a gRPC status of OK and at least one
 * message, not decoded. A Go load generator costs the box little per call; grpc-js's
 * client costs about as much as the server, so on 2 shared cores it would set the
 * pace. The same bytes on the wire as a grpc-js client (the metadata group measures
 * with grpc-js clients, for comparison).
 */
import * as http2 from "node:http2";
import { GrpcStatusError, watchGrpcStatus } from "./grpc-call-status.js";

export class Http2UnaryClient {
  private readonly session: http2.ClientHttp2Session;

  constructor(address: string) {
    this.session = http2.connect(`http://${address}`);
    this.session.on("error", () => {});
  }

  close(): void {
    this.session.close();
  }

  /** Sends `body` (one or more gRPC messages) on a new stream and resolves with the reply's byte count. */
  unary(path: string, body: Buffer, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const request = this.session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
      request.setTimeout(timeoutMs, () => request.close(http2.constants.NGHTTP2_CANCEL));
      let replyBytes = 0;
      const failure = watchGrpcStatus(request);
      request.on("data", (chunk: Buffer) => (replyBytes += chunk.byteLength));
      request.on("error", () => {});
      request.on("close", () => {
        const error = failure();
        if (error !== undefined) {
          reject(error);
        } else if (replyBytes < 5) {
          reject(new GrpcStatusError(13, "OK without a reply message"));
        } else {
          resolve(replyBytes);
        }
      });
      request.end(body);
    });
  }
}
