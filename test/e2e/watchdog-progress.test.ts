/*
 * The slow-client watchdogs measure progress in bytes as they move, not in whole messages: a client
 * sending (or reading) one large message steadily on a slow link is making progress while it does,
 * and one that stops in the middle of a message is still cut off, with true byte counts.
 * (First reported by reviewer B: the upload and send watchdogs cut off well-behaved slow clients.)
 */
import assert from "node:assert/strict";
import { type ClientHttp2Stream, type IncomingHttpHeaders, connect } from "node:http2";
import { type TestContext, after, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { CREATE_VERSION_PATH } from "../../src/rpc/create-version-stream.js";
import { RegistryClient } from "../support/registry-client.js";
import { killAllServers, removeArchiveAfterServers, spawnServer } from "../support/server-process.js";
import { makeArchiveDir, startTestServer } from "../support/test-server.js";
import { startThrottleProxy } from "../support/throttle-proxy.js";

after(killAllServers);

const SERVICE = "/cogmentAPI.ModelRegistrySP/";
const MiB = 1024 * 1024;

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** A length-delimited protobuf field. */
function field(number: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.byteLength), bytes]);
}

function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([prefix, message]);
}

/** A CreateVersion header message for model "m" announcing `size` bytes of data, framed. */
function headerFrame(size: number): Buffer {
  const dataSize = Buffer.alloc(8);
  dataSize.writeBigUInt64LE(BigInt(size));
  // version_info: model_id = 1, data_size = 6 (fixed64: tag 0x31).
  return grpcFrame(field(1, field(1, Buffer.concat([field(1, Buffer.from("m")), Buffer.from([0x31]), dataSize]))));
}

/** A CreateVersion body message of `size` bytes of data, framed. */
function bodyFrame(size: number): Buffer {
  return grpcFrame(field(2, field(1, Buffer.alloc(size, 9))));
}

interface Upload {
  readonly stream: ClientHttp2Stream;
  /** The grpc-status and decoded grpc-message once they come. */
  readonly outcome: Promise<{ code: string | undefined; details: string }>;
}

/** A CreateVersion call on its own connection, written by the test piece by piece. */
function openUpload(address: string): Upload {
  const session = connect(`http://${address}`);
  session.on("error", () => undefined);
  const stream = session.request({ ":method": "POST", ":path": `${SERVICE}CreateVersion`, "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => undefined);
  // The status, once it comes (the client's side may still be open), or nothing if the stream closes first.
  const outcome = new Promise<{ code: string | undefined; details: string }>((resolve) => {
    const answered = (headers: IncomingHttpHeaders): void => {
      const details = headers["grpc-message"];
      resolve({ code: headers["grpc-status"] as string | undefined, details: typeof details === "string" ? decodeURIComponent(details) : "" });
      session.destroy();
    };
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) {
        answered(headers);
      }
    });
    stream.on("trailers", answered);
    stream.once("close", () => {
      resolve({ code: undefined, details: "no status" });
      session.destroy();
    });
  });
  stream.resume();
  return { stream, outcome };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("the upload watchdog hears the bytes of a message still arriving", { timeout: 120_000 }, () => {
  for (const fastPath of [true, false]) {
    const path = fastPath ? "fast path" : "grpc-js";

    test(`an 8 MiB body message at ~1.5 MB/s (23 times UPLOAD_MIN_RATE, longer than UPLOAD_IDLE_TIMEOUT) is stored (${path})`, async () => {
      const server = await startTestServer(
        { uploadIdleTimeoutMs: 3000, uploadMinRateBytesPerSecond: 65_536, uploadMinRatePeriodMs: 2000 },
        { createVersionFastPath: fastPath },
      );
      try {
        await server.client.createModel("m");
        const size = 8 * MiB;
        const upload = openUpload(server.address);
        upload.stream.write(headerFrame(size));
        const body = bodyFrame(size);
        // 64 KiB every 40 ms: the client never stops sending.
        for (let at = 0; at < body.byteLength && !upload.stream.closed; at += 64 * 1024) {
          upload.stream.write(body.subarray(at, at + 64 * 1024));
          await sleep(40);
        }
        upload.stream.end();
        const { code, details } = await upload.outcome;
        assert.equal(code, "0", details);
        const [version] = (await server.client.retrieveVersionInfos({ model_id: "m" })).version_infos;
        assert.equal(Number(version?.data_size), size);
        assert.equal(fastPath ? server.server.fastPathCalls(CREATE_VERSION_PATH) : 0, fastPath ? 1 : 0);
      } finally {
        await server.close();
      }
    });

    test(`a client that stops in the middle of a body message is still abandoned after UPLOAD_IDLE_TIMEOUT, with the data it sent (${path})`, async () => {
      const server = await startTestServer(
        { uploadIdleTimeoutMs: 1000, uploadMinRateBytesPerSecond: 0, uploadMinRatePeriodMs: 1000 },
        { createVersionFastPath: fastPath },
      );
      try {
        await server.client.createModel("m");
        const upload = openUpload(server.address);
        upload.stream.write(Buffer.concat([headerFrame(2 * MiB), bodyFrame(MiB)]));
        upload.stream.write(bodyFrame(MiB).subarray(0, 300_000)); // then nothing, the stream left open
        const { code, details } = await upload.outcome;
        assert.equal(code, String(status.DEADLINE_EXCEEDED), details);
        assert.match(
          details,
          /^CreateVersion received nothing from the client for 1(\.\d)?s \(COGMENT_MODEL_REGISTRY_UPLOAD_IDLE_TIMEOUT = 1s\) after 1048576 bytes of data; the upload was abandoned and its memory reservation released$/,
        );
        assert.deepEqual((await server.client.retrieveVersionInfos({ model_id: "m" })).version_infos, []);
      } finally {
        await server.close();
      }
    });

    test(`a client trickling a body message below UPLOAD_MIN_RATE is abandoned, naming the bytes it sent (${path})`, async () => {
      const server = await startTestServer(
        { uploadIdleTimeoutMs: 0, uploadMinRateBytesPerSecond: 65_536, uploadMinRatePeriodMs: 1000 },
        { createVersionFastPath: fastPath },
      );
      try {
        await server.client.createModel("m");
        const upload = openUpload(server.address);
        upload.stream.write(headerFrame(MiB));
        const body = bodyFrame(MiB);
        // 1 KiB every 100 ms: about 10 KiB/s, never idle, far below 64 KiB/s.
        for (let at = 0; at < body.byteLength && !upload.stream.closed; at += 1024) {
          upload.stream.write(body.subarray(at, at + 1024));
          await sleep(100);
        }
        const { code, details } = await upload.outcome;
        assert.equal(code, String(status.DEADLINE_EXCEEDED), details);
        const match =
          /^CreateVersion too slow: the client sent (\d+) bytes in 1s of waiting \((\d+) bytes\/s\), below COGMENT_MODEL_REGISTRY_UPLOAD_MIN_RATE = 65536 bytes\/s, after 0 bytes of data; the upload was abandoned and its memory reservation released$/.exec(
            details,
          );
        assert.ok(match !== null, details);
        assert.ok(Number(match[1]) < 65_536, details);
        assert.equal(match[1], match[2], "bytes per second of a one-second period");
      } finally {
        await server.close();
      }
    });
  }
});

