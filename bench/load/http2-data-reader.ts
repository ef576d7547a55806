/**
 * A lean RetrieveVersionData client over node:http2, for readers that must not
 * be the bottleneck: the same gRPC call on the wire as a grpc-js client, but the
 * data is hashed straight out of the received frames (GrpcFrameHasher) instead
 * of being reassembled into messages and decoded. On 2 cores every CPU-second
 * the load generators save is one the server can use.
 */
import * as http2 from "node:http2";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { sharedNow } from "../support/clock.js";
import type { FetchedData } from "../support/bench-client.js";
import { GrpcStatusError, watchGrpcStatus } from "./grpc-call-status.js";
import { GrpcFrameHasher } from "./grpc-frame-hasher.js";

const PATH = "/cogmentAPI.ModelRegistrySP/RetrieveVersionData";

export class Http2DataReader {
  private readonly session: http2.ClientHttp2Session;

  /** `windowBytes`: the HTTP/2 receive window, per stream and for the connection. */
  constructor(address: string, windowBytes: number) {
    const settings: http2.Settings = windowBytes > 0 ? { initialWindowSize: windowBytes } : {};
    this.session = http2.connect(`http://${address}`, { settings });
    this.session.on("error", () => {});
    if (windowBytes > 0) {
      this.session.once("connect", () => this.session.setLocalWindowSize(windowBytes));
    }
  }

  close(): void {
    this.session.close();
  }

  fetch(modelId: string, versionNumber: number, onChunk?: (length: number, at: number) => void, deadline?: number): Promise<FetchedData> {
    return new Promise((resolve, reject) => {
      const request = this.session.request({
        ":method": "POST",
        ":path": PATH,
        "content-type": "application/grpc",
        te: "trailers",
      });
      const timer =
        deadline === undefined
          ? undefined
          : setTimeout(() => {
              request.close(http2.constants.NGHTTP2_CANCEL);
              reject(new GrpcStatusError(4, "deadline exceeded (bench reader)"));
            }, Math.max(0, deadline - sharedNow()));
      const hasher = new GrpcFrameHasher();
      let lastByteAt = sharedNow();
      const failure = watchGrpcStatus(request);
      request.on("data", (chunk: Buffer) => {
        try {
          hasher.push(chunk, (length) => {
            lastByteAt = sharedNow();
            onChunk?.(length, lastByteAt);
          });
        } catch (error) {
          request.close(http2.constants.NGHTTP2_CANCEL);
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      request.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.on("close", () => {
        clearTimeout(timer);
        const error = failure();
        if (error !== undefined) {
          reject(error);
        } else if (!hasher.atBoundary) {
          reject(new GrpcStatusError(13, "response ended inside a message"));
        } else {
          resolve({ bytes: hasher.dataBytes, lastByteAt, hashBase64: hasher.digestBase64() });
        }
      });
      const body = new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId).tag(2, WireType.Varint).int32(versionNumber).finish();
      const frame = Buffer.allocUnsafe(5 + body.byteLength);
      frame.writeUInt8(0, 0);
      frame.writeUInt32BE(body.byteLength, 1);
      frame.set(body, 5);
      request.end(frame);
    });
  }
}
