import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { type ClientReadableStream, status } from "@grpc/grpc-js";
import { frameHeaderLength } from "../../src/data/index.js";
import { VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { startTestServer } from "../support/test-server.js";

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");
const KiB = 1024;

function filled(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) % 256;
  return data;
}

describe("the version cache over gRPC", () => {
  test("a small cache evicts old transient versions (NOT_FOUND) and never holds more than its budget", async (t) => {
    const budget = 400 * KiB;
    const server = await startTestServer({ cacheMaxBytes: budget, cachePruneCount: 1, sentChunkSize: 64 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("evict");
    for (let i = 0; i < 10; i++) {
      await client.publish("evict", filled(100 * KiB, i));
      const stats = await client.status(["cache_used_bytes", "cache_max_bytes"]);
      assert.ok(Number(stats.statuses.cache_used_bytes) <= budget, `used ${stats.statuses.cache_used_bytes}`);
      assert.equal(stats.statuses.cache_max_bytes, String(budget));
    }
    const infos = await client.retrieveVersionInfos({ model_id: "evict" });
    const listed = infos.version_infos.map((v) => v.version_number);
    assert.deepEqual(listed, [8, 9, 10], "only the versions that fit remain listed");
    await assert.rejects(client.retrieveData("evict", 1), {
      code: status.NOT_FOUND,
      details: 'version 1 of model "evict" not found (it has 3 version(s); transient versions may have been evicted)',
    });
    assert.ok((await client.retrieveData("evict", -1)).equals(filled(100 * KiB, 9)));
  });

  test("the prune count evicts that many versions at once", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 400 * KiB, cachePruneCount: 3, sentChunkSize: 64 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("prune");
    for (let i = 0; i < 4; i++) {
      await client.publish("prune", filled(90 * KiB, i));
    }
    // The 5th needs one slot; 3 go at once (1, 2, 3), leaving 4 and 5.
    await client.publish("prune", filled(90 * KiB, 4));
    const infos = await client.retrieveVersionInfos({ model_id: "prune" });
    assert.deepEqual(infos.version_infos.map((v) => v.version_number), [4, 5]);
  });

  test("evicted archived versions are read back from disk", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 300 * KiB, cachePruneCount: 1, sentChunkSize: 64 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("arch");
    const first = filled(100 * KiB, 1);
    await client.publish("arch", first, { archived: true });
    for (let i = 0; i < 4; i++) {
      await client.publish("arch", filled(100 * KiB, 10 + i));
    }
    const infos = await client.retrieveVersionInfos({ model_id: "arch", version_numbers: [1] });
    assert.equal(infos.version_infos[0]?.archived, true);
    const back = await client.retrieveData("arch", 1);
    assert.ok(back.equals(first));
  });

  test("the latest version of a model survives a flood of another model's versions", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 1024 * KiB, cachePruneCount: 2, sentChunkSize: 64 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("model-a");
    await client.createModel("model-b");
    const latestA = filled(200 * KiB, 42);
    await client.publish("model-a", filled(200 * KiB, 41));
    await client.publish("model-a", latestA);
    for (let i = 0; i < 30; i++) {
      await client.publish("model-b", filled(300 * KiB, i));
      const a = await client.retrieveVersionInfos({ model_id: "model-a", version_numbers: [-1] });
      assert.equal(a.version_infos[0]?.version_number, 2);
      const data = await client.retrieveData("model-a", -1);
      assert.equal(sha256(data), sha256(latestA));
    }
  });

  test("an upload larger than the budget fails at the header with RESOURCE_EXHAUSTED", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 100 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("huge");
    const messages = [{ header: { version_info: { model_id: "huge", data_size: String(200 * KiB) } } }];
    await assert.rejects(client.createVersionRaw(messages, { endStream: false }), (error: { code: number; details: string }) => {
      assert.equal(error.code, status.RESOURCE_EXHAUSTED);
      // One chunk: the data, its frame header (9 bytes) and the per-version overhead.
      const held = 200 * KiB + frameHeaderLength(200 * KiB) + VERSION_OVERHEAD_BYTES;
      assert.equal(error.details, `cannot hold ${held} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is 102400 bytes`);
      return true;
    });
    // The largest data_size accepted on the wire: with the chunks' framing it is no longer a safe integer.
    const largest = [{ header: { version_info: { model_id: "huge", data_size: String(Number.MAX_SAFE_INTEGER) } } }];
    await assert.rejects(client.createVersionRaw(largest, { endStream: false }), {
      code: status.RESOURCE_EXHAUSTED,
      details: `cannot hold data_size ${Number.MAX_SAFE_INTEGER} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is 102400 bytes`,
    });
    const stats = await client.status(["cache_reserved_bytes", "cache_used_bytes"]);
    assert.deepEqual(stats.statuses, { cache_reserved_bytes: "0", cache_used_bytes: "0" });
  });

  test("uploads in flight hold their reservation; when nothing is evictable the next one is RESOURCE_EXHAUSTED", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 100 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("reserve");
    const header = (size: number): object => ({ header: { version_info: { model_id: "reserve", data_size: String(size) } } });
    const { call: hanging, reply } = client.openCreateVersion();
    reply.catch(() => {});
    hanging.write(header(80 * KiB));

    await waitFor(async () => (await client.status(["cache_reserved_bytes"])).statuses.cache_reserved_bytes !== "0");
    const reserved = Number((await client.status(["cache_reserved_bytes"])).statuses.cache_reserved_bytes);
    assert.ok(reserved >= 80 * KiB && reserved < 82 * KiB, `reserved ${reserved}`); // data, framing and the per-version overhead
    await assert.rejects(client.createVersionRaw([header(30 * KiB)], { endStream: false }), (error: { code: number; details: string }) => {
      assert.equal(error.code, status.RESOURCE_EXHAUSTED);
      const asked = 30 * KiB + frameHeaderLength(30 * KiB) + VERSION_OVERHEAD_BYTES;
      assert.equal(reserved, 80 * KiB + frameHeaderLength(80 * KiB) + VERSION_OVERHEAD_BYTES);
      assert.equal(
        error.details,
        `cannot reserve ${asked} bytes: the version cache budget (COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE) is 102400 bytes and ${reserved} are used, of which only 0 can be evicted (${reserved} reserved, 0 draining, 0 in entries being read)`,
      );
      return true;
    });
    hanging.cancel();
  });

  test("a cancelled upload releases its reservation", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 1024 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("cancel");
    const { call, reply } = client.openCreateVersion();
    reply.catch(() => {});
    call.write({ header: { version_info: { model_id: "cancel", data_size: String(500 * KiB) } } });
    call.write({ body: { data_chunk: Buffer.alloc(100 * KiB) } });
    await waitFor(async () => (await client.status(["cache_reserved_bytes"])).statuses.cache_reserved_bytes !== "0");
    call.cancel();
    await waitFor(async () => (await client.status(["cache_reserved_bytes"])).statuses.cache_reserved_bytes === "0");
    const infos = await client.retrieveVersionInfos({ model_id: "cancel" });
    assert.deepEqual(infos.version_infos, []);
    assert.equal((await client.status(["uploads_in_flight"])).statuses.uploads_in_flight, "0");
  });

  test("expired transient versions are gone, the latest stays", async (t) => {
    const server = await startTestServer({ cacheExpirationMs: 150 });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("expire");
    await client.publish("expire", Buffer.from("old"));
    await client.publish("expire", Buffer.from("latest"));
    await sleep(400);
    const infos = await client.retrieveVersionInfos({ model_id: "expire" });
    assert.deepEqual(infos.version_infos.map((v) => v.version_number), [2]);
    await assert.rejects(client.retrieveData("expire", 1), { code: status.NOT_FOUND });
    assert.equal((await client.retrieveData("expire", 2)).toString(), "latest");
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error("condition not met in time");
    }
    await sleep(10);
  }
}

