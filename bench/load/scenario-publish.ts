/** Publishers (one by default, each in its own process) of transient versions back to back: how fast can learners push? */
import type { BenchRecord } from "../support/bench-record.js";
import type { PublisherClient, PublisherTask } from "./generator-protocol.js";
import { inWindow, measureWindow, resultsOf } from "./measure-window.js";
import { summarize } from "../support/percentiles.js";
import { type LoadOptions, MB, MODEL_ID, PUBLISH_CHUNK_BYTES, prepareModel, resourceMetrics, withServer } from "./scenario-support.js";
import { MIB } from "../support/server-process.js";
import type { Sha256Implementation } from "../../src/data/index.js";

export interface PublishScenario {
  readonly versionBytes: number;
  /** Runs bench/support/server-launcher.js with this hash implementation instead of src/main.js. */
  readonly sha256?: Sha256Implementation;
  /** Publishers to the same model, each with its own connection and process; 1 by default. */
  readonly publishers?: number;
  /** Overrides LoadOptions.publisherClient (grpc-js when neither is set). */
  readonly publisherClient?: PublisherClient;
  /** The server's version cache budget; 1 GiB by default. */
  readonly cacheMaxBytes?: number;
}

export function runPublish(options: LoadOptions, scenario: PublishScenario): Promise<BenchRecord> {
  const publisherClient = scenario.publisherClient ?? options.publisherClient ?? "grpc-js";
  return withServer(options, { sha256: scenario.sha256, cacheMaxBytes: scenario.cacheMaxBytes }, async (server) => {
    await prepareModel(server.address, 0);
    const task: PublisherTask = {
      role: "publisher",
      address: server.address,
      modelId: MODEL_ID,
      versionBytes: scenario.versionBytes,
      chunkBytes: PUBLISH_CHUNK_BYTES,
      intervalMs: 0,
      client: publisherClient,
    };
    const publishers = scenario.publishers ?? 1;
    const measurement = await measureWindow(server, Array.from({ length: publishers }, () => task), options);
    const results = resultsOf(measurement.results, "publisher");
    const versions = results.flatMap((result) => result.versions).filter((version) => inWindow(measurement.window, version.repliedAt));
    const latency = summarize(versions.map((version) => version.repliedAt - version.startedAt));
    const bytes = versions.length * scenario.versionBytes;
    return {
      scenario: "publish",
      params: {
        versionMiB: scenario.versionBytes / MIB,
        server: scenario.sha256 === undefined ? "main" : "launcher",
        sha256: scenario.sha256 ?? "node-crypto",
        publishers,
        publisherClient,
      },
      metrics: {
        versions: versions.length,
        versionsPerSec: versions.length / measurement.seconds,
        MBps: bytes / MB / measurement.seconds,
        latencyP50Ms: latency.p50,
        latencyP99Ms: latency.p99,
        errors: results.length === publishers ? results.reduce((total, result) => total + result.errors, 0) : 1,
        ...resourceMetrics(measurement, server, bytes),
      },
    };
  });
}
