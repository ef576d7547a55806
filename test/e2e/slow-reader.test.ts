import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { get } from "node:http";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { type TestContext, after, test } from "node:test";
import { connect, constants as http2Constants } from "node:http2";
import { createLogger } from "../../src/logger.js";
import { type RunningServer, type ServerConfig, type ServerOptions, startServer } from "../../src/server.js";
import { RegistryClient } from "../support/registry-client.js";
import { DEFAULT_TEST_CONFIG, makeArchiveDir } from "../support/test-server.js";
import { killAllServers, spawnServerOnTempArchive } from "../support/server-process.js";
import { openStalledReader, untilSending } from "../support/stalled-reader.js";

after(killAllServers);

const KiB = 1024;
const MiB = 1024 * KiB;
const SENT = "cogment_model_registry_version_data_sent_bytes_total";

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: "127.0.0.1", port, path: "/metrics" }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

async function sentBytes(port: number): Promise<number> {
  const line = (await scrape(port)).split("\n").find((l) => l.startsWith(`${SENT} `));
  assert.ok(line, `${SENT} is exported`);
  return Number(line.slice(SENT.length + 1));
}

/** Bytes of data_chunk payload in a gRPC response body (5-byte prefix, tag, varint length, bytes). */
function countChunkBytes(body: Buffer): number {
  let total = 0;
  let offset = 0;
  while (offset + 5 <= body.length) {
    const length = body.readUInt32BE(offset + 1);
    const message = body.subarray(offset + 5, offset + 5 + length);
    let position = 1;
    let value = 0;
    let scale = 1;
    while (position < message.length) {
      const byte = message[position++] as number;
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) break;
    }
    total += length === 0 ? 0 : value;
    offset += 5 + length;
  }
  return total;
}

/** A real server with an empty model "slow", stopped and its archive removed after the test. */
async function serverWithSlowModel(
  t: TestContext,
  overrides: Partial<ServerConfig>,
  options: ServerOptions = { host: "127.0.0.1" },
): Promise<{ server: RunningServer; client: RegistryClient }> {
  const archiveDir = await makeArchiveDir();
  const server = await startServer({ ...DEFAULT_TEST_CONFIG, archiveDir, ...overrides }, createLogger("silent"), options);
  t.after(async () => {
    await server.stop();
    await rm(archiveDir, { recursive: true, force: true });
  });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => client.close());
  await client.createModel("slow");
  return { server, client };
}

test("readers that stop reading hold back the server (backpressure): it does not queue whole versions", async (t) => {
  const { server, client } = await serverWithSlowModel(t, { sentChunkSize: 64 * KiB }, { host: "127.0.0.1", metricsListen: { port: 0, host: "127.0.0.1" } });
  const metricsPort = server.metricsPort;
  assert.ok(metricsPort !== undefined);
  const data = Buffer.alloc(32 * MiB);
  for (let i = 0; i < data.length; i += 4096) data[i] = i % 251;
  await client.publish("slow", data);

  // Four readers open the stream and read nothing.
  const session = connect(`http://127.0.0.1:${server.port}`);
  t.after(() => session.destroy());
  const readers = Array.from({ length: 4 }, () => openStalledReader(session, "slow", -1));
  await Promise.all(readers.map((reader) => untilSending(reader)));
  await sleep(800); // time to queue far more if backpressure were ignored
  const whileStalled = await sentBytes(metricsPort);
  // Each stalled stream may have grpc-js's 16-message buffer plus the HTTP/2 windows in flight,
  // far from the 4 x 32 MiB that ignoring backpressure would queue.
  assert.ok(whileStalled <= 4 * 4 * MiB, `handed ${whileStalled} bytes to grpc-js for 4 stalled readers`);
  assert.ok(whileStalled > 0);

  // Once they read again, each gets the whole version.
  const received = await Promise.all(
    readers.map(
      (stream) =>
        new Promise<number>((resolve, reject) => {
          const parts: Buffer[] = [];
          stream.on("data", (part: Buffer) => parts.push(part));
          stream.on("error", reject);
          stream.on("end", () => resolve(countChunkBytes(Buffer.concat(parts))));
          stream.resume();
        }),
    ),
  );
  assert.deepEqual(received, [32 * MiB, 32 * MiB, 32 * MiB, 32 * MiB]);
  session.destroy();
  assert.equal(await sentBytes(metricsPort), 4 * 32 * MiB);
  // And a normal client still reads it intact.
  const expected = createHash("sha256").update(data).digest("base64");
  assert.equal(createHash("sha256").update(await client.retrieveData("slow", -1)).digest("base64"), expected);
});

