/**
 * Micro-benchmarks of the VersionCache's hot calls (src/registry/version-cache.ts), no I/O:
 * - acquire/release: a reader's lease on a cached version (per reader per version fetched);
 * - get: the lookup alone;
 * - reserve/insert/evict: a full cache taking a new version (per upload), the registry's pattern:
 *   reserve (evicts the least recently used entry), insert the new version pinned, unpin the previous
 *   latest; with and without spares (reserveReusing, the value of the evicted entry reused).
 * Each sample runs a batch of calls; the metric is the median ns per call. JSON lines on stdout.
 *
 *   node dist/bench/micro/version-cache.bench.js [--quick] [--call=get,acquire/release]
 */
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { VersionCache } from "../../src/registry/version-cache.js";
import { type BenchRecord, toJsonLine } from "../support/bench-record.js";

const MODELS = 8;
const VERSIONS_PER_MODEL = 128;
const ENTRY_BYTES = 1024;
/** Calls per sample, so the timer's own cost stays negligible. */
const BATCH = 1024;

interface Value {
  readonly id: number;
}

interface Case {
  readonly name: string;
  readonly setup: () => () => void;
}

function fullCache(spares: boolean): { cache: VersionCache<Value>; latest: number[] } {
  const cache = new VersionCache<Value>({
    maxBytes: MODELS * VERSIONS_PER_MODEL * ENTRY_BYTES,
    expirationMs: 0,
    pruneCount: 1,
    ...(spares ? { spares: { maxAgeMs: 60_000 } } : {}),
  });
  const latest: number[] = [];
  for (let model = 0; model < MODELS; model++) {
    for (let version = 1; version <= VERSIONS_PER_MODEL; version++) {
      cache.insert(cache.reserve(ENTRY_BYTES), `model-${model}`, version, { id: version }, { pinned: version === VERSIONS_PER_MODEL });
    }
    latest.push(VERSIONS_PER_MODEL);
  }
  return { cache, latest };
}

function readers(cache: VersionCache<Value>, useLease: boolean): () => void {
  const modelIds = Array.from({ length: MODELS }, (_, model) => `model-${model}`);
  let cursor = 0;
  return () => {
    for (let i = 0; i < BATCH; i++) {
      cursor = (cursor + 7) % (MODELS * VERSIONS_PER_MODEL);
      const modelId = modelIds[cursor % MODELS] as string;
      const version = 1 + (cursor % VERSIONS_PER_MODEL);
      if (useLease) {
        cache.acquire(modelId, version)?.release();
      } else {
        cache.get(modelId, version);
      }
    }
  };
}

function publishers(spares: boolean): () => void {
  const { cache, latest } = fullCache(spares);
  const modelIds = Array.from({ length: MODELS }, (_, model) => `model-${model}`);
  let model = 0;
  return () => {
    for (let i = 0; i < BATCH; i++) {
      model = (model + 1) % MODELS;
      const modelId = modelIds[model] as string;
      const previous = latest[model] as number;
      const version = previous + 1;
      if (spares) {
        const { reservation, reused } = cache.reserveReusing(ENTRY_BYTES);
        cache.insert(reservation, modelId, version, reused ?? { id: version }, { pinned: true });
      } else {
        cache.insert(cache.reserve(ENTRY_BYTES), modelId, version, { id: version }, { pinned: true });
      }
      cache.setPinned(modelId, previous, false);
      latest[model] = version;
    }
  };
}

const CASES: readonly Case[] = [
  { name: "acquire/release", setup: () => readers(fullCache(false).cache, true) },
  { name: "get", setup: () => readers(fullCache(false).cache, false) },
  { name: "reserve/insert/evict", setup: () => publishers(false) },
  { name: "reserveReusing/insert/evict", setup: () => publishers(true) },
];

export async function runVersionCacheBench(options: {
  readonly quick: boolean;
  /** The calls to measure (names as in the output); all when absent. */
  readonly calls?: readonly string[];
}): Promise<BenchRecord[]> {
  const bench = new Bench({
    time: options.quick ? 300 : 1500,
    warmupTime: options.quick ? 50 : 300,
    throws: true,
  });
  for (const benchCase of CASES) {
    if (options.calls !== undefined && !options.calls.includes(benchCase.name)) {
      continue;
    }
    bench.add(benchCase.name, benchCase.setup());
  }
  await bench.run();
  return bench.tasks.map((task) => {
    const result = task.result;
    if (result.state !== "completed") {
      throw new Error(`micro-benchmark "${task.name}" did not complete (${result.state})`);
    }
    return {
      scenario: "version-cache",
      params: { call: task.name },
      metrics: { medianNsPerCall: (result.latency.p50 * 1e6) / BATCH, samples: result.latency.samplesCount },
    };
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const callArgument = process.argv.find((argument) => argument.startsWith("--call="));
  const calls = callArgument === undefined ? undefined : callArgument.slice("--call=".length).split(",");
  for (const record of await runVersionCacheBench({ quick: process.argv.includes("--quick"), ...(calls === undefined ? {} : { calls }) })) {
    process.stdout.write(`${toJsonLine(record)}\n`);
  }
}