describe("the server survives", () => {
  test("its worker threads dying: the affected call fails, the next ones work", async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("workers");
    await client.publish("workers", Buffer.from("before"), { archived: true });
    await Promise.all(server.server.workerPool.threads().map((worker) => worker.terminate()));
    const next = await client.publish("workers", Buffer.from("after"), { archived: true });
    assert.equal(next.version_number, 2);
    assert.equal((await client.retrieveData("workers", 2)).toString(), "after");
  });

  test("a reader cancelling mid-stream releases the version it held", async (t) => {
    const server = await startTestServer({ sentChunkSize: 64 * KiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("held");
    await client.publish("held", filled(8 * 1024 * KiB, 5));
    const fn = client.raw.RetrieveVersionData as (req: object) => ClientReadableStream<{ data_chunk: Buffer }>;
    const call = fn.call(client.raw, { model_id: "held", version_number: 1 });
    call.on("error", () => {});
    // Paused after its first message, the reader cannot take the rest (flow control holds the
    // server back), so it still holds the version when the model is deleted.
    await new Promise<void>((resolve) =>
      call.once("data", () => {
        call.pause();
        resolve();
      }),
    );
    // Deleting the model while the reader holds the data moves its bytes to "draining".
    await client.deleteModel("held");
    assert.notEqual((await client.status(["cache_draining_bytes"])).statuses.cache_draining_bytes, "0");
    call.cancel();
    await waitFor(async () => (await client.status(["cache_draining_bytes"])).statuses.cache_draining_bytes === "0");
    assert.deepEqual((await client.status(["cache_used_bytes"])).statuses, { cache_used_bytes: "0" });
  });
});
