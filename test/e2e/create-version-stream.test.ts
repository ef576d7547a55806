/*
 * CreateVersion served below grpc-js (src/rpc/create-version-stream.ts) against grpc-js's own path:
 * the same requests, sent with raw node:http2 to a server with the fast path and to one without,
 * must give the same bytes on the wire (every response header but `date`, the reply, the trailers,
 * the stream's reset code), the same call log line and the same stored versions.
 */
import assert from "node:assert/strict";
import { constants } from "node:http2";
import { after, before, describe, test } from "node:test";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { pino } from "pino";
import { MAX_RECEIVE_MESSAGE_BYTES } from "../../src/server.js";
import { type LogLine, type RawCallOptions, type RawResponse, frame, logged, rawCall, settles } from "../support/raw-wire-call.js";
import { type TestServer, startTestServer } from "../support/test-server.js";

const CREATE_VERSION = "/cogmentAPI.ModelRegistrySP/CreateVersion";
const TIMESTAMP = 1_700_000_000_000_000_000n;

interface Side {
  readonly name: "fast path" | "grpc-js";
  readonly server: TestServer;
  readonly lines: LogLine[];
}

function header(modelId: string, dataSize: number): Buffer {
  const info = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(modelId)
    .tag(3, WireType.Bit64)
    .fixed64(TIMESTAMP)
    .tag(6, WireType.Bit64)
    .fixed64(dataSize)
    .finish();
  return frame(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(info).finish()).finish());
}

function body(data: Uint8Array, flag = 0): Buffer {
  return frame(new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(data).finish()).finish(), flag);
}

const DATA = Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7) & 0xff));

/** An upload in flight on this side's server (its header was taken). */
const uploadingOn = (side: Side) => (): boolean => side.server.server.registry.stats().uploadsInFlight > 0;

/** The "call finished" lines of CreateVersion calls logged since `from`. */
function createVersionLines(side: Side, from: number): LogLine[] {
  return side.lines.slice(from).filter((line) => line.msg === "call finished" && line.method === "CreateVersion");
}

