/**
 * Archived versions, in the archive directory and in a bucket of the S3 test server (s3rver with the
 * fixes of test/support/s3rver-patches.ts, a file-backed Node server on a loopback port):
 * - archive: one publisher of archived versions back to back;
 * - fetch-archived: one client fetching an archived version the cache never holds (it is over a
 *   quarter of the budget), back to back, so every fetch streams it from the store.
 * s3rver is far slower than a real store, and costs CPU of the same machine: the S3 figures bound the
 * registry's own client-side cost, not what S3 or MinIO would give.
 */
import { createHash, randomFillSync } from "node:crypto";
import { type S3TestServer, startS3TestServer } from "../../test/support/s3-test-server.js";
import { createBenchClient, fetchVersionData } from "../support/bench-client.js";
import type { BenchRecord } from "../support/bench-record.js";
import { trackTempDir } from "../support/cleanup.js";
import { sharedNow } from "../support/clock.js";
import type { PublisherTask } from "./generator-protocol.js";
import { inWindow, measureWindow, resultsOf } from "./measure-window.js";
import { readCpuSeconds, readMachineBusySeconds } from "../support/proc-stats.js";
import { summarize } from "../support/percentiles.js";
import { type LoadOptions, GB, MB, MODEL_ID, PUBLISH_CHUNK_BYTES, resourceMetrics, withServer } from "./scenario-support.js";
import { type BenchServer, MIB } from "../support/server-process.js";

export type ArchiveStoreKind = "directory" | "s3";

const BUCKET = "bench";
/** Fetches measured at least, however short the window. */
const MIN_FETCHES = 3;
/** The fetching client's HTTP/2 receive window: a tuned client, so the client is not the cap. */
const CLIENT_WINDOW_BYTES = 8 * MIB;

interface ArchiveServer {
  readonly server: BenchServer;
  /** The S3 test server's process, when the archive is in a bucket. */
  readonly storePid: number | undefined;
}

/** A fresh registry (and, for "s3", a fresh S3 test server) around `body`; both stopped afterwards. */
async function withArchiveServer<T>(
  options: LoadOptions,
  store: ArchiveStoreKind,
  cacheMaxBytes: number | undefined,
  body: (archive: ArchiveServer) => Promise<T>,
): Promise<T> {
  let s3: S3TestServer | undefined;
  if (store === "s3") {
    s3 = await startS3TestServer([BUCKET]);
    trackTempDir(s3.directory);
  }
  try {
    const env =
      s3 === undefined
        ? {}
        : {
            ...s3.awsEnv(),
            COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: "",
            COGMENT_MODEL_REGISTRY_ARCHIVE_URL: `s3://${BUCKET}/registry`,
            COGMENT_MODEL_REGISTRY_ARCHIVE_S3_FORCE_PATH_STYLE: "true",
          };
    return await withServer(options, { env, ...(cacheMaxBytes === undefined ? {} : { cacheMaxBytes }) }, (server) =>
      body({ server, storePid: s3?.pid }),
    );
  } finally {
    await s3?.close();
  }
}

const storeLabel = (store: ArchiveStoreKind): string => (store === "s3" ? "s3 (s3rver, loopback)" : "directory");

function cpuOf(pid: number | undefined): number {
  return pid === undefined ? 0 : readCpuSeconds(pid);
}

/** One publisher of archived versions, back to back. */
export function runArchive(options: LoadOptions, scenario: { readonly store: ArchiveStoreKind; readonly versionBytes: number }): Promise<BenchRecord> {
  return withArchiveServer(options, scenario.store, undefined, async ({ server, storePid }) => {
    const client = createBenchClient(server.address);
    try {
      await client.createModel(MODEL_ID);
    } finally {
      client.close();
    }
    const task: PublisherTask = {
      role: "publisher",
      address: server.address,
      modelId: MODEL_ID,
      versionBytes: scenario.versionBytes,
      chunkBytes: PUBLISH_CHUNK_BYTES,
      intervalMs: 0,
      archived: true,
    };
    const storeCpu0 = cpuOf(storePid);
    const measurement = await measureWindow(server, [task], options);
    const storeCpuSeconds = cpuOf(storePid) - storeCpu0;
    const [publisher] = resultsOf(measurement.results, "publisher");
    const all = publisher?.versions ?? [];
    const versions = all.filter((version) => inWindow(measurement.window, version.repliedAt));
    const latency = summarize(versions.map((version) => version.repliedAt - version.startedAt));
    const bytes = versions.length * scenario.versionBytes;
    return {
      scenario: "archive",
      params: { versionMiB: scenario.versionBytes / MIB, store: storeLabel(scenario.store) },
      metrics: {
        versions: versions.length,
        versionsPerSec: versions.length / measurement.seconds,
        MBps: bytes / MB / measurement.seconds,
        latencyP50Ms: latency.p50,
        latencyP99Ms: latency.p99,
        errors: publisher?.errors ?? 1,
        ...resourceMetrics(measurement, server, bytes),
        // Over every version of the run (warm-up included): the store's CPU is sampled around it.
        storeCpuSecPerGB: storePid === undefined || all.length === 0 ? null : storeCpuSeconds / ((all.length * scenario.versionBytes) / GB),
      },
    };
  });
}

