export { createArchiveWriteMetrics } from "./archive-write-metrics.js";
export { disabledServerMetrics } from "./disabled-metrics.js";
export type { ArchiveWriteTimer, DataTransferCounts, GrpcServerMetrics, MethodStats, PeerLimitCounts, ServerMetrics } from "./metrics-api.js";
export { DataTransferStats, createDataTransferMetrics } from "./data-transfer-metrics.js";
export { GRPC_CODE_COUNT, grpcCodeName, normalizeGrpcCode } from "./grpc-code-name.js";
export {
  type GrpcType,
  GrpcMethodStats,
  createGrpcServerMetrics,
  grpcType,
} from "./grpc-server-metrics.js";
export { splitMethodPath } from "./method-path.js";
export { createPeerLimitMetrics } from "./peer-limit-metrics.js";
export { type MetricsEndpoint, type MetricsEndpointOptions, startMetricsEndpoint } from "./metrics-endpoint.js";
export { type RegistryMetricsSources, registerRegistryMetrics } from "./registry-metrics.js";
export { type PrometheusServerMetrics, type ServerMetricsOptions, createServerMetrics } from "./server-metrics.js";
