import type { Config } from "./config.js";
import { openCore } from "./core.js";
import type { Sha256Implementation } from "./data/index.js";
import type { Logger } from "./logger.js";
import { disabledServerMetrics } from "./metrics/disabled-metrics.js";
import { packageInfo } from "./package-info.js";
import { startWithRollback } from "./start-with-rollback.js";
import { type Registry, STREAMED_READS_MAX_BYTES } from "./registry/index.js";
import { DEFAULT_KEEPALIVE, startGrpcTransport } from "./transports/grpc-server.js";
import type { HashLanes, WorkerPool } from "./worker-pool/index.js";

export { DEFAULT_KEEPALIVE, MAX_RECEIVE_MESSAGE_BYTES } from "./transports/grpc-server.js";

/** How long after listening the server starts what a first call does not need (Core.startDeferred). */
export const DEFERRED_START_MS = 100;

/**
 * The server: the core (core.ts: archive, worker threads, registry) served by the transports
 * (transports/grpc-server.ts, and the metrics endpoint). Every resource is registered once, as it is
 * acquired, on one stack: a failed start and stop() release the same things in the same order.
 */

export type ServerConfig = Pick<
  Config,
  | "port"
  | "archiveDir"
  | "archiveS3"
  | "archiveS3ForcePathStyle"
  | "archiveS3TimeoutMs"
  | "cacheMaxBytes"
  | "cacheExpirationMs"
  | "cachePruneCount"
  | "sentChunkSize"
  | "grpcReflection"
  | "shutdownGraceMs"
  | "http2WindowBytes"
> &
  // Optional: without them the metrics endpoint is off and versions have no size limit of their own.
  Partial<Pick<Config, "metricsPort" | "versionMaxBytes" | "streamedReadsMaxBytes">> &
  // Optional: without them slow uploads and stalled readers are never cut off.
  Partial<Pick<Config, "uploadIdleTimeoutMs" | "uploadMinRateBytesPerSecond" | "uploadMinRatePeriodMs" | "sendIdleTimeoutMs" | "sendMinRateBytesPerSecond" | "sendMinRatePeriodMs">> &
  // The peer limits default to none (tests); main passes the configured ones.
  Partial<Pick<Config, "peerNewStreamsPerSecond" | "peerCancelledStreamsPerSecond" | "peerBanMs" | "peerIpv6PrefixBits" | "maxConcurrentStreams">>;

export interface ServerOptions {
  /** Interface to listen on; all of them by default. */
  readonly host?: string;
  readonly sha256?: Sha256Implementation;
  /**
   * Serves the metrics endpoint here whatever config.metricsPort says; unlike the variable, port 0
   * picks a free port (tests). The host defaults to `host`.
   */
  readonly metricsListen?: { readonly port: number; readonly host?: string };
  /** HTTP/2 keepalive pings to clients (DEFAULT_KEEPALIVE); shorter in tests. */
  readonly keepalive?: { readonly timeMs: number; readonly timeoutMs: number };
  /** Serve plain CreateVersion calls below grpc-js (the default); false to compare with grpc-js's path (tests). */
  readonly createVersionFastPath?: boolean;
  /** Serve the plain calls of the unary methods below grpc-js (rpc/unary-stream.ts); true by default. Off only to compare the two paths (tests). */
  readonly unaryFastPath?: boolean;
  /**
   * Stops the start: checked once the archive is open and once the server listens, and awaited
   * against the model listing (minutes with a large or stalled S3 archive). The start then releases
   * what it acquired and throws the signal's reason.
   */
  readonly signal?: AbortSignal;
}

export interface RunningServer {
  readonly port: number;
  /** Port of the Prometheus /metrics endpoint; undefined when it is off. */
  readonly metricsPort: number | undefined;
  readonly registry: Registry;
  /** The worker threads hashing and writing the archive. */
  readonly workerPool: WorkerPool;
  /** The threads hashing streamed versions (reads from disk, uploads to disk). */
  readonly hashLanes: HashLanes;
  /** HTTP/2 receive windows of the open client sessions. */
  sessionWindows(): number[];
  /** Calls of the method (its path) served below grpc-js so far (rpc/fast-path.ts). */
  fastPathCalls(path: string): number;
  /** Stops accepting calls, ends streams, waits for in-flight calls up to the grace period, then releases everything. */
  stop(): Promise<void>;
}

/** The least time a stop gives the registry's final writes once the calls have ended (see stop()). */
const MIN_STOP_FINISH_MS = 5_000;

