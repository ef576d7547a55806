/**
 * Memory of a server that receives a burst of tiny versions under a small budget: publishes
 * 100,000 transient versions of 16 bytes to a server process and records its RSS at rest before,
 * right after the burst, a few seconds later (garbage collected) and after DeleteModel. The count
 * of versions kept is bounded by budget / (encoded size + VERSION_OVERHEAD_BYTES).
 *
 *   node dist/bench/run-all.js tiny [--quick]
 *   node dist/bench/tiny-versions.js [--quick] [--env=NAME=VALUE ...]   # e.g. --env=MALLOC_ARENA_MAX=2
 */
import { setTimeout as sleep } from "node:timers/promises";
import { EncodedVersionData } from "../../src/data/index.js";
import { VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { createBenchClient } from "../support/bench-client.js";
import type { BenchRecord } from "../support/bench-record.js";
import { type ResidentBreakdown, readResidentBreakdown } from "../support/resident-breakdown.js";
import { MIB, startBenchServer } from "../support/server-process.js";

export interface TinyVersionsOptions {
  readonly versions: number;
  readonly dataSize: number;
  readonly cacheMaxBytes: number;
  /** CreateVersion calls in flight at once. */
  readonly concurrency: number;
  /** How long to wait before the "settled" sample. */
  readonly settleMs: number;
  /** Extra environment of the server process (e.g. glibc's MALLOC_ARENA_MAX), for comparisons. */
  readonly serverEnv?: Readonly<Record<string, string>>;
}

export function defaultTinyVersionsOptions(quick: boolean): TinyVersionsOptions {
  return { versions: quick ? 10_000 : 100_000, dataSize: 16, cacheMaxBytes: 8 * MIB, concurrency: 32, settleMs: 5_000 };
}

const MODEL_ID = "tiny";
/** The server's default sent chunk size (any size above 16 bytes gives the same one-chunk layout). */
const CHUNK_SIZE = 2 * 1024 * 1024;

export async function runTinyVersionsBench(options: TinyVersionsOptions, log: (line: string) => void): Promise<BenchRecord> {
  const server = await startBenchServer({ cacheMaxBytes: options.cacheMaxBytes, ...(options.serverEnv === undefined ? {} : { env: options.serverEnv }) });
  const client = createBenchClient(server.address);
  try {
    await client.createModel(MODEL_ID);
    await sleep(1_000);
    const rssAtStart = server.memory().rssBytes;
    const atStart = readResidentBreakdown(server.pid);
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
    const settled = readResidentBreakdown(server.pid);
    await client.deleteModel(MODEL_ID);
    await sleep(options.settleMs);
    const rssAfterDelete = server.memory().rssBytes;
    const afterDelete = readResidentBreakdown(server.pid);
    const breakdown = (name: string, at: ResidentBreakdown): Record<string, number> => ({
      [`${name}V8PagesKiB`]: at.v8PagesKiB,
      [`${name}MallocKiB`]: at.mallocKiB,
    });
    const kib = (bytes: number): number => bytes / 1024;
    return {
      scenario: "tiny-versions",
      params: { versions: options.versions, dataSize: options.dataSize, cacheMaxBytes: options.cacheMaxBytes },
      metrics: {
        versionsPerSecond: options.versions / seconds,
        cachedVersions: Number(status.cached_versions),
        // Each counts its encoded bytes (16 of data: 23) plus the overhead.
        maxCachedVersions: Math.floor(options.cacheMaxBytes / (EncodedVersionData.planTotalBytes(options.dataSize, CHUNK_SIZE) + VERSION_OVERHEAD_BYTES)),
        cacheUsedBytes: Number(status.cache_used_bytes),
        rssAtStartKiB: kib(rssAtStart),
        rssAfterBurstKiB: kib(rssAfterBurst),
        rssSettledKiB: kib(rssSettled),
        rssAfterDeleteKiB: kib(rssAfterDelete),
        peakRssKiB: kib(server.memory().peakRssBytes),
        // Where the resident set is (V8 heap pages, malloc), at start, settled and after DeleteModel.
        ...breakdown("start", atStart),
        ...breakdown("settled", settled),
        ...breakdown("afterDelete", afterDelete),
      },
    };
  } finally {
    client.close();
    await server.stop();
  }
}

if (process.argv[1]?.endsWith("tiny-versions.js") === true) {
  const serverEnv = Object.fromEntries(
    process.argv.filter((arg) => arg.startsWith("--env=")).map((arg) => {
      const [name, ...value] = arg.slice("--env=".length).split("=");
      return [name as string, value.join("=")];
    }),
  );
  const options = { ...defaultTinyVersionsOptions(process.argv.includes("--quick")), serverEnv };
  runTinyVersionsBench(options, (line) => process.stderr.write(`${line}\n`)).then(
    (record) => process.stdout.write(`${JSON.stringify({ scenario: record.scenario, ...record.params, serverEnv, ...record.metrics })}\n`),
    (error: unknown) => {
      process.stderr.write(`tiny-versions: ${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
