/**
 * The first read of an archived version after a restart (issue #15): a server archives
 * `versions` versions of `versionBytes`, stops; a new server on the same archive serves
 * each of them once (from disk: none is in memory) and the first one again. The files
 * were just written, so they are in the page cache: the server's read path, not the
 * disk, is measured. MB/s of each first read (median) and of the second.
 */
import { createHash, randomFillSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchRecord } from "../support/bench-record.js";
import { createBenchClient } from "../support/bench-client.js";
import { removeTempDir, trackTempDir } from "../support/cleanup.js";
import type { ArchivedReadTask, ArchivedReader } from "./generator-protocol.js";
import { spawnGenerator } from "./generators.js";
import { median } from "../support/percentiles.js";
import { GB, type LoadOptions, MB, MODEL_ID, PUBLISH_CHUNK_BYTES, prepareModel, withServer } from "./scenario-support.js";
import { MIB } from "../support/server-process.js";
import { sharedNow } from "../support/clock.js";
import { readMachineBusySeconds } from "../support/proc-stats.js";

export interface ArchivedReadScenario {
  readonly versionBytes: number;
  readonly versions: number;
}

const TIMEOUT_MS = 150_000;

export async function runArchivedRead(options: LoadOptions, scenario: ArchivedReadScenario): Promise<BenchRecord> {
  const archiveDir = mkdtempSync(join(tmpdir(), "registry-bench-archived-"));
  trackTempDir(archiveDir);
  // The bench's own copy of the data, for the raw reader to compare with (not the server's archive).
  const expectedDir = mkdtempSync(join(tmpdir(), "registry-bench-expected-"));
  trackTempDir(expectedDir);
  const check = rawReaderCheck();
  try {
    const versions = await withServer(options, { archiveDir }, async (server) => {
      await prepareModel(server.address, 0);
      const client = createBenchClient(server.address);
      try {
        const data = Buffer.allocUnsafe(scenario.versionBytes);
        const written: ArchivedReadTask["versions"][number][] = [];
        for (let i = 0; i < scenario.versions; i++) {
          randomFillSync(data);
          const info = await client.publish(MODEL_ID, data, { archived: true, chunkBytes: PUBLISH_CHUNK_BYTES });
          const hash = createHash("sha256").update(data).digest("base64");
          if (check === "bytes") {
            const expectedFile = join(expectedDir, `v${info.version_number}.bin`);
            writeFileSync(expectedFile, data);
            written.push({ versionNumber: info.version_number, hash, bytes: data.byteLength, expectedFile });
          } else {
            written.push({ versionNumber: info.version_number, hash, bytes: data.byteLength });
          }
        }
        return written;
      } finally {
        client.close();
      }
    });
    const metrics: Record<string, number | null> = { hashMismatches: 0, serverPeakRssMiB: 0 };
    // Each reader against its own restarted server (a first read needs one); the raw reader's figures
    // are the scenario's, the node:http2 reader's are kept beside them (prefixed) for comparison.
    for (const reader of archivedReaders()) {
      const run = await readOnce(options, archiveDir, reader, versions, scenario);
      for (const [metric, value] of Object.entries(run.figures)) {
        metrics[reader === "raw" ? metric : `nodeHttp2${(metric[0] ?? "").toUpperCase()}${metric.slice(1)}`] = value;
      }
      metrics.hashMismatches = (metrics.hashMismatches ?? 0) + run.mismatches;
      metrics.serverPeakRssMiB = Math.max(metrics.serverPeakRssMiB ?? 0, run.peakRssBytes / MIB);
      metrics.cacheBudgetMiB = run.cacheMaxBytes / MIB;
      metrics.rssOverBudgetMiB = (metrics.serverPeakRssMiB ?? 0) - run.cacheMaxBytes / MIB;
    }
    return {
      scenario: "archived-read",
      params: { versionMiB: scenario.versionBytes / MIB, versions: scenario.versions, rawReaderCheck: check },
      metrics,
    };
  } finally {
    removeTempDir(archiveDir);
    removeTempDir(expectedDir);
  }
}