describe("the send watchdog counts the bytes a reader takes of a message still being written", { timeout: 120_000 }, () => {
  const tooSlow = "RetrieveVersionData reader too slow: stream reset (COGMENT_MODEL_REGISTRY_SEND_MIN_RATE)";

  /** A server with 4 MiB in model "m", sent in 1 MiB messages, a reader needing 100 kB/s over 1 s periods. */
  async function serverWithVersion(t: TestContext): Promise<Awaited<ReturnType<typeof spawnServer>>> {
    const archiveDir = await makeArchiveDir();
    removeArchiveAfterServers(t, archiveDir);
    const server = await spawnServer({
      COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
      COGMENT_MODEL_REGISTRY_SEND_IDLE_TIMEOUT: "0",
      COGMENT_MODEL_REGISTRY_SEND_MIN_RATE: "100000",
      COGMENT_MODEL_REGISTRY_SEND_MIN_RATE_PERIOD: "1s",
      COGMENT_MODEL_REGISTRY_SENT_MODEL_VERSION_DATA_CHUNK_SIZE: String(MiB),
    });
    const direct = new RegistryClient(`127.0.0.1:${server.port}`);
    t.after(() => direct.close());
    await direct.createModel("m");
    await direct.publish("m", Buffer.alloc(4 * MiB, 5));
    return server;
  }

  test("a reader taking 400 kB/s (4 times SEND_MIN_RATE) of 1 MiB messages (2.6 s each) reads the whole version", async (t) => {
    const server = await serverWithVersion(t);
    const proxy = await startThrottleProxy(server.port, 20_000, 50); // 400 kB/s
    t.after(() => proxy.close());
    const client = new RegistryClient(`127.0.0.1:${proxy.port}`);
    t.after(() => client.close());
    const outcome = await client.retrieveData("m", -1).then(
      (read) => `read ${read.byteLength} bytes`,
      (error: { code: number; details: string }) => `${error.code} ${error.details}`,
    );
    const resets = server.logLines.filter((line) => String(line.msg).startsWith("RetrieveVersionData reader")).map((line) => String(line.why));
    assert.equal(outcome, `read ${4 * MiB} bytes`, `server log: ${resets.join("; ")}`);
    assert.deepEqual(resets, []);
  });

  test("a reader that stops in the middle of a message is still reset below SEND_MIN_RATE, the log naming what it took", async (t) => {
    const server = await serverWithVersion(t);
    const proxy = await startThrottleProxy(server.port, 20_000, 50);
    t.after(() => proxy.close());
    proxy.holdAt(1_500_000); // in the middle of the second message, then nothing
    const client = new RegistryClient(`127.0.0.1:${proxy.port}`);
    t.after(() => client.close());
    const outcome = client.retrieveData("m", -1).then(
      (read) => `read ${read.byteLength} bytes`,
      (error: { code: number }) => `code ${error.code}`,
    );
    let line: Record<string, unknown> | undefined;
    for (let waited = 0; line === undefined && waited < 60_000; waited += 20) {
      await sleep(20); // the log line comes through the server's stdout
      line = server.logLines.find((l) => l.msg === tooSlow);
    }
    assert.ok(line !== undefined, "the reset is logged");
    // The proxy held the reset too: once it forwards again, the client sees its stream reset.
    proxy.holdAt(undefined);
    assert.equal(await outcome, `code ${status.CANCELLED}`);
    const match = /^the reader took (\d+) bytes in 1000 ms of waiting \((\d+) bytes\/s\), below 100000 bytes\/s, after (\d+) bytes$/.exec(String(line.why));
    assert.ok(match !== null, String(line.why));
    assert.ok(Number(match[1]) < 100_000, String(line.why));
    // The bytes that left for the reader: at least what the proxy forwarded (the first message
    // whole, part of the second), less than the whole version.
    const after = Number(match[3]);
    assert.ok(after >= 1_500_000 && after < 4 * MiB, String(line.why));
  });
});
