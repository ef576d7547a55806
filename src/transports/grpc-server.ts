import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import type { PeerLimitCounts, ServerMetrics } from "../metrics/metrics-api.js";
import { PACKAGE_ROOT } from "../package-info.js";
import type { Registry } from "../registry/index.js";
import { startWithRollback } from "../start-with-rollback.js";
import { type CallObserver, createCallObserver } from "../rpc/call-observer.js";
import { type ConnectionGuard, guardConnections } from "../rpc/connection-guard.js";
import { CREATE_VERSION_PATH, serveCreateVersion } from "../rpc/create-version-stream.js";
import { type FastPath, type ServeDiverted, fastPath as fastPathFor } from "../rpc/fast-path.js";
import { checkGrpcInternals, describeGrpcInternalsProblem, divertStreams, grpcHttp2Servers, grpcJsVersion } from "../rpc/grpc-internals.js";
import { HealthStatus, ServingStatus, createHealthService, healthServiceDefinition } from "../rpc/health-service.js";
import { sessionWindows, setConnectionWindow, setStreamWindow } from "../rpc/http2-window.js";
import { modelRegistryObservedMethods } from "../rpc/model-registry-observation.js";
import { createModelRegistryService, modelRegistryMethod, modelRegistryServiceDefinition, modelRegistryUnaryRoutes } from "../rpc/model-registry-service.js";
import { PeerLimiter } from "../rpc/peer-limiter.js";
import type { UploadLimits } from "../rpc/upload-watchdog.js";
import { installPreFramedSending } from "../rpc/pre-framed-messages.js";
import { serveUnary } from "../rpc/unary-stream.js";
import type { HashLanes, WorkerPool } from "../worker-pool/index.js";

/** Incoming messages up to this size are accepted (stock clients send far smaller chunks). */
export const MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024 + 1024;
const SERVICE_NAME = "cogmentAPI.ModelRegistrySP";
const PROTO_DIR = fileURLToPath(new URL("proto", PACKAGE_ROOT));
/** Client addresses the peer limiter remembers at most (those with an open connection always). */
const MAX_TRACKED_PEERS = 10_000;

/**
 * A ping every minute, and a connection whose peer does not answer within 20 s is closed: a client
 * whose machine died or whose network was cut (no FIN, no RST) would otherwise keep its upload's
 * reservation and its streams' leases for grpc-js's default of two hours.
 */
export const DEFAULT_KEEPALIVE = { timeMs: 60_000, timeoutMs: 20_000 } as const;

export type GrpcTransportConfig = Pick<Config, "port" | "grpcReflection" | "shutdownGraceMs" | "http2WindowBytes"> &
  Partial<Pick<Config, "uploadIdleTimeoutMs" | "uploadMinRateBytesPerSecond" | "uploadMinRatePeriodMs" | "sendIdleTimeoutMs" | "sendMinRateBytesPerSecond" | "sendMinRatePeriodMs">> &
  Partial<Pick<Config, "peerNewStreamsPerSecond" | "peerCancelledStreamsPerSecond" | "peerBanMs" | "peerIpv6PrefixBits" | "maxConcurrentStreams">>;

export interface GrpcTransportOptions {
  readonly host: string;
  readonly keepalive: { readonly timeMs: number; readonly timeoutMs: number };
  readonly registry: Registry;
  readonly workerPool: WorkerPool;
  readonly hashLanes: HashLanes;
  readonly metrics: ServerMetrics;
  /**
   * Serve plain CreateVersion calls below grpc-js (rpc/create-version-stream.ts); true by default.
   * Off only to compare the two paths (tests).
   */
  readonly createVersionFastPath?: boolean;
  /**
   * Serve plain RetrieveVersionInfos, RetrieveModels, CreateOrUpdateModel and DeleteModel calls below
   * grpc-js (rpc/unary-stream.ts); true by default. Off only to compare the two paths (tests).
   */
  readonly unaryFastPath?: boolean;
}

