import { Registry as MetricsRegistry, collectDefaultMetrics } from "prom-client";
import { type ArchiveWriteTimer, createArchiveWriteMetrics } from "./archive-write-metrics.js";
import { type DataTransferStats, createDataTransferMetrics } from "./data-transfer-metrics.js";
import { type GrpcServerMetrics, createGrpcServerMetrics } from "./grpc-server-metrics.js";
import { type RegistryMetricsSources, registerRegistryMetrics } from "./registry-metrics.js";

export interface ServerMetricsOptions {
  /** Adds prom-client's default Node.js process metrics (CPU, memory, event loop lag, GC). */
  readonly processMetrics: boolean;
}

/** Every metric of one server, in a registry of its own (never prom-client's global one). */
export interface ServerMetrics {
  readonly register: MetricsRegistry;
  readonly grpc: GrpcServerMetrics;
  readonly dataTransfer: DataTransferStats;
  /** Wraps the archive writer to time version writes. */
  readonly timeArchiveWrites: ArchiveWriteTimer;
  /** Adds the gauges read from the registry's and the worker pool's stats (once, when both exist). */
  observe(sources: RegistryMetricsSources): void;
}

export function createServerMetrics(options: ServerMetricsOptions): ServerMetrics {
  const register = new MetricsRegistry();
  if (options.processMetrics) {
    collectDefaultMetrics({ register });
  }
  let observed = false;
  return {
    register,
    grpc: createGrpcServerMetrics(register),
    dataTransfer: createDataTransferMetrics(register),
    timeArchiveWrites: createArchiveWriteMetrics(register),
    observe(sources) {
      if (observed) {
        throw new Error("the registry metrics are already registered");
      }
      observed = true;
      registerRegistryMetrics(register, sources);
    },
  };
}
