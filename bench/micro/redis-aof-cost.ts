/**
 * What Redis's AOF costs per 16 MiB version stored, AOF rewrites included (they run in a forked
 * redis-server, whose CPU `/proc/<pid>/stat` of Redis counts only once the child ended: cutime +
 * cstime). Versions are stored as VersionDataWriter stores them (8 SET PX of 2 MiB over the chunk
 * channel, 2 in flight) into a Redis with `maxmemory` and `volatile-lru`, as recommended, so that
 * the dataset stays bounded as in production and each rewrite writes about the budget; after the
 * last one, the bench waits for a rewrite in progress to end before reading the CPU times. Configs:
 * `appendfsync always` and `everysec`, each with Redis's default `auto-aof-rewrite-percentage 100`
 * and with 400 (rewrite when the AOF grew to 5× its size after the last rewrite: less rewriting,
 * more disk), `always` with `rdbcompression no` (the rewrite's RDB preamble without LZF), and no
 * AOF. Standalone:
 * `npm run build && npx node dist/bench/micro/redis-aof-cost.js [versions] [maxmemoryMiB] [rounds]`.
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { ChunkChannel } from "../../src/redis/chunk-channel.js";
import { parseRedisUrl } from "../../src/redis/redis-url.js";
import { startRedisServer } from "../../test/support/redis-server.js";
import { readCpuSeconds, readCpuSecondsWithChildren } from "../support/proc-stats.js";

const MIB = 1024 * 1024;
const CHUNK_BYTES = 2 * MIB;
const CHUNKS = 8;
const TTL_MS = 600_000;

interface AofConfig {
  readonly name: string;
  readonly appendOnly: boolean;
  readonly extraArgs: readonly string[];
}

const CONFIGS: readonly AofConfig[] = [
  { name: "always, rewrite 100%", appendOnly: true, extraArgs: [] },
  { name: "always, rewrite 100%, rdbcompression no", appendOnly: true, extraArgs: ["--rdbcompression", "no"] },
  { name: "always, rewrite 400%", appendOnly: true, extraArgs: ["--auto-aof-rewrite-percentage", "400"] },
  { name: "everysec, rewrite 100%", appendOnly: true, extraArgs: ["--appendfsync", "everysec"] },
  { name: "everysec, rewrite 400%", appendOnly: true, extraArgs: ["--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "400"] },
  { name: "no AOF", appendOnly: false, extraArgs: [] },
];

async function waitForRewrites(admin: Redis): Promise<void> {
  for (;;) {
    const info = await admin.info("persistence");
    if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function runRedisAofCostBench(versions: number, maxmemoryMiB: number, rounds: number): Promise<void> {
  const chunks = Array.from({ length: CHUNKS }, () => randomBytes(CHUNK_BYTES));
  for (let round = 0; round < rounds; round++) {
    for (const config of CONFIGS) {
      const server = await startRedisServer(undefined, {
        appendOnly: config.appendOnly,
        extraArgs: ["--maxmemory", `${maxmemoryMiB}mb`, "--maxmemory-policy", "volatile-lru", ...config.extraArgs],
      });
      const channel = new ChunkChannel(parseRedisUrl(server.url), 10_000);
      const admin = new Redis(server.url);
      try {
        const pid = server.pid() as number;
        const started = performance.now();
        const own0 = readCpuSeconds(pid);
        const all0 = readCpuSecondsWithChildren(pid);
        for (let v = 0; v < versions; v++) {
          const inFlight: Promise<void>[] = [];
          for (let i = 0; i < CHUNKS; i++) {
            inFlight.push(channel.setChunk(`v${v}:${i}`, [chunks[i] as Buffer], TTL_MS));
            if (inFlight.length >= 2) await inFlight.shift();
          }
          await Promise.all(inFlight);
        }
        const storeSeconds = (performance.now() - started) / 1e3;
        await waitForRewrites(admin);
        const own = readCpuSeconds(pid) - own0;
        const all = readCpuSecondsWithChildren(pid) - all0;
        const rewrites = Number(/aof_rewrites:(\d+)/.exec(await admin.info("persistence"))?.[1] ?? 0);
        const perVersion = (seconds: number): number => Math.round((seconds / versions) * 1e4) / 10;
        console.log(
          JSON.stringify({
            round,
            config: config.name,
            versions,
            maxmemoryMiB,
            redisMsPerVersion: perVersion(all),
            ownMsPerVersion: perVersion(own),
            rewriteChildrenMsPerVersion: perVersion(all - own),
            rewrites,
            storeWallMsPerVersion: perVersion(storeSeconds),
          }),
        );
      } finally {
        channel.close();
        admin.disconnect();
        await server.close();
      }
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await runRedisAofCostBench(Number(process.argv[2] ?? 48), Number(process.argv[3] ?? 256), Number(process.argv[4] ?? 2));
}