export interface GrpcTransport extends AsyncDisposable {
  readonly port: number;
  /** HTTP/2 receive windows of the open client sessions. */
  sessionWindows(): number[];
  /** Calls of the method (its path, e.g. "/cogmentAPI.ModelRegistrySP/RetrieveVersionInfos") served below grpc-js so far (rpc/fast-path.ts). */
  fastPathCalls(path: string): number;
  /** Health turns NOT_SERVING for every service: the first step of a stop. */
  stopServing(): void;
  /**
   * Refuses new calls and waits for the running ones up to the grace period, then cancels those
   * left; idle connections are closed at once.
   */
  drain(): Promise<void>;
}

/**
 * The gRPC server: the registry service, health, optional reflection, per-peer limits, the HTTP/2
 * window and keepalive. Serving (health SERVING) once it resolves; disposing it cancels every call.
 */
export async function startGrpcTransport(config: GrpcTransportConfig, log: Logger, options: GrpcTransportOptions): Promise<GrpcTransport> {
  return startWithRollback(log, async (stack) => {
    const { registry, workerPool, metrics } = options;
    const observer = createCallObserver({ log: log.child({ module: "rpc" }), metrics, methods: modelRegistryObservedMethods });
    const uploadLimits = {
      idleTimeoutMs: config.uploadIdleTimeoutMs ?? 0,
      minRateBytesPerSecond: config.uploadMinRateBytesPerSecond ?? 0,
      minRatePeriodMs: config.uploadMinRatePeriodMs ?? 10_000,
    };
    const server = new grpc.Server({
      "grpc.max_receive_message_length": MAX_RECEIVE_MESSAGE_BYTES,
      "grpc.max_send_message_length": -1,
      "grpc.keepalive_time_ms": options.keepalive.timeMs,
      "grpc.keepalive_timeout_ms": options.keepalive.timeoutMs,
      // Read by grpc-js servers once grpc-node pull request 3058 lands (both windows, as
      // rpc/http2-window.ts sets them now); ignored by 1.14.
      ...(config.http2WindowBytes > 0 ? { "grpc-node.flow_control_window": config.http2WindowBytes } : {}),
      ...((config.maxConcurrentStreams ?? 0) > 0 ? { "grpc.max_concurrent_streams": config.maxConcurrentStreams } : {}),
      // One interceptor: it also answers requests that did not decode (rpc/reject-malformed.ts).
      interceptors: [observer.interceptor],
    });
    stack.defer(() => server.forceShutdown());
    server.addService(
      modelRegistryServiceDefinition,
      createModelRegistryService({
        registry,
        extraStatus: () => workerStatus(workerPool, options.hashLanes),
        uploadLimits,
        sendLimits: {
          idleTimeoutMs: config.sendIdleTimeoutMs ?? 0,
          minRateBytesPerSecond: config.sendMinRateBytesPerSecond ?? 0,
          minRatePeriodMs: config.sendMinRatePeriodMs ?? 10_000,
        },
        log: log.child({ module: "rpc" }),
      }) as unknown as grpc.UntypedServiceImplementation,
    );
    const health = new HealthStatus(["", SERVICE_NAME], ServingStatus.NOT_SERVING);
    server.addService(healthServiceDefinition, createHealthService(health) as unknown as grpc.UntypedServiceImplementation);
    if (config.grpcReflection) {
      // Loaded only when asked for: proto-loader and protobufjs cost start-up time otherwise.
      // Both are CommonJS: `default` is their module.exports in Node and in the bundle alike (a bundle
      // gives no named exports for a dynamically imported CommonJS module).
      const [protoLoader, reflection] = await Promise.all([import("@grpc/proto-loader"), import("@grpc/reflection")]);
      const { loadSync } = protoLoader.default;
      const { ReflectionService } = reflection.default;
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
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${options.host}:${config.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    });
    if (config.http2WindowBytes > 0) {
      setConnectionWindow(server, config.http2WindowBytes, log);
    }
    for (const problem of checkGrpcInternals(server)) {
      log.error({ module: "grpc-internals", field: problem.field, grpcJsVersion, off: problem.feature }, describeGrpcInternalsProblem(problem));
    }
    const connections = watchConnections(server, config, metrics.peerLimits, log);
    const fastPath = serveBelowGrpcJs(server, log, fastPathRoutes(options, { uploadLimits, observer }));
    // NOT_SERVING while the registry state's backend (the shared Redis) cannot be reached.
    let stopping = false;
    const stateServing = (healthy: boolean): ServingStatus => (healthy ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    health.setAll(stateServing(registry.stateHealthy));
    stack.defer(registry.onStateHealth((healthy) => stopping || health.setAll(stateServing(healthy))));

    const resources = stack.move();
    return {
      port,
      sessionWindows: () => sessionWindows(server),
      fastPathCalls: (path) => fastPath?.served(path) ?? 0,
      stopServing: () => {
        stopping = true;
        health.shutdown();
      },
      drain: () =>
        new Promise<void>((resolve) => {
          // Calls started from now on go through grpc-js; those running below it end as grpc-js's do (their sessions close).
          fastPath?.stopTaking();
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
        }),
      [Symbol.asyncDispose]: () => resources.disposeAsync(),
    };
  });
}

/** The methods served below grpc-js (rpc/fast-path.ts), each with what serves it. */
function fastPathRoutes(
  options: GrpcTransportOptions,
  shared: { readonly uploadLimits: UploadLimits; readonly observer: CallObserver },
): Map<string, ServeDiverted> {
  const routes = new Map<string, ServeDiverted>();
  const maxReceiveMessageBytes = MAX_RECEIVE_MESSAGE_BYTES;
  if (options.createVersionFastPath !== false) {
    const { requestDeserialize: deserialize } = modelRegistryMethod("createVersion");
    routes.set(CREATE_VERSION_PATH, serveCreateVersion({ registry: options.registry, maxReceiveMessageBytes, deserialize, ...shared }));
  }
  if (options.unaryFastPath !== false) {
    for (const route of modelRegistryUnaryRoutes(options.registry)) {
      routes.set(route.path, serveUnary(route, { maxReceiveMessageBytes, observer: shared.observer }));
    }
  }
  return routes;
}

/** The routes' calls served from the HTTP/2 stream; undefined if there are none or grpc-js's internals changed. */
function serveBelowGrpcJs(server: grpc.Server, log: Logger, routes: ReadonlyMap<string, ServeDiverted>): FastPath | undefined {
  if (routes.size === 0) {
    return undefined;
  }
  const streams = fastPathFor(routes);
  if (!divertStreams(server, streams)) {
    log.warn("grpc-js internals changed: every call is served through grpc-js's call machinery");
    return undefined;
  }
  return streams;
}

/** Per-peer limits, the tiny DATA frames bound and the prompt close of idle connections at shutdown (rpc/connection-guard.ts). */
function watchConnections(server: grpc.Server, config: GrpcTransportConfig, counts: PeerLimitCounts, log: Logger): ConnectionGuard | undefined {
  const http2Servers = grpcHttp2Servers(server);
  if (http2Servers === undefined) {
    log.warn("grpc-js internals changed: no per-address stream limits, no bound on tiny DATA frames, and idle connections delay the shutdown");
    return undefined;
  }
  const newStreamsPerSecond = config.peerNewStreamsPerSecond ?? 0;
  const cancelledStreamsPerSecond = config.peerCancelledStreamsPerSecond ?? 0;
  const limiter =
    newStreamsPerSecond > 0 || cancelledStreamsPerSecond > 0
      ? new PeerLimiter({ newStreamsPerSecond, cancelledStreamsPerSecond, banMs: config.peerBanMs ?? 0, maxPeers: MAX_TRACKED_PEERS })
      : undefined;
  return guardConnections(http2Servers, { limiter, ipv6PrefixBits: config.peerIpv6PrefixBits, counts, log: log.child({ module: "connections" }) });
}

function workerStatus(pool: WorkerPool, hashLanes: HashLanes): Record<string, string> {
  const stats = pool.stats();
  const lanes = hashLanes.stats();
  return {
    worker_threads: String(stats.threads),
    worker_queue: String(stats.queueSize),
    worker_utilization: stats.utilization.toFixed(3),
    hash_lane_threads: String(lanes.threads),
    hash_lane_streams: String(lanes.streams),
  };
}
