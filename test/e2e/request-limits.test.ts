/*
 * Request sizes each method accepts (src/rpc/request-limits.ts): every check here answers before
 * the message is decoded, which its status message shows (a decoded message would be answered by
 * the handler, or block the server while protobuf-es builds millions of elements).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { type RawCallOutcome, field, grpcFrame, rawCallAtPath, rawGrpcCall, varint, varintField } from "../support/raw-grpc-call.js";
import { startTestServer } from "../support/test-server.js";

const MiB = 1024 * 1024;

/** `count` copies of `item`, concatenated. */
function repeated(item: Buffer, count: number): Buffer {
  return Buffer.concat(Array<Buffer>(count).fill(item));
}

function registryCall(address: string, method: string, message: Buffer): Promise<RawCallOutcome> {
  return rawGrpcCall(address, method, grpcFrame(message));
}

describe("request messages over 4 MiB, for every method but CreateVersion", () => {
  test("RetrieveModels naming 2.2 million model ids (6.6 MB) is RESOURCE_EXHAUSTED before decoding, and the server keeps serving", async () => {
    const server = await startTestServer();
    try {
      await server.client.createModel("m");
      const request = Buffer.concat([repeated(field(1, Buffer.from("m")), 2_200_000), varintField(3, 0)]);
      const outcome = await registryCall(server.address, "RetrieveModels", request);
      assert.deepEqual(outcome, {
        code: status.RESOURCE_EXHAUSTED,
        details: "RetrieveModels: the request message is 6600002 bytes, more than this method accepts: 4194304 bytes (4 MiB)",
      });
      assert.deepEqual((await server.client.retrieveModels({ model_ids: ["m"] })).model_infos.map((info) => info.model_id), ["m"]);
    } finally {
      await server.close();
    }
  });

  test("a 64 MiB RetrieveVersionInfos request (packed version_numbers) is RESOURCE_EXHAUSTED before decoding", async () => {
    const server = await startTestServer();
    try {
      await server.client.createModel("m");
      await server.client.publish("m", Buffer.from("hello"));
      const request = Buffer.concat([field(1, Buffer.from("m")), field(2, Buffer.alloc(64 * MiB - 100, 1)), varintField(3, 1)]);
      const outcome = await registryCall(server.address, "RetrieveVersionInfos", request);
      assert.deepEqual(outcome, {
        code: status.RESOURCE_EXHAUSTED,
        details: `RetrieveVersionInfos: the request message is ${request.byteLength} bytes, more than this method accepts: 4194304 bytes (4 MiB)`,
      });
    } finally {
      await server.close();
    }
  });

  test("a request of exactly 4 MiB is decoded (a handle of 4 MiB of digits is out of range), one byte more is not", async () => {
    const server = await startTestServer();
    try {
      await server.client.createModel("m");
      const withHandle = (bytes: number): Buffer => {
        const model = field(1, Buffer.from("m"));
        const handleHeader = Buffer.concat([Buffer.from([(4 << 3) | 2]), varint(bytes)]);
        const digits = bytes - model.byteLength - handleHeader.byteLength;
        return Buffer.concat([model, Buffer.from([(4 << 3) | 2]), varint(digits), Buffer.alloc(digits, "9")]);
      };
      const atLimit = withHandle(4 * MiB);
      assert.equal(atLimit.byteLength, 4 * MiB);
      const decoded = await registryCall(server.address, "RetrieveVersionInfos", atLimit);
      assert.equal(decoded.code, status.INVALID_ARGUMENT);
      assert.match(decoded.details ?? "", /^version_handle "9{40}…" is out of range/);
      const over = Buffer.concat([atLimit, Buffer.from([0x18, 0x00])]).subarray(0, 4 * MiB + 1);
      const refused = await registryCall(server.address, "RetrieveVersionInfos", over);
      assert.deepEqual(refused, {
        code: status.RESOURCE_EXHAUSTED,
        details: "RetrieveVersionInfos: the request message is 4194305 bytes, more than this method accepts: 4194304 bytes (4 MiB)",
      });
    } finally {
      await server.close();
    }
  });

  test("grpc.health.v1.Health/Check over 4 MiB is RESOURCE_EXHAUSTED too", async () => {
    const server = await startTestServer();
    try {
      const request = field(1, Buffer.alloc(5 * MiB, "s"));
      const outcome = await rawCallAtPath(server.address, "/grpc.health.v1.Health/Check", grpcFrame(request));
      assert.deepEqual(outcome, {
        code: status.RESOURCE_EXHAUSTED,
        details: `Check: the request message is ${request.byteLength} bytes, more than this method accepts: 4194304 bytes (4 MiB)`,
      });
    } finally {
      await server.close();
    }
  });
});

