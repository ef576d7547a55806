/*
 * The connection pair of a loopback TCP proxy (delay-proxy.ts, hold-proxy.ts, throttle-proxy.ts):
 * what each does with the bytes is its own; opening the target and tying the two ends' lives
 * together is this.
 */
import { type Socket, connect } from "node:net";

/**
 * Connects `client` to 127.0.0.1:`targetPort`; both sockets are kept in `sockets` while open (so the
 * proxy can destroy them when it closes), and an error or close on either end destroys both.
 * Gives the target socket; no bytes are forwarded here.
 */
export function pairWithTarget(client: Socket, targetPort: number, sockets: Set<Socket>): Socket {
  const target = connect({ host: "127.0.0.1", port: targetPort });
  for (const socket of [client, target]) {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {
      client.destroy();
      target.destroy();
    });
  }
  client.on("close", () => target.destroy());
  target.on("close", () => client.destroy());
  return target;
}
