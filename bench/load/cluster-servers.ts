/**
 * Several registry instances on one Redis and one archive directory (issue #17), for the cluster
 * broadcast: a real redis-server on loopback (AOF; `appendfsync always` as recommended, or
 * `everysec` to compare) and `count` server processes. The CPU time reported is that of every
 * instance and redis-server together, also per process (`cpuSecondsByPart`: A, B, C…, redis); the
 * memory, the largest instance's.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRedisServer } from "../../test/support/redis-server.js";
import { removeTempDir, trackTempDir } from "../support/cleanup.js";
import { readCpuSeconds, readCpuSecondsWithChildren } from "../support/proc-stats.js";
import { type BenchServer, startBenchServer } from "../support/server-process.js";

export interface BenchCluster {
  /** The instances seen as one server: address of the first, CPU summed, peak RSS of the largest. */
  readonly server: BenchServer;
  /** One address per instance. */
  readonly addresses: readonly string[];
}

/** Redis's AOF fsync policy: on disk before each acknowledgement, or once a second. */
export type RedisAppendFsync = "always" | "everysec";

export async function withCluster<T>(
  count: number,
  options: { readonly cacheMaxBytes?: number; readonly cpuProfileDir?: string; readonly appendfsync?: RedisAppendFsync },
  body: (cluster: BenchCluster) => Promise<T>,
): Promise<T> {
  const redis = await startRedisServer(undefined, {
    appendOnly: true,
    // A later argument overrides the helper's "--appendfsync always".
    extraArgs: options.appendfsync === "everysec" ? ["--appendfsync", "everysec"] : [],
  });
  const archiveDir = mkdtempSync(join(tmpdir(), "registry-bench-cluster-"));
  trackTempDir(archiveDir);
  const redisPid = redis.pid();
  // With its finished children: AOF rewrites run in a forked redis-server (a rewrite still running at
  // the window's end is not counted yet).
  const redisCpuSeconds = (): number => (redisPid === undefined ? 0 : readCpuSecondsWithChildren(redisPid));
  const servers: BenchServer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      servers.push(
        await startBenchServer({
          cacheMaxBytes: options.cacheMaxBytes,
          cpuProfileDir: options.cpuProfileDir,
          archiveDir,
          env: { COGMENT_MODEL_REGISTRY_REDIS_URL: redis.url },
        }),
      );
    }
    const [first] = servers as [BenchServer];
    const server: BenchServer = {
      ...first,
      entry: `cluster of ${count}`,
      cpuSeconds: () => servers.reduce((total, s) => total + s.cpuSeconds(), redisCpuSeconds()),
      cpuSecondsByPart: () => {
        const redisAll = redisCpuSeconds();
        const redisOwn = redisPid === undefined ? 0 : readCpuSeconds(redisPid);
        return {
          ...Object.fromEntries(servers.map((s, i) => [String.fromCharCode(65 + i), s.cpuSeconds()])),
          redis: redisAll,
          // Of which: its forked children (AOF rewrites).
          redisChildren: redisAll - redisOwn,
        };
      },
      memory: () => {
        const memories = servers.map((s) => s.memory());
        return {
          peakRssBytes: Math.max(...memories.map((m) => m.peakRssBytes)),
          rssBytes: Math.max(...memories.map((m) => m.rssBytes)),
        };
      },
      stop: async () => {
        await Promise.all(servers.map((s) => s.stop()));
      },
    };
    return await body({ server, addresses: servers.map((s) => s.address) });
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await redis.close();
    removeTempDir(archiveDir);
  }
}
