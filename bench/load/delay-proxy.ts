/**
 * A TCP proxy that adds a fixed one-way delay in each direction, to stand in
 * for a link with a round trip (2 × delayMs) on loopback.
 *
 * Each direction is a FIFO delay line: a chunk read at time t is written at
 * t + delayMs, in order. Backpressure: when the bytes held in a line exceed
 * `maxInFlightBytes` (bytes "on the wire") or the destination's write() says
 * it is full, the source socket is paused until the line is below half of that
 * and the destination has drained, so TCP flow control reaches the sender and
 * the proxy's memory stays bounded. The cap is far above any window tested
 * (8 MiB), so it never limits throughput itself.
 */
import * as net from "node:net";

export interface DelayProxyOptions {
  readonly targetHost?: string;
  readonly targetPort: number;
  readonly delayMs: number;
  readonly maxInFlightBytes?: number;
}

export interface DelayProxy {
  readonly port: number;
  bytesForwarded(): number;
  close(): Promise<void>;
}

const DEFAULT_MAX_IN_FLIGHT = 64 * 1024 * 1024;

export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const maxInFlight = options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT;
  const sockets = new Set<net.Socket>();
  let forwarded = 0;
  const server = net.createServer((client) => {
    const target = net.connect({ host: options.targetHost ?? "127.0.0.1", port: options.targetPort });
    for (const socket of [client, target]) {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        target.destroy();
      });
    }
    const count = (bytes: number): void => {
      forwarded += bytes;
    };
    createDelayLine(client, target, options.delayMs, maxInFlight, count);
    createDelayLine(target, client, options.delayMs, maxInFlight, count);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    bytesForwarded: () => forwarded,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) {
          socket.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

interface Delayed {
  readonly chunk: Buffer;
  readonly dueAt: number;
}

function createDelayLine(
  source: net.Socket,
  destination: net.Socket,
  delayMs: number,
  maxInFlight: number,
  count: (bytes: number) => void,
): void {
  const queue: Delayed[] = [];
  let head = 0;
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let sourceEnded = false;
  let destinationFull = false;
  const now = (): number => performance.now();

  const resumeIfRoom = (): void => {
    if (source.isPaused() && !destinationFull && inFlight <= maxInFlight / 2) {
      source.resume();
    }
  };

  const flush = (): void => {
    timer = undefined;
    const time = now();
    while (head < queue.length) {
      const next = queue[head] as Delayed;
      if (next.dueAt > time) {
        break;
      }
      head++;
      inFlight -= next.chunk.byteLength;
      count(next.chunk.byteLength);
      if (!destination.destroyed && !destination.write(next.chunk)) {
        destinationFull = true;
      }
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
      if (sourceEnded && !destination.destroyed) {
        destination.end();
      }
    } else {
      schedule();
    }
    resumeIfRoom();
  };

  const schedule = (): void => {
    const next = queue[head];
    if (timer === undefined && next !== undefined) {
      timer = setTimeout(flush, Math.max(0, next.dueAt - now()));
    }
  };

  destination.on("drain", () => {
    destinationFull = false;
    resumeIfRoom();
  });
  source.on("data", (chunk: Buffer) => {
    queue.push({ chunk, dueAt: now() + delayMs });
    inFlight += chunk.byteLength;
    if (inFlight > maxInFlight || destinationFull) {
      source.pause();
    }
    schedule();
  });
  source.on("end", () => {
    sourceEnded = true;
    if (head === queue.length && !destination.destroyed) {
      destination.end();
    }
  });
  source.on("close", () => {
    if (timer !== undefined && head === queue.length) {
      clearTimeout(timer);
    }
  });
}