test("stalled readers of a version streamed from disk do not make the server read it into memory", async (t) => {
  // The version is larger than a quarter of the budget: it is streamed from disk, never cached.
  const { server, client } = await serverWithSlowModel(t, { sentChunkSize: 256 * KiB, cacheMaxBytes: 16 * MiB });
  const size = 48 * MiB;
  await client.publish("slow", Buffer.alloc(size, 7), { archived: true });
  globalThis.gc?.();
  const before = process.memoryUsage().arrayBuffers;
  const session = connect(`http://127.0.0.1:${server.port}`);
  t.after(() => session.destroy());
  const readers = Array.from({ length: 4 }, () => openStalledReader(session, "slow", -1));
  await sleep(1000);
  const grown = process.memoryUsage().arrayBuffers - before;
  // Reading ahead without backpressure would hold 4 x 48 MiB here.
  assert.ok(grown < 48 * MiB, `array buffers grew by ${Math.round(grown / MiB)} MiB with 4 stalled readers`);
  session.destroy();
  assert.equal(readers.length, 4);
  assert.equal(Buffer.concat(await client.retrieveVersionData("slow", -1)).length, size);
});

test("a reader stalled at a version's end keeps its bytes counted until it goes away, then frees them", async (t) => {
  const { server, client } = await serverWithSlowModel(t, { sentChunkSize: 16_000 });
  // A little more than the stalled stream's 64 KiB window: the last message cannot be delivered.
  await client.publish("slow", Buffer.alloc(66_000, 7));
  const session = connect(`http://127.0.0.1:${server.port}`);
  session.on("error", () => {});
  t.after(() => session.destroy());
  const reader = openStalledReader(session, "slow", -1);
  reader.on("error", () => {});
  await untilSending(reader);
  await client.deleteModel("slow"); // the version leaves the cache; the stalled reader still holds it
  const cache = (): { drainingBytes: number; usedBytes: number } => server.registry.stats().cache;
  const held = cache().drainingBytes;
  assert.ok(held >= 66_000, `the stalled reader's version is counted as draining (${held} bytes)`);
  await sleep(500);
  assert.equal(cache().drainingBytes, held, "still counted while the client keeps its stream open");

  session.destroy();
  for (let waited = 0; cache().drainingBytes > 0 && waited < 30_000; waited += 20) {
    await sleep(20);
  }
  assert.equal(cache().drainingBytes, 0, "freed once the client went away");
  assert.equal(cache().usedBytes, 0);
});

test("a reader that stops reading is cut off after SEND_IDLE_TIMEOUT: its stream is reset and the version's bytes leave the account", { timeout: 60_000 }, async (t) => {
  const server = await spawnServerOnTempArchive(t, {
    // Long enough for the steps below, on a loaded machine, before the cut-off.
    COGMENT_MODEL_REGISTRY_SEND_IDLE_TIMEOUT: "5s",
    COGMENT_MODEL_REGISTRY_SENT_MODEL_VERSION_DATA_CHUNK_SIZE: "16000",
  });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => client.close());
  const figures = async (): Promise<Record<string, string>> =>
    (await client.status(["cache_draining_bytes", "cache_used_bytes", "cache_data_bytes"])).statuses;
  await client.createModel("slow");
  // A little more than the stalled stream's 64 KiB window: the last message cannot be delivered.
  await client.publish("slow", Buffer.alloc(66_000, 7));
  const session = connect(`http://127.0.0.1:${server.port}`);
  session.on("error", () => {});
  t.after(() => session.destroy());
  const reader = openStalledReader(session, "slow", -1);
  reader.on("error", () => {});
  const closed = new Promise<number>((resolve) => reader.on("close", () => resolve(reader.rstCode ?? -1)));
  await untilSending(reader);
  await client.deleteModel("slow"); // the version leaves the cache; the stalled reader still holds it
  const held = await figures();
  assert.ok(Number(held.cache_draining_bytes) >= 66_000, `the stalled reader's version is counted as draining: ${JSON.stringify(held)}`);
  assert.equal(held.cache_data_bytes, "0");

  // The server resets the stream (a grpc-js client reports that as CANCELLED) and frees the version.
  assert.equal(await closed, http2Constants.NGHTTP2_CANCEL);
  let after = await figures();
  for (let waited = 0; after.cache_draining_bytes !== "0" && waited < 30_000; waited += 20) {
    await sleep(20);
    after = await figures();
  }
  assert.deepEqual(after, { cache_draining_bytes: "0", cache_used_bytes: "0", cache_data_bytes: "0" });
  // The server keeps serving.
  await client.createModel("slow");
  await client.publish("slow", Buffer.from("after"));
  assert.equal((await client.retrieveData("slow", -1)).toString(), "after");
});

