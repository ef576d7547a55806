import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { createFsArchiveStore } from "./archive/index.js";
import { createS3ArchiveStore } from "./archive/s3-archive-store.js";
import { createS3Client } from "./archive/s3-client.js";
import { formatS3Location } from "./archive/s3-url.js";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { packageInfo } from "./package-info.js";
import { Registry } from "./registry/index.js";
import { disabledServerMetrics } from "./metrics/disabled-metrics.js";
import type { PeerLimitCounts } from "./metrics/metrics-api.js";
import { type MetricsEndpoint, startMetricsEndpoint } from "./metrics/metrics-endpoint.js";
import { createCallObserver } from "./rpc/call-observer.js";
import { modelRegistryObservedMethods } from "./rpc/model-registry-observation.js";
import { createModelRegistryService, modelRegistryServiceDefinition } from "./rpc/model-registry-service.js";
import { type WorkerPool, createWorkerPool } from "./worker-pool/index.js";
import { createMemoryGuard } from "./memory-guard.js";
import { createMalformedRequestRejecter } from "./rpc/reject-malformed.js";
import { HealthStatus, ServingStatus, createHealthService, healthServiceDefinition } from "./rpc/health-service.js";
import { sessionWindows, setConnectionWindow, setStreamWindow } from "./rpc/http2-window.js";
import { installPreFramedSending } from "./rpc/pre-framed-messages.js";
import { type ConnectionGuard, guardConnections } from "./rpc/connection-guard.js";
import { grpcHttp2Servers } from "./rpc/grpc-http2-servers.js";
import { PeerLimiter } from "./rpc/peer-limiter.js";
import type { Sha256Implementation } from "./data/index.js";

/** Incoming messages up to this size are accepted (stock clients send far smaller chunks). */
export const MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024 + 1024;
const SERVICE_NAME = "cogmentAPI.ModelRegistrySP";
const MEMORY_HEADROOM_BYTES = 96 * 1024 * 1024;
const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));
/** Client addresses the peer limiter remembers at most (those with an open connection always). */
const MAX_TRACKED_PEERS = 10_000;

export type ServerConfig = Pick<
  Config,
  | "port"
  | "archiveDir"
  | "archiveS3"
  | "archiveS3ForcePathStyle"
  | "cacheMaxBytes"
  | "cacheExpirationMs"
  | "cachePruneCount"
  | "sentChunkSize"
  | "grpcReflection"
  | "shutdownGraceMs"
  | "http2WindowBytes"
> &
  // Optional: without them the metrics endpoint is off and versions have no size limit of their own.
  Partial<Pick<Config, "metricsPort" | "versionMaxBytes">> &
  // Optional: without them slow uploads and stalled readers are never cut off.
  Partial<Pick<Config, "uploadIdleTimeoutMs" | "uploadMinRateBytesPerSecond" | "uploadMinRatePeriodMs" | "sendIdleTimeoutMs">> &
  // The peer limits default to none (tests); main passes the configured ones.
  Partial<Pick<Config, "peerNewStreamsPerSecond" | "peerCancelledStreamsPerSecond" | "peerBanMs">>;

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
}

/**
 * A ping every minute, and a connection whose peer does not answer within 20 s is closed: a client
 * whose machine died or whose network was cut (no FIN, no RST) would otherwise keep its upload's
 * reservation and its streams' leases for grpc-js's default of two hours.
 */
export const DEFAULT_KEEPALIVE = { timeMs: 60_000, timeoutMs: 20_000 } as const;

export interface RunningServer {
  readonly port: number;
  /** Port of the Prometheus /metrics endpoint; undefined when it is off. */
  readonly metricsPort: number | undefined;
  readonly registry: Registry;
  /** The worker threads hashing and writing the archive. */
  readonly workerPool: WorkerPool;
  /** HTTP/2 receive windows of the open client sessions. */
  sessionWindows(): number[];
  /** Stops accepting calls, ends streams, waits for in-flight calls up to the grace period, then releases everything. */
  stop(): Promise<void>;
}

