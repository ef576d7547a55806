/**
 * Where hashing a version in place on the main thread costs the main thread less than handing it to
 * the worker pool (worker-pool.ts, INLINE_HASH_MAX_BYTES). For each size: the main thread's CPU
 * time per hash (process.threadCpuUsage) of
 * - inline: the pool's hash() with the in-place path on (node:crypto or hash-wasm),
 * - pool: the same with inlineHashMaxBytes = 0 (a piscina task and its answer),
 * with 16 hashes in flight at a time, as 16 clients' uploads would have. The crossover is the
 * largest size at which inline is still the cheaper one.
 */
import { randomFillSync } from "node:crypto";
import { pathToFileURL } from "node:url";
import { EncodedVersionData, SHA256_IMPLEMENTATIONS, type Sha256Implementation } from "../../src/data/index.js";
import { createWorkerPool } from "../../src/worker-pool/index.js";
import { type BenchRecord, toJsonLine } from "../support/bench-record.js";

const KIB = 1024;
const SIZES = [1, 4, 16, 32, 64, 256].map((kib) => kib * KIB);
const STORED_CHUNK_BYTES = 2 * 1024 * KIB;
const IN_FLIGHT = 16;

export interface CrossoverOptions {
  readonly quick: boolean;
}

interface Measured {
  readonly mainCpuUsPerHash: number;
  readonly wallUsPerHash: number;
}

function threadCpuUs(): number {
  const usage = process.threadCpuUsage();
  return usage.user + usage.system;
}

async function measure(hash: (segments: readonly Uint8Array[]) => Promise<string>, segments: readonly Uint8Array[], rounds: number): Promise<Measured> {
  const run = async (count: number): Promise<void> => {
    for (let round = 0; round < count; round++) {
      await Promise.all(Array.from({ length: IN_FLIGHT }, () => hash(segments)));
    }
  };
  await run(Math.max(5, rounds >> 3)); // warm-up
  const cpuBefore = threadCpuUs();
  const wallBefore = performance.now();
  await run(rounds);
  const hashes = rounds * IN_FLIGHT;
  return {
    mainCpuUsPerHash: (threadCpuUs() - cpuBefore) / hashes,
    wallUsPerHash: ((performance.now() - wallBefore) * 1000) / hashes,
  };
}

async function pools(implementation: Sha256Implementation) {
  const inline = createWorkerPool({ sha256: implementation, maxThreads: 2, inlineHashMaxBytes: Number.MAX_SAFE_INTEGER });
  const workers = createWorkerPool({ sha256: implementation, maxThreads: 2, inlineHashMaxBytes: 0 });
  // The in-place hasher is made at the first hash; hash-wasm's asynchronously.
  await inline.hash([Buffer.from("warm-up")]);
  await new Promise((resolve) => setTimeout(resolve, 100));
  return { inline, workers };
}

export async function runHashCrossoverBench(options: CrossoverOptions): Promise<BenchRecord[]> {
  const records: BenchRecord[] = [];
  for (const implementation of SHA256_IMPLEMENTATIONS) {
    const { inline, workers } = await pools(implementation);
    try {
      for (const size of SIZES) {
        const data = EncodedVersionData.allocate(size, STORED_CHUNK_BYTES);
        data.write(0, randomFillSync(Buffer.allocUnsafe(size)));
        const segments = data.dataSegments();
        // About the same time per case whatever the size.
        const rounds = Math.max(20, Math.round((options.quick ? 60 : 200) * Math.sqrt((16 * KIB) / size)));
        for (const [where, pool] of [
          ["inline", inline],
          ["pool", workers],
        ] as const) {
          const measured = await measure((segments) => pool.hash(segments), segments, rounds);
          records.push({
            scenario: "hash-crossover",
            params: { implementation, where, size: `${size / KIB}KiB` },
            metrics: { mainCpuUsPerHash: measured.mainCpuUsPerHash, wallUsPerHash: measured.wallUsPerHash, hashes: rounds * IN_FLIGHT },
          });
        }
      }
    } finally {
      await Promise.all([inline.close(), workers.close()]);
    }
  }
  return records;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const records = await runHashCrossoverBench({ quick: process.argv.includes("--quick") });
  for (const record of records) {
    process.stdout.write(`${toJsonLine(record)}\n`);
  }
}
