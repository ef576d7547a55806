export { type ArchiveWriteTimer, createArchiveWriteMetrics } from "./archive-write-metrics.js";
export { DataTransferStats, createDataTransferMetrics } from "./data-transfer-metrics.js";
export { GRPC_CODE_COUNT, grpcCodeName, normalizeGrpcCode } from "./grpc-code-name.js";
export {
  type GrpcServerMetrics,
  type GrpcType,
  GrpcMethodStats,
  createGrpcServerMetrics,
  grpcType,
  splitMethodPath,
} from "./grpc-server-metrics.js";
export { type MetricsEndpoint, type MetricsEndpointOptions, startMetricsEndpoint } from "./metrics-endpoint.js";
export { type RegistryMetricsSources, registerRegistryMetrics } from "./registry-metrics.js";
export { type ServerMetrics, type ServerMetricsOptions, createServerMetrics } from "./server-metrics.js";