test("a reader slower than SEND_MIN_RATE is cut off even with SEND_IDLE_TIMEOUT off: its stream is reset and the version's bytes leave the account", { timeout: 60_000 }, async (t) => {
  const server = await spawnServerOnTempArchive(t, {
    COGMENT_MODEL_REGISTRY_SEND_IDLE_TIMEOUT: "0",
    COGMENT_MODEL_REGISTRY_SEND_MIN_RATE: "1000000",
    // Long enough for the steps below, on a loaded machine, before the cut-off.
    COGMENT_MODEL_REGISTRY_SEND_MIN_RATE_PERIOD: "3s",
    COGMENT_MODEL_REGISTRY_SENT_MODEL_VERSION_DATA_CHUNK_SIZE: "16000",
  });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => client.close());
  await client.createModel("slow");
  await client.publish("slow", Buffer.alloc(200_000, 7));
  const session = connect(`http://127.0.0.1:${server.port}`);
  session.on("error", () => {});
  t.after(() => session.destroy());
  // Takes its first 64 KiB window and nothing more: far below 1,000,000 bytes/s of waiting.
  const reader = openStalledReader(session, "slow", -1);
  reader.on("error", () => {});
  const closed = new Promise<number>((resolve) => reader.on("close", () => resolve(reader.rstCode ?? -1)));
  await untilSending(reader);
  await client.deleteModel("slow"); // the version leaves the cache; the slow reader still holds it
  assert.ok(Number((await client.status(["cache_draining_bytes"])).statuses.cache_draining_bytes) >= 200_000);

  assert.equal(await closed, http2Constants.NGHTTP2_CANCEL);
  const tooSlow = (): Record<string, unknown> | undefined =>
    server.logLines.find((line) => line.msg === "RetrieveVersionData reader too slow: stream reset (COGMENT_MODEL_REGISTRY_SEND_MIN_RATE)");
  for (let waited = 0; tooSlow() === undefined && waited < 30_000; waited += 20) {
    await sleep(20); // the log line comes through the server's stdout
  }
  const warning = tooSlow();
  assert.ok(warning !== undefined, "the reset is logged");
  assert.equal(warning.sendMinRate, 1_000_000);
  assert.match(String(warning.why), /^the reader took \d+ bytes in 3000 ms of waiting \(\d+ bytes\/s\), below 1000000 bytes\/s, after \d+ bytes$/);
  let draining = "";
  for (let waited = 0; draining !== "0" && waited < 30_000; waited += 20) {
    draining = (await client.status(["cache_draining_bytes"])).statuses.cache_draining_bytes ?? "";
    if (draining !== "0") {
      await sleep(20);
    }
  }
  assert.equal(draining, "0");
});

test("a reader that keeps up is not cut off by SEND_MIN_RATE", { timeout: 60_000 }, async (t) => {
  // Periods of 1 s: on a loaded machine the reading test process itself can wait for a core for a
  // good part of 100 ms, which is a period of waiting with nothing read (seen at a load average of 17).
  const server = await spawnServerOnTempArchive(t, {
    COGMENT_MODEL_REGISTRY_SEND_MIN_RATE: "100000",
    COGMENT_MODEL_REGISTRY_SEND_MIN_RATE_PERIOD: "1s",
    COGMENT_MODEL_REGISTRY_SENT_MODEL_VERSION_DATA_CHUNK_SIZE: "65536",
  });
  const client = new RegistryClient(`127.0.0.1:${server.port}`);
  t.after(() => client.close());
  await client.createModel("fast");
  const data = Buffer.alloc(32 * MiB, 5);
  await client.publish("fast", data);
  const read = await client.retrieveData("fast", -1);
  assert.equal(createHash("sha256").update(read).digest("hex"), createHash("sha256").update(data).digest("hex"));
  assert.equal(server.logLines.filter((line) => String(line.msg).startsWith("RetrieveVersionData reader")).length, 0);
});
