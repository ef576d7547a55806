import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CreateOrUpdateModelRequestSchema, RetrieveModelsRequestSchema } from "../../src/gen/cogment/api/model_registry_pb.js";
import { invalidUtf8Field } from "../../src/rpc/invalid-utf8-field.js";
import { field } from "../support/raw-grpc-call.js";

const BAD = Buffer.from([0x61, 0xff]);
const GOOD = Buffer.from("ok");
const entry = (key: Buffer, value: Buffer): Buffer => Buffer.concat([field(1, key), field(2, value)]);

describe("invalidUtf8Field", () => {
  test("names a nested string field", () => {
    const request = field(1, field(1, BAD));
    assert.equal(invalidUtf8Field(CreateOrUpdateModelRequestSchema, request), "model_info.model_id");
  });

  test("names a map value by its key, a map key by its position", () => {
    const value = field(1, Buffer.concat([field(1, GOOD), field(2, entry(Buffer.from("k1"), GOOD)), field(2, entry(Buffer.from("k2"), BAD))]));
    assert.equal(invalidUtf8Field(CreateOrUpdateModelRequestSchema, value), 'model_info.user_data["k2"]');
    const key = field(1, Buffer.concat([field(2, entry(GOOD, GOOD)), field(2, entry(BAD, GOOD))]));
    assert.equal(invalidUtf8Field(CreateOrUpdateModelRequestSchema, key), "model_info.user_data key #2");
  });

  test("names a repeated string field", () => {
    const request = Buffer.concat([field(1, GOOD), field(1, BAD)]);
    assert.equal(invalidUtf8Field(RetrieveModelsRequestSchema, request), "model_ids");
  });

  test("undefined when every string is UTF-8, or the bytes do not parse", () => {
    assert.equal(invalidUtf8Field(CreateOrUpdateModelRequestSchema, field(1, field(1, GOOD))), undefined);
    assert.equal(invalidUtf8Field(CreateOrUpdateModelRequestSchema, Buffer.from([0x0a, 0x7f])), undefined);
  });
});
