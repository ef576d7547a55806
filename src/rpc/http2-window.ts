import type { Http2Session } from "node:http2";
import type { Server } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { grpcHttp2Servers, grpcHttp2Sessions, setInitialStreamWindow } from "./grpc-internals.js";

/**
 * grpc-js (1.14) pins its server's HTTP/2 receive window at Node's 64 KiB
 * default and offers no option for it, so an upload over a link with a round
 * trip is capped at window / RTT. Until grpc-js reads
 * `grpc-node.flow_control_window` on the server (grpc-node pull request 3058;
 * the server passes that option already), we reach into two of its private
 * fields (grpc-internals.ts): the options every http2 server is created with
 * (the stream window, sent in SETTINGS) and the http2 servers themselves (to
 * raise each session's connection window). If a grpc-js upgrade renames them,
 * we log and carry on with the default window rather than fail.
 */

/** Call before bindAsync: new sessions advertise `windowBytes` as their per-stream window. */
export function setStreamWindow(server: Server, windowBytes: number, log: Logger): boolean {
  if (!setInitialStreamWindow(server, windowBytes)) {
    log.warn("grpc-js internals changed: cannot raise the HTTP/2 stream window");
    return false;
  }
  return true;
}

/** Call after bindAsync: every new session gets a connection window of `windowBytes`. */
export function setConnectionWindow(server: Server, windowBytes: number, log: Logger): boolean {
  const servers = grpcHttp2Servers(server);
  if (servers === undefined) {
    log.warn("grpc-js internals changed: cannot raise the HTTP/2 connection window");
    return false;
  }
  for (const http2Server of servers) {
    http2Server.on("session", (session: Http2Session) => {
      try {
        session.setLocalWindowSize(windowBytes);
      } catch (error) {
        log.warn({ err: error }, "cannot raise the HTTP/2 connection window of a session");
      }
    });
  }
  return true;
}

/** The receive windows of the server's open sessions (for tests and Status). */
export function sessionWindows(server: Server): number[] {
  return grpcHttp2Sessions(server).map((session) => session.state.localWindowSize ?? 0);
}
