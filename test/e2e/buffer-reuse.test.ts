import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connect } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { planChunkLayout } from "../../src/data/index.js";
import { VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { startTestServer } from "../support/test-server.js";
import { openStalledReader, untilSending } from "../support/stalled-reader.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("base64");

/** Data that differs in every byte from one version to the next, so stale memory cannot pass for it. */
function versionData(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 131 + seed * 17 + 1) % 251;
  return data;
}

async function figures(client: { status(names: string[]): Promise<{ statuses: Record<string, string> }> }): Promise<Record<string, number>> {
  const { statuses } = await client.status(["cache_reused_buffers", "cache_spare_bytes", "cache_used_bytes", "cache_draining_bytes"]);
  return Object.fromEntries(Object.entries(statuses).map(([name, value]) => [name, Number(value)]));
}

describe("memory of evicted versions is reused by the next upload or load of the same size", () => {
  const size = 200 * KiB;
  const chunk = 64 * KiB;
  const stored = planChunkLayout(size, chunk).totalBytes + VERSION_OVERHEAD_BYTES;

  test("with room for three versions, every publish after the third reuses the evicted one's memory", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 3 * stored, cachePruneCount: 1, sentChunkSize: chunk });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("reuse");
    for (let v = 1; v <= 10; v++) {
      const data = versionData(size, v);
      const info = await client.publish("reuse", data);
      assert.equal(info.version_number, v);
      assert.equal(info.data_hash, sha256(data));
      const read = await client.retrieveData("reuse", -1);
      assert.ok(read.equals(data), `version ${v} reads back exactly`);
    }
    assert.deepEqual(await figures(client), {
      cache_reused_buffers: 7,
      cache_spare_bytes: 0,
      cache_used_bytes: 3 * stored,
      cache_draining_bytes: 0,
    });
    for (const v of [8, 9]) {
      assert.ok((await client.retrieveData("reuse", v)).equals(versionData(size, v)), `version ${v} is intact`);
    }
  });

  test("under concurrent readers and publishes, every fetch matches its version's hash and bytes", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: 3 * stored, cachePruneCount: 1, sentChunkSize: chunk });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("busy");
    let publishing = true;
    const published = new Map<number, Buffer>();
    const publisher = (async () => {
      for (let v = 1; v <= 40; v++) {
        const data = versionData(size, v);
        const info = await client.publish("busy", data);
        published.set(info.version_number, data);
      }
      publishing = false;
    })();
    let fetches = 0;
    const readers = Array.from({ length: 4 }, async () => {
      while (publishing) {
        const infos = await client.retrieveVersionInfos({ model_id: "busy", version_numbers: [-1] }).catch(() => undefined);
        const latest = infos?.version_infos[0];
        if (latest === undefined) {
          await sleep(1);
          continue;
        }
        let data: Buffer;
        try {
          data = await client.retrieveData("busy", latest.version_number);
        } catch (error) {
          assert.equal((error as { code: number }).code, 5, `only NOT_FOUND (evicted meanwhile) is expected: ${String(error)}`);
          continue;
        }
        fetches++;
        assert.equal(sha256(data), latest.data_hash, `version ${latest.version_number} matches its hash`);
        const expected = published.get(latest.version_number) ?? versionData(size, latest.version_number);
        assert.ok(data.equals(expected), `version ${latest.version_number} has its own bytes`);
      }
    });
    await Promise.all([publisher, ...readers]);
    assert.ok(fetches > 0);
    const reused = (await figures(client)).cache_reused_buffers ?? 0;
    assert.ok(reused > 0 && reused <= 37, `reused ${reused} buffers`);
  });

  test("archived versions read back into the cache reuse the memory of the ones they evict", async (t) => {
    const writer = await startTestServer({ sentChunkSize: chunk });
    t.after(() => writer.close());
    await writer.client.createModel("reread");
    for (let v = 1; v <= 6; v++) {
      await writer.client.publish("reread", versionData(size, v), { archived: true });
    }
    await writer.stop();
    // Restarted on the archive with room for four: a version is loaded into the cache when it
    // takes at most a quarter of the budget; nothing is cached yet.
    const server = await startTestServer({ archiveDir: writer.archiveDir, cacheMaxBytes: 4 * stored, cachePruneCount: 1, sentChunkSize: chunk });
    t.after(() => server.close());
    const { client } = server;
    assert.equal((await figures(client)).cache_used_bytes, 0);
    const reads = [1, 2, 3, 4, 5, 6, 1, 2];
    for (const v of reads) {
      assert.ok((await client.retrieveData("reread", v)).equals(versionData(size, v)), `version ${v} reads back exactly`);
    }
    // The first four loads fill the budget; each later one evicts the least recent and reuses its memory.
    assert.deepEqual(await figures(client), {
      cache_reused_buffers: reads.length - 4,
      cache_spare_bytes: 0,
      cache_used_bytes: 4 * stored,
      cache_draining_bytes: 0,
    });
    for (const v of [5, 6, 1, 2]) {
      assert.ok((await client.retrieveData("reread", v)).equals(versionData(size, v)), `version ${v} is intact in the cache`);
    }
    assert.equal((await figures(client)).cache_reused_buffers, reads.length - 4, "served from the cache: nothing loaded again");
  });

  test("a version whose reader went away with writes unconfirmed is never reused", async (t) => {
    const big = 4 * MiB; // larger than the HTTP/2 windows: a stalled reader leaves writes pending
    const bigStored = planChunkLayout(big, chunk).totalBytes + VERSION_OVERHEAD_BYTES;
    const server = await startTestServer({ cacheMaxBytes: 2 * bigStored, cachePruneCount: 1, sentChunkSize: chunk });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("stalled");
    await client.publish("stalled", versionData(big, 1));
    await client.publish("stalled", versionData(big, 2));

    const session = connect(`http://127.0.0.1:${server.server.port}`);
    t.after(() => session.destroy());
    const reader = openStalledReader(session, "stalled", 1);
    await untilSending(reader); // with 4 MiB against the windows, the server's writes are pending
    reader.close(); // RST_STREAM: the call is cancelled with frames still queued
    // The cancellation settles on the server asynchronously.
    let draining = (await figures(client)).cache_draining_bytes;
    for (const deadline = Date.now() + 30_000; draining !== 0 && Date.now() < deadline; draining = (await figures(client)).cache_draining_bytes) {
      await sleep(20);
    }
    assert.equal(draining, 0);

    await client.publish("stalled", versionData(big, 3)); // evicts version 1: not reusable
    await client.publish("stalled", versionData(big, 4)); // evicts version 2: reusable, reused
    assert.deepEqual(await figures(client), {
      cache_reused_buffers: 1,
      cache_spare_bytes: 0,
      cache_used_bytes: 2 * bigStored,
      cache_draining_bytes: 0,
    });
    assert.ok((await client.retrieveData("stalled", 4)).equals(versionData(big, 4)));
    assert.ok((await client.retrieveData("stalled", 3)).equals(versionData(big, 3)));
  });
});