/** One client fetching an archived version back to back; the cache budget keeps it out of memory. */
export function runFetchArchived(
  options: LoadOptions,
  scenario: { readonly store: ArchiveStoreKind; readonly versionBytes: number },
): Promise<BenchRecord> {
  // Just over a quarter of the budget with its framing: never cached, streamed from the store at every fetch.
  const cacheMaxBytes = 4 * scenario.versionBytes;
  return withArchiveServer(options, scenario.store, cacheMaxBytes, async ({ server, storePid }) => {
    const data = randomFillSync(Buffer.allocUnsafe(scenario.versionBytes));
    const expectedHash = createHash("sha256").update(data).digest("base64");
    const client = createBenchClient(server.address, { windowBytes: CLIENT_WINDOW_BYTES });
    try {
      await client.createModel(MODEL_ID);
      const { version_number: versionNumber } = await client.publish(MODEL_ID, data, { chunkBytes: PUBLISH_CHUNK_BYTES, archived: true });
      const fetchOnce = async (): Promise<{ ms: number; ok: boolean }> => {
        const startedAt = sharedNow();
        const fetched = await fetchVersionData(client, MODEL_ID, versionNumber);
        return { ms: sharedNow() - startedAt, ok: fetched.bytes === scenario.versionBytes && fetched.hashBase64 === expectedHash };
      };
      const warmUpEnd = sharedNow() + options.warmupMs;
      do {
        await fetchOnce();
      } while (sharedNow() < warmUpEnd);

      const times: number[] = [];
      let mismatches = 0;
      const serverCpu0 = server.cpuSeconds();
      const storeCpu0 = cpuOf(storePid);
      const clientCpu0 = process.cpuUsage();
      const machine0 = readMachineBusySeconds();
      const startedAt = sharedNow();
      const windowEnd = startedAt + options.measureMs;
      while (times.length < MIN_FETCHES || sharedNow() < windowEnd) {
        const fetch = await fetchOnce();
        times.push(fetch.ms);
        mismatches += fetch.ok ? 0 : 1;
      }
      const seconds = (sharedNow() - startedAt) / 1000;
      const serverCpuSeconds = server.cpuSeconds() - serverCpu0;
      const storeCpuSeconds = cpuOf(storePid) - storeCpu0;
      const clientCpu = process.cpuUsage(clientCpu0);
      const clientCpuSeconds = (clientCpu.user + clientCpu.system) / 1e6;
      const machineBusySeconds = readMachineBusySeconds() - machine0;
      const bytes = times.length * scenario.versionBytes;
      const latency = summarize(times);
      const peakRss = server.memory().peakRssBytes;
      return {
        scenario: "fetch-archived",
        params: { versionMiB: scenario.versionBytes / MIB, store: storeLabel(scenario.store) },
        metrics: {
          fetches: times.length,
          MBps: bytes / MB / seconds,
          fetchP50Ms: latency.p50,
          fetchP99Ms: latency.p99,
          hashMismatches: mismatches,
          serverCpuSecPerGB: serverCpuSeconds / (bytes / GB),
          serverCpuCores: serverCpuSeconds / seconds,
          clientCpuCores: clientCpuSeconds / seconds,
          storeCpuCores: storePid === undefined ? null : storeCpuSeconds / seconds,
          storeCpuSecPerGB: storePid === undefined ? null : storeCpuSeconds / (bytes / GB),
          otherCpuCores: Math.max(0, machineBusySeconds - serverCpuSeconds - clientCpuSeconds - storeCpuSeconds) / seconds,
          serverPeakRssMiB: peakRss / MIB,
          cacheBudgetMiB: cacheMaxBytes / MIB,
          rssOverBudgetMiB: (peakRss - cacheMaxBytes) / MIB,
        },
      };
    } finally {
      client.close();
    }
  });
}
