import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { type TestServer, startTestServer } from "../support/test-server.js";

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

describe("versions over gRPC", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ sentChunkSize: 1000 });
  });
  after(() => t.close());

  test("CreateVersion concatenates bodies, computes the hash and ignores version_number", async () => {
    await t.client.createModel("cv");
    const before = BigInt(Date.now()) * 1_000_000n;
    const info = await t.client.createVersion(
      { model_id: "cv", data_size: 14, version_number: 42, user_data: { step: "1" } },
      ["chunk_1", "chunk_2"],
    );
    const afterNs = BigInt(Date.now()) * 1_000_000n;
    assert.equal(info.model_id, "cv");
    assert.equal(info.version_number, 1);
    assert.equal(info.data_hash, "jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI=");
    assert.equal(info.data_size, "14");
    assert.equal(info.archived, false);
    assert.deepEqual(info.user_data, { step: "1" });
    const created = BigInt(info.creation_timestamp);
    assert.ok(created >= before - 1_000_000n && created <= afterNs + 1_000_000n, `timestamp ${created}`);
    assert.equal((await t.client.retrieveData("cv", 1)).toString(), "chunk_1chunk_2");
  });

  test("a header and 300 bodies sent at once: every body kept in order; the reply is the stored info", async () => {
    // The bodies arrive while the server still looks the model up for the header: they wait in
    // order (the stream paused), then are appended one by one.
    await t.client.createModel("burst");
    const chunks = Array.from({ length: 300 }, (_, index) => Buffer.alloc(7, index % 251));
    const data = Buffer.concat(chunks);
    const info = await t.client.createVersion({ model_id: "burst", data_size: data.byteLength, user_data: { a: "b" } }, chunks);
    assert.equal(info.version_number, 1);
    assert.equal(info.data_size, String(data.byteLength));
    assert.equal(info.data_hash, sha256(data));
    assert.ok((await t.client.retrieveData("burst", 1)).equals(data));
    const infos = await t.client.retrieveVersionInfos({ model_id: "burst" });
    assert.deepEqual(infos.version_infos, [info]);
  });

  test("a creation_timestamp > 0 is kept, a matching data_hash accepted", async () => {
    await t.client.createModel("ts");
    const info = await t.client.createVersion(
      { model_id: "ts", data_size: 3, creation_timestamp: "1633119005107454620", data_hash: sha256(Buffer.from("abc")) },
      ["abc"],
    );
    assert.equal(info.creation_timestamp, "1633119005107454620");
  });

  test("a wrong data_hash is INVALID_ARGUMENT and leaves no version", async () => {
    await t.client.createModel("badhash");
    await assert.rejects(t.client.createVersion({ model_id: "badhash", data_size: 3, data_hash: sha256(Buffer.from("xyz")) }, ["abc"]), {
      code: status.INVALID_ARGUMENT,
      details: `data_hash mismatch: the header says "${sha256(Buffer.from("xyz"))}" but the received data's SHA-256 (base64) is "${sha256(Buffer.from("abc"))}"`,
    });
    const infos = await t.client.retrieveVersionInfos({ model_id: "badhash" });
    assert.deepEqual(infos.version_infos, []);
    const next = await t.client.publish("badhash", Buffer.from("ok"));
    assert.equal(next.version_number, 1, "a failed upload leaves no gap");
  });

  test("fewer bytes than data_size is INVALID_ARGUMENT", async () => {
    await t.client.createModel("short");
    await assert.rejects(t.client.createVersion({ model_id: "short", data_size: 10 }, ["abc"]), {
      code: status.INVALID_ARGUMENT,
      details: "received 3 bytes of data but the header's data_size is 10",
    });
  });

  test("more bytes than data_size fails as soon as it happens, without waiting for the stream end", async () => {
    await t.client.createModel("long");
    const messages = [
      { header: { version_info: { model_id: "long", data_size: "2" } } },
      { body: { data_chunk: Buffer.from("abc") } },
    ];
    await assert.rejects(t.client.createVersionRaw(messages, { endStream: false }), {
      code: status.INVALID_ARGUMENT,
      details: "received more data than the header's data_size: 3 bytes so far, data_size is 2",
    });
  });

  test("message order: body first, second header, empty message, empty stream are INVALID_ARGUMENT", async () => {
    await t.client.createModel("order");
    await assert.rejects(t.client.createVersionRaw([{ body: { data_chunk: Buffer.from("a") } }]), {
      code: status.INVALID_ARGUMENT,
      details: "CreateVersionRequestChunk: the first message must be a header, a body was received",
    });
    const header = { header: { version_info: { model_id: "order", data_size: "1" } } };
    await assert.rejects(t.client.createVersionRaw([header, header]), {
      code: status.INVALID_ARGUMENT,
      details:
        "CreateVersionRequestChunk: a second header was received; only the first message may be a header, every later one must be a body",
    });
    await assert.rejects(t.client.createVersionRaw([header, {}]), {
      code: status.INVALID_ARGUMENT,
      details:
        "CreateVersionRequestChunk: a message without header or body was received; every message after the header must be a body",
    });
    await assert.rejects(t.client.createVersionRaw([]), {
      code: status.INVALID_ARGUMENT,
      details: "CreateVersion: the stream was empty; the first message must be a header with version_info",
    });
    await assert.rejects(t.client.createVersionRaw([{ header: {} }]), {
      code: status.INVALID_ARGUMENT,
      details: "CreateVersionRequestChunk.header.version_info is required",
    });
    const infos = await t.client.retrieveVersionInfos({ model_id: "order" });
    assert.deepEqual(infos.version_infos, []);
  });

  test("CreateVersion for an unknown model is NOT_FOUND", async () => {
    await assert.rejects(t.client.createVersion({ model_id: "ghost", data_size: 1 }, ["a"]), {
      code: status.NOT_FOUND,
      details: 'model "ghost" not found',
    });
  });

  test("RetrieveVersionInfos: the README's handle examples", async () => {
    await t.client.createModel("infos");
    await t.client.publish("infos", Buffer.from("v1"));
    await t.client.publish("infos", Buffer.from("v2"), { archived: true });

    const all = await t.client.retrieveVersionInfos({ model_id: "infos" });
    assert.deepEqual(all.version_infos.map((v) => v.version_number), [1, 2]);
    assert.equal(all.next_version_handle, "3");
    assert.deepEqual(all.version_infos.map((v) => v.archived), [false, true]);

    const one = await t.client.retrieveVersionInfos({ model_id: "infos", version_numbers: [1] });
    assert.deepEqual(one.version_infos.map((v) => v.version_number), [1]);
    assert.equal(one.next_version_handle, "2");

    const fromEnd = await t.client.retrieveVersionInfos({ model_id: "infos", version_numbers: [-2] });
    assert.deepEqual(fromEnd.version_infos.map((v) => v.version_number), [1]);
    assert.equal(fromEnd.next_version_handle, "2");

    const latest = await t.client.retrieveVersionInfos({ model_id: "infos", version_numbers: [-1] });
    assert.equal(latest.version_infos[0]?.version_number, 2);
    assert.equal(latest.version_infos[0]?.data_hash, sha256(Buffer.from("v2")));
    assert.equal(latest.version_infos[0]?.data_size, "2");
  });

  test("RetrieveVersionInfos paging: handle and count; nothing returned keeps the handle", async () => {
    await t.client.createModel("paging");
    for (let i = 0; i < 5; i++) {
      await t.client.publish("paging", Buffer.from(`v${i}`));
    }
    const first = await t.client.retrieveVersionInfos({ model_id: "paging", versions_count: 2 });
    assert.deepEqual(first.version_infos.map((v) => v.version_number), [1, 2]);
    assert.equal(first.next_version_handle, "3");
    const second = await t.client.retrieveVersionInfos({ model_id: "paging", versions_count: 2, version_handle: "3" });
    assert.deepEqual(second.version_infos.map((v) => v.version_number), [3, 4]);
    assert.equal(second.next_version_handle, "5");
    const third = await t.client.retrieveVersionInfos({ model_id: "paging", versions_count: 2, version_handle: "5" });
    assert.deepEqual(third.version_infos.map((v) => v.version_number), [5]);
    assert.equal(third.next_version_handle, "6");
    const done = await t.client.retrieveVersionInfos({ model_id: "paging", versions_count: 2, version_handle: "6" });
    assert.deepEqual(done.version_infos, []);
    assert.equal(done.next_version_handle, "6");

    await t.client.createModel("no-versions");
    const none = await t.client.retrieveVersionInfos({ model_id: "no-versions" });
    assert.deepEqual(none.version_infos, []);
    assert.equal(none.next_version_handle, "0");
  });

  test("RetrieveVersionInfos: cases that crashed the original return what exists", async () => {
    await t.client.createModel("crashers");
    await t.client.publish("crashers", Buffer.from("a"));
    await t.client.publish("crashers", Buffer.from("b"));
    const countTooBig = await t.client.retrieveVersionInfos({ model_id: "crashers", version_numbers: [1], versions_count: 5 });
    assert.deepEqual(countTooBig.version_infos.map((v) => v.version_number), [1]);
    const handleWithNumbers = await t.client.retrieveVersionInfos({
      model_id: "crashers",
      version_numbers: [1, 2],
      version_handle: "1",
    });
    assert.deepEqual(handleWithNumbers.version_infos.map((v) => v.version_number), [2]);
    const handlePastList = await t.client.retrieveVersionInfos({
      model_id: "crashers",
      version_numbers: [1, 2],
      version_handle: "9",
    });
    assert.deepEqual(handlePastList.version_infos, []);
    assert.equal(handlePastList.next_version_handle, "9");
  });

  test("RetrieveVersionInfos: unknown model, unknown version and bad handle", async () => {
    await t.client.createModel("errs");
    await t.client.publish("errs", Buffer.from("a"));
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "errs-missing" }), {
      code: status.NOT_FOUND,
      details: 'model "errs-missing" not found',
    });
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "errs", version_numbers: [7] }), {
      code: status.NOT_FOUND,
      details: 'version 7 of model "errs" not found (it has 1 version(s); transient versions may have been evicted)',
    });
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "errs", version_numbers: [-3] }), {
      code: status.NOT_FOUND,
      details: 'version -3 (the 3rd to last) of model "errs" not found (it has 1 version(s); transient versions may have been evicted)',
    });
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "errs", version_handle: "x" }), {
      code: status.INVALID_ARGUMENT,
      details: 'version_handle "x" is invalid: expected a non-negative decimal integer or ""',
    });
    // A long handle is quoted cut short, never in the middle of a character (a lone surrogate in a
    // status message would make grpc-js's encodeURI of the grpc-message trailer throw).
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "errs", version_handle: `${"x".repeat(39)}😀😀` }), {
      code: status.INVALID_ARGUMENT,
      details: `version_handle "${"x".repeat(39)}…" is invalid: expected a non-negative decimal integer or ""`,
    });
    await assert.rejects(t.client.retrieveVersionInfos({ model_id: "errs", version_handle: `${"x".repeat(38)}😀😀` }), {
      code: status.INVALID_ARGUMENT,
      details: `version_handle "${"x".repeat(38)}😀…" is invalid: expected a non-negative decimal integer or ""`,
    });
    assert.equal((await t.client.retrieveVersionInfos({ model_id: "errs" })).version_infos.length, 1);
  });

  test("RetrieveVersionData: chunks of at most the configured size, -n addressing, empty data", async () => {
    await t.client.createModel("data");
    const big = Buffer.alloc(2500, 7);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    await t.client.publish("data", big, { chunkBytes: 700 });
    await t.client.publish("data", Buffer.alloc(0), { archived: true });
    const chunks = await t.client.retrieveVersionData("data", 1);
    assert.deepEqual(chunks.map((c) => c.length), [1000, 1000, 500]);
    assert.ok(Buffer.concat(chunks).equals(big));
    const viaNegative = await t.client.retrieveVersionData("data", -2);
    assert.ok(Buffer.concat(viaNegative).equals(big));
    const empty = await t.client.retrieveVersionData("data", -1);
    assert.deepEqual(empty.map((c) => c.length), [0]);
    await assert.rejects(t.client.retrieveVersionData("data", 3), {
      code: status.NOT_FOUND,
      details: 'version 3 of model "data" not found (it has 2 version(s); transient versions may have been evicted)',
    });
    await assert.rejects(t.client.retrieveVersionData("data-missing", 1), {
      code: status.NOT_FOUND,
      details: 'model "data-missing" not found',
    });
  });

  test("8 concurrent clients x 25 versions on one model get numbers 1..200, no gaps, no duplicates", async () => {
    await t.client.createModel("concurrent");
    const { RegistryClient } = await import("../support/registry-client.js");
    const clients = Array.from({ length: 8 }, () => new RegistryClient(t.address));
    try {
      const results = await Promise.all(
        clients.map(async (client, c) => {
          const numbers: number[] = [];
          for (let i = 0; i < 25; i++) {
            const data = Buffer.from(`client ${c} version ${i}`);
            const info = await client.publish("concurrent", data, { archived: i % 5 === 0 });
            assert.equal(info.data_hash, sha256(data));
            numbers.push(info.version_number);
          }
          return numbers;
        }),
      );
      const all = results.flat().sort((a, b) => a - b);
      assert.deepEqual(all, Array.from({ length: 200 }, (_, i) => i + 1));
      const infos = await t.client.retrieveVersionInfos({ model_id: "concurrent" });
      assert.equal(infos.version_infos.length, 200);
      assert.equal(infos.next_version_handle, "201");
    } finally {
      for (const client of clients) client.close();
    }
  });
});
