/**
 * What COGMENT_MODEL_REGISTRY_REDIS_WAIT_REPLICAS=1 adds to a commit: RedisRegistryStore.commitVersion
 * (the commit script of a version without data, as an archived version's) timed alone, with a store
 * that does not wait and one that sends `WAIT 1 1000` after each commit, against one local primary
 * and one replica (`--replicaof`), both with the recommended `appendonly yes`, `appendfsync always`
 * (and, with `--no-aof`, without persistence: the WAIT's round trip and replication alone). Blocks of
 * commits alternate between the two stores, the order flipped each round; medians per round and over
 * all. Standalone: `npm run build && npx node dist/bench/micro/redis-wait-cost.js [commitsPerBlock] [rounds] [--no-aof]`.
 */
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { RedisRegistryStore } from "../../src/redis/index.js";
import { startRedisServer } from "../../test/support/redis-server.js";

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function loadAverage(): Promise<string> {
  return (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
}

export async function runRedisWaitCostBench(commitsPerBlock: number, rounds: number, appendOnly: boolean): Promise<void> {
  const primary = await startRedisServer(undefined, { appendOnly });
  const replica = await startRedisServer(undefined, { appendOnly, extraArgs: ["--replicaof", "127.0.0.1", String(primary.port)] });
  const admin = new Redis(primary.url);
  const stores = new Map<string, RedisRegistryStore>();
  try {
    while (!/^slave0:.*state=online/m.test(await admin.info("replication"))) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const replicas of [0, 1]) {
      const store = RedisRegistryStore.create(primary.url, { expirationMs: 0, waitReplicas: replicas, waitTimeoutMs: 1000 });
      await store.connection.waitUntilHealthy(10_000);
      stores.set(`n=${replicas}`, store);
    }
    const model = "wait-cost";
    const { generation } = await (stores.get("n=0") as RedisRegistryStore).putModel({ modelId: model, userData: {} });
    const commit = async (store: RedisRegistryStore): Promise<number> => {
      const start = process.hrtime.bigint();
      await store.commitVersion(
        { modelId: model, creationTimestamp: 1_700_000_000_000_000_000n, archived: true, dataHash: "h", dataSize: 0, userData: {} },
        generation,
      );
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    // Warm-up: scripts loaded, connections and AOF going.
    for (const store of stores.values()) {
      for (let i = 0; i < 20; i++) {
        await commit(store);
      }
    }
    const all = new Map<string, number[]>([...stores.keys()].map((name) => [name, []]));
    console.log(`# ${new Date().toISOString()} appendOnly=${appendOnly} commitsPerBlock=${commitsPerBlock} rounds=${rounds} load ${await loadAverage()}`);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ["n=0", "n=1"] : ["n=1", "n=0"];
      const medians: string[] = [];
      for (const name of order) {
        const store = stores.get(name) as RedisRegistryStore;
        const times: number[] = [];
        for (let i = 0; i < commitsPerBlock; i++) {
          times.push(await commit(store));
        }
        all.get(name)?.push(...times);
        medians.push(`${name} p50 ${quantile(times, 0.5).toFixed(3)} ms p90 ${quantile(times, 0.9).toFixed(3)} ms`);
      }
      console.log(`round ${round + 1}: ${medians.join(" | ")} | load ${await loadAverage()}`);
    }
    const summary = [...all].map(([name, times]) => `${name} p50 ${quantile(times, 0.5).toFixed(3)} ms p90 ${quantile(times, 0.9).toFixed(3)} ms (${times.length} commits)`);
    console.log(`all: ${summary.join(" | ")}`);
  } finally {
    await Promise.all([...stores.values()].map((store) => store.close()));
    admin.disconnect();
    await replica.close();
    await primary.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const numbers = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
  await runRedisWaitCostBench(Number(numbers[0] ?? 100), Number(numbers[1] ?? 6), !process.argv.includes("--no-aof"));
}