async function startSide(name: Side["name"], overrides: Parameters<typeof startTestServer>[0] = {}): Promise<Side> {
  const lines: LogLine[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const server = await startTestServer(overrides, { createVersionFastPath: name === "fast path" }, log);
  await server.client.createModel("m");
  return { name, server, lines };
}

/** Waits until `check` is true, polling, at most 30 s (the server logs a call's end after its stream closes). */
async function eventually(check: () => boolean): Promise<void> {
  await settles(check);
}

describe("CreateVersion below grpc-js: the same wire behaviour as grpc-js's path", () => {
  let fast: Side;
  let grpcJs: Side;
  before(async () => {
    fast = await startSide("fast path");
    grpcJs = await startSide("grpc-js");
  });
  after(async () => {
    await fast?.server.close();
    await grpcJs?.server.close();
  });

  /** Sends the same call to both servers; checks the fast path served only its own; gives both responses. */
  async function both(
    frames: readonly Buffer[],
    options: RawCallOptions & { readonly fastPathServes?: boolean } = {},
  ): Promise<{ fast: RawResponse; grpcJs: RawResponse; fastLines: LogLine[]; grpcJsLines: LogLine[] }> {
    const servedBefore = fast.server.server.fastPathCalls(CREATE_VERSION);
    const fastFrom = fast.lines.length;
    const grpcJsFrom = grpcJs.lines.length;
    const fastResponse = await rawCall(fast.server.address, CREATE_VERSION, frames, { ...options, uploading: uploadingOn(fast) });
    const grpcJsResponse = await rawCall(grpcJs.server.address, CREATE_VERSION, frames, { ...options, uploading: uploadingOn(grpcJs) });
    await eventually(() => createVersionLines(fast, fastFrom).length > 0 && createVersionLines(grpcJs, grpcJsFrom).length > 0);
    assert.equal(fast.server.server.fastPathCalls(CREATE_VERSION) - servedBefore, options.fastPathServes === false ? 0 : 1, "calls served below grpc-js");
    assert.equal(grpcJs.server.server.fastPathCalls(CREATE_VERSION), 0);
    return {
      fast: fastResponse,
      grpcJs: grpcJsResponse,
      fastLines: createVersionLines(fast, fastFrom),
      grpcJsLines: createVersionLines(grpcJs, grpcJsFrom),
    };
  }

  test("success: the same headers, reply bytes and trailers; the version is stored", async () => {
    const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both([header("m", DATA.byteLength), body(DATA)]);
    assert.deepEqual(a.headers, [":status: 200", "content-type: application/grpc+proto", "grpc-accept-encoding: identity,deflate,gzip", "grpc-encoding: identity"]);
    assert.deepEqual(a.trailers, ["grpc-status: 0", "grpc-message: OK"]);
    assert.deepEqual(a, b);
    assert.ok(a.data.byteLength > 5);
    assert.deepEqual(logged(fastLines), [{ code: "OK", details: undefined, modelId: "m" }]);
    assert.deepEqual(logged(fastLines), logged(grpcJsLines));
    const stored = await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] });
    assert.equal(stored.version_infos[0]?.data_size, "1024");
    assert.deepEqual(await fast.server.client.retrieveData("m", Number(stored.version_infos[0]?.version_number)), DATA);
  });

  test("a message split over many DATA frames and one packed with the next: same reply", async () => {
    const whole = Buffer.concat([header("m", DATA.byteLength), body(DATA)]);
    const pieces = Array.from({ length: Math.ceil(whole.byteLength / 3) }, (_, i) => whole.subarray(i * 3, i * 3 + 3));
    const { fast: a, grpcJs: b } = await both(pieces);
    assert.deepEqual(a.trailers, ["grpc-status: 0", "grpc-message: OK"]);
    assert.deepEqual(a, b);
  });

  test("the compressed flag with the identity encoding: taken as uncompressed, as grpc-js does", async () => {
    const { fast: a, grpcJs: b } = await both([header("m", DATA.byteLength), body(DATA, 1)]);
    assert.deepEqual(a.trailers, ["grpc-status: 0", "grpc-message: OK"]);
    assert.deepEqual(a, b);
  });

  test("NOT_FOUND model: the same trailers-only response and log line", async () => {
    const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both([header("nobody", 1), body(Buffer.from("x"))]);
    assert.deepEqual(a.headers.slice(0, 2), [":status: 200", "grpc-status: 5"]);
    assert.match(a.headers[2] ?? "", /^grpc-message: .*nobody/);
    assert.deepEqual(a.trailers, undefined);
    assert.deepEqual(a, b);
    assert.equal(fastLines[0]?.code, "NOT_FOUND");
    assert.deepEqual(logged(fastLines), logged(grpcJsLines));
  });

  test("bad header: a body first, an invalid model id, an empty stream: the same INVALID_ARGUMENT", async () => {
    for (const frames of [[body(DATA)], [header("x".repeat(300), 1), body(Buffer.from("x"))], []]) {
      const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both(frames);
      assert.equal(a.headers[1], "grpc-status: 3");
      assert.deepEqual(a, b);
      assert.deepEqual(logged(fastLines), logged(grpcJsLines));
    }
  });

  test("a wrong size and a second header after data: the same INVALID_ARGUMENT, no version", async () => {
    for (const frames of [
      [header("m", 10), body(DATA)],
      [header("m", DATA.byteLength), body(DATA.subarray(0, 10)), header("m", 1)],
    ]) {
      const before = await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] });
      const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both(frames);
      assert.equal(a.headers[1], "grpc-status: 3");
      assert.deepEqual(a, b);
      assert.deepEqual(logged(fastLines), logged(grpcJsLines));
      assert.deepEqual(await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] }), before);
    }
  });

  test("a message over the receive limit: the same RESOURCE_EXHAUSTED as grpc-js's decoder", async () => {
    const oversize = Buffer.alloc(5 + 16);
    oversize.writeUInt32BE(MAX_RECEIVE_MESSAGE_BYTES + 1, 1);
    const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both([header("m", 1), oversize]);
    assert.deepEqual(a.headers.slice(0, 3), [
      ":status: 200",
      "grpc-status: 8",
      `grpc-message: Received%20message%20larger%20than%20max%20(${MAX_RECEIVE_MESSAGE_BYTES + 1}%20vs%20${MAX_RECEIVE_MESSAGE_BYTES})`,
    ]);
    assert.deepEqual(a, b);
    assert.deepEqual(logged(fastLines), logged(grpcJsLines));
  });

  test("a malformed message: the same INVALID_ARGUMENT naming the message type", async () => {
    const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both([header("m", 1), frame(Buffer.from([0x12, 0xff, 0xff, 0xff]))]);
    assert.equal(a.headers[1], "grpc-status: 3");
    assert.match(decodeURI(a.headers[2] ?? ""), /the request is not a valid cogmentAPI.CreateVersionRequestChunk message/);
    assert.deepEqual(a, b);
    assert.deepEqual(logged(fastLines), logged(grpcJsLines));
  });

  test("a grpc-timeout deadline passing mid-upload: the same DEADLINE_EXCEEDED, no version", async () => {
    const before = await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] });
    const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both([header("m", 2 * DATA.byteLength), body(DATA)], {
      extraHeaders: { "grpc-timeout": "200m" },
      end: false,
      afterWrite: async ({ response, end }) => {
        await response();
        end();
      },
    });
    assert.deepEqual(a.headers.slice(0, 3), [":status: 200", "grpc-status: 4", "grpc-message: Deadline%20exceeded"]);
    assert.deepEqual(a, b);
    assert.deepEqual(logged(fastLines), [{ code: "DEADLINE_EXCEEDED", details: "Deadline exceeded", modelId: "m" }]);
    assert.deepEqual(logged(fastLines), logged(grpcJsLines));
    assert.deepEqual(await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] }), before);
  });

  test("a grpc-timeout not in gRPC's form: the same INTERNAL; one in time: the same success", async () => {
    const bad = await both([header("m", DATA.byteLength), body(DATA)], { extraHeaders: { "grpc-timeout": "soon" } });
    assert.deepEqual(bad.fast.headers.slice(0, 3), [":status: 200", "grpc-status: 13", "grpc-message: Invalid%20grpc-timeout%20value%20%22soon%22"]);
    assert.deepEqual(bad.fast, bad.grpcJs);
    assert.deepEqual(logged(bad.fastLines), logged(bad.grpcJsLines));
    const good = await both([header("m", DATA.byteLength), body(DATA)], { extraHeaders: { "grpc-timeout": "30S" } });
    assert.deepEqual(good.fast.trailers, ["grpc-status: 0", "grpc-message: OK"]);
    assert.deepEqual(good.fast, good.grpcJs);
  });

  test("the client's connection drops mid-upload: CANCELLED logged, no version, nothing held", async () => {
    const before = await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] });
    const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both([header("m", 2 * DATA.byteLength), body(DATA)], {
      end: false,
      afterWrite: async ({ dropConnection, untilUploading }) => {
        await untilUploading();
        dropConnection();
      },
    });
    assert.deepEqual(a.headers, []);
    assert.deepEqual(a, b);
    assert.deepEqual(logged(fastLines), [
      { code: "CANCELLED", details: "the stream closed before a status was sent (cancelled by the client)", modelId: "m" },
    ]);
    assert.deepEqual(logged(fastLines), logged(grpcJsLines));
    assert.deepEqual(await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] }), before);
    assert.ok(await settles(() => fast.server.server.registry.stats().uploadsInFlight === 0), "the upload is released");
    assert.equal((await fast.server.client.status(["uploads_in_flight"])).statuses.uploads_in_flight, "0");
  });

  test("the client cancels its stream mid-upload (END_STREAM, then RST_STREAM): the same as grpc-js, no version", async () => {
    const before = await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] });
    const { fast: a, grpcJs: b, fastLines, grpcJsLines } = await both([header("m", 2 * DATA.byteLength), body(DATA)], {
      end: false,
      afterWrite: async ({ cancel, untilUploading }) => {
        await untilUploading();
        cancel();
      },
    });
    assert.equal(a.rstCode, constants.NGHTTP2_CANCEL);
    assert.deepEqual(a, b);
    assert.deepEqual(logged(fastLines), logged(grpcJsLines));
    assert.deepEqual(await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] }), before);
    assert.ok(await settles(() => fast.server.server.registry.stats().uploadsInFlight === 0), "the upload is released");
    assert.equal((await fast.server.client.status(["uploads_in_flight"])).statuses.uploads_in_flight, "0");
  });
});