export async function startServer(config: ServerConfig, log: Logger, options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? "0.0.0.0";
  const configuredMetricsPort = config.metricsPort ?? 0;
  // 0 (the default) is off: a server started by a harness must not take a second port by surprise.
  const metricsListen = options.metricsListen ?? (configuredMetricsPort > 0 ? { port: configuredMetricsPort } : undefined);
  // prom-client is loaded only for a server that serves metrics (see metrics/metrics-api.ts).
  const prometheus =
    metricsListen === undefined ? undefined : (await import("./metrics/server-metrics.js")).createServerMetrics({ processMetrics: true });
  const metrics = prometheus ?? disabledServerMetrics();
  // Headroom over the budget for the runtime itself and messages in flight.
  const memoryGuard = createMemoryGuard(config.cacheMaxBytes + MEMORY_HEADROOM_BYTES, log);
  const pool = createWorkerPool({ sha256: options.sha256 ?? "node-crypto" });
  let registry: Registry;
  let metricsEndpoint: MetricsEndpoint | undefined;
  const archiveS3 = config.archiveS3;
  const s3Client = archiveS3 === undefined ? undefined : createS3Client({ forcePathStyle: config.archiveS3ForcePathStyle ?? false });
  try {
    const onWarning = (message: string, details: Record<string, unknown>): void => log.warn({ module: "archive", ...details }, message);
    const archive =
      archiveS3 === undefined || s3Client === undefined
        ? createFsArchiveStore({ root: config.archiveDir, writer: metrics.timeArchiveWrites(pool.fileWriter), onWarning })
        : createS3ArchiveStore({ client: s3Client, location: archiveS3, onWarning });
    registry = await Registry.open({
      archive,
      cacheMaxBytes: config.cacheMaxBytes,
      cacheExpirationMs: config.cacheExpirationMs,
      cachePruneCount: config.cachePruneCount,
      chunkSize: config.sentChunkSize,
      hash: (segments) => pool.hash(segments),
      maxVersionBytes: config.versionMaxBytes ?? 0,
      beforeAllocate: memoryGuard.beforeAllocate,
      dataReceived: memoryGuard.dataReceived,
      resumableHash: { update: (state, segments) => pool.hashUpdate(state, segments), digest: (state) => pool.hashDigest(state) },
      log: log.child({ module: "registry" }),
    });
  } catch (error) {
    s3Client?.destroy();
    await pool.close();
    throw error;
  }
  metrics.observe({ registry: () => registry.stats(), workerPool: () => pool.stats() });
  if (metricsListen !== undefined && prometheus !== undefined) {
    try {
      metricsEndpoint = await startMetricsEndpoint(prometheus.register, {
        host: metricsListen.host ?? host,
        port: metricsListen.port,
        log: log.child({ module: "metrics" }),
      });
    } catch (error) {
      registry.close();
      await pool.close();
      throw error;
    }
  }

  const keepalive = options.keepalive ?? DEFAULT_KEEPALIVE;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_RECEIVE_MESSAGE_BYTES,
    "grpc.max_send_message_length": -1,
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
    // grpc-js wraps in order: the observer sits closest to the transport, so it sees the rejecter's statuses too.
    interceptors: [
      createCallObserver({ log: log.child({ module: "rpc" }), metrics, methods: modelRegistryObservedMethods }),
      createMalformedRequestRejecter(),
    ],
  });
  server.addService(
    modelRegistryServiceDefinition,
    createModelRegistryService({
      registry,
      extraStatus: () => workerStatus(pool),
      uploadLimits: {
        idleTimeoutMs: config.uploadIdleTimeoutMs ?? 0,
        minRateBytesPerSecond: config.uploadMinRateBytesPerSecond ?? 0,
        minRatePeriodMs: config.uploadMinRatePeriodMs ?? 10_000,
      },
      sendIdleTimeoutMs: config.sendIdleTimeoutMs ?? 0,
      log: log.child({ module: "rpc" }),
    }) as unknown as grpc.UntypedServiceImplementation,
  );
  const health = new HealthStatus(["", SERVICE_NAME], ServingStatus.NOT_SERVING);
  server.addService(healthServiceDefinition, createHealthService(health) as unknown as grpc.UntypedServiceImplementation);
  if (config.grpcReflection) {
    // Loaded only when asked for: proto-loader and protobufjs cost start-up time otherwise.
    const [{ loadSync }, { ReflectionService }] = await Promise.all([import("@grpc/proto-loader"), import("@grpc/reflection")]);
    const definitions = loadSync(["cogment/api/model_registry.proto", "grpc/health/v1/health.proto"], {
      includeDirs: [PROTO_DIR],
      keepCase: true,
    });
    new ReflectionService(definitions).addToServer(server);
  }

  if (config.http2WindowBytes > 0) {
    setStreamWindow(server, config.http2WindowBytes, log);
  }
  installPreFramedSending(log);
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${config.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    });
  } catch (error) {
    registry.close();
    await Promise.all([pool.close(), metricsEndpoint?.close()]);
    throw error;
  }
  if (config.http2WindowBytes > 0) {
    setConnectionWindow(server, config.http2WindowBytes, log);
  }
  const connections = watchConnections(server, config, metrics.peerLimits, log);
  health.setAll(ServingStatus.SERVING);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      health.shutdown();
      memoryGuard.close();
      registry.close(); // ends VersionUpdate streams (UNAVAILABLE) at once: they would otherwise never finish
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          log.warn({ graceMs: config.shutdownGraceMs }, "grace period over: cancelling the calls still running");
          server.forceShutdown();
          resolve();
        }, config.shutdownGraceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
        // tryShutdown waits for every connection to close; an idle one need not wait for its client.
        connections?.closeWhenIdle();
      });
      // After the last commit: the next version numbers, flushed and marked clean.
      await registry.recordStop();
      // Last: a scrape can still see the final counts while the calls drain.
      await Promise.all([pool.close(), metricsEndpoint?.close()]);
      s3Client?.destroy();
    })();
    return stopping;
  };

  log.info(
    {
      version: packageInfo.version,
      port,
      ...(archiveS3 === undefined ? { archiveDir: config.archiveDir } : { archiveUrl: formatS3Location(archiveS3) }),
      cacheMaxBytes: config.cacheMaxBytes,
      cacheExpirationMs: config.cacheExpirationMs,
      cachePruneCount: config.cachePruneCount,
      sentChunkSize: config.sentChunkSize,
      grpcReflection: config.grpcReflection,
      http2WindowBytes: config.http2WindowBytes,
      metricsPort: metricsEndpoint?.port ?? 0,
      peerNewStreamsPerSecond: config.peerNewStreamsPerSecond ?? 0,
      peerCancelledStreamsPerSecond: config.peerCancelledStreamsPerSecond ?? 0,
      peerBanMs: config.peerBanMs ?? 0,
    },
    "model registry serving",
  );
  return {
    port,
    metricsPort: metricsEndpoint?.port,
    registry,
    workerPool: pool,
    stop,
    sessionWindows: () => sessionWindows(server),
  };
}