/**
 * How the raw reader checks the data (BENCH_ARCHIVED_CHECK): "bytes" (the default), every byte compared
 * with the bench's copy; "sha256", hashed as the node:http2 reader does (which always hashes).
 */
function rawReaderCheck(): "bytes" | "sha256" {
  const check = process.env.BENCH_ARCHIVED_CHECK ?? "bytes";
  if (check !== "bytes" && check !== "sha256") {
    throw new Error(`BENCH_ARCHIVED_CHECK: "${check}" is neither bytes nor sha256`);
  }
  return check;
}

/** BENCH_ARCHIVED_READERS=raw,node-http2 (the default: both, raw first). */
function archivedReaders(): ArchivedReader[] {
  const names = (process.env.BENCH_ARCHIVED_READERS ?? "raw,node-http2").split(",").filter((name) => name !== "");
  for (const name of names) {
    if (name !== "raw" && name !== "node-http2") {
      throw new Error(`BENCH_ARCHIVED_READERS: unknown reader "${name}" (raw, node-http2)`);
    }
  }
  return names as ArchivedReader[];
}

/** A restarted server on the archive; each version read once, then the first one again. */
async function readOnce(
  options: LoadOptions,
  archiveDir: string,
  readerKind: ArchivedReader,
  versions: ArchivedReadTask["versions"],
  scenario: ArchivedReadScenario,
): Promise<{ figures: Record<string, number | null>; mismatches: number; peakRssBytes: number; cacheMaxBytes: number }> {
  return await withServer(options, { archiveDir }, async (server) => {
    const reader = spawnGenerator({ role: "archived-read", reader: readerKind, address: server.address, modelId: MODEL_ID, versions });
    try {
      await reader.ready;
      const serverCpuBefore = server.cpuSeconds();
      const readerCpuBefore = reader.cpuSeconds();
      const machineBefore = readMachineBusySeconds();
      const startedAt = sharedNow();
      reader.start({ windowStart: 0, windowEnd: Number.POSITIVE_INFINITY });
      const result = await reader.resultWithin(TIMEOUT_MS);
      const seconds = (sharedNow() - startedAt) / 1000;
      const serverCpu = server.cpuSeconds() - serverCpuBefore;
      const readerCpu = reader.cpuSeconds() - readerCpuBefore;
      const machineBusy = readMachineBusySeconds() - machineBefore;
      if (result.role !== "archived-read") {
        throw new Error("unexpected archived-read result");
      }
      const gigabytes = ((versions.length + 1) * scenario.versionBytes) / GB;
      const mbps = (ms: number): number => scenario.versionBytes / MB / (ms / 1000);
      return {
        figures: {
          firstReadMBps: median(result.firstReadsMs.map(mbps)),
          firstReadMinMBps: Math.min(...result.firstReadsMs.map(mbps)),
          secondReadMBps: mbps(result.secondReadMs),
          // Over every read (first and second): CPU seconds per GB delivered.
          serverCpuSPerGB: serverCpu / gigabytes,
          readerCpuSPerGB: readerCpu / gigabytes,
          serverCpuCores: serverCpu / seconds,
          clientCpuCores: readerCpu / seconds,
          // The machine's other processes meanwhile (the bench's orchestrator waits, idle).
          otherCpuCores: Math.max(0, machineBusy - serverCpu - readerCpu) / seconds,
          ...(result.dataFrames > 0 ? { dataFrameKiB: result.dataFrameBytes / result.dataFrames / 1024 } : {}),
        },
        mismatches: result.mismatches,
        peakRssBytes: server.memory().peakRssBytes,
        cacheMaxBytes: server.cacheMaxBytes,
      };
    } finally {
      reader.kill();
    }
  });
}
