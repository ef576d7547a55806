/**
 * Fan-out: one publisher of transient versions, N readers fetching the latest,
 * every fetch verified against its data_hash.
 *
 * Staleness of a fetch = the time its last byte reached the reader minus the
 * time the publisher got the CreateVersion reply of that version (shared clock);
 * it is the fetch's start age (reply → the reader starts fetching) plus its fetch time.
 * Versions a reader skipped (a newer one was already there) have no staleness;
 * `fetchedShare` says how many of the published versions each reader got.
 */
import type { BenchRecord } from "../support/bench-record.js";
import type { GeneratorTask, ReaderClient, ReaderMode } from "./generator-protocol.js";
import { inWindow, measureWindow, resultsOf } from "./measure-window.js";
import { summarize } from "../support/percentiles.js";
import {
  type LoadOptions,
  MB,
  MODEL_ID,
  PUBLISH_CHUNK_BYTES,
  prepareModel,
  resourceMetrics,
  split,
  withServer,
} from "./scenario-support.js";
import { type RedisAppendFsync, type RedisTopology, withCluster } from "./cluster-servers.js";
import { type BenchServer, MIB } from "../support/server-process.js";

export interface BroadcastScenario {
  readonly versionBytes: number;
  readonly readers: number;
  readonly mode: ReaderMode;
  /** 0: back to back. */
  readonly publishIntervalMs: number;
  /** Overrides LoadOptions.readerProcs (the generator scaling check). */
  readonly readerProcs?: number;
  /** Overrides LoadOptions.readerClient. */
  readonly readerClient?: ReaderClient;
  /** The server's cache budget; 1 GiB by default. */
  readonly cacheMaxBytes?: number;
  /**
   * More than 1: that many instances on one Redis (issue #17), the publisher on the first, the
   * reader processes spread over all of them.
   */
  readonly instances?: number;
  /** With instances: Redis's AOF fsync policy ("always" by default, as recommended). */
  readonly appendfsync?: RedisAppendFsync;
  /** With instances: one redis-server (default) or a Redis Cluster of three masters. */
  readonly redis?: RedisTopology;
}

