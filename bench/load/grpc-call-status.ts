/**
 * The gRPC status of a call made on a bare node:http2 stream (the bench's lean clients): read from
 * the response headers (a trailers-only reply) or the trailers.
 */
import type * as http2 from "node:http2";

/** A gRPC status other than OK, with its code (like grpc-js's ServiceError). */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    details: string,
  ) {
    super(`gRPC status ${code}: ${details}`);
  }
}

/**
 * Watches `request` for its gRPC status; the function returned, called once the stream closed, gives
 * the call's failure: none for OK, UNAVAILABLE when the stream closed without a status.
 */
export function watchGrpcStatus(request: http2.ClientHttp2Stream): () => GrpcStatusError | undefined {
  let status: string | undefined;
  let message = "";
  const readStatus = (headers: http2.IncomingHttpHeaders): void => {
    const value = headers["grpc-status"];
    if (typeof value === "string") {
      status = value;
      message = String(headers["grpc-message"] ?? "");
    }
  };
  request.on("response", readStatus);
  request.on("trailers", readStatus);
  return () => {
    if (status === undefined) {
      return new GrpcStatusError(14, `stream closed without a gRPC status (HTTP/2 code ${request.rstCode})`);
    }
    return status === "0" ? undefined : new GrpcStatusError(Number(status), decodeURIComponent(message));
  };
}
