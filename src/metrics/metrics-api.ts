/**
 * What the rest of the server sees of its metrics, without prom-client: the Prometheus
 * implementation (server-metrics.ts) is loaded only when the metrics endpoint is on, and a server
 * without it counts nothing (disabled-metrics.ts). prom-client and its dependencies took 44 ms of a
 * ~315 ms start-up.
 */
import type { ArchiveFileWriter } from "../archive/index.js";
import type { RegistryMetricsSources } from "./registry-metrics.js";

/** One gRPC method's counts; the call observer's hot path. */
export interface MethodStats {
  readonly service: string;
  readonly method: string;
  started(): void;
  received(): void;
  sent(): void;
  handled(code: number, seconds: number): void;
}

export interface GrpcServerMetrics {
  /** The stats of the method at `path` ("/package.Service/Method"), made on its first call. */
  method(path: string, requestStream: boolean, responseStream: boolean): MethodStats;
  /** Makes the stats of a method now, so that its series exist (at zero) before its first call. */
  initialize(path: string, requestStream: boolean, responseStream: boolean): void;
}

/** Version data bytes moved by the RPCs. */
export interface DataTransferCounts {
  received(bytes: number): void;
  sent(bytes: number): void;
}

/** What the per-peer-address stream limits did (src/rpc/peer-limiter.ts). */
export interface PeerLimitCounts {
  /** A connection was closed because its address went over `limit`. */
  sessionClosed(limit: "new_streams" | "cancelled_streams"): void;
  /** A connection from a banned address was refused. */
  connectionRefused(): void;
}

/** Wraps an archive writer to time its version writes. */
export type ArchiveWriteTimer = (writer: ArchiveFileWriter) => ArchiveFileWriter;

export interface ServerMetrics {
  readonly grpc: GrpcServerMetrics;
  readonly dataTransfer: DataTransferCounts;
  readonly timeArchiveWrites: ArchiveWriteTimer;
  readonly peerLimits: PeerLimitCounts;
  /** Adds the gauges read from the registry's and the worker pool's stats (once, when both exist). */
  observe(sources: RegistryMetricsSources): void;
}
