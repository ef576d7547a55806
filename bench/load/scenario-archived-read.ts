/**
 * The first read of an archived version after a restart (issue #15): a server archives
 * `versions` versions of `versionBytes`, stops; a new server on the same archive serves
 * each of them once (from disk: none is in memory) and the first one again. The files
 * were just written, so they are in the page cache: the server's read path, not the
 * disk, is measured. MB/s of each first read (median) and of the second.
 */
import { createHash, randomFillSync } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchRecord } from "../support/bench-record.js";
import { createBenchClient } from "../support/bench-client.js";
import { removeTempDir, trackTempDir } from "../support/cleanup.js";
import type { ArchivedReadTask } from "./generator-protocol.js";
import { spawnGenerator } from "./generators.js";
import { median } from "../support/percentiles.js";
import { type LoadOptions, MB, MODEL_ID, PUBLISH_CHUNK_BYTES, prepareModel, withServer } from "./scenario-support.js";
import { MIB } from "../support/server-process.js";

export interface ArchivedReadScenario {
  readonly versionBytes: number;
  readonly versions: number;
}

const TIMEOUT_MS = 150_000;

export async function runArchivedRead(options: LoadOptions, scenario: ArchivedReadScenario): Promise<BenchRecord> {
  const archiveDir = mkdtempSync(join(tmpdir(), "registry-bench-archived-"));
  trackTempDir(archiveDir);
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
          written.push({ versionNumber: info.version_number, hash: createHash("sha256").update(data).digest("base64"), bytes: data.byteLength });
        }
        return written;
      } finally {
        client.close();
      }
    });
    return await withServer(options, { archiveDir }, async (server) => {
      const reader = spawnGenerator({ role: "archived-read", address: server.address, modelId: MODEL_ID, versions });
      try {
        await reader.ready;
        reader.start({ windowStart: 0, windowEnd: Number.POSITIVE_INFINITY });
        const result = await reader.resultWithin(TIMEOUT_MS);
        if (result.role !== "archived-read") {
          throw new Error("unexpected archived-read result");
        }
        const mbps = (ms: number): number => scenario.versionBytes / MB / (ms / 1000);
        const memory = server.memory();
        return {
          scenario: "archived-read",
          params: { versionMiB: scenario.versionBytes / MIB, versions: scenario.versions },
          metrics: {
            firstReadMBps: median(result.firstReadsMs.map(mbps)),
            firstReadMinMBps: Math.min(...result.firstReadsMs.map(mbps)),
            secondReadMBps: mbps(result.secondReadMs),
            hashMismatches: result.mismatches,
            serverPeakRssMiB: memory.peakRssBytes / MIB,
            cacheBudgetMiB: server.cacheMaxBytes / MIB,
            rssOverBudgetMiB: (memory.peakRssBytes - server.cacheMaxBytes) / MIB,
          },
        };
      } finally {
        reader.kill();
      }
    });
  } finally {
    removeTempDir(archiveDir);
  }
}