describe("ids and numbers one request may name: at most 100000", () => {
  test("RetrieveModels naming 100001 model ids is INVALID_ARGUMENT; 100000 are answered", async () => {
    const server = await startTestServer();
    try {
      await server.client.createModel("m");
      const over = await registryCall(server.address, "RetrieveModels", repeated(field(1, Buffer.from("m")), 100_001));
      assert.deepEqual(over, { code: status.INVALID_ARGUMENT, details: "model_ids names 100001 ids; at most 100000 per request" });
      // The reply is cut at its size limit (reply-size.ts); the handle says where the next page starts.
      const reply = await server.client.retrieveModels({ model_ids: Array<string>(100_000).fill("m") });
      assert.ok(reply.model_infos.length > 0);
      assert.ok(reply.model_infos.every((info) => info.model_id === "m"));
      assert.equal(reply.next_model_handle, String(reply.model_infos.length));
    } finally {
      await server.close();
    }
  });

  test("RetrieveVersionInfos naming 100001 version numbers, packed or not, is INVALID_ARGUMENT; 100000 are answered", async () => {
    const server = await startTestServer();
    try {
      await server.client.createModel("m");
      await server.client.publish("m", Buffer.from("hello"));
      const model = field(1, Buffer.from("m"));
      const expected = { code: status.INVALID_ARGUMENT, details: "version_numbers names 100001 numbers; at most 100000 per request" };
      const packed = Buffer.concat([model, field(2, Buffer.alloc(100_001, 1))]);
      assert.deepEqual(await registryCall(server.address, "RetrieveVersionInfos", packed), expected);
      const unpacked = Buffer.concat([model, repeated(varintField(2, 1), 100_001)]);
      assert.deepEqual(await registryCall(server.address, "RetrieveVersionInfos", unpacked), expected);
      // Split across a packed run and single elements: they add up.
      const mixed = Buffer.concat([model, field(2, Buffer.alloc(50_000, 1)), repeated(varintField(2, 1), 50_001)]);
      assert.deepEqual(await registryCall(server.address, "RetrieveVersionInfos", mixed), expected);
      const reply = await server.client.retrieveVersionInfos({ model_id: "m", version_numbers: Array<number>(100_000).fill(1) });
      assert.ok(reply.version_infos.length > 0);
      assert.ok(reply.version_infos.every((info) => Number(info.version_number) === 1));
    } finally {
      await server.close();
    }
  });
});

/** A CreateVersion header naming model "m", data_size 5, with `userData` entries. */
function headerMessage(userData: readonly Buffer[] = []): Buffer {
  const dataSize = Buffer.alloc(8);
  dataSize.writeBigUInt64LE(5n);
  return field(1, field(1, Buffer.concat([field(1, Buffer.from("m")), Buffer.from([0x31]), dataSize, ...userData])));
}

