/**
 * What a commit's numbering costs in Redis mode, this build against another one (`--base <dist/src/redis/index.js
 * of the other build>`): claimNumber + commitVersion (the scripts of a version without data, as an
 * archived version's; no archive write: the block-ahead record is written by the registry state once
 * per 1024 numbers) timed together, on one local redis-server with `appendonly yes`,
 * `appendfsync always` (`--no-aof`: without persistence). Each build has its own key prefix; blocks
 * of commits alternate between the two builds, the order flipped each round; medians per round and
 * over all. Standalone: `npm run build && npx node dist/bench/micro/redis-claim-cost.js --base <path> [commitsPerBlock] [rounds] [--no-aof]`.
 */
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { RedisRegistryStore } from "../../src/redis/index.js";
import { startRedisServer } from "../../test/support/redis-server.js";

/** The part of a store this bench uses, the same in both builds. */
interface ClaimingStore {
  putModel(model: { modelId: string; userData: Record<string, string> }): Promise<{ generation: number }>;
  claimNumber(modelId: string, token: string, leaseMs: number): Promise<unknown>;
  commitVersion(version: object, generation: number, data?: undefined, claim?: unknown): Promise<unknown>;
  readonly connection: { waitUntilHealthy(timeoutMs: number): Promise<void> };
  close(): Promise<void>;
}

interface StoreModule {
  readonly RedisRegistryStore: { create(url: string, options: { expirationMs: number; keyPrefix: string }): ClaimingStore };
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function loadAverage(): Promise<string> {
  return (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
}

export async function runRedisClaimCostBench(basePath: string, commitsPerBlock: number, rounds: number, appendOnly: boolean): Promise<void> {
  const base = (await import(pathToFileURL(basePath).href)) as StoreModule;
  const redis = await startRedisServer(undefined, { appendOnly });
  const stores = new Map<string, ClaimingStore>([
    ["new", RedisRegistryStore.create(redis.url, { expirationMs: 0, keyPrefix: "new:" }) as unknown as ClaimingStore],
    ["base", base.RedisRegistryStore.create(redis.url, { expirationMs: 0, keyPrefix: "base:" })],
  ]);
  try {
    const generations = new Map<string, number>();
    for (const [name, store] of stores) {
      await store.connection.waitUntilHealthy(10_000);
      generations.set(name, (await store.putModel({ modelId: "claim-cost", userData: {} })).generation);
    }
    let tokens = 0;
    const commit = async (name: string): Promise<number> => {
      const store = stores.get(name) as ClaimingStore;
      const start = process.hrtime.bigint();
      const claim = await store.claimNumber("claim-cost", `token-${tokens++}`, 5000);
      await store.commitVersion(
        { modelId: "claim-cost", creationTimestamp: 1_700_000_000_000_000_000n, archived: true, dataHash: "h", dataSize: 0, userData: {} },
        generations.get(name) as number,
        undefined,
        claim,
      );
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    for (const name of stores.keys()) {
      for (let i = 0; i < 20; i++) {
        await commit(name); // warm-up: scripts loaded, AOF going
      }
    }
    const all = new Map<string, number[]>([...stores.keys()].map((name) => [name, []]));
    console.log(`# ${new Date().toISOString()} appendOnly=${appendOnly} commitsPerBlock=${commitsPerBlock} rounds=${rounds} load ${await loadAverage()}`);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ["base", "new"] : ["new", "base"];
      const line: string[] = [];
      for (const name of order) {
        const times: number[] = [];
        for (let i = 0; i < commitsPerBlock; i++) {
          times.push(await commit(name));
        }
        all.get(name)?.push(...times);
        line.push(`${name} p50 ${quantile(times, 0.5).toFixed(3)} ms p90 ${quantile(times, 0.9).toFixed(3)} ms`);
      }
      console.log(`round ${round + 1}: ${line.join(" | ")} | load ${await loadAverage()}`);
    }
    const summary = [...all].map(([name, times]) => `${name} p50 ${quantile(times, 0.5).toFixed(3)} ms p90 ${quantile(times, 0.9).toFixed(3)} ms (${times.length} commits)`);
    console.log(`all: ${summary.join(" | ")}`);
  } finally {
    await Promise.all([...stores.values()].map((store) => store.close()));
    await redis.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const baseIndex = args.indexOf("--base");
  const basePath = baseIndex === -1 ? undefined : args[baseIndex + 1];
  if (basePath === undefined) {
    throw new Error("usage: redis-claim-cost.js --base <dist/src/redis/index.js of the other build> [commitsPerBlock] [rounds] [--no-aof]");
  }
  const numbers = args.filter((arg, index) => !arg.startsWith("--") && index !== baseIndex + 1);
  await runRedisClaimCostBench(basePath, Number(numbers[0] ?? 200), Number(numbers[1] ?? 8), !args.includes("--no-aof"));
}
