/**
 * The memory a cached version costs beyond its encoded bytes (its record, its cache entry, its
 * buffer objects): commits N tiny transient versions through an in-process Registry under a budget
 * large enough to keep them all, and compares the heap (heapUsed + external, after full
 * collections) before and after. This is what VERSION_OVERHEAD_BYTES (version-cache.ts) charges.
 *
 *   node --expose-gc dist/bench/memory/version-overhead.js [--versions=N] [--size=BYTES]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { createLogger } from "../../src/logger.js";
import { EncodedVersionData, createSha256 } from "../../src/data/index.js";
import { Registry, VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import type { BenchRecord } from "../support/bench-record.js";

export interface VersionOverheadOptions {
  readonly versions: number;
  readonly dataSize: number;
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    throw new Error("run with node --expose-gc");
  }
  for (let i = 0; i < 4; i++) {
    gc();
  }
}

function heapBytes(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

export async function runVersionOverheadBench(options: VersionOverheadOptions): Promise<BenchRecord> {
  const archiveDir = await mkdtemp(path.join(tmpdir(), "mr-bench-overhead-"));
  const sha256 = await createSha256("node-crypto");
  const encodedBytes = EncodedVersionData.planTotalBytes(options.dataSize, 2 * 1024 * 1024);
  const registry = await Registry.open({
    archive: createFsArchiveStore({ root: archiveDir, writer: inlineFileWriter }),
    cacheMaxBytes: 2 * options.versions * (encodedBytes + VERSION_OVERHEAD_BYTES),
    cacheExpirationMs: 0,
    cachePruneCount: 5,
    chunkSize: 2 * 1024 * 1024,
    hash: async (segments) => sha256(segments),
    log: createLogger("silent"),
  });
  try {
    await registry.createOrUpdateModel({ modelId: "tiny", userData: {} });
    const data = Buffer.alloc(options.dataSize, 1);
    const publish = async (): Promise<void> => {
      const upload = await registry.beginUpload({
        modelId: "tiny",
        archived: false,
        creationTimestamp: 0n,
        dataHash: "",
        dataSize: data.length,
        userData: {},
      });
      await upload.append(data);
      await upload.finish();
    };
    await publish(); // first use: the actor, its number block on disk, the code paths
    collect();
    const before = heapBytes();
    const rssBefore = process.memoryUsage.rss();
    for (let i = 0; i < options.versions; i++) {
      await publish();
    }
    collect();
    const after = heapBytes();
    const rssAfter = process.memoryUsage.rss();
    const cache = registry.cache.stats();
    if (cache.entries !== options.versions + 1) {
      throw new Error(`expected ${options.versions + 1} cached versions, found ${cache.entries}`);
    }
    const perVersion = (after - before) / options.versions;
    return {
      scenario: "version-overhead",
      params: { versions: options.versions, dataSize: options.dataSize },
      metrics: {
        heapBytesPerVersion: perVersion,
        rssBytesPerVersion: (rssAfter - rssBefore) / options.versions,
        encodedBytesPerVersion: encodedBytes,
        overheadBytesPerVersion: perVersion - encodedBytes,
        chargedOverheadBytes: VERSION_OVERHEAD_BYTES,
      },
    };
  } finally {
    registry.close();
    await rm(archiveDir, { recursive: true, force: true });
  }
}

function flag(name: string): number | undefined {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return found === undefined ? undefined : Number(found.slice(name.length + 3));
}

if (process.argv[1]?.endsWith("version-overhead.js") === true) {
  runVersionOverheadBench({ versions: flag("versions") ?? 20_000, dataSize: flag("size") ?? 16 }).then(
    (record) => process.stdout.write(`${JSON.stringify({ scenario: record.scenario, ...record.params, ...record.metrics })}\n`),
    (error: unknown) => {
      process.stderr.write(`version-overhead: ${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