/** `work`, unless `signal` aborts first: then its reason is thrown (`work` carries on, unobserved). */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) {
    return work;
  }
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Whether `work` settles (resolves; a rejection is thrown) within `ms`. */
async function settlesWithin(work: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startServer(config: ServerConfig, log: Logger, options: ServerOptions = {}): Promise<RunningServer> {
  return startWithRollback(log, async (stack) => {
    const host = options.host ?? "0.0.0.0";
    const configuredMetricsPort = config.metricsPort ?? 0;
    // 0 (the default) is off: a server started by a harness must not take a second port by surprise.
    const metricsListen = options.metricsListen ?? (configuredMetricsPort > 0 ? { port: configuredMetricsPort } : undefined);
    // prom-client is loaded only for a server that serves metrics (see metrics/metrics-api.ts).
    const prometheus =
      metricsListen === undefined ? undefined : (await import("./metrics/server-metrics.js")).createServerMetrics({ processMetrics: true });
    const metrics = prometheus ?? disabledServerMetrics();

    // Released in reverse order: gRPC server, metrics endpoint, registry, hash threads, worker threads, S3 client.
    const core = stack.use(await openCore(config, log, { sha256: options.sha256 ?? "node-crypto", timeArchiveWrites: metrics.timeArchiveWrites }));
    const { registry, workerPool: pool } = core;
    options.signal?.throwIfAborted();
    metrics.observe({ registry: () => registry.stats(), workerPool: () => pool.stats(), hashLanes: () => core.hashLanes.stats() });
    const metricsEndpoint =
      metricsListen === undefined || prometheus === undefined
        ? undefined
        : // Loaded only for a server that serves metrics too: importing node:http loads Node's fetch (undici).
          await (await import("./metrics/metrics-endpoint.js")).startMetricsEndpoint(prometheus.register, {
            host: metricsListen.host ?? host,
            port: metricsListen.port,
            log: log.child({ module: "metrics" }),
          });
    if (metricsEndpoint !== undefined) {
      // Late in a stop: a scrape can still see the final counts while the calls drain.
      stack.defer(() => metricsEndpoint.close());
    }
    const grpcServer = stack.use(
      await startGrpcTransport(config, log, {
        host,
        keepalive: options.keepalive ?? DEFAULT_KEEPALIVE,
        registry,
        workerPool: pool,
        hashLanes: core.hashLanes,
        metrics,
        createVersionFastPath: options.createVersionFastPath,
        unaryFastPath: options.unaryFastPath,
      }),
    );
    options.signal?.throwIfAborted();
    // Listening already, and serving what needs no model list (Version, health); the start is done, and
    // reported, once the list is read: a failed listing fails the start as before (the stack releases
    // the gRPC server too).
    try {
      await unlessAborted(registry.whenListed(), options.signal);
    } catch (error) {
      if (options.signal?.aborted === true) {
        // Nothing was numbered yet (uploads wait for the list), but the models read so far are
        // marked stopped cleanly, so that the next start does not take this one for a crash.
        const recorded = await settlesWithin(registry.recordStop(), MIN_STOP_FINISH_MS).catch(() => false);
        if (!recorded) {
          log.warn("start stopped: the next-number records were not written (the next start numbers above the block-ahead mark)");
        }
      }
      throw error;
    }
    // The worker threads (and the GC hook) start a moment after the server listens, once a client that
    // connected at once was served: a thread costs the main thread a few ms and the machine a Node
    // start. A first hash or archive write before then starts the threads itself and waits for them.
    const deferredStart = setTimeout(() => core.startDeferred(), DEFERRED_START_MS);
    deferredStart.unref();
    stack.defer(() => clearTimeout(deferredStart));
    const resources = stack.move();

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        grpcServer.stopServing();
        core.closeRegistry(); // ends VersionUpdate streams (UNAVAILABLE) at once: they would otherwise never finish
        await grpcServer.drain();
        // After the last commit: the next version numbers, flushed and marked clean. Bounded: a stalled
        // archive (an S3 PUT retried for minutes) must not keep a stopping server alive; stopped
        // without them, the next start numbers above the block-ahead mark, as after a crash.
        const finishMs = Math.max(config.shutdownGraceMs, MIN_STOP_FINISH_MS);
        const finished = await settlesWithin(
          registry.recordStop().then(() => resources.disposeAsync()),
          finishMs,
        );
        if (!finished) {
          throw new Error(
            `the archive did not finish the commits in flight and the next-number records within ${finishMs} ms after the calls ended: stopped without them (numbering stays above every number handed out)`,
          );
        }
      })();
      return stopping;
    };

    log.info(
      {
        version: packageInfo.version,
        port: grpcServer.port,
        ...core.archiveLocation,
        cacheMaxBytes: config.cacheMaxBytes,
        cacheExpirationMs: config.cacheExpirationMs,
        cachePruneCount: config.cachePruneCount,
        sentChunkSize: config.sentChunkSize,
        streamedReadsMaxBytes: config.streamedReadsMaxBytes ?? STREAMED_READS_MAX_BYTES,
        grpcReflection: config.grpcReflection,
        http2WindowBytes: config.http2WindowBytes,
        maxConcurrentStreams: config.maxConcurrentStreams ?? 0,
        metricsPort: metricsEndpoint?.port ?? 0,
        peerNewStreamsPerSecond: config.peerNewStreamsPerSecond ?? 0,
        peerCancelledStreamsPerSecond: config.peerCancelledStreamsPerSecond ?? 0,
        peerBanMs: config.peerBanMs ?? 0,
        peerIpv6PrefixBits: config.peerIpv6PrefixBits ?? 64,
      },
      "model registry serving",
    );
    return {
      port: grpcServer.port,
      metricsPort: metricsEndpoint?.port,
      registry,
      workerPool: pool,
      hashLanes: core.hashLanes,
      stop,
      sessionWindows: () => grpcServer.sessionWindows(),
      fastPathCalls: (path) => grpcServer.fastPathCalls(path),
    };
  });
}