/** Per-peer limits and the prompt close of idle connections at shutdown (rpc/connection-guard.ts). */
function watchConnections(server: grpc.Server, config: ServerConfig, counts: PeerLimitCounts, log: Logger): ConnectionGuard | undefined {
  const http2Servers = grpcHttp2Servers(server);
  if (http2Servers === undefined) {
    log.warn("grpc-js internals changed: no per-address stream limits, and idle connections delay the shutdown");
    return undefined;
  }
  const newStreamsPerSecond = config.peerNewStreamsPerSecond ?? 0;
  const cancelledStreamsPerSecond = config.peerCancelledStreamsPerSecond ?? 0;
  const limiter =
    newStreamsPerSecond > 0 || cancelledStreamsPerSecond > 0
      ? new PeerLimiter({ newStreamsPerSecond, cancelledStreamsPerSecond, banMs: config.peerBanMs ?? 0, maxPeers: MAX_TRACKED_PEERS })
      : undefined;
  return guardConnections(http2Servers, { limiter, counts, log: log.child({ module: "connections" }) });
}

function workerStatus(pool: WorkerPool): Record<string, string> {
  const stats = pool.stats();
  return {
    worker_threads: String(stats.threads),
    worker_queue: String(stats.queueSize),
    worker_utilization: stats.utilization.toFixed(3),
  };
}
