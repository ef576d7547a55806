/**
 * What reading the model's generation at an upload's begin costs: RedisRegistryStore.getModel (one
 * HGET, the lookup before this change) against getModelAndGeneration (HGET and GET pipelined, one
 * round trip), timed alone against one local redis-server without persistence (reads only). Blocks of
 * lookups alternate between the two, the order flipped each round; per block the wall time per
 * lookup (median), this process's CPU and Redis's CPU (`INFO cpu`) per lookup.
 * Standalone: `npm run build && npx node dist/bench/micro/redis-model-lookup.js [lookupsPerBlock] [rounds]`.
 */
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { RedisRegistryStore } from "../../src/redis/index.js";
import { startRedisServer } from "../../test/support/redis-server.js";

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function loadAverage(): Promise<string> {
  return (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
}

async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info("cpu");
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
  return field("used_cpu_user") + field("used_cpu_sys");
}

export async function runRedisModelLookupBench(lookupsPerBlock: number, rounds: number): Promise<void> {
  const redis = await startRedisServer(undefined, { appendOnly: false });
  const admin = new Redis(redis.url);
  const store = RedisRegistryStore.create(redis.url, { expirationMs: 0 });
  try {
    await store.connection.waitUntilHealthy(10_000);
    const modelId = "lookup-cost";
    await store.putModel({ modelId, userData: { a: "b" } });
    const lookups: Record<string, () => Promise<unknown>> = {
      getModel: () => store.getModel(modelId),
      getModelAndGeneration: () => store.getModelAndGeneration(modelId),
    };
    const block = async (lookup: () => Promise<unknown>): Promise<{ wallUs: number; clientCpuUs: number; redisCpuUs: number }> => {
      const times: number[] = [];
      const redisBefore = await redisCpuSeconds(admin);
      const cpuBefore = process.cpuUsage();
      for (let i = 0; i < lookupsPerBlock; i++) {
        const start = process.hrtime.bigint();
        await lookup();
        times.push(Number(process.hrtime.bigint() - start) / 1e3);
      }
      const cpu = process.cpuUsage(cpuBefore);
      const redisCpu = (await redisCpuSeconds(admin)) - redisBefore;
      return { wallUs: median(times), clientCpuUs: (cpu.user + cpu.system) / lookupsPerBlock, redisCpuUs: (redisCpu * 1e6) / lookupsPerBlock };
    };
    for (const lookup of Object.values(lookups)) {
      await block(lookup); // warm-up
    }
    console.log(`# ${new Date().toISOString()} lookupsPerBlock=${lookupsPerBlock} rounds=${rounds} load ${await loadAverage()}`);
    const all = new Map<string, { wallUs: number; clientCpuUs: number; redisCpuUs: number }[]>(Object.keys(lookups).map((name) => [name, []]));
    for (let round = 0; round < rounds; round++) {
      const names = Object.keys(lookups);
      const order = round % 2 === 0 ? names : [...names].reverse();
      const line: string[] = [];
      for (const name of order) {
        const result = await block(lookups[name] as () => Promise<unknown>);
        all.get(name)?.push(result);
        line.push(`${name} p50 ${result.wallUs.toFixed(1)} µs, CPU ${result.clientCpuUs.toFixed(1)} + Redis ${result.redisCpuUs.toFixed(1)} µs`);
      }
      console.log(`round ${round + 1}: ${line.join(" | ")} | load ${await loadAverage()}`);
    }
    for (const [name, results] of all) {
      const m = (pick: (r: { wallUs: number; clientCpuUs: number; redisCpuUs: number }) => number): string => median(results.map(pick)).toFixed(1);
      console.log(`median of rounds, ${name}: p50 ${m((r) => r.wallUs)} µs, CPU ${m((r) => r.clientCpuUs)} µs, Redis CPU ${m((r) => r.redisCpuUs)} µs per lookup`);
    }
  } finally {
    await store.close();
    admin.disconnect();
    await redis.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const numbers = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
  await runRedisModelLookupBench(Number(numbers[0] ?? 2000), Number(numbers[1] ?? 8));
}
