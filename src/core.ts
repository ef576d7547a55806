import { type ArchiveStore, createFsArchiveStore, preloadYamlLibrary } from "./archive/index.js";
import { formatS3Location } from "./archive/s3-url.js";
import type { Config } from "./config.js";
import type { Sha256Implementation } from "./data/index.js";
import type { Logger } from "./logger.js";
import { createMemoryGuard } from "./memory-guard.js";
import { startWithRollback } from "./start-with-rollback.js";
import type { ArchiveWriteTimer } from "./metrics/metrics-api.js";
import { Registry } from "./registry/index.js";
import type { RegistryState } from "./state/index.js";
import { archiveNumbering } from "./state/archive-numbering.js";
import { type HashLanes, type WorkerPool, createHashLanes, createWorkerPool } from "./worker-pool/index.js";

/** In a directory shared by several instances, a temporary file untouched for this long is a dead writer's leftover. */
export const SHARED_ARCHIVE_LEFTOVER_AGE_MS = 60 * 60 * 1000;

/**
 * The core of the server, whatever serves it: the archive (a directory or an S3 bucket), the worker
 * threads and the registry. The transports (transports/) come on top.
 */

/** Over the cache budget, for the runtime itself and messages in flight. */
const MEMORY_HEADROOM_BYTES = 96 * 1024 * 1024;

export type CoreConfig = Pick<
  Config,
  "archiveDir" | "archiveS3" | "archiveS3ForcePathStyle" | "archiveS3TimeoutMs" | "cacheMaxBytes" | "cacheExpirationMs" | "cachePruneCount" | "sentChunkSize"
> &
  // Optional: without it the registry runs in single mode.
  Partial<Pick<Config, "redis" | "redisWaitReplicas" | "redisWaitTimeoutMs" | "redisNatMap" | "redisClusterResolveSeeds">> &
  // Optional: without it versions have no size limit of their own.
  Partial<Pick<Config, "versionMaxBytes" | "streamedReadsMaxBytes">>;

export interface CoreOptions {
  readonly sha256: Sha256Implementation;
  /** Wraps the archive's file writer to time its writes (metrics). */
  readonly timeArchiveWrites: ArchiveWriteTimer;
}

export interface Core extends AsyncDisposable {
  readonly registry: Registry;
  /** The worker threads hashing and writing the archive. */
  readonly workerPool: WorkerPool;
  /** The threads hashing streams: versions read from disk, uploads streamed to disk. */
  readonly hashLanes: HashLanes;
  /** Where the archive is, for log lines. */
  readonly archiveLocation: { readonly archiveDir: string } | { readonly archiveUrl: string };
  /**
   * Ends the VersionUpdate streams (UNAVAILABLE) at once, the first step of a stop; also done on
   * dispose. Once: later calls do nothing.
   */
  closeRegistry(): void;
  /**
   * Starts what serving a first call does not need (the server calls it once it listens): the worker
   * threads, the hash threads and the memory guard's hook on the garbage collector. Otherwise their first use does.
   */
  startDeferred(): void;
}

/**
 * Opens the archive and the registry. Disposing the core releases, in this order: the registry, the hash threads, the
 * worker threads, the S3 client; a failed open releases what it had acquired the same way.
 */
