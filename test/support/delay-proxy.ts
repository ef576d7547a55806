/*
 * A loopback TCP proxy that holds what the server sends for a fixed delay before the client gets it
 * (what the client sends goes through at once): a replica connected to its primary through it
 * receives the replication stream `delayMs` late, as over a slow link, so a write the primary
 * acknowledged is certainly not on the replica yet unless someone waited for it (Redis WAIT).
 */
import { type AddressInfo, type Socket, connect, createServer } from "node:net";

export interface DelayProxy {
  readonly port: number;
  close(): Promise<void>;
}

export async function startDelayProxy(targetPort: number, delayMs: number): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((client) => {
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
    client.on("data", (data: Buffer) => target.write(data));
    target.on("data", (data: Buffer) => {
      // Timers of one delay fire in the order they were set: the stream keeps its order.
      const timer = setTimeout(() => {
        timers.delete(timer);
        client.write(data);
      }, delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const timer of timers) {
        clearTimeout(timer);
      }
      for (const socket of sockets) {
        socket.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
