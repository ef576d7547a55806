/*
 * A loopback TCP proxy that stands in for a slow link from a server to its clients: what the server
 * answers reaches the client at a fixed pace (`bytesPerTick` every `tickMs`), always moving while
 * bytes wait; with `upstream`, what the client sends reaches the server at the same pace too (else at
 * once). A paced direction's source socket is paused while more than `bytesPerTick` × 8 wait, so
 * memory stays bounded and the rest waits in the kernel's socket buffers, as on a real slow link.
 */
import { type AddressInfo, type Socket, createServer } from "node:net";
import { pairWithTarget } from "./proxy-sockets.js";

export interface ThrottleProxy {
  readonly port: number;
  /** Bytes of the server's answers handed to the clients so far (all connections). */
  readonly forwardedBytes: number;
  /** Bytes the clients sent handed to the server so far (all connections). */
  readonly sentBytes: number;
  /** Each connection stops forwarding answers once it has forwarded `bytes` in all (undefined: they go on again). */
  holdAt(bytes: number | undefined): void;
  /** Stops forwarding anything, both ways, on every connection (they stay open): a link that went silent. */
  stop(): void;
  /** Drops every connection and refuses new ones (destroyed as they come) until restore(): a cut link. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export interface ThrottleProxyOptions {
  /** What the client sends is paced too (the same `bytesPerTick` every `tickMs`). */
  readonly upstream?: boolean;
}

/** Bytes read from `source`, handed on to `destination` at most `budget` bytes at a time, in order. */
class PacedLine {
  private readonly waiting: Buffer[] = [];
  private waitingBytes = 0;

  constructor(
    private readonly source: Socket,
    private readonly destination: Socket,
    private readonly maxWaitingBytes: number,
  ) {
    source.on("data", (data: Buffer) => {
      this.waiting.push(data);
      this.waitingBytes += data.byteLength;
      if (this.waitingBytes > maxWaitingBytes) {
        source.pause();
      }
    });
  }

  /** Forwards up to `budget` bytes; returns how many. */
  forward(budget: number): number {
    let left = budget;
    while (left > 0 && this.waiting.length > 0) {
      const head = this.waiting[0] as Buffer;
      const piece = head.subarray(0, left);
      this.destination.write(piece);
      left -= piece.byteLength;
      this.waitingBytes -= piece.byteLength;
      if (piece.byteLength === head.byteLength) {
        this.waiting.shift();
      } else {
        this.waiting[0] = head.subarray(piece.byteLength);
      }
    }
    if (this.waitingBytes <= this.maxWaitingBytes) {
      this.source.resume();
    }
    return budget - left;
  }
}

export async function startThrottleProxy(targetPort: number, bytesPerTick: number, tickMs: number, options: ThrottleProxyOptions = {}): Promise<ThrottleProxy> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let forwardedBytes = 0;
  let sentBytes = 0;
  let holdAtBytes = Number.POSITIVE_INFINITY;
  let refusing = false;
  let stopped = false;
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const target = pairWithTarget(client, targetPort, sockets);
    const up = options.upstream === true ? new PacedLine(client, target, bytesPerTick * 8) : undefined;
    if (up === undefined) {
      client.on("data", (data: Buffer) => {
        sentBytes += data.byteLength;
        target.write(data);
      });
    }
    const down = new PacedLine(target, client, bytesPerTick * 8);
    let forwardedHere = 0;
    const timer = setInterval(() => {
      if (stopped) {
        client.pause(); // the unpaced direction too: what the client sends stays in the kernel's buffers
        return;
      }
      sentBytes += up?.forward(bytesPerTick) ?? 0;
      const forwarded = down.forward(Math.min(bytesPerTick, holdAtBytes - forwardedHere));
      forwardedBytes += forwarded;
      forwardedHere += forwarded;
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
    get sentBytes() {
      return sentBytes;
    },
    holdAt(bytes) {
      holdAtBytes = bytes ?? Number.POSITIVE_INFINITY;
    },
    stop() {
      stopped = true;
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