describe("CreateVersion below grpc-js: what it does not serve goes to grpc-js", () => {
  let fast: Side;
  before(async () => {
    fast = await startSide("fast path");
  });
  after(async () => {
    await fast?.server.close();
  });

  for (const [what, extraHeaders] of [
    ["two grpc-timeout values", { "grpc-timeout": ["10S", "20S"] }],
    ["a grpc-encoding other than identity", { "grpc-encoding": "gzip" }],
    ["another content type", { "content-type": "application/grpc+json" }],
  ] as const) {
    test(`${what}: served by grpc-js`, async () => {
      const served = fast.server.server.fastPathCalls(CREATE_VERSION);
      const response = await rawCall(fast.server.address, CREATE_VERSION, [header("m", DATA.byteLength), body(DATA)], { extraHeaders });
      assert.deepEqual(response.trailers, ["grpc-status: 0", "grpc-message: OK"]);
      assert.equal(fast.server.server.fastPathCalls(CREATE_VERSION), served);
    });
  }

  test("identity, application/grpc+proto, a grpc-timeout and a stock grpc-js client: served below grpc-js", async () => {
    const served = fast.server.server.fastPathCalls(CREATE_VERSION);
    const response = await rawCall(fast.server.address, CREATE_VERSION, [header("m", DATA.byteLength), body(DATA)], {
      extraHeaders: { "grpc-encoding": "identity", "content-type": "application/grpc+proto", "grpc-timeout": "10S" },
    });
    assert.deepEqual(response.trailers, ["grpc-status: 0", "grpc-message: OK"]);
    await fast.server.client.createVersion({ model_id: "m", data_size: "3" }, ["abc"]);
    assert.equal(fast.server.server.fastPathCalls(CREATE_VERSION), served + 2);
  });

  test("another method: served by grpc-js", async () => {
    const served = fast.server.server.fastPathCalls(CREATE_VERSION);
    await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] });
    assert.equal(fast.server.server.fastPathCalls(CREATE_VERSION), served);
  });
});

