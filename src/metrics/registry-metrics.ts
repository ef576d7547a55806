import { Counter, Gauge, type Registry as MetricsRegistry } from "prom-client";
import type { RegistryStats } from "../registry/index.js";
import type { HashLanesStats, WorkerPoolStats } from "../worker-pool/index.js";

export interface RegistryMetricsSources {
  readonly registry: () => RegistryStats;
  readonly workerPool: () => WorkerPoolStats;
  readonly hashLanes: () => HashLanesStats;
}

const PREFIX = "cogment_model_registry_";

/**
 * Calls `read` at most once per scrape: every collect() of one scrape runs in the same
 * synchronous pass, so the value is dropped at the next microtask.
 */
function oncePerScrape<T>(read: () => T): () => T {
  let cached: T | undefined;
  return () => {
    if (cached === undefined) {
      cached = read();
      queueMicrotask(() => {
        cached = undefined;
      });
    }
    return cached;
  };
}

/** Gauges mirroring the registry's and the worker pool's stats(), read at scrape time (no timers). */
export function registerRegistryMetrics(register: MetricsRegistry, sources: RegistryMetricsSources): void {
  const registry = oncePerScrape(sources.registry);
  const pool = oncePerScrape(sources.workerPool);
  const lanes = oncePerScrape(sources.hashLanes);
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name: PREFIX + name,
      help,
      registers: [register],
      collect() {
        this.set(read());
      },
    });
  };

  gauge("models", "Models in the registry.", () => registry().models);
  gauge("version_update_subscribers", "Open VersionUpdate streams.", () => registry().subscribers);
  gauge("uploads_in_flight", "CreateVersion uploads receiving data or being committed.", () => registry().uploadsInFlight);
  gauge("cache_max_bytes", "Byte budget of the version cache.", () => registry().cache.maxBytes);
  gauge(
    "cache_used_bytes",
    "Bytes counted against the version cache budget: cached data, reservations, draining data and spares.",
    () => registry().cache.usedBytes,
  );
  gauge("cache_data_bytes", "Bytes of the model version data held in the version cache.", () => registry().cache.entryBytes);
  gauge("cached_versions", "Model versions whose data is in the version cache.", () => registry().cache.entries);
  gauge(
    "cache_reserved_bytes",
    "Bytes reserved in the version cache for uploads still in flight.",
    () => registry().cache.reservedBytes,
  );
  gauge(
    "cache_draining_bytes",
    "Bytes of versions that left the cache but are still being read.",
    () => registry().cache.drainingBytes,
  );
  gauge(
    "cache_spare_bytes",
    "Bytes of versions that left the cache, kept to be reused by the next upload of the same size.",
    () => registry().cache.spareBytes,
  );

  const seen = { size: 0, expired: 0 };
  const evictions = new Counter({
    name: `${PREFIX}cache_evictions_total`,
    help: "Model versions evicted from the version cache, by reason: size (the budget was needed) or expired.",
    labelNames: ["reason"] as const,
    registers: [register],
    collect() {
      const now = registry().cache.evictions;
      this.labels("size").inc(now.size - seen.size);
      this.labels("expired").inc(now.expired - seen.expired);
      seen.size = now.size;
      seen.expired = now.expired;
    },
  });
  evictions.labels("size").inc(0);
  evictions.labels("expired").inc(0);

  gauge("worker_pool_queue_size", "Tasks (hashing, archive writes) waiting for a worker thread.", () => pool().queueSize);
  gauge("worker_pool_threads", "Worker threads of the pool.", () => pool().threads);
  gauge(
    "worker_pool_utilization",
    "Share of the worker pool's capacity used since it started (0 to 1, as piscina reports it).",
    () => pool().utilization,
  );
  gauge("hash_lane_threads", "Threads hashing streamed data (archived versions read from or streamed to disk); started at first need.", () => lanes().threads);
  gauge("hash_lane_streams", "Streams being hashed on the hash lane threads.", () => lanes().streams);
}
