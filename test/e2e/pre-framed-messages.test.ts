import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createLogger } from "../../src/logger.js";
import { frameSerializer, installPreFramedSending, isWellFormedFrame } from "../../src/rpc/pre-framed-messages.js";
import { type TestServer, startTestServer } from "../support/test-server.js";

const MiB = 1024 * 1024;

type SerializeMessage = (this: unknown, value: unknown) => Buffer;

/** grpc-js's own call class, loaded the way grpc-js loads it (same module instance). */
function grpcCallPrototype(): { serializeMessage: SerializeMessage } {
  const require = createRequire(import.meta.url);
  const main = require.resolve("@grpc/grpc-js");
  const module = require(path.join(path.dirname(main), "server-interceptors.js")) as {
    BaseServerInterceptingCall: { prototype: { serializeMessage: SerializeMessage } };
  };
  return module.BaseServerInterceptingCall.prototype;
}

function frame(payload: Buffer): Buffer {
  const framed = Buffer.alloc(5 + payload.byteLength);
  framed.writeUInt32BE(payload.byteLength, 1);
  payload.copy(framed, 5);
  return framed;
}

describe("pre-framed messages", () => {
  test("a well-formed frame is an uncompressed prefix whose length matches", () => {
    assert.equal(isWellFormedFrame(frame(Buffer.from("abc"))), true);
    assert.equal(isWellFormedFrame(frame(Buffer.alloc(0))), true);
    const compressed = frame(Buffer.from("abc"));
    compressed[0] = 1;
    assert.equal(isWellFormedFrame(compressed), false);
    assert.equal(isWellFormedFrame(frame(Buffer.from("abc")).subarray(0, 7)), false, "length prefix says 3, 2 follow");
    assert.equal(isWellFormedFrame(Buffer.from([0, 0, 0])), false);
    assert.equal(isWellFormedFrame(new Uint8Array(5)), false, "grpc-js needs a Buffer");
    assert.equal(isWellFormedFrame("abc"), false);
  });

  test("the frame serializer gives grpc-js's copying path the bare message", () => {
    const serialize = frameSerializer();
    assert.deepEqual(serialize(frame(Buffer.from("hello"))), Buffer.from("hello"));
  });

  test("grpc-js's framing sends a marked method's frame itself, and copies everything else as before", () => {
    assert.equal(installPreFramedSending(createLogger("silent")), true);
    const { serializeMessage } = grpcCallPrototype();
    const stored = frame(Buffer.from("stored chunk"));

    const marked = serializeMessage.call({ handler: { serialize: frameSerializer() } }, stored);
    assert.equal(marked, stored, "the very same buffer: no copy");

    const plain = serializeMessage.call({ handler: { serialize: (value: Buffer) => value } }, Buffer.from("plain"));
    assert.deepEqual(plain, frame(Buffer.from("plain")), "unmarked methods are framed by grpc-js");

    const malformed = Buffer.from("not a frame at all");
    const fallback = serializeMessage.call({ handler: { serialize: frameSerializer() } }, malformed);
    assert.notEqual(fallback, malformed);
    assert.deepEqual(fallback, frame(malformed.subarray(5)), "a value that is not a frame takes grpc-js's path");
  });

  describe("over gRPC", () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer({ sentChunkSize: 1 * MiB });
    });
    after(() => server.close());

    test("RetrieveVersionData hands the stored frames to HTTP/2: views of the version's shared memory", async () => {
      const data = Buffer.alloc(3 * MiB + 17);
      for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
      await server.client.createOrUpdateModel({ model_info: { model_id: "framed" } });
      await server.client.publish("framed", data);

      const prototype = grpcCallPrototype();
      const installed = prototype.serializeMessage;
      const sent: Buffer[] = [];
      prototype.serializeMessage = function spy(this: unknown, value: unknown): Buffer {
        const output = installed.call(this, value);
        sent.push(output);
        return output;
      };
      let received: Buffer;
      try {
        received = await server.client.retrieveData("framed", 1);
      } finally {
        prototype.serializeMessage = installed;
      }
      assert.ok(received.equals(data));
      // The only call in flight: three full 1 MiB chunks and the 17-byte tail.
      assert.deepEqual(
        sent.map((output) => output.byteLength),
        [MiB + 9, MiB + 9, MiB + 9, 5 + 2 + 17],
      );
      for (const output of sent) {
        assert.ok(output.buffer instanceof SharedArrayBuffer, "a view of the stored version, not a per-reader copy");
      }
    });
  });
});
