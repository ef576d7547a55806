export { type HashLanes, type HashLanesOptions, type HashLanesStats, type LaneHash, createHashLanes } from "./hash-lanes.js";
export { INLINE_HASH_MAX_BYTES, type WorkerPool, type WorkerPoolOptions, type WorkerPoolStats, createWorkerPool } from "./worker-pool.js";
