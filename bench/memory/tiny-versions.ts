/**
 * Memory of a server that receives a burst of tiny versions under a small budget: publishes
 * 100,000 transient versions of 16 bytes to a server process and records its RSS at rest before,
 * right after the burst, a few seconds later (garbage collected) and after DeleteModel. The count
 * of versions kept is bounded by budget / (encoded size + VERSION_OVERHEAD_BYTES).
 *
 *   node dist/bench/run-all.js tiny [--quick]
 */
import { setTimeout as sleep } from "node:timers/promises";
import { VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { createBenchClient } from "../support/bench-client.js";
import type { BenchRecord } from "../support/bench-record.js";
import { MIB, startBenchServer } from "../support/server-process.js";

export interface TinyVersionsOptions {
  readonly versions: number;
  readonly dataSize: number;
  readonly cacheMaxBytes: number;
  /** CreateVersion calls in flight at once. */
  readonly concurrency: number;
  /** How long to wait before the "settled" sample. */
  readonly settleMs: number;
}

export function defaultTinyVersionsOptions(quick: boolean): TinyVersionsOptions {
  return { versions: quick ? 10_000 : 100_000, dataSize: 16, cacheMaxBytes: 8 * MIB, concurrency: 32, settleMs: 5_000 };
}

const MODEL_ID = "tiny";

export async function runTinyVersionsBench(options: TinyVersionsOptions, log: (line: string) => void): Promise<BenchRecord> {
  const server = await startBenchServer({ cacheMaxBytes: options.cacheMaxBytes });
  const client = createBenchClient(server.address);
  try {
    await client.createModel(MODEL_ID);
    await sleep(1_000);
    const rssAtStart = server.memory().rssBytes;
    const data = Buffer.alloc(options.dataSize, 7);
    let next = 0;
    const startedAt = performance.now();
    const publisher = async (): Promise<void> => {
      while (next < options.versions) {
        next++;
        await client.publish(MODEL_ID, data);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, publisher));
    const seconds = (performance.now() - startedAt) / 1000;
    const rssAfterBurst = server.memory().rssBytes;
    log(`tiny: ${options.versions} versions in ${seconds.toFixed(1)} s`);
    const status = (await client.status(["cached_versions", "cache_used_bytes"])).statuses;
    await sleep(options.settleMs);
    const rssSettled = server.memory().rssBytes;
    await client.deleteModel(MODEL_ID);
    await sleep(options.settleMs);
    const rssAfterDelete = server.memory().rssBytes;
    const kib = (bytes: number): number => bytes / 1024;
    return {
      scenario: "tiny-versions",
      params: { versions: options.versions, dataSize: options.dataSize, cacheMaxBytes: options.cacheMaxBytes },
      metrics: {
        versionsPerSecond: options.versions / seconds,
        cachedVersions: Number(status.cached_versions),
        maxCachedVersions: Math.floor(options.cacheMaxBytes / (options.dataSize + VERSION_OVERHEAD_BYTES)),
        cacheUsedBytes: Number(status.cache_used_bytes),
        rssAtStartKiB: kib(rssAtStart),
        rssAfterBurstKiB: kib(rssAfterBurst),
        rssSettledKiB: kib(rssSettled),
        rssAfterDeleteKiB: kib(rssAfterDelete),
        peakRssKiB: kib(server.memory().peakRssBytes),
      },
    };
  } finally {
    client.close();
    await server.stop();
  }
}

if (process.argv[1]?.endsWith("tiny-versions.js") === true) {
  runTinyVersionsBench(defaultTinyVersionsOptions(process.argv.includes("--quick")), (line) => process.stderr.write(`${line}\n`)).then(
    (record) => process.stdout.write(`${JSON.stringify({ scenario: record.scenario, ...record.params, ...record.metrics })}\n`),
    (error: unknown) => {
      process.stderr.write(`tiny-versions: ${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
