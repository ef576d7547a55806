import { Registry as MetricsRegistry, collectDefaultMetrics } from "prom-client";
import { createArchiveWriteMetrics } from "./archive-write-metrics.js";
import { type DataTransferStats, createDataTransferMetrics } from "./data-transfer-metrics.js";
import { createGrpcServerMetrics } from "./grpc-server-metrics.js";
import type { ServerMetrics } from "./metrics-api.js";
import { createPeerLimitMetrics } from "./peer-limit-metrics.js";
import { registerRegistryMetrics } from "./registry-metrics.js";

export interface ServerMetricsOptions {
  /** Adds prom-client's default Node.js process metrics (CPU, memory, event loop lag, GC). */
  readonly processMetrics: boolean;
}

/** Every metric of one server, in a registry of its own (never prom-client's global one). */
export interface PrometheusServerMetrics extends ServerMetrics {
  readonly register: MetricsRegistry;
  readonly dataTransfer: DataTransferStats;
}

export function createServerMetrics(options: ServerMetricsOptions): PrometheusServerMetrics {
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
    peerLimits: createPeerLimitMetrics(register),
    observe(sources) {
      if (observed) {
        throw new Error("the registry metrics are already registered");
      }
      observed = true;
      registerRegistryMetrics(register, sources);
    },
  };
}
