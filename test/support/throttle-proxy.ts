/*
 * A loopback TCP proxy that stands in for a slow link from a server to its clients: what the client
 * sends goes through at once, what the server answers reaches the client at a fixed pace
 * (`bytesPerTick` every `tickMs`), always moving while bytes wait. The server's socket is paused while
 * more than `bytesPerTick` × 8 wait, so memory stays bounded.
 */
import { type AddressInfo, type Socket, connect, createServer } from "node:net";

export interface ThrottleProxy {
  readonly port: number;
  /** Bytes of the server's answers handed to the clients so far (all connections). */
  readonly forwardedBytes: number;
  /** Each connection stops forwarding answers once it has forwarded `bytes` in all (undefined: they go on again). */
  holdAt(bytes: number | undefined): void;
  /** Drops every connection and refuses new ones (destroyed as they come) until restore(): a cut link. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startThrottleProxy(targetPort: number, bytesPerTick: number, tickMs: number): Promise<ThrottleProxy> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let forwardedBytes = 0;
  let holdAtBytes = Number.POSITIVE_INFINITY;
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
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
    const waiting: Buffer[] = [];
    let forwardedHere = 0;
    let waitingBytes = 0;
    target.on("data", (data: Buffer) => {
      waiting.push(data);
      waitingBytes += data.byteLength;
      if (waitingBytes > bytesPerTick * 8) {
        target.pause();
      }
    });
    const timer = setInterval(() => {
      let budget = Math.min(bytesPerTick, holdAtBytes - forwardedHere);
      while (budget > 0 && waiting.length > 0) {
        const head = waiting[0] as Buffer;
        const piece = head.subarray(0, budget);
        client.write(piece);
        forwardedBytes += piece.byteLength;
        forwardedHere += piece.byteLength;
        budget -= piece.byteLength;
        waitingBytes -= piece.byteLength;
        if (piece.byteLength === head.byteLength) {
          waiting.shift();
        } else {
          waiting[0] = head.subarray(piece.byteLength);
        }
      }
      if (waitingBytes <= bytesPerTick * 8) {
        target.resume();
      }
    }, tickMs);
    timers.add(timer);
    client.on("close", () => {
      clearInterval(timer);
      timers.delete(timer);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    get forwardedBytes() {
      return forwardedBytes;
    },
    holdAt(bytes) {
      holdAtBytes = bytes ?? Number.POSITIVE_INFINITY;
    },
    cut() {
      refusing = true;
      for (const socket of sockets) {
        socket.destroy();
      }
    },
    restore() {
      refusing = false;
    },
    close: () =>
      new Promise((resolve) => {
        for (const timer of timers) {
          clearInterval(timer);
        }
        for (const socket of sockets) {
          socket.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
