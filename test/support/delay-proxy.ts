/*
 * A loopback TCP proxy that holds what the server sends for a fixed delay before the client gets it
 * (what the client sends goes through at once): a replica connected to its primary through it
 * receives the replication stream `delayMs` late, as over a slow link, so a write the primary
 * acknowledged is certainly not on the replica yet unless someone waited for it (Redis WAIT). A
 * registry instance connected through it gets its command replies late (subscribersOnTime: its
 * change feed on time).
 */
import { type AddressInfo, type Socket, createServer } from "node:net";
import { pairWithTarget } from "./proxy-sockets.js";

export interface DelayProxy {
  readonly port: number;
  /** Stops taking connections: a new one is refused, those already made go on. */
  refuseNewConnections(): void;
  close(): Promise<void>;
}

export interface DelayProxyOptions {
  /**
   * Connections that sent a SUBSCRIBE get what comes after it at once (a registry instance's change
   * feed on time, its command replies late), never before what came earlier on them.
   */
  readonly subscribersOnTime?: boolean;
}

export async function startDelayProxy(targetPort: number, delayMs: number, options: DelayProxyOptions = {}): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((client) => {
    const target = pairWithTarget(client, targetPort, sockets);
    let subscriber = false;
    client.on("data", (data: Buffer) => {
      subscriber ||= options.subscribersOnTime === true && /subscribe/i.test(data.toString("latin1"));
      target.write(data);
    });
    // Released in arrival order, each piece never before the one ahead of it: the stream keeps its order.
    const held: { readonly data: Buffer; readonly at: number }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const release = (): void => {
      if (timer !== undefined) {
        timers.delete(timer);
        timer = undefined;
      }
      for (let next = held[0]; next !== undefined; next = held[0]) {
        const wait = next.at - Date.now();
        if (wait > 0) {
          timer = setTimeout(release, wait);
          timers.add(timer);
          return;
        }
        held.shift();
        client.write(next.data);
      }
    };
    target.on("data", (data: Buffer) => {
      const at = Math.max(held.at(-1)?.at ?? 0, Date.now() + (subscriber ? 0 : delayMs));
      held.push({ data, at });
      if (timer === undefined) {
        release();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    refuseNewConnections: () => {
      server.close();
    },
    close: async () => {
      for (const timer of timers) {
        clearTimeout(timer);
      }
      for (const socket of sockets) {
        socket.destroy();
      }
      // (Already closed by refuseNewConnections: the callback gets ERR_SERVER_NOT_RUNNING, nothing to wait for.)
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
