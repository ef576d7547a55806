import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, after, test } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { RegistryClient } from "../support/registry-client.js";
import { type ServerProcess, killAllServers, logLinesWhen, spawnServer, spawnServerOnTempArchive } from "../support/server-process.js";

after(killAllServers);

/** Waits (bounded) until the server counts the upload in flight: it took the header, the stop will find it. */
async function untilUploadInFlight(client: RegistryClient): Promise<void> {
  const inFlight = async (): Promise<string | undefined> => (await client.status(["uploads_in_flight"])).statuses.uploads_in_flight;
  for (const deadline = Date.now() + 30_000; (await inFlight()) !== "1" && Date.now() < deadline; ) {
    await sleep(10);
  }
  assert.equal(await inFlight(), "1");
}

/** Waits (bounded) for the server's "stopping" line: by then it has begun its stop (new calls refused). */
async function untilStopping(server: ServerProcess): Promise<void> {
  assert.equal((await logLinesWhen(server, (line) => line.msg === "stopping")).length, 1);
}

describe("shutdown on signals", () => {
  test("SIGTERM lets an in-flight archived upload finish, refuses new calls, exits 0, and the version is on disk", async (t) => {
    const server = await spawnServerOnTempArchive(t);
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => client.close());
    await client.createModel("drain");
    const upload = client.openCreateVersion();
    upload.call.write({ header: { version_info: { model_id: "drain", archived: true, data_size: "6" } } });
    upload.call.write({ body: { data_chunk: Buffer.from("abc") } });
    await untilUploadInFlight(client);
    server.child.kill("SIGTERM");
    await untilStopping(server);
    upload.call.write({ body: { data_chunk: Buffer.from("def") } });
    upload.call.end();
    const reply = await upload.reply;
    assert.equal(reply.version_info.version_number, 1);
    assert.equal(await server.exited, 0);

    const restarted = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: server.archiveDir });
    const again = new RegistryClient(`127.0.0.1:${restarted.port}`);
    try {
      assert.equal((await again.retrieveData("drain", 1)).toString(), "abcdef");
    } finally {
      again.close();
      restarted.child.kill("SIGTERM");
      assert.equal(await restarted.exited, 0);
    }
  });

  test("new calls after SIGTERM are refused while an upload drains", async (t) => {
    const server = await spawnServerOnTempArchive(t);
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => client.close());
    await client.createModel("refuse");
    const upload = client.openCreateVersion();
    upload.call.write({ header: { version_info: { model_id: "refuse", data_size: "1" } } });
    await untilUploadInFlight(client);
    server.child.kill("SIGTERM");
    await untilStopping(server);
    const late = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => late.close());
    await assert.rejects(late.retrieveModels(), { code: status.UNAVAILABLE });
    upload.call.write({ body: { data_chunk: Buffer.from("x") } });
    upload.call.end();
    assert.equal((await upload.reply).version_info.version_number, 1);
    assert.equal(await server.exited, 0);
  });

  test("the grace period bounds the wait: a stalled upload is cancelled and the server exits 0", async (t) => {
    const server = await spawnServerOnTempArchive(t, {
      COGMENT_MODEL_REGISTRY_SHUTDOWN_GRACE_PERIOD: "300ms",
    });
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => client.close());
    await client.createModel("stall");
    const upload = client.openCreateVersion();
    upload.call.write({ header: { version_info: { model_id: "stall", archived: true, data_size: "100" } } });
    await untilUploadInFlight(client);
    server.child.kill("SIGTERM");
    await assert.rejects(upload.reply, (error: ServiceError) => [status.CANCELLED, status.UNAVAILABLE].includes(error.code));
    assert.equal(await server.exited, 0);
    assert.ok(server.logLines.some((l) => l.msg === "grace period over: cancelling the calls still running"));
  });

  test("SIGTERM with only an idle client connected stops at once, even if that client never closes its side", async (t) => {
    // A grace period of 60 s: waiting for the idle connection would take all of it.
    const server = await spawnServerOnTempArchive(t, { COGMENT_MODEL_REGISTRY_SHUTDOWN_GRACE_PERIOD: "60s" });
    // A client that does the HTTP/2 handshake, then ignores everything, the GOAWAY and the server's FIN included.
    const idle = createConnection({ host: "127.0.0.1", port: server.port, allowHalfOpen: true });
    t.after(() => idle.destroy());
    let received = 0;
    idle.on("data", (data: Buffer) => (received += data.length));
    idle.on("error", () => {});
    await new Promise((resolve) => idle.once("connect", resolve));
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const settingsAck = Buffer.from([0, 0, 0, 4, 1, 0, 0, 0, 0]);
    idle.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), settings, settingsAck]));
    const connected = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => connected.close());
    await connected.retrieveModels(); // the handshake is done by now
    connected.close();
    assert.ok(received > 0, "the server's SETTINGS arrived");

    const signalledAt = Date.now();
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
    // A functional bound, not a speed measurement: it catches a wait for the 60 s grace period, with
    // room for a loaded machine (a stop at once takes well under a second).
    const stopMs = Date.now() - signalledAt;
    assert.ok(stopMs < 30_000, `stopped in ${stopMs} ms`);
    assert.ok(!server.logLines.some((l) => l.msg === "grace period over: cancelling the calls still running"));
  });

  test("a second signal forces the exit at once, its log line written first", async (t) => {
    const server = await spawnServerOnTempArchive(t, {
      COGMENT_MODEL_REGISTRY_SHUTDOWN_GRACE_PERIOD: "1h",
    });
    const client = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => client.close());
    await client.createModel("force");
    const upload = client.openCreateVersion();
    upload.reply.catch(() => {});
    upload.call.write({ header: { version_info: { model_id: "force", data_size: "100" } } });
    await untilUploadInFlight(client);
    server.child.kill("SIGTERM");
    await untilStopping(server);
    await sleep(200); // room to exit wrongly
    assert.equal(server.child.exitCode, null, "still draining after the first signal");
    server.child.kill("SIGINT");
    assert.equal(await server.exited, 1);
    const last = server.logLines.at(-1);
    assert.deepEqual([last?.msg, last?.signal, last?.level], ["second signal: exiting now", "SIGINT", 40]);
  });
});
