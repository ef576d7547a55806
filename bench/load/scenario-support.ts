/** What every load scenario shares: a fresh server around each run, the model it uses, the common metrics. */
import { randomFillSync } from "node:crypto";
import { createBenchClient } from "../support/bench-client.js";
import type { PublisherClient, ReaderClient } from "./generator-protocol.js";
import type { WindowMeasurement } from "./measure-window.js";
import { type BenchServer, type BenchServerOptions, MIB, startBenchServer } from "../support/server-process.js";

export const MODEL_ID = "bench-model";
export const PUBLISH_CHUNK_BYTES = MIB;
export const MB = 1e6;
export const GB = 1e9;

export interface LoadOptions {
  readonly quick: boolean;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Processes the readers (and metadata clients) are spread over. */
  readonly readerProcs: number;
  /** HTTP/2 receive window of each reader's connection (0: grpc-js default, 64 KiB). */
  readonly readerWindowBytes: number;
  /** What reads version data in the broadcast readers. */
  readonly readerClient: ReaderClient;
  /** What publishes in the publish scenarios, if not the scenario's own choice (BENCH_PUBLISHER_CLIENT, --publisher-client). */
  readonly publisherClient?: PublisherClient;
  /** If set, each server writes a V8 CPU profile there. */
  readonly cpuProfileDir: string | undefined;
  /** Before each scenario, wait up to this long for other processes to leave the CPUs idle. */
  readonly quietWaitMs: number;
  /** Progress lines (stderr). */
  readonly log: (line: string) => void;
}

/** Starts a fresh server, runs `body`, and always stops the server and removes its archive. */
export async function withServer<T>(
  options: LoadOptions,
  serverOptions: BenchServerOptions,
  body: (server: BenchServer) => Promise<T>,
): Promise<T> {
  const server = await startBenchServer({ cpuProfileDir: options.cpuProfileDir, ...serverOptions });
  try {
    return await body(server);
  } finally {
    await server.stop();
  }
}

/** Creates the model and, if asked, publishes a first version so readers find one at once. */
export async function prepareModel(address: string, seedBytes: number): Promise<void> {
  const client = createBenchClient(address);
  try {
    await client.createModel(MODEL_ID);
    if (seedBytes > 0) {
      await client.publish(MODEL_ID, randomFillSync(Buffer.allocUnsafe(seedBytes)), { chunkBytes: PUBLISH_CHUNK_BYTES });
    }
  } finally {
    client.close();
  }
}

/** Splits `total` clients over `processes` as evenly as possible: [count, firstIndex] per process. */
export function split(total: number, processes: number): { count: number; first: number }[] {
  const parts: { count: number; first: number }[] = [];
  const n = Math.max(1, Math.min(processes, total));
  let first = 0;
  for (let i = 0; i < n; i++) {
    const count = Math.floor(total / n) + (i < total % n ? 1 : 0);
    parts.push({ count, first });
    first += count;
  }
  return parts;
}

/** Server and client CPU and memory figures every scenario reports. */
export type ResourceSample = Pick<
  WindowMeasurement,
  "seconds" | "serverCpuSeconds" | "generatorCpuSeconds" | "machineBusySeconds" | "serverPeakRssBytes"
>;

export function resourceMetrics(measurement: ResourceSample, server: BenchServer, bytes: number): Record<string, number | null> {
  return {
    serverCpuSecPerGB: bytes > 0 ? measurement.serverCpuSeconds / (bytes / GB) : null,
    serverCpuCores: measurement.serverCpuSeconds / measurement.seconds,
    clientCpuCores: measurement.generatorCpuSeconds / measurement.seconds,
    clientCpuSecPerGB: bytes > 0 ? measurement.generatorCpuSeconds / (bytes / GB) : null,
    // Everything else that ran on the machine meanwhile (other users' jobs on a shared box): when
    // this is high, the figures above were measured with fewer cores than the machine has.
    otherCpuCores: Math.max(0, measurement.machineBusySeconds - measurement.serverCpuSeconds - measurement.generatorCpuSeconds) / measurement.seconds,
    serverPeakRssMiB: measurement.serverPeakRssBytes / MIB,
    cacheBudgetMiB: server.cacheMaxBytes / MIB,
    rssOverBudgetMiB: (measurement.serverPeakRssBytes - server.cacheMaxBytes) / MIB,
  };
}
