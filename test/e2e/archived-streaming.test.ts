import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import type { RegistryClient as TestClient } from "../support/registry-client.js";
import { startTestServer } from "../support/test-server.js";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

function pattern(size: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return data;
}

describe("archived versions larger than the memory budget stream to disk", () => {
  test("a 40 MiB archived version with a 16 MiB budget: stored, hashed, served, and memory stays within budget", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 16 * MiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("big");
    const data = pattern(40 * MiB, 1);
    let peak = 0;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const used = Number((await client.status(["cache_used_bytes"])).statuses.cache_used_bytes);
        peak = Math.max(peak, used);
        await sleep(5);
      }
    })();
    const info = await client.publish("big", data, { archived: true, chunkBytes: MiB, data_hash: sha256(data) });
    polling = false;
    await poll;
    assert.equal(info.version_number, 1);
    assert.equal(info.data_hash, sha256(data));
    assert.equal(info.data_size, String(40 * MiB));
    assert.equal(info.archived, true);
    assert.ok(peak <= 16 * MiB, `cache account peaked at ${peak}`);
    const back = await client.retrieveData("big", 1);
    assert.equal(sha256(back), sha256(data));
    const files = (await readdir(path.join(server.archiveDir, "big"))).filter((name) => !name.startsWith(".cogment-ts-"));
    assert.deepEqual(files.sort(), ["big-v000001.data", "big-v000001.yaml", "big.yaml"]);
    // A transient version that large is still refused: it would have to live in memory.
    await assert.rejects(client.publish("big", Buffer.alloc(20 * MiB)), { code: status.RESOURCE_EXHAUSTED });
  });

  test("a wrong hash, a short stream or a cancelled upload leaves no file and no gap", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 8 * MiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("bad");
    const data = pattern(10 * MiB, 2);
    await assert.rejects(client.publish("bad", data, { archived: true, data_hash: sha256(Buffer.from("other")) }), {
      code: status.INVALID_ARGUMENT,
    });
    await assert.rejects(
      client.createVersion({ model_id: "bad", archived: true, data_size: 10 * MiB }, [data.subarray(0, 5 * MiB)]),
      { code: status.INVALID_ARGUMENT, details: `received ${5 * MiB} bytes of data but the header's data_size is ${10 * MiB}` },
    );
    const { call, reply } = client.openCreateVersion();
    reply.catch(() => {});
    call.write({ header: { version_info: { model_id: "bad", archived: true, data_size: String(10 * MiB) } } });
    call.write({ body: { data_chunk: data.subarray(0, 6 * MiB) } });
    await sleep(300);
    call.cancel();
    const deadline = Date.now() + 30_000;
    let leftovers: string[] = [];
    do {
      await sleep(50);
      leftovers = (await readdir(path.join(server.archiveDir, "bad"))).filter((name) => name !== "bad.yaml" && !name.startsWith(".cogment-ts-"));
    } while (leftovers.length > 0 && Date.now() < deadline);
    assert.deepEqual(leftovers, []);
    assert.deepEqual((await client.status(["cache_used_bytes", "uploads_in_flight"])).statuses, {
      cache_used_bytes: "0",
      uploads_in_flight: "0",
    });
    const ok = await client.publish("bad", data, { archived: true });
    assert.equal(ok.version_number, 1);
  });

  test("COGMENT_MODEL_REGISTRY_VERSION_MAX_SIZE refuses larger uploads at the header", async (t) => {
    const server = await startTestServer({ versionMaxBytes: MiB });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("capped");
    const header = [{ header: { version_info: { model_id: "capped", archived: true, data_size: String(MiB + 1) } } }];
    await assert.rejects(client.createVersionRaw(header, { endStream: false }), {
      code: status.RESOURCE_EXHAUSTED,
      details: `data_size ${MiB + 1} is larger than the largest version this server accepts (COGMENT_MODEL_REGISTRY_VERSION_MAX_SIZE = ${MiB} bytes)`,
    });
    const ok = await client.publish("capped", Buffer.alloc(MiB), { archived: true });
    assert.equal(ok.version_number, 1);
  });

  describe("the model deleted while its version streams to disk", () => {
    const deletedWhileUploading = { code: status.NOT_FOUND, details: 'model "m" not found (it was deleted while the version was uploading)' };

    /** Sends the header of a 64 MiB archived version of "m" (streamed: over the 16 MiB budget's share) and `firstMiB` MiB of it. */
    async function startUpload(client: TestClient, firstMiB: number): Promise<{ rest: () => Promise<void>; reply: Promise<unknown> }> {
      const { call, reply } = client.openCreateVersion();
      call.on("error", () => undefined);
      let failed = false;
      reply.catch(() => (failed = true));
      const settled = reply.then(
        () => undefined,
        () => undefined,
      );
      call.write({ header: { version_info: { model_id: "m", archived: true, data_size: String(64 * MiB), data_hash: "", creation_timestamp: "0", user_data: {} } } });
      const chunk = Buffer.alloc(MiB, 9);
      const send = async (count: number): Promise<void> => {
        for (let i = 0; i < count && !failed; i++) {
          if (!call.write({ body: { data_chunk: chunk } })) {
            await Promise.race([new Promise((resolve) => call.once("drain", resolve)), settled]);
          }
        }
      };
      await send(firstMiB);
      return {
        reply,
        rest: async () => {
          await send(64 - firstMiB);
          call.end();
        },
      };
    }

    /**
     * The archive root's model directories. Names starting with "." are never models: the server's own
     * files (the journal) and its short-lived temporary files (the leftover clean-up's clock probe,
     * made in the background after a start) come and go there.
     */
    async function modelDirectories(archiveDir: string): Promise<string[]> {
      return (await readdir(archiveDir)).filter((name) => !name.startsWith("."));
    }

    async function waitFor(condition: () => Promise<boolean>): Promise<void> {
      for (let tries = 0; tries < 3000 && !(await condition()); tries++) {
        await sleep(10);
      }
    }

    test("midway (batches on disk): the uploader gets NOT_FOUND, nothing is left", async (t) => {
      const server = await startTestServer({ cacheMaxBytes: 16 * MiB });
      t.after(() => server.close());
      const { client } = server;
      await client.createModel("m");
      const upload = await startUpload(client, 12);
      const modelDir = path.join(server.archiveDir, "m");
      await waitFor(async () => (await readdir(modelDir)).some((name) => name.startsWith(".m-upload.data.tmp-")));
      await client.deleteModel("m");
      await upload.rest();
      await assert.rejects(upload.reply, deletedWhileUploading);
      await waitFor(async () => (await client.status(["uploads_in_flight"])).statuses.uploads_in_flight === "0");
      assert.deepEqual(await modelDirectories(server.archiveDir), []);
    });

    test("before its first batch was written: the uploader gets NOT_FOUND, the model's directory is not made again", async (t) => {
      const server = await startTestServer({ cacheMaxBytes: 16 * MiB });
      t.after(() => server.close());
      const { client } = server;
      await client.createModel("m");
      const upload = await startUpload(client, 1); // less than one 4 MiB batch: nothing on disk yet
      await waitFor(async () => (await client.status(["uploads_in_flight"])).statuses.uploads_in_flight === "1");
      await client.deleteModel("m");
      assert.deepEqual(await modelDirectories(server.archiveDir), []);
      await upload.rest();
      await assert.rejects(upload.reply, deletedWhileUploading);
      await waitFor(async () => (await client.status(["uploads_in_flight"])).statuses.uploads_in_flight === "0");
      assert.deepEqual(await modelDirectories(server.archiveDir), []);
    });
  });
});