export function runBroadcast(options: LoadOptions, scenario: BroadcastScenario): Promise<BenchRecord> {
  const readerProcs = scenario.readerProcs ?? options.readerProcs;
  const readerClient = scenario.readerClient ?? options.readerClient;
  const instances = scenario.instances ?? 1;
  const serve = <T>(body: (server: BenchServer, addresses: readonly string[]) => Promise<T>): Promise<T> =>
    instances > 1
      ? withCluster(
          instances,
          { cacheMaxBytes: scenario.cacheMaxBytes, cpuProfileDir: options.cpuProfileDir, appendfsync: scenario.appendfsync, redis: scenario.redis },
          (cluster) =>
          body(cluster.server, cluster.addresses),
        )
      : withServer(options, { cacheMaxBytes: scenario.cacheMaxBytes }, (server) => body(server, [server.address]));
  return serve(async (server, addresses) => {
    await prepareModel(server.address, scenario.versionBytes);
    const tasks: GeneratorTask[] = [
      {
        role: "publisher",
        address: server.address,
        modelId: MODEL_ID,
        versionBytes: scenario.versionBytes,
        chunkBytes: PUBLISH_CHUNK_BYTES,
        intervalMs: scenario.publishIntervalMs,
      },
      ...split(scenario.readers, Math.max(readerProcs, addresses.length)).map(
        ({ count, first }, index): GeneratorTask => ({
          role: "readers",
          address: addresses[index % addresses.length] ?? server.address,
          modelId: MODEL_ID,
          count,
          firstReader: first,
          mode: scenario.mode,
          windowBytes: options.readerWindowBytes,
          client: readerClient,
        }),
      ),
    ];
    const measurement = await measureWindow(server, tasks, options);
    const { window, seconds } = measurement;
    const [publisher] = resultsOf(measurement.results, "publisher");
    const readers = resultsOf(measurement.results, "readers");
    const publishedAt = new Map((publisher?.versions ?? []).map((version) => [version.versionNumber, version.repliedAt]));
    const publishedInWindow = (publisher?.versions ?? []).filter((version) => inWindow(window, version.repliedAt));
    const publishedInWindowSet = new Set(publishedInWindow.map((version) => version.versionNumber));

    const fetches = readers.flatMap((result) => result.fetches);
    const windowFetches = fetches.filter((fetch) => inWindow(window, fetch.completedAt));
    // Staleness = start age (publish reply → the reader starts fetching) + fetch time.
    const staleness: number[] = [];
    const startAge: number[] = [];
    const fetchDurations: number[] = [];
    for (const fetch of windowFetches) {
      const repliedAt = publishedAt.get(fetch.versionNumber);
      if (fetch.outcome === "ok" && repliedAt !== undefined) {
        staleness.push(fetch.completedAt - repliedAt);
        startAge.push(fetch.startedAt - repliedAt);
      }
      if (fetch.outcome === "ok") {
        fetchDurations.push(fetch.completedAt - fetch.startedAt);
      }
    }
    const stale = summarize(staleness);
    const fetchMs = summarize(fetchDurations);
    const fetchingMs = fetchDurations.reduce((total, ms) => total + ms, 0);
    const publishMs = summarize(publishedInWindow.map((version) => version.repliedAt - version.startedAt));
    const okOfWindowVersions = fetches.filter((fetch) => fetch.outcome === "ok" && publishedInWindowSet.has(fetch.versionNumber)).length;
    const deliveredBytes = readers.reduce((total, result) => total + result.windowBytes, 0);
    const errors = (publisher?.errors ?? 1) + readers.reduce((total, result) => total + result.errors, 0);
    for (const message of [publisher?.firstError, ...readers.map((result) => result.firstError)]) {
      if (message !== undefined) {
        options.log(`  first error: ${message}`);
      }
    }
    return {
      scenario: instances > 1 ? `cluster-broadcast-${scenario.mode}` : `broadcast-${scenario.mode}`,
      params: {
        ...(instances > 1 ? { instances, appendfsync: scenario.appendfsync ?? "always" } : {}),
        versionMiB: scenario.versionBytes / MIB,
        readers: scenario.readers,
        publishIntervalMs: scenario.publishIntervalMs,
        readerProcs: Math.min(readerProcs, scenario.readers),
        readerClient,
        readerWindowKiB: options.readerWindowBytes / 1024,
        cacheMiB: server.cacheMaxBytes / MIB,
      },
      metrics: {
        deliveredMBps: deliveredBytes / MB / seconds,
        publishedPerSec: publishedInWindow.length / seconds,
        fetchesPerSec: windowFetches.filter((fetch) => fetch.outcome === "ok").length / seconds,
        fetchedShare:
          publishedInWindow.length === 0 ? null : okOfWindowVersions / (publishedInWindow.length * scenario.readers),
        stalenessP50Ms: stale.p50,
        stalenessP99Ms: stale.p99,
        startAgeP50Ms: summarize(startAge).p50,
        fetchP50Ms: fetchMs.p50,
        // The share of the window the readers spent fetching: 1 = always busy (saturated).
        readerBusyShare: fetchingMs / (scenario.readers * seconds * 1000),
        publishP50Ms: publishMs.p50,
        pollsPerSec: readers.reduce((total, result) => total + result.windowPolls, 0) / seconds,
        hashMismatches: fetches.filter((fetch) => fetch.outcome === "mismatch").length,
        notFound: fetches.filter((fetch) => fetch.outcome === "not-found").length,
        errors,
        ...resourceMetrics(measurement, server, deliveredBytes),
        // Per serving process (cluster): CPU seconds per GB delivered, e.g. cpuSecPerGB_A, cpuSecPerGB_redis.
        ...Object.fromEntries(
          Object.entries(measurement.serverCpuSecondsByPart ?? {}).map(([part, cpu]) => [
            `cpuSecPerGB_${part}`,
            deliveredBytes > 0 ? cpu / (deliveredBytes / 1e9) : null,
          ]),
        ),
      },
    };
  });
}
