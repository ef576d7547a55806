import { Server as NetServer } from "node:net";
import type { Http2Server } from "node:http2";
import type { Server } from "@grpc/grpc-js";

/**
 * The node:http2 servers of a grpc-js (1.14) Server, from its private `http2Servers` map (filled
 * by bindAsync). grpc-js offers no public hook on connections or sessions; this is the one place
 * that reads the field. Undefined if a grpc-js upgrade changed it: callers log and carry on without
 * their feature.
 */
export function grpcHttp2Servers(server: Server): Http2Server[] | undefined {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) {
    return undefined;
  }
  const list: unknown[] = [...servers.keys()];
  return list.every((candidate) => candidate instanceof NetServer) ? (list as Http2Server[]) : undefined;
}
