/*
 * The unary methods served below grpc-js (src/rpc/unary-stream.ts) against grpc-js's own path: the
 * same requests, sent with raw node:http2 to a server with the fast path and to one without, must
 * give the same bytes on the wire (every response header but `date`, the reply, the trailers, the
 * stream's reset code) and the same call log line, and leave the same models and versions.
 */
import assert from "node:assert/strict";
import { constants } from "node:http2";
import { after, before, describe, test } from "node:test";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { pino } from "pino";
import { MAX_RECEIVE_MESSAGE_BYTES } from "../../src/server.js";
import { type LogLine, type RawCallOptions, type RawResponse, frame, logged, rawCall, settles } from "../support/raw-wire-call.js";
import { type TestServer, startTestServer } from "../support/test-server.js";

const SERVICE = "/cogmentAPI.ModelRegistrySP/";
const RETRIEVE_VERSION_INFOS = `${SERVICE}RetrieveVersionInfos`;
const RETRIEVE_MODELS = `${SERVICE}RetrieveModels`;
const CREATE_OR_UPDATE_MODEL = `${SERVICE}CreateOrUpdateModel`;
const DELETE_MODEL = `${SERVICE}DeleteModel`;
const OK_TRAILERS = ["grpc-status: 0", "grpc-message: OK"];
const REPLY_HEADERS = [":status: 200", "content-type: application/grpc+proto", "grpc-accept-encoding: identity,deflate,gzip", "grpc-encoding: identity"];

interface Side {
  readonly server: TestServer;
  readonly lines: LogLine[];
}

interface InfosRequest {
  readonly modelId: string;
  readonly numbers?: readonly number[];
  readonly count?: number;
  readonly handle?: string;
}

function infosRequest({ modelId, numbers = [], count = 0, handle = "" }: InfosRequest): Buffer {
  const writer = new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId);
  if (numbers.length > 0) {
    writer.tag(2, WireType.LengthDelimited).fork();
    for (const number of numbers) {
      writer.int32(number);
    }
    writer.join();
  }
  if (count !== 0) {
    writer.tag(3, WireType.Varint).uint32(count);
  }
  if (handle !== "") {
    writer.tag(4, WireType.LengthDelimited).string(handle);
  }
  return frame(writer.finish());
}

function modelsRequest(ids: readonly string[], count = 0, handle = ""): Buffer {
  const writer = new BinaryWriter();
  for (const id of ids) {
    writer.tag(1, WireType.LengthDelimited).string(id);
  }
  if (count !== 0) {
    writer.tag(3, WireType.Varint).uint32(count);
  }
  if (handle !== "") {
    writer.tag(4, WireType.LengthDelimited).string(handle);
  }
  return frame(writer.finish());
}

function modelRequest(modelId: string, userData: Readonly<Record<string, string>> = {}): Buffer {
  const info = new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId);
  for (const [key, value] of Object.entries(userData)) {
    info.tag(2, WireType.LengthDelimited).bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).string(key).tag(2, WireType.LengthDelimited).string(value).finish());
  }
  return frame(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(info.finish()).finish());
}

function deleteRequest(modelId: string): Buffer {
  return frame(new BinaryWriter().tag(1, WireType.LengthDelimited).string(modelId).finish());
}

