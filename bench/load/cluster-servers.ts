/**
 * Several registry instances on one Redis and one archive directory (issue #17), for the cluster
 * broadcast: a real redis-server on loopback (AOF; `appendfsync always` as recommended, or
 * `everysec` to compare), or a Redis Cluster of three masters (`redis: "cluster"`, the same AOF
 * settings on each), and `count` server processes. The CPU time reported is that of every instance
 * and redis-server together, also per process (`cpuSecondsByPart`: A, B, C…, redis: every
 * redis-server summed); the memory, the largest instance's.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRedisCluster } from "../../test/support/redis-cluster.js";
import { type RedisTestServer, startRedisServer } from "../../test/support/redis-server.js";
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

/**
 * Settings docs/redis-mode.md recommends beyond persistence: `rdbcompression no`, since model data
 * barely compresses and LZF on every value made AOF rewrites (RDB preamble) cost 2-4x the CPU
 * (bench/micro/redis-aof-cost.ts).
 */
const RECOMMENDED_REDIS_ARGS: readonly string[] = ["--rdbcompression", "no"];

/** BENCH_REDIS_ARGS="--rdbcompression yes ...": more redis-server arguments, after the others (they override them). */
function benchRedisArgs(): string[] {
  return (process.env.BENCH_REDIS_ARGS ?? "").split(" ").filter((arg) => arg !== "");
}

/** What the instances share: one redis-server, or a Redis Cluster of three masters (no replicas). */
export type RedisTopology = "redis" | "cluster";

/** The redis-server processes, the URL the instances are given, and how to stop them all. */
async function startSharedRedis(topology: RedisTopology, appendfsync: RedisAppendFsync | undefined): Promise<{
  readonly nodes: readonly RedisTestServer[];
  readonly url: string;
  close(): Promise<void>;
}> {
  // A later argument overrides the helper's "--appendfsync always".
  const extraArgs = [...RECOMMENDED_REDIS_ARGS, ...(appendfsync === "everysec" ? ["--appendfsync", "everysec"] : []), ...benchRedisArgs()];
  if (topology === "cluster") {
    const cluster = await startRedisCluster(undefined, { masters: 3, appendOnly: true, extraArgs });
    return { nodes: cluster.nodes, url: cluster.url, close: () => cluster.close() };
  }
  const redis = await startRedisServer(undefined, { appendOnly: true, extraArgs });
  return { nodes: [redis], url: redis.url, close: () => redis.close() };
}

export async function withCluster<T>(
  count: number,
  options: {
    readonly cacheMaxBytes?: number;
    readonly cpuProfileDir?: string;
    readonly appendfsync?: RedisAppendFsync;
    readonly redis?: RedisTopology;
  },
  body: (cluster: BenchCluster) => Promise<T>,
): Promise<T> {
  const redis = await startSharedRedis(options.redis ?? "redis", options.appendfsync);
  const archiveDir = mkdtempSync(join(tmpdir(), "registry-bench-cluster-"));
  trackTempDir(archiveDir);
  const redisPids = redis.nodes.flatMap((node) => {
    const pid = node.pid();
    return pid === undefined ? [] : [pid];
  });
  // With their finished children: AOF rewrites run in a forked redis-server (a rewrite still running at
  // the window's end is not counted yet).
  const redisCpuSeconds = (): number => redisPids.reduce((total, pid) => total + readCpuSecondsWithChildren(pid), 0);
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
        const redisOwn = redisPids.reduce((total, pid) => total + readCpuSeconds(pid), 0);
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
