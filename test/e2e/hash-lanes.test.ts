import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { describe, test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import { makeArchiveDir, startTestServer } from "../support/test-server.js";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

function pattern(size: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return data;
}

describe("hash lanes: versions streamed to and from disk", () => {
  test("hashed on a hash thread both ways, a read given up releases its hash, no thread outlives the server", async (t) => {
    const archiveDir = await makeArchiveDir();
    // 24 MiB > a quarter of the 16 MiB budget: streamed to disk, and from disk after a restart.
    const data = pattern(24 * MiB, 5);
    const first = await startTestServer({ archiveDir, cacheMaxBytes: 16 * MiB, sentChunkSize: MiB });
    try {
      await first.client.createModel("big");
      const info = await first.client.publish("big", data, { archived: true });
      assert.equal(info.data_hash, sha256(data));
      assert.equal(await first.server.hashLanes.openOnThreads(), 0);
    } finally {
      await first.stop();
    }

    const server = await startTestServer({ archiveDir, cacheMaxBytes: 16 * MiB, sentChunkSize: MiB });
    t.after(() => server.close());
    assert.ok((await server.client.retrieveData("big", 1)).equals(data));

    // A client that cancels half way, past the first 4 MiB batch posted to the hash thread: the server gives the stream up.
    const call = (server.client.raw.RetrieveVersionData as (req: object) => grpc.ClientReadableStream<{ data_chunk: Buffer }>).call(
      server.client.raw,
      { model_id: "big", version_number: 1 },
    );
    for (let chunks = 0; chunks < 6; chunks++) {
      await once(call, "data");
    }
    call.cancel();
    await once(call, "error");
    for (let waited = 0; (await server.server.hashLanes.openOnThreads()) !== 0 && waited < 30_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await server.server.hashLanes.openOnThreads(), 0, "the cancelled read's hash is released on its thread");

    const threads = server.server.hashLanes.threads();
    assert.equal(threads.length, 1);
    const exited = threads.map((thread) => once(thread, "exit"));
    await server.close();
    await Promise.all(exited);
    assert.equal(server.server.hashLanes.threads().length, 0);
  });
});
