import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { startTestServer } from "../support/test-server.js";

const BUDGET = 1024 * 1024;
// The 20,000 (100,000 take over two minutes here, too long for the suite: bench/memory/tiny-versions.ts runs those).
const VERSIONS = 20_000;

describe("tiny versions under a small budget", () => {
  test("20,000 versions of 16 bytes: eviction keeps the count bounded, the latest is retrievable", async (t) => {
    const server = await startTestServer({ cacheMaxBytes: BUDGET, cachePruneCount: 5 });
    t.after(() => server.close());
    const { client } = server;
    await client.createModel("tiny");
    let next = 0;
    let last = 0;
    const publisher = async (): Promise<void> => {
      while (next < VERSIONS) {
        next++;
        const info = await client.publish("tiny", Buffer.from(String(next).padStart(16, "0")));
        last = Math.max(last, info.version_number);
      }
    };
    await Promise.all(Array.from({ length: 32 }, publisher));
    assert.equal(last, VERSIONS);

    const infos = await client.retrieveVersionInfos({ model_id: "tiny", versions_count: 0 });
    const kept = infos.version_infos.length;
    // Each kept version counts its 23 encoded bytes plus the overhead; the last evictions made room for
    // up to 32 uploads in flight, in batches of 5 (cachePruneCount).
    const bound = Math.floor(BUDGET / (23 + VERSION_OVERHEAD_BYTES));
    assert.ok(kept <= bound, `${kept} versions kept, at most ${bound}`);
    assert.ok(kept >= bound - 32 - 5, `${kept} versions kept, at least ${bound - 37}`);
    assert.equal(infos.version_infos.at(-1)?.version_number, VERSIONS);
    const latest = await client.retrieveData("tiny", VERSIONS);
    assert.equal(latest.length, 16);
    const statuses = (await client.status(["cached_versions", "cache_used_bytes", "cache_data_bytes"])).statuses;
    assert.equal(Number(statuses.cached_versions), kept);
    assert.ok(Number(statuses.cache_used_bytes) <= BUDGET);
    // Data bytes: the kept versions, each 23 bytes encoded plus the overhead (used bytes may add a spare).
    assert.equal(Number(statuses.cache_data_bytes), kept * (23 + VERSION_OVERHEAD_BYTES));
  });
});
