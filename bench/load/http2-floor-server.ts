/**
 * For investigations (BENCH_FLOOR=http2): a floor below grpc-js. node:http2 alone answers every
 * call with a fixed reply after reading the request stream to its end; each CreateVersion request
 * message is cut out of its gRPC frame and decoded by protobuf-es, as floor-server.ts decodes it,
 * so the difference between the two floors is grpc-js's per-call machinery (its call objects,
 * interceptor chain, streams and metadata handling). The same response headers and trailers as
 * grpc-js sends (`grpc-status: 0`, `grpc-message: OK`); no deadlines, compression or size limits.
 *
 * Started like src/main.js (COGMENT_MODEL_REGISTRY_PORT, 0 by default), it prints the same
 * "model registry serving" JSON line with the bound port.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CreateVersionReplySchema, CreateVersionRequestChunkSchema, ModelVersionInfoSchema } from "../../src/gen/cogment/api/model_registry_pb.js";
import { grpcFrame } from "./small-requests.js";

const CREATE_VERSION_PATH = "/cogmentAPI.ModelRegistrySP/CreateVersion";
/** What floor-server.ts answers to CreateVersion. */
const CREATE_VERSION_REPLY = grpcFrame(
  toBinary(
    CreateVersionReplySchema,
    create(CreateVersionReplySchema, {
      versionInfo: create(ModelVersionInfoSchema, {
        modelId: "bench-model",
        versionNumber: 1,
        creationTimestamp: 1_764_000_000_000_000_000n,
        dataHash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        dataSize: 1024n,
      }),
    }),
  ),
);
/** An empty message: every other reply the bench needs (CreateOrUpdateModel's) is empty. */
const EMPTY_REPLY = grpcFrame(new Uint8Array(0));
const RESPONSE_HEADERS = {
  ":status": 200,
  "content-type": "application/grpc+proto",
  "grpc-accept-encoding": "identity,deflate,gzip",
  "grpc-encoding": "identity",
};
const TRAILERS = { "grpc-status": "0", "grpc-message": "OK" };
const FRAME_PREFIX = 5;

function serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  const decodes = headers[":path"] === CREATE_VERSION_PATH;
  let pending: Buffer = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    pending = pending.byteLength === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.byteLength >= FRAME_PREFIX) {
      const end = FRAME_PREFIX + pending.readUInt32BE(1);
      if (pending.byteLength < end) {
        break;
      }
      if (decodes) {
        fromBinary(CreateVersionRequestChunkSchema, pending.subarray(FRAME_PREFIX, end));
      }
      pending = pending.subarray(end);
    }
  });
  stream.on("error", () => {});
  stream.on("end", () => {
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(TRAILERS));
    stream.end(decodes ? CREATE_VERSION_REPLY : EMPTY_REPLY);
  });
}

function main(): void {
  const server = http2.createServer();
  server.on("stream", serve);
  server.listen(Number(process.env.COGMENT_MODEL_REGISTRY_PORT ?? "0"), "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ level: 30, msg: "model registry serving", port })}\n`);
  });
  const stop = (): void => {
    setTimeout(() => process.exit(0), 1000).unref();
    server.close(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
