/*
 * A loopback TCP proxy to Redis that forwards everything until a client sends a given byte string
 * (e.g. the SHA-1 of one script, which ioredis sends with EVALSHA). Then, on that connection:
 * - `hold: "command"`: from the read that holds it on, nothing more it sends reaches Redis (the
 *   command never runs), while replies go on;
 * - `hold: "reply"`: the command reaches Redis and runs, but no reply comes back from then on.
 * The other connections go on. `held` resolves then (with "reply", once Redis answered: the command
 * ran): an instance caught exactly before that command (or before it learns of its outcome), which a
 * test can then kill, as if it had died right there.
 */
import { type AddressInfo, type Socket, createServer } from "node:net";
import { pairWithTarget } from "./proxy-sockets.js";
import type { TestContext } from "node:test";
import { onCleanup } from "./cleanup.js";

export interface HoldProxy {
  readonly port: number;
  /** Resolves once a client sent the byte string (`hold: "command"`), or once Redis replied to it (`"reply"`). */
  readonly held: Promise<void>;
  close(): Promise<void>;
}

export async function startHoldProxy(t: TestContext, targetPort: number, holdAt: string, hold: "command" | "reply" = "command"): Promise<HoldProxy> {
  const pattern = Buffer.from(holdAt, "latin1");
  const sockets = new Set<Socket>();
  let announceHeld: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (announceHeld = resolve));
  const server = createServer((client) => {
    const target = pairWithTarget(client, targetPort, sockets);
    let holdingReplies = false;
    target.on("data", (data: Buffer) => {
      if (!holdingReplies) {
        client.write(data);
      } else {
        announceHeld(); // a reply came back after the command: it ran
      }
    });
    let holding = false;
    // The end of the previous read: the byte string may straddle two reads.
    let tail = Buffer.alloc(0);
    client.on("data", (data: Buffer) => {
      if (holding) {
        return;
      }
      const seen = Buffer.concat([tail, data]);
      if (seen.includes(pattern)) {
        holding = true;
        if (hold === "reply") {
          holdingReplies = true;
          target.write(data);
        } else {
          announceHeld();
        }
        return;
      }
      tail = seen.subarray(Math.max(0, seen.length - pattern.length + 1));
      target.write(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = async (): Promise<void> => {
    for (const socket of sockets) {
      socket.destroy();
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  onCleanup(t, close);
  return { port: (server.address() as AddressInfo).port, held, close };
}
