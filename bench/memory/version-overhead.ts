/**
 * The memory a cached version costs beyond its encoded bytes (its record, its cache entry, its
 * buffer objects): commits N tiny transient versions through an in-process Registry under a budget
 * large enough to keep them all, reads each once (as a reader leaves it: its frames made), and
 * compares the heap (heapUsed + external, after full collections) before and after. Outside the
 * heap, the memory of each version's data (from malloc) is measured apart (see
 * outsideHeapBytesPerBuffer), as the resident set of the publish loop also holds garbage not given
 * back yet. heap + outside - encoded bytes is what VERSION_OVERHEAD_BYTES (version-cache.ts) charges.
 * --snapshot writes a heap snapshot once the versions are in (count its objects by constructor to
 * see where the bytes go).
 *
 *   node --expose-gc dist/bench/memory/version-overhead.js [--versions=N] [--size=BYTES] [--snapshot]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeHeapSnapshot } from "node:v8";
import { createFsArchiveStore, inlineFileWriter } from "../../src/archive/index.js";
import { createLogger } from "../../src/logger.js";
import { EncodedVersionData, createSha256 } from "../../src/data/index.js";
import { Registry, VERSION_OVERHEAD_BYTES } from "../../src/registry/index.js";
import { validateUserData } from "../../src/rpc/validate.js";
import type { BenchRecord } from "../support/bench-record.js";
import { readResidentBreakdown } from "../support/resident-breakdown.js";

export interface VersionOverheadOptions {
  readonly versions: number;
  readonly dataSize: number;
  /** Write a heap snapshot (into the working directory) once the versions are in. */
  readonly snapshot?: boolean;
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

/** Resident bytes of the C allocator (glibc malloc), where a version's data lives. */
function mallocResidentBytes(): number {
  return readResidentBreakdown(process.pid).mallocKiB * 1024;
}

/**
 * Memory outside the V8 heap per version's data (its shared buffer's bytes and the allocator's
 * bookkeeping for it: V8's BackingStore, its ArrayBufferExtension), measured apart from the registry
 * so that no garbage of the publish path blurs it.
 */
function outsideHeapBytesPerBuffer(count: number, dataSize: number): number {
  collect();
  const before = mallocResidentBytes();
  const kept = Array.from({ length: count }, () => EncodedVersionData.allocate(dataSize, 2 * 1024 * 1024));
  collect();
  const after = mallocResidentBytes();
  if (kept.length !== count) {
    throw new Error("unreachable");
  }
  return (after - before) / count;
}

export async function runVersionOverheadBench(options: VersionOverheadOptions): Promise<BenchRecord> {
  const outside = outsideHeapBytesPerBuffer(options.versions, options.dataSize); // first: the quietest heap
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
        userData: validateUserData("user_data", {}), // as the RPC edge passes it
      });
      await upload.append(data);
      const version = await upload.finish();
      const source = await registry.openVersionData("tiny", version.versionNumber);
      for (const frame of source.frames as Iterable<Buffer>) {
        if (frame.byteLength === 0) {
          throw new Error("empty frame");
        }
      }
      source.release(false);
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
    const snapshotFile = options.snapshot === true ? writeHeapSnapshot() : undefined;
    const cache = registry.cache.stats();
    if (cache.entries !== options.versions + 1) {
      throw new Error(`expected ${options.versions + 1} cached versions, found ${cache.entries}`);
    }
    const perVersion = (after - before) / options.versions;
    return {
      scenario: "version-overhead",
      params: { versions: options.versions, dataSize: options.dataSize, ...(snapshotFile === undefined ? {} : { snapshotFile }) },
      metrics: {
        heapBytesPerVersion: perVersion,
        outsideHeapBytesPerVersion: outside,
        encodedBytesPerVersion: encodedBytes,
        overheadBytesPerVersion: perVersion + outside - encodedBytes,
        // Includes garbage that V8 and malloc have not given back yet: an upper bound, noisy.
        rssBytesPerVersion: (rssAfter - rssBefore) / options.versions,
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
  const snapshot = process.argv.includes("--snapshot");
  runVersionOverheadBench({ versions: flag("versions") ?? 20_000, dataSize: flag("size") ?? 16, snapshot }).then(
    (record) => process.stdout.write(`${JSON.stringify({ scenario: record.scenario, ...record.params, ...record.metrics })}\n`),
    (error: unknown) => {
      process.stderr.write(`version-overhead: ${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
