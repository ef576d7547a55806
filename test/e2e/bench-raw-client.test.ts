import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ExpectedBytes } from "../../bench/load/expected-bytes.js";
import { GrpcStatusError } from "../../bench/load/grpc-call-status.js";
import { Http2UnaryClient } from "../../bench/load/http2-unary-client.js";
import { RawHttp2Client } from "../../bench/load/raw-http2-client.js";
import { SMALL_CALL_PATHS, createModelRequest, createVersionRequest, latestInfoRequest } from "../../bench/load/small-requests.js";
import { type TestServer, makeArchiveDir, startTestServer } from "../support/test-server.js";
import { exactly } from "../support/exact-text.js";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");
const DEADLINE_MS = 60_000;

function rejectsWithStatus(read: Promise<unknown>, code: number, message: RegExp): Promise<void> {
  return assert.rejects(read, (error: unknown) => {
    assert.ok(error instanceof GrpcStatusError, String(error));
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

describe("bench: the raw-socket HTTP/2 client (raw-http2-client.ts) against the server", () => {
  let server: TestServer;
  const readers: RawHttp2Client[] = [];
  const archived = randomBytes(5 * MiB + 123);
  const transient = randomBytes(300_000);

  const reader = (windowBytes: number): RawHttp2Client => {
    const made = new RawHttp2Client(server.address, windowBytes);
    readers.push(made);
    return made;
  };

  before(async () => {
    server = await startTestServer({ sentChunkSize: 1_000_000 });
    await server.client.createModel("raw");
    await server.client.publish("raw", archived, { archived: true });
    await server.client.publish("raw", transient);
  });

  after(async () => {
    for (const made of readers) {
      made.close();
    }
    await server?.close();
  });

  test("reads versions back to back on one connection, every byte counted and hashed", async () => {
    const raw = reader(8 * MiB);
    for (const [versionNumber, data] of [[1, archived], [2, transient], [1, archived]] as const) {
      const fetched = await raw.fetch("raw", versionNumber, undefined, Date.now() + DEADLINE_MS);
      assert.equal(fetched.bytes, data.byteLength);
      assert.equal(fetched.hashBase64, sha256(data));
    }
    assert.ok(raw.dataFrames > 0);
    assert.equal(raw.dataFrameBytes, 2 * (archived.byteLength + 6 * 9) + transient.byteLength + 9, "data, one 9-byte header per reply message");
  });

  test("with the expected bytes: every byte compared, a single different byte or a wrong length is no match", async () => {
    const raw = reader(8 * MiB);
    const dir = await mkdtemp(path.join(tmpdir(), "raw-reader-expected-"));
    try {
      const variants: [string, Buffer, boolean][] = [
        ["same", archived, true],
        ["one-byte-off", Buffer.concat([archived.subarray(0, 4 * MiB), Buffer.from([(archived[4 * MiB] as number) ^ 1]), archived.subarray(4 * MiB + 1)]), false],
        ["shorter", archived.subarray(0, archived.byteLength - 1), false],
        ["longer", Buffer.concat([archived, Buffer.from([0])]), false],
      ];
      for (const [name, bytes, matches] of variants) {
        const file = path.join(dir, name);
        await writeFile(file, bytes);
        const expected = new ExpectedBytes(file);
        try {
          const fetched = await raw.fetch("raw", 1, undefined, Date.now() + DEADLINE_MS, expected);
          assert.deepEqual([name, fetched.bytes, fetched.hashBase64, fetched.matchedExpected], [name, archived.byteLength, "", matches]);
        } finally {
          expected.close();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a window far smaller than a version: the reader's WINDOW_UPDATEs keep the data coming", async () => {
    const fetched = await reader(128 * 1024).fetch("raw", 1, undefined, Date.now() + DEADLINE_MS);
    assert.equal(fetched.hashBase64, sha256(archived));
  });

  test("a gRPC error status is reported with its code and its (Huffman-coded) message", async () => {
    const raw = reader(8 * MiB);
    await rejectsWithStatus(raw.fetch("raw", 9, undefined, Date.now() + DEADLINE_MS), 5, /^gRPC status 5: .*version 9.*"raw"/);
    await rejectsWithStatus(raw.fetch("absent-model", 1, undefined, Date.now() + DEADLINE_MS), 5, /^gRPC status 5: .*absent-model/);
    // The connection goes on after failed calls.
    assert.equal((await raw.fetch("raw", 2, undefined, Date.now() + DEADLINE_MS)).hashBase64, sha256(transient));
  });

  test("unary calls back to back on one connection: the same replies as node:http2's client, the calls' effects stored", async () => {
    const raw = reader(MiB);
    const lean = new Http2UnaryClient(server.address);
    try {
      const infos = latestInfoRequest("raw");
      const expectedBytes = await lean.unary(SMALL_CALL_PATHS.infos, infos, DEADLINE_MS);
      // From the second call on, the request headers are one-byte references to the server's HPACK table.
      for (let call = 0; call < 50; call++) {
        assert.equal(await raw.unary(SMALL_CALL_PATHS.infos, infos, DEADLINE_MS), expectedBytes);
      }
      for (let step = 1; step <= 5; step++) {
        assert.equal(await raw.unary(SMALL_CALL_PATHS["create-model"], createModelRequest("raw-unary", step), DEADLINE_MS), 5);
      }
      assert.deepEqual((await server.client.retrieveModels({ model_ids: ["raw-unary"] })).model_infos.map((info) => info.user_data), [{ step: "5" }]);
      // A request of several DATA frames (16 KiB each).
      const data = randomBytes(40 * 1024 + 3);
      assert.ok((await raw.unary(SMALL_CALL_PATHS["create-version"], createVersionRequest("raw-unary", data), DEADLINE_MS)) > 5);
      assert.deepEqual(await server.client.retrieveData("raw-unary", 1), data);
    } finally {
      lean.close();
    }
  });

  test("unary: a gRPC error is reported with its status; a request over one initial window is refused before it is sent", async () => {
    const raw = reader(MiB);
    await rejectsWithStatus(raw.unary(SMALL_CALL_PATHS.infos, latestInfoRequest("absent-model"), DEADLINE_MS), 5, /^gRPC status 5: .*absent-model/);
    await assert.rejects(
      raw.unary(SMALL_CALL_PATHS["create-version"], createVersionRequest("raw", randomBytes(70_000)), DEADLINE_MS),
      /^Error: a 70036-byte request: the raw client sends at most one initial window \(65535 bytes\)$/,
    );
    assert.equal(await raw.unary(SMALL_CALL_PATHS.infos, latestInfoRequest("raw"), DEADLINE_MS) > 5, true);
  });
});

describe("bench: the raw client on an archived version after a restart (loaded while streamed)", () => {
  test("the first read's bytes hash right; a corrupted file ends the stream with DATA_LOSS", async () => {
    const archiveDir = await makeArchiveDir();
    const data = randomBytes(3 * MiB + 7);
    let server = await startTestServer({ archiveDir });
    let raw: RawHttp2Client | undefined;
    try {
      await server.client.createModel("big");
      await server.client.publish("big", data, { archived: true });
      await server.stop();
      server = await startTestServer({ archiveDir });
      raw = new RawHttp2Client(server.address, 8 * 1024 * 1024);
      const first = await raw.fetch("big", 1, undefined, Date.now() + DEADLINE_MS);
      assert.deepEqual([first.bytes, first.hashBase64], [data.byteLength, sha256(data)]);
      raw.close();
      await server.stop();

      const file = await open(path.join(archiveDir, "big", "big-v000001.data"), "r+");
      await file.write(Buffer.from([(data[MiB] as number) ^ 0x10]), 0, 1, MiB);
      await file.close();
      server = await startTestServer({ archiveDir });
      raw = new RawHttp2Client(server.address, 8 * 1024 * 1024);
      await rejectsWithStatus(raw.fetch("big", 1, undefined, Date.now() + DEADLINE_MS), 15, /^gRPC status 15: .*corrupted on disk/);
    } finally {
      raw?.close();
      await server.close();
    }
  });
});

describe("bench: the raw client against a hand-made HTTP/2 server (what the registry never sends)", () => {
  let reply: (stream: http2.ServerHttp2Stream) => void = () => {};
  let fake: http2.Http2Server;
  let address = "";
  const readers: RawHttp2Client[] = [];

  before(async () => {
    fake = http2.createServer();
    fake.on("stream", (stream) => {
      stream.on("error", () => {}); // the reset test's own stream
      stream.resume();
      stream.on("end", () => reply(stream));
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    address = `127.0.0.1:${(fake.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const made of readers) {
      made.close();
    }
    await new Promise((resolve) => fake.close(resolve));
  });

  const fetchWith = (handler: (stream: http2.ServerHttp2Stream) => void): Promise<unknown> => {
    reply = handler;
    const raw = new RawHttp2Client(address, 1024 * 1024);
    readers.push(raw);
    return raw.fetch("m", 1, undefined, Date.now() + DEADLINE_MS);
  };

  test("a grpc-message of every printable character comes back exactly", async () => {
    const message = Array.from({ length: 95 }, (_, index) => String.fromCharCode(32 + index)).join("");
    await rejectsWithStatus(
      fetchWith((stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "13", "grpc-message": encodeURIComponent(message) }));
        stream.end();
      }),
      13,
      exactly(`gRPC status 13: ${message}`),
    );
  });

  test("a reply message that is not a RetrieveVersionDataReplyChunk is refused", async () => {
    await assert.rejects(
      fetchWith((stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(Buffer.from([0, 0, 0, 0, 3, 0x12, 1, 0x41]));
      }),
      /^Error: unexpected protobuf tag 0x12 in RetrieveVersionDataReplyChunk$/,
    );
  });

  test("OK trailers after a message cut short: INTERNAL, not success", async () => {
    await rejectsWithStatus(
      fetchWith((stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(Buffer.from([0, 0, 0, 0, 10, 0x0a, 8, 1, 2]));
      }),
      13,
      /^gRPC status 13: response ended inside a message$/,
    );
  });

  test("unary: OK trailers without a reply message are INTERNAL", async () => {
    reply = (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end();
    };
    const raw = new RawHttp2Client(address, 1024 * 1024);
    readers.push(raw);
    await rejectsWithStatus(raw.unary("/x/Y", Buffer.from([0, 0, 0, 0, 0]), DEADLINE_MS), 13, /^gRPC status 13: OK without a reply message$/);
  });

  test("a stream that ends without a gRPC status is UNAVAILABLE", async () => {
    await rejectsWithStatus(
      fetchWith((stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" });
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      }),
      14,
      /^gRPC status 14: stream ended without a gRPC status$/,
    );
  });

  test("a reply that is not gRPC (HTTP 404) is refused", async () => {
    await rejectsWithStatus(
      fetchWith((stream) => {
        stream.respond({ ":status": 404, "content-type": "text/plain" });
        stream.end("no");
      }),
      13,
      /^gRPC status 13: HTTP status 404, content-type "text\/plain"$/,
    );
  });

  test("a stream reset by the server fails the call", async () => {
    await rejectsWithStatus(
      fetchWith((stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)),
      14,
      /^gRPC status 14: stream reset by the server \(HTTP\/2 code 2\)$/,
    );
  });
});