describe("CreateVersion below grpc-js: a server stopping mid-upload", () => {
  test("the upload is cancelled at the end of the grace period, as on grpc-js's path: the same reset, the same log line", async () => {
    const results: { rstCode: number | undefined; headers: string[]; trailers: string[] | undefined; lines: ReturnType<typeof logged> }[] = [];
    for (const name of ["fast path", "grpc-js"] as const) {
      const side = await startSide(name, { shutdownGraceMs: 300 });
      try {
        const from = side.lines.length;
        const served = side.server.server.fastPathCalls(CREATE_VERSION);
        let stopped: Promise<void> | undefined;
        const response = await rawCall(side.server.address, CREATE_VERSION, [header("m", 2 * DATA.byteLength), body(DATA)], {
          end: false,
          uploading: uploadingOn(side),
          afterWrite: async ({ untilUploading }) => {
            await untilUploading();
            stopped = side.server.stop();
          },
        });
        await stopped;
        await eventually(() => createVersionLines(side, from).length > 0);
        assert.equal(side.server.server.fastPathCalls(CREATE_VERSION) - served, name === "fast path" ? 1 : 0);
        results.push({ ...response, lines: logged(createVersionLines(side, from)) });
      } finally {
        await side.server.close();
      }
    }
    const [fastResult, grpcJsResult] = results;
    assert.equal(fastResult?.lines[0]?.code, "CANCELLED");
    assert.deepEqual(fastResult, grpcJsResult);
  });
});
