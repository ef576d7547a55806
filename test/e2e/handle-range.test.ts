import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { type TestServer, startTestServer } from "../support/test-server.js";

// The original parses version_handle with Go's strconv.ParseUint(handle, 10, 0) and model_handle
// with strconv.ParseInt(handle, 10, 0) (grpcservers/modelRegistryServer.go, RetrieveVersionInfos and
// RetrieveModels): any value up to 2^64 - 1 (resp. 2^63 - 1) is a handle, one past the end
// giving an empty page whose next handle is that same value; a larger one is INVALID_ARGUMENT.
const MAX_UINT64 = "18446744073709551615";
const MAX_INT64 = "9223372036854775807";
const ABOVE_2_53 = "9007199254740993"; // 2^53 + 1: not representable as a double

describe("paging handles over the whole range the original accepts", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
    await t.client.createModel("range");
    await t.client.publish("range", Buffer.from("v1"));
    await t.client.publish("range", Buffer.from("v2"));
  });
  after(() => t.close());

  for (const handle of [MAX_UINT64, ABOVE_2_53, "000000000000000000000000000050"]) {
    test(`version_handle ${handle}: an empty page whose next handle is the same number`, async () => {
      const expected = BigInt(handle).toString();
      const listed = await t.client.retrieveVersionInfos({ model_id: "range", version_handle: handle });
      assert.deepEqual(listed.version_infos, []);
      assert.equal(listed.next_version_handle, expected);
      const picked = await t.client.retrieveVersionInfos({ model_id: "range", version_numbers: [1, 2], version_handle: handle });
      assert.deepEqual(picked.version_infos, []);
      assert.equal(picked.next_version_handle, expected);
    });
  }

  test("a handle of a million digits is INVALID_ARGUMENT (out of range), and one of a million leading zeros is 0", async () => {
    const huge = "9".repeat(1_000_000);
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "range", version_handle: huge }), (error: { code: number; details: string }) => {
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.match(error.details, /^version_handle "9{40}…" is out of range: expected a decimal integer from 0 to 18446744073709551615 or ""$/);
      return true;
    });
    await assert.rejects(t.client.retrieveModels({ model_handle: huge }), { code: status.INVALID_ARGUMENT });
    const zeros = await t.client.retrieveVersionInfos({ model_id: "range", version_handle: "0".repeat(1_000_000) });
    assert.deepEqual(
      zeros.version_infos.map((info) => info.version_number),
      [1, 2],
    );
  });

  test("version_handle 2^64 is INVALID_ARGUMENT saying the range", async () => {
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "range", version_handle: "18446744073709551616" }), {
      code: status.INVALID_ARGUMENT,
      details: `version_handle "18446744073709551616" is out of range: expected a decimal integer from 0 to ${MAX_UINT64} or ""`,
    });
  });

  for (const handle of [MAX_INT64, ABOVE_2_53]) {
    test(`model_handle ${handle}: an empty page whose next handle is the same number`, async () => {
      const listed = await t.client.retrieveModels({ model_handle: handle });
      assert.deepEqual(listed.model_infos, []);
      assert.equal(listed.next_model_handle, handle);
      const picked = await t.client.retrieveModels({ model_ids: ["range"], model_handle: handle });
      assert.deepEqual(picked.model_infos, []);
      assert.equal(picked.next_model_handle, handle);
    });
  }

  test("model_handle 2^63 is INVALID_ARGUMENT saying the range", async () => {
    await assert.rejects(t.client.retrieveModels({ model_handle: "9223372036854775808" }), {
      code: status.INVALID_ARGUMENT,
      details: `model_handle "9223372036854775808" is out of range: expected a decimal integer from 0 to ${MAX_INT64} or ""`,
    });
  });

  test("handles in range still page as before", async () => {
    const models = await t.client.retrieveModels({ model_handle: "0" });
    assert.deepEqual(
      models.model_infos.map((m) => m.model_id),
      ["range"],
    );
    assert.equal(models.next_model_handle, "1");
    const versions = await t.client.retrieveVersionInfos({ model_id: "range", version_handle: "2" });
    assert.deepEqual(
      versions.version_infos.map((v) => v.version_number),
      [2],
    );
    assert.equal(versions.next_version_handle, "3");
  });
});