for (const fastPath of [true, false]) {
  const path = fastPath ? "fast path" : "grpc-js";

  describe(`CreateVersion request messages (${path})`, () => {
    test("a header with a million user_data entries (13 MB) is INVALID_ARGUMENT before decoding", async () => {
      const server = await startTestServer({}, { createVersionFastPath: fastPath });
      try {
        await server.client.createModel("m");
        const entries: Buffer[] = [];
        for (let i = 0; i < 1_000_000; i++) {
          entries.push(field(7, Buffer.concat([field(1, Buffer.from(`k${i.toString(36).padStart(6, "0")}`)), field(2, Buffer.alloc(0))])));
        }
        const header = headerMessage(entries);
        const outcome = await registryCall(server.address, "CreateVersion", header);
        assert.deepEqual(outcome, {
          code: status.INVALID_ARGUMENT,
          details:
            `CreateVersionRequestChunk: the header message is ${header.byteLength} bytes, too large to be valid: ` +
            "a header is at most 1048576 bytes (1 MiB): its version_info.user_data may hold 65536 bytes",
        });
      } finally {
        await server.close();
      }
    });

    test("a 2 MiB message that is not a plain body is INVALID_ARGUMENT; a 2 MiB body is stored", async () => {
      const server = await startTestServer({}, { createVersionFastPath: fastPath });
      try {
        await server.client.createModel("m");
        // A body whose data_chunk is followed by an unknown field: protobuf-es would take it.
        const odd = field(2, Buffer.concat([field(1, Buffer.alloc(2 * MiB, 7)), varintField(9, 1)]));
        const refused = await rawGrpcCall(server.address, "CreateVersion", Buffer.concat([grpcFrame(headerMessage()), grpcFrame(odd)]));
        assert.deepEqual(refused, {
          code: status.INVALID_ARGUMENT,
          details:
            `CreateVersionRequestChunk: a message of ${odd.byteLength} bytes that is not a body made of data_chunk alone; ` +
            "any other message is at most 1048576 bytes (1 MiB): its version_info.user_data may hold 65536 bytes",
        });
        const data = Buffer.alloc(2 * MiB, 3);
        const stored = await server.client.publish("m", data, { chunkBytes: data.byteLength });
        assert.equal(stored.data_size, String(data.byteLength));
        assert.ok((await server.client.retrieveData("m", Number(stored.version_number))).equals(data));
      } finally {
        await server.close();
      }
    });

    test("an empty first message is INVALID_ARGUMENT saying it has neither header nor body", async () => {
      const server = await startTestServer({}, { createVersionFastPath: fastPath });
      try {
        await server.client.createModel("m");
        const outcome = await registryCall(server.address, "CreateVersion", Buffer.alloc(0));
        assert.deepEqual(outcome, {
          code: status.INVALID_ARGUMENT,
          details: "CreateVersionRequestChunk: the first message has neither header nor body; it must be a header with version_info",
        });
      } finally {
        await server.close();
      }
    });
  });
}

for (const fastPath of [true, false]) {
  describe(`CreateVersion request stream ending inside a message (${fastPath ? "fast path" : "grpc-js"})`, () => {
    test("a header cut short by END_STREAM is INVALID_ARGUMENT naming the bytes received of it", async () => {
      const server = await startTestServer({}, { createVersionFastPath: fastPath });
      try {
        await server.client.createModel("m");
        const header = grpcFrame(headerMessage());
        const outcome = await rawGrpcCall(server.address, "CreateVersion", header.subarray(0, header.byteLength - 3));
        assert.deepEqual(outcome, {
          code: status.INVALID_ARGUMENT,
          details: `CreateVersion: the request stream ended inside a message: ${header.byteLength - 8} of its ${header.byteLength - 5} bytes were received`,
        });
        const prefixOnly = await rawGrpcCall(server.address, "CreateVersion", header.subarray(0, 3));
        assert.deepEqual(prefixOnly, {
          code: status.INVALID_ARGUMENT,
          details: "CreateVersion: the request stream ended inside a message's 5-byte length prefix: 3 of its 5 bytes were received",
        });
      } finally {
        await server.close();
      }
    });

    test("a body cut short by END_STREAM after a whole header is INVALID_ARGUMENT naming the bytes received of it; nothing is stored", async () => {
      const server = await startTestServer({}, { createVersionFastPath: fastPath });
      try {
        await server.client.createModel("m");
        const body = grpcFrame(field(2, field(1, Buffer.from("abcde"))));
        const outcome = await rawGrpcCall(server.address, "CreateVersion", Buffer.concat([grpcFrame(headerMessage()), body.subarray(0, body.byteLength - 2)]));
        assert.deepEqual(outcome, {
          code: status.INVALID_ARGUMENT,
          details: `CreateVersion: the request stream ended inside a message: ${body.byteLength - 7} of its ${body.byteLength - 5} bytes were received`,
        });
        assert.deepEqual((await server.client.retrieveVersionInfos({ model_id: "m" })).version_infos, []);
      } finally {
        await server.close();
      }
    });
  });
}
