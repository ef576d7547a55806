import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { type TestServer, startTestServer } from "../support/test-server.js";

describe("models over gRPC", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  test("CreateOrUpdateModel creates, then replaces user_data", async () => {
    await t.client.createModel("m-update", { a: "1" });
    await t.client.createModel("m-update", { b: "2" });
    const reply = await t.client.retrieveModels({ model_ids: ["m-update"] });
    assert.deepEqual(reply.model_infos, [{ model_id: "m-update", user_data: { b: "2" } }]);
    assert.equal(reply.next_model_handle, "1");
  });

  test("CreateOrUpdateModel without model_info is INVALID_ARGUMENT", async () => {
    await assert.rejects(t.client.createOrUpdateModel({}), {
      code: status.INVALID_ARGUMENT,
      details: "CreateOrUpdateModelRequest.model_info is required",
    });
  });

  test("RetrieveModels lists sorted, pages with handles and counts", async () => {
    for (const id of ["list-c", "list-a", "list-b"]) {
      await t.client.createModel(id, { id });
    }
    const all = await t.client.retrieveModels();
    const ids = all.model_infos.map((m) => m.model_id);
    assert.deepEqual(ids, [...ids].sort());
    assert.ok(ids.includes("list-a"));
    assert.equal(all.next_model_handle, String(ids.length));

    const first = await t.client.retrieveModels({ models_count: 2 });
    assert.deepEqual(first.model_infos.map((m) => m.model_id), ids.slice(0, 2));
    assert.equal(first.next_model_handle, "2");
    const second = await t.client.retrieveModels({ models_count: 2, model_handle: first.next_model_handle });
    assert.deepEqual(second.model_infos.map((m) => m.model_id), ids.slice(2, 4));
    assert.equal(second.next_model_handle, String(2 + second.model_infos.length));

    const past = await t.client.retrieveModels({ model_handle: "1000" });
    assert.deepEqual(past.model_infos, []);
    assert.equal(past.next_model_handle, "1000");
  });

  test("RetrieveModels with ids: handle is an offset into the list, out-of-range counts return what exists", async () => {
    await t.client.createModel("ids-1");
    await t.client.createModel("ids-2");
    const reply = await t.client.retrieveModels({ model_ids: ["ids-2", "ids-1"], models_count: 10 });
    assert.deepEqual(reply.model_infos.map((m) => m.model_id), ["ids-2", "ids-1"]);
    assert.equal(reply.next_model_handle, "2");
    const offset = await t.client.retrieveModels({ model_ids: ["ids-2", "ids-1"], model_handle: "1" });
    assert.deepEqual(offset.model_infos.map((m) => m.model_id), ["ids-1"]);
    assert.equal(offset.next_model_handle, "2");
    const past = await t.client.retrieveModels({ model_ids: ["ids-2"], model_handle: "5", models_count: 7 });
    assert.deepEqual(past.model_infos, []);
    assert.equal(past.next_model_handle, "5");
  });

  test("RetrieveModels with an unknown id is NOT_FOUND naming the model", async () => {
    await assert.rejects(t.client.retrieveModels({ model_ids: ["nope-model"] }), {
      code: status.NOT_FOUND,
      details: 'model "nope-model" not found',
    });
  });

  test("RetrieveModels with a malformed handle is INVALID_ARGUMENT", async () => {
    for (const handle of ["-1", "abc", "1.5", " 1"]) {
      await assert.rejects(t.client.retrieveModels({ model_handle: handle }), {
        code: status.INVALID_ARGUMENT,
        details: `model_handle "${handle}" is invalid: expected a non-negative decimal integer or ""`,
      });
    }
  });

  test("DeleteModel removes the model; unknown model is NOT_FOUND", async () => {
    await t.client.createModel("to-delete");
    await t.client.publish("to-delete", Buffer.from("abc"));
    await t.client.deleteModel("to-delete");
    await assert.rejects(t.client.retrieveModels({ model_ids: ["to-delete"] }), { code: status.NOT_FOUND });
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "to-delete" }), {
      code: status.NOT_FOUND,
      details: 'model "to-delete" not found',
    });
    await assert.rejects(t.client.deleteModel("to-delete"), {
      code: status.NOT_FOUND,
      details: 'model "to-delete" not found',
    });
  });

  test("a model created again after deletion numbers its versions from 1", async () => {
    await t.client.createModel("reborn");
    await t.client.publish("reborn", Buffer.from("one"), { archived: true });
    await t.client.publish("reborn", Buffer.from("two"));
    await t.client.deleteModel("reborn");
    await t.client.createModel("reborn");
    const info = await t.client.publish("reborn", Buffer.from("again"));
    assert.equal(info.version_number, 1);
  });

  test("model ids that are not path-safe are INVALID_ARGUMENT everywhere", async () => {
    const rule =
      "expected 1 to 242 bytes of UTF-8, not starting with '.', without '/', '\\' or control characters (U+0000 to U+001F, U+007F)";
    for (const id of ["", "..", "../escape", "a/b", "a\\b", ".hidden", "x".repeat(243), "nul\u0000byte"]) {
      await assert.rejects(t.client.createModel(id), (error: { code: number; details: string }) => {
        assert.equal(error.code, status.INVALID_ARGUMENT);
        assert.ok(error.details.startsWith("model_info.model_id "), error.details);
        assert.ok(error.details.endsWith(rule), error.details);
        return true;
      });
    }
    await assert.rejects(t.client.deleteModel("../x"), { code: status.INVALID_ARGUMENT });
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "a/b" }), { code: status.INVALID_ARGUMENT });
    await assert.rejects(t.client.retrieveVersionData("..", 1), { code: status.INVALID_ARGUMENT });
  });

  test("the longest model ids (242 bytes of UTF-8) work, archived too; longer ones are INVALID_ARGUMENT", async () => {
    // 242 bytes: "<id>-v000001.data" is 255 bytes, ext4's limit; the temp names are longer but cut.
    for (const longest of ["a".repeat(242), "é".repeat(121)]) {
      await t.client.createModel(longest);
      await t.client.publish(longest, Buffer.from("archived"), { archived: true });
      await t.client.publish(longest, Buffer.from("transient"));
      assert.equal((await t.client.retrieveData(longest, 1)).toString(), "archived");
      assert.deepEqual(
        (await readdir(path.join(t.archiveDir, longest))).filter((name) => !name.startsWith(".")).sort(),
        [`${longest}-v000001.data`, `${longest}-v000001.yaml`, `${longest}.yaml`],
      );
      await t.client.deleteModel(longest);
    }

    // Ids that fit <id>.yaml but not the version files are refused at once, not at their first archived upload.
    for (const id of ["b".repeat(243), "b".repeat(250), "é".repeat(122)]) {
      await assert.rejects(t.client.createModel(id), (error: { code: number; details: string }) => {
        assert.equal(error.code, status.INVALID_ARGUMENT);
        assert.match(error.details, new RegExp(`is invalid: it is ${Buffer.byteLength(id)} bytes of UTF-8, more than 242; expected `));
        return true;
      });
    }
    assert.deepEqual((await readdir(t.archiveDir)).filter((name) => name.length > 200), []);
  });

  test("user_data over 64 KiB is INVALID_ARGUMENT", async () => {
    await assert.rejects(t.client.createModel("big-ud", { k: "v".repeat(64 * 1024) }), {
      code: status.INVALID_ARGUMENT,
      details: "model_info.user_data is too large: its keys and values add up to 65537 bytes, the limit is 65536 bytes (64 KiB)",
    });
  });
});

describe("malformed protobuf", () => {
  test("a request that does not decode is INVALID_ARGUMENT naming the message type, and the server keeps serving", async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    const { Client, credentials } = await import("@grpc/grpc-js");
    const raw = new Client(server.address, credentials.createInsecure());
    t.after(() => raw.close());
    const identity = (b: Buffer): Buffer => b;
    // Field 1 (model_ids, length-delimited) claiming 100 bytes, followed by 2.
    const garbage = Buffer.from([0x0a, 0x64, 0x61, 0x62]);
    const error = await new Promise<{ code: number; details: string }>((resolve) =>
      raw.makeUnaryRequest("/cogmentAPI.ModelRegistrySP/RetrieveModels", identity, identity, garbage, (e) =>
        resolve(e as unknown as { code: number; details: string }),
      ),
    );
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.match(error.details, /^the request is not a valid cogmentAPI\.RetrieveModelsRequest message: .+/);
    const reply = await server.client.retrieveModels();
    assert.deepEqual(reply.model_infos, []);
  });
});
