import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { createFsArchiveStore } from "./archive/index.js";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { packageInfo } from "./package-info.js";
import { Registry } from "./registry/index.js";
import { createModelRegistryService, modelRegistryServiceDefinition } from "./rpc/model-registry-service.js";
import { type WorkerPool, createWorkerPool } from "./worker-pool/index.js";
import { sessionWindows, setConnectionWindow, setStreamWindow } from "./rpc/http2-window.js";
import type { Sha256Implementation } from "./data/index.js";

/** Incoming messages up to this size are accepted (stock clients send far smaller chunks). */
export const MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024 + 1024;
const SERVICE_NAME = "cogmentAPI.ModelRegistrySP";
const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));

export type ServerConfig = Pick<
  Config,
  | "port"
  | "archiveDir"
  | "cacheMaxBytes"
  | "cacheExpirationMs"
  | "cachePruneCount"
  | "sentChunkSize"
  | "grpcReflection"
  | "shutdownGraceMs"
  | "http2WindowBytes"
>;

export interface ServerOptions {
  /** Interface to listen on; all of them by default. */
  readonly host?: string;
  readonly sha256?: Sha256Implementation;
}

export interface RunningServer {
  readonly port: number;
  readonly registry: Registry;
  /** HTTP/2 receive windows of the open client sessions. */
  sessionWindows(): number[];
  /** Stops accepting calls, ends streams, waits for in-flight calls up to the grace period, then releases everything. */
  stop(): Promise<void>;
}

export async function startServer(config: ServerConfig, log: Logger, options: ServerOptions = {}): Promise<RunningServer> {
  const pool = createWorkerPool({ sha256: options.sha256 ?? "node-crypto" });
  let registry: Registry;
  try {
    const archive = createFsArchiveStore({
      root: config.archiveDir,
      writer: pool.fileWriter,
      onWarning: (message, details) => log.warn({ module: "archive", ...details }, message),
    });
    registry = await Registry.open({
      archive,
      cacheMaxBytes: config.cacheMaxBytes,
      cacheExpirationMs: config.cacheExpirationMs,
      cachePruneCount: config.cachePruneCount,
      chunkSize: config.sentChunkSize,
      hash: (segments) => pool.hash(segments),
      log: log.child({ module: "registry" }),
    });
  } catch (error) {
    await pool.close();
    throw error;
  }

  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_RECEIVE_MESSAGE_BYTES,
    "grpc.max_send_message_length": -1,
  });
  server.addService(
    modelRegistryServiceDefinition,
    createModelRegistryService({
      registry,
      log: log.child({ module: "rpc" }),
      extraStatus: () => workerStatus(pool),
    }) as unknown as grpc.UntypedServiceImplementation,
  );
  const health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
  health.addToServer(server);
  if (config.grpcReflection) {
    const definitions = loadSync(["cogment/api/model_registry.proto", healthProtoPath], {
      includeDirs: [PROTO_DIR],
      keepCase: true,
    });
    new ReflectionService(definitions).addToServer(server);
  }

  if (config.http2WindowBytes > 0) {
    setStreamWindow(server, config.http2WindowBytes, log);
  }
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${options.host ?? "0.0.0.0"}:${config.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    });
  } catch (error) {
    registry.close();
    await pool.close();
    throw error;
  }
  if (config.http2WindowBytes > 0) {
    setConnectionWindow(server, config.http2WindowBytes, log);
  }
  health.setStatus("", "SERVING");
  health.setStatus(SERVICE_NAME, "SERVING");

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      health.setStatus("", "NOT_SERVING");
      health.setStatus(SERVICE_NAME, "NOT_SERVING");
      registry.close(); // ends VersionUpdate streams, which would otherwise never finish
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
      });
      await pool.close();
    })();
    return stopping;
  };

  log.info(
    {
      version: packageInfo.version,
      port,
      archiveDir: config.archiveDir,
      cacheMaxBytes: config.cacheMaxBytes,
      cacheExpirationMs: config.cacheExpirationMs,
      cachePruneCount: config.cachePruneCount,
      sentChunkSize: config.sentChunkSize,
      grpcReflection: config.grpcReflection,
      http2WindowBytes: config.http2WindowBytes,
    },
    "model registry serving",
  );
  return { port, registry, stop, sessionWindows: () => sessionWindows(server) };
}

function workerStatus(pool: WorkerPool): Record<string, string> {
  const stats = pool.stats();
  return {
    worker_threads: String(stats.threads),
    worker_queue: String(stats.queueSize),
    worker_utilization: stats.utilization.toFixed(3),
  };
}