export async function openCore(config: CoreConfig, log: Logger, options: CoreOptions): Promise<Core> {
  return startWithRollback(log, async (stack) => {
    let cachedBytes = (): number => 0; // the registry's, once it is open
    const memoryGuard = createMemoryGuard(config.cacheMaxBytes + MEMORY_HEADROOM_BYTES, log, { heldBytes: () => cachedBytes() });
    stack.defer(() => memoryGuard.close()); // its idle check's timer
    const archiveS3 = config.archiveS3;
    // Loaded only for a bucket (see s3-backend.ts).
    const s3 = archiveS3 === undefined ? undefined : await import("./archive/s3-backend.js");
    const s3Client = s3?.createS3Client({ forcePathStyle: config.archiveS3ForcePathStyle ?? false, idleTimeoutMs: config.archiveS3TimeoutMs });
    if (s3Client !== undefined) {
      stack.defer(() => s3Client.destroy());
    }
    const pool = createWorkerPool({ sha256: options.sha256 });
    stack.defer(() => pool.close());
    const hashLanes = createHashLanes();
    stack.defer(() => hashLanes.close());

    const onWarning = (message: string, details: Record<string, unknown>): void => log.warn({ module: "archive", ...details }, message);
    const archive: ArchiveStore =
      archiveS3 === undefined || s3 === undefined || s3Client === undefined
        ? createFsArchiveStore({
            root: config.archiveDir,
            writer: options.timeArchiveWrites(pool.fileWriter),
            onWarning,
            // Instances sharing state on Redis share the directory: a fresh temporary file may be another's write in progress.
            leftoverMinAgeMs: config.redis === undefined ? 0 : SHARED_ARCHIVE_LEFTOVER_AGE_MS,
            // Several instances write one archive in Redis mode: the journal is one process's.
            modelJournal: config.redis === undefined,
          })
        : s3.createS3ArchiveStore({ client: s3Client, location: archiveS3, onWarning });
    // After the registry and the shared state are closed (disposed in reverse order): a last checkpoint.
    stack.defer(() => archive.close?.());
    const state = await openSharedState(config, archive, log);
    if (state !== undefined) {
      stack.defer(() => state.close());
    }
    const registry = await Registry.open({
      archive,
      state,
      cacheMaxBytes: config.cacheMaxBytes,
      cacheExpirationMs: config.cacheExpirationMs,
      cachePruneCount: config.cachePruneCount,
      chunkSize: config.sentChunkSize,
      hash: (segments) => pool.hash(segments),
      maxVersionBytes: config.versionMaxBytes ?? 0,
      ...(config.streamedReadsMaxBytes === undefined ? {} : { streamedReadsMaxBytes: config.streamedReadsMaxBytes }),
      beforeAllocate: memoryGuard.beforeAllocate,
      dataReceived: memoryGuard.dataReceived,
      offThreadHash: hashLanes,
      log: log.child({ module: "registry" }),
      // The model listing (an archive of many models: a read per model) goes on while the server
      // binds and serves its first calls; those that need it wait (issue #15, start-up).
      listModelsLater: true,
    });
    cachedBytes = () => registry.cache.stats().usedBytes;
    let registryClosed = false;
    const closeRegistry = (): void => {
      if (!registryClosed) {
        registryClosed = true;
        registry.close();
      }
    };
    stack.defer(closeRegistry);

    const resources = stack.move();
    return {
      registry,
      workerPool: pool,
      hashLanes,
      archiveLocation: archiveS3 === undefined ? { archiveDir: config.archiveDir } : { archiveUrl: formatS3Location(archiveS3) },
      closeRegistry,
      startDeferred: () => {
        memoryGuard.prepare();
        archive.startDeferred?.();
        pool.start();
        // The archive's YAML library (~3 ms of the main thread), left out of the start: loaded now, so the
        // first info file written (or read off the fast path) does not wait for it.
        preloadYamlLibrary();
        // Not the hash lanes: only archived versions (uploaded or read from the archive) use them, and
        // a thread is ~11 MiB resident, which a server of transient versions would carry for nothing
        // (issue #15: the resident set with the cache full). The first stream starts one (a Node
        // worker's start, tens of ms once).
      },
      [Symbol.asyncDispose]: () => resources.disposeAsync(),
    };
  });
}

/**
 * With COGMENT_MODEL_REGISTRY_REDIS_URL: the state shared through Redis by every instance (ioredis is
 * loaded only then); without it undefined, and the registry keeps its state in the process.
 */
async function openSharedState(config: CoreConfig, archive: ArchiveStore, log: Logger): Promise<RegistryState | undefined> {
  if (config.redis === undefined) {
    return undefined;
  }
  const [{ RedisRegistryStore, checkRedisSettingsWhenConnected, describeNatMap, describeRedisEndpoint }, { createRedisRegistryState }] = await Promise.all([
    import("./redis/index.js"),
    import("./state/redis-registry-state.js"),
  ]);
  const redisLog = log.child({ module: "redis" });
  const endpoint = config.redis;
  const natMap = config.redisNatMap === undefined || config.redisNatMap.size === 0 ? undefined : describeNatMap(config.redisNatMap);
  redisLog.info(
    { redis: describeRedisEndpoint(config.redis), ...(natMap === undefined ? {} : { natMap }) },
    "shared state on Redis: several instances form one registry",
  );
  const store = RedisRegistryStore.create(config.redis, {
    expirationMs: config.cacheExpirationMs,
    waitReplicas: config.redisWaitReplicas ?? 0,
    ...(config.redisWaitTimeoutMs === undefined ? {} : { waitTimeoutMs: config.redisWaitTimeoutMs }),
    ...(config.redisNatMap === undefined ? {} : { natMap: config.redisNatMap }),
    ...(config.redisClusterResolveSeeds === undefined ? {} : { resolveClusterSeeds: config.redisClusterResolveSeeds }),
    log: redisLog,
    onModeDetected: (message) => redisLog.info({ redis: describeRedisEndpoint(endpoint) }, message),
  });
  checkRedisSettingsWhenConnected(store.connection, redisLog);
  return createRedisRegistryState({ store, archive, numbering: archiveNumbering(archive, redisLog), log: redisLog });
}
