/*
 * Which calls are served below grpc-js's call machinery (grpc-internals.ts: divertStreams): a plain
 * gRPC request (content type `application/grpc` or `application/grpc+proto`, no `grpc-encoding` but
 * `identity`, at most one `grpc-timeout`) of a method that has a route here, while the server is not
 * draining. Anything else, and every call once the server drains, goes to grpc-js unchanged.
 */
import { type IncomingHttpHeaders, type ServerHttp2Stream, constants } from "node:http2";
import type { DivertedStreams } from "./grpc-internals.js";

/** Serves one call from its HTTP/2 stream; `timeout` is its `grpc-timeout` header, if any. */
export type ServeDiverted = (stream: ServerHttp2Stream, timeout: string | undefined) => void;

export interface FastPath extends DivertedStreams {
  /** Calls of the method (its path) served here so far: tests check that they went this way. */
  served(path: string): number;
  /** From now on every call goes to grpc-js (the server drains: calls running here finish here). */
  stopTaking(): void;
}

interface Route {
  readonly serve: ServeDiverted;
  served: number;
}

/** Whether the call is a plain gRPC request this path serves as grpc-js would (its method aside). */
function plainRequest(headers: IncomingHttpHeaders): boolean {
  const timeout = headers["grpc-timeout"];
  // One value: grpc-js reads the first of several, which node:http2 gives joined.
  if (timeout !== undefined && (typeof timeout !== "string" || timeout.includes(","))) {
    return false;
  }
  const contentType = headers[constants.HTTP2_HEADER_CONTENT_TYPE];
  const encoding = headers["grpc-encoding"];
  return (contentType === "application/grpc" || contentType === "application/grpc+proto") && (encoding === undefined || encoding === "identity");
}

/** The dispatcher for divertStreams: each method path to the function that serves it. */
export function fastPath(routes: ReadonlyMap<string, ServeDiverted>): FastPath {
  const byPath = new Map<string, Route>([...routes].map(([path, serve]) => [path, { serve, served: 0 }]));
  let taking = true;
  return {
    served: (path) => byPath.get(path)?.served ?? 0,
    stopTaking() {
      taking = false;
    },
    takes: (headers) => taking && byPath.has(headers[constants.HTTP2_HEADER_PATH] as string) && plainRequest(headers),
    serve(stream, headers) {
      const route = byPath.get(headers[constants.HTTP2_HEADER_PATH] as string);
      if (route === undefined) {
        throw new Error(`no route below grpc-js for ${String(headers[constants.HTTP2_HEADER_PATH])}`);
      }
      route.served++;
      route.serve(stream, headers["grpc-timeout"] as string | undefined);
    },
  };
}
