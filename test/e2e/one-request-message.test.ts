/*
 * A method that takes one request message (unary, or server streaming) called with a request
 * stream that ends inside its message, or that carries two: INVALID_ARGUMENT saying so, where
 * grpc-js answers UNIMPLEMENTED about a "server streaming method". And a string that is not UTF-8:
 * INVALID_ARGUMENT naming its field.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { grpcFrame, field, rawGrpcCall } from "../support/raw-grpc-call.js";
import { type TestServer, startTestServer } from "../support/test-server.js";

describe("a method taking one request message", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test("a request stream that ends inside its message is INVALID_ARGUMENT", async () => {
    // The prefix announces 10 bytes; 3 follow, then END_STREAM.
    const cut = await rawGrpcCall(server.address, "RetrieveModels", Buffer.from([0, 0, 0, 0, 10, 0x0a, 0x01, 0x6d]));
    assert.deepEqual(cut, {
      code: status.INVALID_ARGUMENT,
      details: "/cogmentAPI.ModelRegistrySP/RetrieveModels: the request stream ended without a whole request message; the method takes exactly one",
    });
    const none = await rawGrpcCall(server.address, "VersionUpdate", Buffer.alloc(0));
    assert.deepEqual(none, {
      code: status.INVALID_ARGUMENT,
      details: "/cogmentAPI.ModelRegistrySP/VersionUpdate: the request stream ended without a whole request message; the method takes exactly one",
    });
  });

  test("a second request message is INVALID_ARGUMENT", async () => {
    const twice = await rawGrpcCall(server.address, "RetrieveModels", Buffer.concat([grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.alloc(0))]));
    assert.deepEqual(twice, {
      code: status.INVALID_ARGUMENT,
      details: "/cogmentAPI.ModelRegistrySP/RetrieveModels: a second request message was sent; the method takes exactly one",
    });
  });

  test("one whole message is answered as before", async () => {
    const once = await rawGrpcCall(server.address, "RetrieveModels", grpcFrame(Buffer.alloc(0)));
    assert.deepEqual(once, { code: status.OK, details: "OK" });
  });
});

describe("a request whose string is not UTF-8", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test("is INVALID_ARGUMENT naming the field and the accepted form", async () => {
    const badModelId = field(1, field(1, Buffer.from([0x61, 0xff])));
    assert.deepEqual(await rawGrpcCall(server.address, "CreateOrUpdateModel", grpcFrame(badModelId)), {
      code: status.INVALID_ARGUMENT,
      details: "the request is not a valid cogmentAPI.CreateOrUpdateModelRequest message: model_info.model_id is not valid UTF-8; expected UTF-8 text",
    });
    const userDataEntry = Buffer.concat([field(1, Buffer.from("k")), field(2, Buffer.from([0xc3]))]);
    const badUserData = field(1, Buffer.concat([field(1, Buffer.from("m")), field(2, userDataEntry)]));
    assert.deepEqual(await rawGrpcCall(server.address, "CreateOrUpdateModel", grpcFrame(badUserData)), {
      code: status.INVALID_ARGUMENT,
      details: 'the request is not a valid cogmentAPI.CreateOrUpdateModelRequest message: model_info.user_data["k"] is not valid UTF-8; expected UTF-8 text',
    });
    const badHeader = field(1, field(1, field(1, Buffer.from([0xff]))));
    assert.deepEqual(await rawGrpcCall(server.address, "CreateVersion", grpcFrame(badHeader)), {
      code: status.INVALID_ARGUMENT,
      details: "the request is not a valid cogmentAPI.CreateVersionRequestChunk message: header.version_info.model_id is not valid UTF-8; expected UTF-8 text",
    });
    assert.deepEqual((await server.client.retrieveModels()).model_infos, []);
  });
});
