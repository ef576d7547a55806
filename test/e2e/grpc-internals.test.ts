import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import {
  checkGrpcInternals,
  describeGrpcInternalsProblem,
  grpcJsVersion,
  divertStreams,
  grpcHttp2Servers,
  handlerCallStream,
  interceptedCallStream,
} from "../../src/rpc/grpc-internals.js";
import { startServer } from "../../src/server.js";
import { DEFAULT_TEST_CONFIG, makeArchiveDir } from "../support/test-server.js";

/** grpc-js's own call class, loaded the way grpc-js loads it (same module instance). */
function baseCallPrototype(): { serializeMessage?: unknown } {
  const require = createRequire(import.meta.url);
  const main = require.resolve("@grpc/grpc-js");
  const module = require(path.join(path.dirname(main), "server-interceptors.js")) as {
    BaseServerInterceptingCall: { prototype: { serializeMessage?: unknown } };
  };
  return module.BaseServerInterceptingCall.prototype;
}

function bind(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
  });
}

const identity = (value: Buffer): Buffer => value;

describe("grpc-js internals", () => {
  test("the installed grpc-js is the minor package.json pins", () => {
    assert.match(grpcJsVersion, /^1\.14\.\d+$/);
  });

  test("every private field the server relies on is what grpc-js has", async (t) => {
    assert.deepEqual(checkGrpcInternals(), []);
    const server = new grpc.Server();
    t.after(() => server.forceShutdown());
    await bind(server);
    assert.deepEqual(checkGrpcInternals(server), [], "with the http2 servers of a bound server");
  });

  test("a changed field is named, with the grpc-js version and what is off without it", (t) => {
    const prototype = baseCallPrototype();
    const serializeMessage = prototype.serializeMessage;
    prototype.serializeMessage = undefined;
    t.after(() => {
      prototype.serializeMessage = serializeMessage;
    });
    const problems = checkGrpcInternals();
    assert.deepEqual(problems, [
      {
        field: "BaseServerInterceptingCall.prototype.serializeMessage",
        expected: "a function",
        feature: "RetrieveVersionData frames are sent without a copy",
      },
    ]);
    assert.equal(
      describeGrpcInternalsProblem(problems[0]!),
      `grpc-js ${grpcJsVersion} internals changed: BaseServerInterceptingCall.prototype.serializeMessage is not a function; off: RetrieveVersionData frames are sent without a copy`,
    );
  });

  test("an interceptor and a handler reach the same HTTP/2 stream of a real call, whose trailers carry the status", async (t) => {
    let fromInterceptor: object | undefined;
    let fromHandler: object | undefined;
    const server = new grpc.Server({
      interceptors: [
        (_descriptor, next) => {
          fromInterceptor = interceptedCallStream(next);
          return new grpc.ServerInterceptingCall(next);
        },
      ],
    });
    t.after(() => server.forceShutdown());
    const path = "/grpc.internals.Check/Stream";
    const definition: grpc.ServiceDefinition = {
      Stream: {
        path,
        requestStream: false,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    };
    server.addService(definition, {
      Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        fromHandler = handlerCallStream(call);
        call.write(Buffer.from("one"));
        call.end();
      },
    });
    const port = await bind(server);
    const Client = grpc.makeGenericClientConstructor(definition, "Check");
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    t.after(() => client.close());
    const stream = (client as unknown as Record<string, (request: Buffer) => grpc.ClientReadableStream<Buffer>>).Stream!(Buffer.from("go"));
    const received: string[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (message: Buffer) => received.push(message.toString()));
      stream.on("status", (status: grpc.StatusObject) => (status.code === grpc.status.OK ? resolve() : reject(new Error(status.details))));
      stream.on("error", reject);
    });
    assert.deepEqual(received, ["one"]);
    assert.ok(fromInterceptor !== undefined, "the interceptor's next call has the stream");
    assert.equal(fromHandler, fromInterceptor, "the handler's call chain ends at the same stream");
    const sentTrailers = (fromInterceptor as { sentTrailers?: Record<string, unknown> }).sentTrailers;
    assert.equal(sentTrailers?.["grpc-status"], grpc.status.OK);
  });

  test("divertStreams: the streams it takes are served by it, every other by grpc-js; grpc-js's idle tracking counts both", async (t) => {
    const server = new grpc.Server({ "grpc.enable_channelz": 0 });
    t.after(() => server.forceShutdown());
    const unaryMethod = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    });
    const definition: grpc.ServiceDefinition = {
      Echo: unaryMethod("/grpc.internals.Check/Echo"),
      Diverted: unaryMethod("/grpc.internals.Check/Diverted"),
    };
    let grpcJsServed = 0;
    server.addService(definition, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        grpcJsServed++;
        callback(null, call.request);
      },
      Diverted: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        grpcJsServed++;
        callback(null, Buffer.from("from grpc-js"));
      },
    });
    const port = await bind(server);
    const opened: unknown[] = [];
    const internals = server as unknown as { onStreamOpened: (stream: unknown) => void };
    const onStreamOpened = internals.onStreamOpened;
    internals.onStreamOpened = function (this: unknown, stream: unknown) {
      opened.push(stream);
      onStreamOpened.call(this, stream);
    };
    const served: unknown[] = [];
    assert.equal(
      divertStreams(server, {
        takes: (headers) => headers[":path"] === "/grpc.internals.Check/Diverted",
        serve: (stream) => {
          served.push(stream);
          stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
          stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": 0, "grpc-message": "OK" }));
          stream.end(Buffer.from([0, 0, 0, 0, 2, 0x68, 0x69]));
        },
      }),
      true,
    );
    const Client = grpc.makeGenericClientConstructor(definition, "Check");
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    t.after(() => client.close());
    const call = (method: string): Promise<Buffer> =>
      new Promise((resolve, reject) =>
        (client as unknown as Record<string, (request: Buffer, callback: (error: Error | null, reply: Buffer) => void) => void>)[method]!(
          Buffer.from("echo"),
          (error, reply) => (error ? reject(error) : resolve(reply)),
        ),
      );
    assert.equal((await call("Echo")).toString(), "echo");
    assert.equal((await call("Diverted")).toString(), "hi");
    assert.equal(grpcJsServed, 1, "only Echo reached grpc-js");
    assert.equal(served.length, 1);
    assert.equal(opened.length, 2, "each stream counted once by grpc-js's idle tracking: Echo's by grpc-js, the diverted one by divertStreams");
    assert.equal(opened[1], served[0]);
  });

  test("divertStreams changes nothing when a field it needs is missing, and the check names it", async (t) => {
    const prototype = grpc.Server.prototype as unknown as { onStreamOpened?: unknown };
    const onStreamOpened = prototype.onStreamOpened;
    prototype.onStreamOpened = undefined;
    t.after(() => {
      prototype.onStreamOpened = onStreamOpened;
    });
    assert.deepEqual(checkGrpcInternals(), [
      {
        field: "Server.onStreamOpened",
        expected: "a function",
        feature: "CreateVersion is served below grpc-js's call machinery (create-version-stream.ts)",
      },
    ]);
    const server = new grpc.Server({ "grpc.enable_channelz": 0 });
    t.after(() => server.forceShutdown());
    await bind(server);
    const grpcJsListeners = grpcHttp2Servers(server)?.map((http2Server) => http2Server.listeners("stream"));
    assert.equal(divertStreams(server, { takes: () => true, serve: () => undefined }), false);
    assert.deepEqual(
      grpcHttp2Servers(server)?.map((http2Server) => http2Server.listeners("stream")),
      grpcJsListeners,
      "grpc-js's own listener left in place",
    );
  });

  test("a server starts with no grpc-js internals error or warning in its log", async (t) => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const archiveDir = await makeArchiveDir(t);
    const server = await startServer({ ...DEFAULT_TEST_CONFIG, archiveDir }, log, { host: "127.0.0.1" });
    await server.stop();
    assert.ok(lines.some((line) => line.msg === "model registry serving"));
    assert.deepEqual(
      lines.filter((line) => line.module === "grpc-internals" || String(line.msg).includes("grpc-js internals changed")),
      [],
      "no line about grpc-js internals",
    );
  });
});
