import assert from "node:assert/strict";
import * as net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { RegistryClient } from "../support/registry-client.js";
import { startTestServer } from "../support/test-server.js";

/**
 * A TCP relay that can go silent: after freeze() it forwards nothing in either direction and
 * closes nothing, like a peer whose machine died or whose network was cut (no FIN, no RST).
 */
async function startFreezableRelay(targetPort: number): Promise<{ port: number; freeze(): void; close(): void }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const target = net.connect({ host: "127.0.0.1", port: targetPort });
    for (const [from, to] of [
      [client, target],
      [target, client],
    ] as const) {
      sockets.add(from);
      from.on("error", () => {});
      from.on("data", (data: Buffer) => {
        if (!frozen) {
          to.write(data);
        }
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return {
    port: address.port,
    freeze: () => {
      frozen = true;
    },
    close: () => {
      for (const socket of sockets) {
        socket.destroy();
      }
      server.close();
    },
  };
}

test("an upload from a client that went silent frees its reservation: keepalive ends the dead connection", async (t) => {
  const server = await startTestServer({}, { keepalive: { timeMs: 300, timeoutMs: 300 } });
  t.after(() => server.close());
  await server.client.createModel("orphan");
  const relay = await startFreezableRelay(server.server.port);
  t.after(() => relay.close());
  const client = new RegistryClient(`127.0.0.1:${relay.port}`);
  t.after(() => client.close());

  const { call, reply } = client.openCreateVersion();
  reply.catch(() => {});
  call.write({ header: { version_info: { model_id: "orphan", data_size: String(80 * 1024) } } });
  const reserved = (): number => server.server.registry.stats().cache.reservedBytes;
  for (let waited = 0; reserved() === 0 && waited < 30_000; waited += 20) {
    await sleep(20);
  }
  assert.ok(reserved() >= 80 * 1024, `the upload reserved its data_size (${reserved()} bytes)`);

  relay.freeze();
  for (let waited = 0; reserved() > 0 && waited < 30_000; waited += 50) {
    await sleep(50);
  }
  assert.equal(reserved(), 0, "the dead client's reservation is released");
  assert.equal(server.server.registry.stats().uploadsInFlight, 0);
  // The server keeps serving everyone else.
  assert.equal((await server.client.publish("orphan", Buffer.from("still here"))).version_number, 1);
});
