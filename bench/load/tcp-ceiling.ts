/**
 * The physical limit: raw TCP over loopback between two processes, no gRPC,
 * no HTTP/2, no protobuf. The source listens and, once started, writes a fixed
 * volume over its accepted connections (one reused buffer, honouring
 * backpressure); the sink connects and counts what arrives, reading into one
 * reused buffer (`onread`), so neither side allocates per chunk.
 */
import { randomFillSync } from "node:crypto";
import * as net from "node:net";
import { firstEvent } from "../../src/first-event.js";
import { sharedNow } from "../support/clock.js";
import type { TcpSinkResult, TcpSinkTask, TcpSourceResult, TcpSourceTask } from "./generator-protocol.js";

export interface TcpSource {
  readonly port: number;
  run(stop: AbortSignal): Promise<TcpSourceResult>;
}

export async function startTcpSource(task: TcpSourceTask): Promise<TcpSource> {
  const sockets: net.Socket[] = [];
  let accepted: () => void = () => {};
  const allAccepted = new Promise<void>((resolve) => (accepted = resolve));
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    sockets.push(socket);
    if (sockets.length === task.connections) {
      accepted();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const run = async (stop: AbortSignal): Promise<TcpSourceResult> => {
    stop.addEventListener("abort", () => sockets.forEach((socket) => socket.destroy()), { once: true });
    await Promise.race([allAccepted, new Promise((resolve) => stop.addEventListener("abort", resolve, { once: true }))]);
    server.close();
    const buffer = randomFillSync(Buffer.allocUnsafe(task.writeBytes));
    const share = Math.ceil(task.bytes / task.connections);
    const startedAt = sharedNow();
    let sent = 0;
    await Promise.all(
      sockets.map(async (socket) => {
        let remaining = share;
        while (remaining > 0 && !stop.aborted && !socket.destroyed) {
          const length = Math.min(remaining, buffer.byteLength);
          remaining -= length;
          sent += length;
          if (!socket.write(length === buffer.byteLength ? buffer : buffer.subarray(0, length))) {
            await firstEvent(socket, ["drain", "close"]);
          }
        }
        socket.end();
      }),
    );
    return { role: "tcp-source", bytes: sent, startedAt, endedAt: sharedNow() };
  };
  return { port, run };
}

export interface TcpSink {
  readonly done: Promise<TcpSinkResult>;
  close(): void;
}

/** Connects every connection, then resolves once all are up; `done` settles when all bytes arrived (or on close). */
export async function startTcpSink(task: TcpSinkTask): Promise<TcpSink> {
  let bytes = 0;
  let firstByteAt = 0;
  let lastByteAt = 0;
  let finish: (result: TcpSinkResult) => void = () => {};
  // Resolving twice is a no-op, so close() may run more than once.
  const done = new Promise<TcpSinkResult>((resolve) => (finish = resolve));
  const sockets: net.Socket[] = [];
  const close = (): void => {
    finish({ role: "tcp-sink", bytes, firstByteAt, lastByteAt });
    for (const socket of sockets) {
      socket.destroy();
    }
  };
  const onRead = (length: number): boolean => {
    lastByteAt = sharedNow();
    if (bytes === 0) {
      firstByteAt = lastByteAt;
    }
    bytes += length;
    if (bytes >= task.bytes) {
      close();
    }
    return true;
  };
  await Promise.all(
    Array.from(
      { length: task.connections },
      () =>
        new Promise<void>((resolve, reject) => {
          const socket = net.connect({
            host: "127.0.0.1",
            port: task.port,
            onread: { buffer: Buffer.allocUnsafe(task.readBytes), callback: onRead },
          });
          sockets.push(socket);
          socket.once("connect", () => resolve());
          socket.once("error", reject);
        }),
    ),
  );
  return { done, close };
}
