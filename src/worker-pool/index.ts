export { type WorkerPool, type WorkerPoolOptions, type WorkerPoolStats, createWorkerPool } from "./worker-pool.js";