async function startSide(unaryFastPath: boolean): Promise<Side> {
  const lines: LogLine[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const server = await startTestServer({}, { unaryFastPath }, log);
  // The same models and versions on both sides, timestamps included.
  await server.client.createModel("m", { owner: "team" });
  await server.client.createModel("other");
  for (const [index, archived] of [false, true, false].entries()) {
    await server.client.publish("m", Buffer.from(`version ${index}`), { archived, creation_timestamp: String(1_700_000_000_000_000_000n + BigInt(index)) });
  }
  return { server, lines };
}

/** The "call finished" lines of `path`'s calls logged since `from`. */
function callLines(side: Side, path: string, from: number): LogLine[] {
  const method = path.slice(SERVICE.length);
  return side.lines.slice(from).filter((line) => line.msg === "call finished" && line.method === method);
}

describe("unary methods below grpc-js: the same wire behaviour as grpc-js's path", () => {
  let fast: Side;
  let grpcJs: Side;
  before(async () => {
    fast = await startSide(true);
    grpcJs = await startSide(false);
  });
  after(async () => {
    await fast?.server.close();
    await grpcJs?.server.close();
  });

  /** Sends the same call to both servers; checks where each was served and that both answered alike; gives the fast path's. */
  async function both(
    path: string,
    frames: readonly Buffer[],
    options: RawCallOptions & { readonly fastPathServes?: boolean } = {},
  ): Promise<{ response: RawResponse; lines: LogLine[] }> {
    const servedBefore = fast.server.server.fastPathCalls(path);
    const fastFrom = fast.lines.length;
    const grpcJsFrom = grpcJs.lines.length;
    const a = await rawCall(fast.server.address, path, frames, options);
    const b = await rawCall(grpcJs.server.address, path, frames, options);
    assert.ok(await settles(() => callLines(fast, path, fastFrom).length > 0 && callLines(grpcJs, path, grpcJsFrom).length > 0), "both calls logged");
    assert.equal(fast.server.server.fastPathCalls(path) - servedBefore, options.fastPathServes === false ? 0 : 1, "calls served below grpc-js");
    assert.equal(grpcJs.server.server.fastPathCalls(path), 0);
    assert.deepEqual(a, b);
    const lines = callLines(fast, path, fastFrom);
    assert.deepEqual(logged(lines), logged(callLines(grpcJs, path, grpcJsFrom)));
    return { response: a, lines };
  }

  test("RetrieveVersionInfos: the latest, by numbers, paged: the same headers, reply bytes and trailers", async () => {
    const latest = await both(RETRIEVE_VERSION_INFOS, [infosRequest({ modelId: "m", numbers: [-1] })]);
    assert.deepEqual(latest.response.headers, REPLY_HEADERS);
    assert.deepEqual(latest.response.trailers, OK_TRAILERS);
    assert.ok(latest.response.data.includes(Buffer.from("m")), "the reply carries the model's info");
    assert.deepEqual(logged(latest.lines), [{ code: "OK", details: undefined, modelId: "m" }]);
    const reply = await fast.server.client.retrieveVersionInfos({ model_id: "m", version_numbers: [-1] });
    assert.equal(reply.version_infos[0]?.version_number, 3);

    await both(RETRIEVE_VERSION_INFOS, [infosRequest({ modelId: "m", numbers: [1, 3] })]);
    const firstPage = await both(RETRIEVE_VERSION_INFOS, [infosRequest({ modelId: "m", count: 2 })]);
    assert.ok(firstPage.response.data.includes(Buffer.from("3")), "the next page's handle");
    await both(RETRIEVE_VERSION_INFOS, [infosRequest({ modelId: "m", count: 2, handle: "3" })]);
  });

  test("RetrieveModels: all, by ids, paged", async () => {
    const all = await both(RETRIEVE_MODELS, [modelsRequest([])]);
    assert.deepEqual(all.response.trailers, OK_TRAILERS);
    assert.ok(all.response.data.includes(Buffer.from("team")), "user data in the reply");
    await both(RETRIEVE_MODELS, [modelsRequest(["other"])]);
    await both(RETRIEVE_MODELS, [modelsRequest([], 1)]);
    await both(RETRIEVE_MODELS, [modelsRequest([], 1, "1")]);
  });

  test("CreateOrUpdateModel and DeleteModel: an empty reply, and the change made", async () => {
    const created = await both(CREATE_OR_UPDATE_MODEL, [modelRequest("made", { k: "v" })]);
    assert.deepEqual(created.response.headers, REPLY_HEADERS);
    assert.deepEqual(created.response.data, Buffer.alloc(5));
    assert.deepEqual(created.response.trailers, OK_TRAILERS);
    assert.deepEqual(logged(created.lines), [{ code: "OK", details: undefined, modelId: "made" }]);
    assert.deepEqual((await fast.server.client.retrieveModels({ model_ids: ["made"] })).model_infos, [{ model_id: "made", user_data: { k: "v" } }]);

    const deleted = await both(DELETE_MODEL, [deleteRequest("made")]);
    assert.deepEqual(deleted.response.data, Buffer.alloc(5));
    assert.deepEqual(deleted.response.trailers, OK_TRAILERS);
    assert.deepEqual((await fast.server.client.retrieveModels()).model_infos.map((model) => model.model_id), ["m", "other"]);
  });

  test("NOT_FOUND: the same trailers-only response and log line", async () => {
    for (const [path, request] of [
      [RETRIEVE_VERSION_INFOS, infosRequest({ modelId: "nobody", numbers: [-1] })],
      [RETRIEVE_VERSION_INFOS, infosRequest({ modelId: "m", numbers: [9] })],
      [RETRIEVE_MODELS, modelsRequest(["nobody"])],
      [DELETE_MODEL, deleteRequest("nobody")],
    ] as const) {
      const { response, lines } = await both(path, [request]);
      assert.deepEqual(response.headers.slice(0, 2), [":status: 200", "grpc-status: 5"], path);
      assert.equal(response.trailers, undefined);
      assert.equal(response.data.byteLength, 0);
      assert.equal(lines[0]?.code, "NOT_FOUND");
    }
  });

  test("INVALID_ARGUMENT: a bad model id, too many numbers, bytes that are not the message", async () => {
    const cases: [string, Buffer][] = [
      [RETRIEVE_VERSION_INFOS, infosRequest({ modelId: "", numbers: [-1] })],
      [RETRIEVE_VERSION_INFOS, infosRequest({ modelId: "m", numbers: Array.from({ length: 100_001 }, (_, i) => i) })],
      [RETRIEVE_MODELS, modelsRequest(["ok", "x".repeat(300)])],
      [CREATE_OR_UPDATE_MODEL, frame(new BinaryWriter().finish())],
      [CREATE_OR_UPDATE_MODEL, modelRequest("x".repeat(251))],
      [DELETE_MODEL, frame(Buffer.from([0x0a, 0x05, 0x61]))],
    ];
    for (const [path, request] of cases) {
      const { response, lines } = await both(path, [request]);
      assert.equal(response.headers[1], "grpc-status: 3", `${path}: ${response.headers.join(", ")}`);
      assert.equal(lines[0]?.code, "INVALID_ARGUMENT");
    }
  });

  test("one request message exactly: none, one cut short, two", async () => {
    const whole = infosRequest({ modelId: "m", numbers: [-1] });
    const none = await both(RETRIEVE_VERSION_INFOS, []);
    assert.deepEqual(none.response.headers.slice(1), [
      "grpc-status: 3",
      "grpc-message: /cogmentAPI.ModelRegistrySP/RetrieveVersionInfos:%20the%20request%20stream%20ended%20without%20a%20whole%20request%20message;%20the%20method%20takes%20exactly%20one",
      "content-type: application/grpc+proto",
    ]);
    // Logged as the client's cancel, on both paths.
    assert.deepEqual(logged(none.lines), [
      { code: "CANCELLED", details: "the client ended the call before sending its request message (cancelled by the client)", modelId: undefined },
    ]);
    const cut = await both(RETRIEVE_VERSION_INFOS, [whole.subarray(0, whole.byteLength - 1)]);
    assert.equal(cut.response.headers[1], "grpc-status: 3");
    const two = await both(RETRIEVE_VERSION_INFOS, [whole, whole]);
    assert.deepEqual(logged(two.lines), [
      { code: "INVALID_ARGUMENT", details: "/cogmentAPI.ModelRegistrySP/RetrieveVersionInfos: a second request message was sent; the method takes exactly one", modelId: "m" },
    ]);
  });

  test("the message in 1-byte DATA frames, with the compressed flag, or announced over the limit", async () => {
    const whole = infosRequest({ modelId: "m", numbers: [-1] });
    const pieces = [...whole].map((byte) => Buffer.from([byte]));
    assert.deepEqual((await both(RETRIEVE_VERSION_INFOS, pieces)).response.trailers, OK_TRAILERS);
    const flagged = Buffer.from(whole);
    flagged[0] = 1;
    assert.deepEqual((await both(RETRIEVE_VERSION_INFOS, [flagged])).response.trailers, OK_TRAILERS);
    const announced = Buffer.alloc(5);
    announced.writeUInt32BE(MAX_RECEIVE_MESSAGE_BYTES + 1, 1);
    const tooLarge = await both(RETRIEVE_VERSION_INFOS, [announced]);
    assert.deepEqual(tooLarge.response.headers.slice(1, 3), [
      "grpc-status: 8",
      `grpc-message: Received%20message%20larger%20than%20max%20(${MAX_RECEIVE_MESSAGE_BYTES + 1}%20vs%20${MAX_RECEIVE_MESSAGE_BYTES})`,
    ]);
    // Over 4 MiB: refused before decoding (request-limits.ts).
    const big = frame(Buffer.alloc(4 * 1024 * 1024 + 1));
    const refused = await both(RETRIEVE_MODELS, [big]);
    assert.equal(refused.response.headers[1], "grpc-status: 8");
  });

  test("deadlines: a bad grpc-timeout is INTERNAL; a request that never ends gets DEADLINE_EXCEEDED", async () => {
    const whole = infosRequest({ modelId: "m", numbers: [-1] });
    const bad = await both(RETRIEVE_VERSION_INFOS, [whole], { extraHeaders: { "grpc-timeout": "abc" } });
    assert.deepEqual(bad.response.headers.slice(1, 3), ["grpc-status: 13", 'grpc-message: Invalid%20grpc-timeout%20value%20%22abc%22']);
    const late = await both(RETRIEVE_VERSION_INFOS, [whole], {
      extraHeaders: { "grpc-timeout": "200m" },
      end: false,
      afterWrite: async ({ response, end }) => {
        await response();
        end();
      },
    });
    assert.deepEqual(late.response.headers.slice(1, 3), ["grpc-status: 4", "grpc-message: Deadline%20exceeded"]);
    assert.deepEqual(logged(late.lines), [{ code: "DEADLINE_EXCEEDED", details: "Deadline exceeded", modelId: "m" }]);
    const inTime = await both(RETRIEVE_VERSION_INFOS, [whole], { extraHeaders: { "grpc-timeout": "30S" } });
    assert.deepEqual(inTime.response.trailers, OK_TRAILERS);
  });

  test("a call the client cancels before its request message is whole: no answer, logged CANCELLED", async () => {
    const whole = infosRequest({ modelId: "m", numbers: [-1] });
    // A whole message would race the answer against the reset; part of one cannot be answered.
    const { response, lines } = await both(RETRIEVE_VERSION_INFOS, [whole.subarray(0, 3)], {
      end: false,
      afterWrite: ({ cancel }) => cancel(),
    });
    assert.equal(response.rstCode, constants.NGHTTP2_CANCEL);
    assert.deepEqual(response.headers, []);
    assert.equal(lines[0]?.code, "CANCELLED");
  });

  test("a compressed request (grpc-encoding gzip) stays on grpc-js's path", async () => {
    const { response } = await both(RETRIEVE_VERSION_INFOS, [infosRequest({ modelId: "m", numbers: [-1] })], {
      extraHeaders: { "grpc-encoding": "gzip" },
      fastPathServes: false,
    });
    assert.deepEqual(response.trailers, OK_TRAILERS);
  });
});
