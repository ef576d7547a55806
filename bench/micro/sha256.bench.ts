/**
 * Micro-benchmarks of the upload path's CPU work, on data laid out as the
 * server stores it (EncodedVersionData: 2 MiB reply chunks in one
 * SharedArrayBuffer, hashed through its dataSegments() views):
 * - SHA-256: node:crypto vs hash-wasm, 4 KiB, 1 MiB and 16 MiB;
 * - copy: EncodedVersionData.write of 1 MiB request bodies into a 16 MiB version.
 * Throughput is computed from tinybench's median latency.
 */
import { randomFillSync } from "node:crypto";
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { EncodedVersionData, SHA256_IMPLEMENTATIONS, createSha256 } from "../../src/data/index.js";
import { type BenchRecord, toJsonLine } from "../support/bench-record.js";

const KIB = 1024;
const MIB = 1024 * KIB;
const STORED_CHUNK_BYTES = 2 * MIB;
/** Small inputs are hashed `batch` times per sample, so the timer's own cost stays negligible. */
const SIZES: readonly { label: string; bytes: number; batch: number }[] = [
  { label: "4KiB", bytes: 4 * KIB, batch: 256 },
  { label: "1MiB", bytes: MIB, batch: 1 },
  { label: "16MiB", bytes: 16 * MIB, batch: 1 },
];
const COPY_VERSION_BYTES = 16 * MIB;
const COPY_BODY_BYTES = MIB;

export interface MicroBenchOptions {
  readonly quick: boolean;
}

interface Case {
  readonly record: Omit<BenchRecord, "metrics">;
  readonly bytesPerIteration: number;
  /** Calls of the measured function per sample. */
  readonly calls: number;
}

export async function runSha256Bench(options: MicroBenchOptions): Promise<BenchRecord[]> {
  const bench = new Bench({
    time: options.quick ? 300 : 1000,
    iterations: 5,
    warmupTime: options.quick ? 50 : 200,
    warmupIterations: 2,
    throws: true,
  });
  const cases = new Map<string, Case>();

  for (const size of SIZES) {
    const data = EncodedVersionData.allocate(size.bytes, STORED_CHUNK_BYTES);
    data.write(0, randomFillSync(Buffer.allocUnsafe(size.bytes)));
    const segments = data.dataSegments();
    for (const implementation of SHA256_IMPLEMENTATIONS) {
      const sha256 = await createSha256(implementation);
      const name = `sha256 ${implementation} ${size.label}`;
      cases.set(name, {
        record: { scenario: "sha256", params: { implementation, size: size.label } },
        bytesPerIteration: size.bytes * size.batch,
        calls: size.batch,
      });
      bench.add(name, () => {
        for (let i = 0; i < size.batch; i++) {
          sha256(segments);
        }
      });
    }
  }

  const target = EncodedVersionData.allocate(COPY_VERSION_BYTES, STORED_CHUNK_BYTES);
  const body = randomFillSync(Buffer.allocUnsafe(COPY_BODY_BYTES));
  cases.set("copy", {
    record: { scenario: "copy", params: { body: "1MiB", version: "16MiB" } },
    bytesPerIteration: COPY_VERSION_BYTES,
    calls: 1,
  });
  bench.add("copy", () => {
    for (let position = 0; position < COPY_VERSION_BYTES; position += COPY_BODY_BYTES) {
      target.write(position, body);
    }
  });

  await bench.run();
  const records: BenchRecord[] = [];
  for (const task of bench.tasks) {
    const benchCase = cases.get(task.name);
    const result = task.result;
    if (benchCase === undefined || result.state !== "completed") {
      throw new Error(`micro-benchmark "${task.name}" did not complete (${result.state})`);
    }
    const medianMs = result.latency.p50;
    records.push({
      ...benchCase.record,
      metrics: {
        medianMBps: benchCase.bytesPerIteration / 1e6 / (medianMs / 1000),
        medianUsPerCall: (medianMs * 1000) / benchCase.calls,
        samples: result.latency.samplesCount,
      },
    });
  }
  return records;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const records = await runSha256Bench({ quick: process.argv.includes("--quick") });
  for (const record of records) {
    process.stdout.write(`${toJsonLine(record)}\n`);
  }
}
