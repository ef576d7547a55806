/**
 * Shared mode against single mode, judged over alternated rounds (issue #17):
 *
 *   npx node dist/bench/load/cluster-rounds.js [--rounds 5] [--measure-ms 12000] [--modes poll,update]
 *       [--intervals 0,2000] [--fsync always,everysec] [--redis redis,cluster] [--out results.jsonl]
 *       [--cpu-prof dir] [--base other-build/dist/bundle/main.js]
 *
 * For each reader mode and publish interval, every round runs single mode and shared mode (3
 * instances on Redis, once per AOF fsync policy) one after the other, in an order rotated from round
 * to round, so that a slow stretch of the shared machine falls on each configuration in turn. Each
 * run is the cluster broadcast (16 MiB versions, one publisher on A, 8 readers over A, B, C). The
 * comparison is made within a round (shared − single staleness, shared ÷ single CPU per GB), and
 * what is printed is the median of those per-round figures with their range (min–max): one noisy
 * run moves the range, not the median. A paced publisher (interval > 0, one version every
 * interval, slower than either mode can publish) measures staleness as propagation plus fetch,
 * without the queueing that back-to-back publishing adds when one mode publishes slower.
 * `--redis cluster` runs the shared side on a local Redis Cluster of three masters (configurations
 * `shared-<fsync>-cluster`) instead of, or beside (`redis,cluster`), one redis-server.
 */
import { appendFileSync } from "node:fs";
import { median } from "../support/percentiles.js";
import type { BenchRecord } from "../support/bench-record.js";
import { MIB } from "../support/server-process.js";
import { cleanupNow } from "../support/cleanup.js";
import type { ReaderMode } from "./generator-protocol.js";
import { defaultLoadOptions } from "./load.js";
import type { RedisAppendFsync, RedisTopology } from "./cluster-servers.js";
import { runBroadcast } from "./scenario-broadcast.js";
import { argument } from "../support/cli-argument.js";

/**
 * `-cluster`: the instances on a Redis Cluster of three masters; `@base`: the server bundle given by
 * --base (an A/B pair under one bench build).
 */
type SharedSetting = `shared-${RedisAppendFsync}` | `shared-${RedisAppendFsync}-cluster`;
type Config = "single" | SharedSetting | `${SharedSetting}@base`;

const rounds = Number(argument("rounds", "5"));
const measureMs = Number(argument("measure-ms", "12000"));
const modes = argument("modes", "poll,update").split(",") as ReaderMode[];
const intervals = argument("intervals", "0,2000").split(",").map(Number);
const fsyncs = argument("fsync", "always,everysec").split(",") as RedisAppendFsync[];
const topologies = argument("redis", "redis").split(",") as RedisTopology[];
if (topologies.some((topology) => topology !== "redis" && topology !== "cluster")) {
  throw new Error(`--redis takes redis, cluster or both (comma-separated), not ${topologies.join(",")}`);
}
const out = argument("out", "");
/** A directory for V8 CPU profiles of every server process (--cpu-prof), for investigations. */
const cpuProfileDir = argument("cpu-prof", "");
/** Another build's bundle (dist/bundle/main.js): each shared configuration also runs on it. */
const baseMainFile = argument("base", "");
const settings = fsyncs.flatMap((fsync) => topologies.map((topology): SharedSetting => (topology === "cluster" ? `shared-${fsync}-cluster` : `shared-${fsync}`)));
const configs: Config[] = ["single", ...settings.flatMap((setting): Config[] => (baseMainFile === "" ? [setting] : [setting, `${setting}@base`]))];

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const options = { ...defaultLoadOptions(false, log), measureMs, quietWaitMs: 0, cpuProfileDir: cpuProfileDir === "" ? undefined : cpuProfileDir };

function fmt(value: number | null | undefined, digits = 0): string {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

/** "median [min–max]" of the values. */
function spread(values: readonly number[], digits = 0): string {
  if (values.length === 0) {
    return "–";
  }
  return `${fmt(median(values), digits)} [${fmt(Math.min(...values), digits)}…${fmt(Math.max(...values), digits)}]`;
}

async function runOne(mode: ReaderMode, publishIntervalMs: number, config: Config): Promise<BenchRecord> {
  const [setting, build] = config.split("@") as [string, string | undefined];
  const [, fsync, topology] = (setting === "single" ? [] : setting.split("-")) as [string?, RedisAppendFsync?, "cluster"?];
  if (build === "base") {
    process.env.BENCH_SERVER_MAIN_FILE = baseMainFile;
  }
  try {
    return await runBroadcast(options, {
      versionBytes: 16 * MIB,
      readers: 8,
      mode,
      publishIntervalMs,
      ...(fsync === undefined ? {} : { instances: 3, appendfsync: fsync, redis: topology === "cluster" ? "cluster" : "redis" }),
    });
  } finally {
    delete process.env.BENCH_SERVER_MAIN_FILE;
  }
}

async function main(): Promise<void> {
  log(`cluster rounds: ${rounds} rounds × ${configs.join(", ")}; modes ${modes.join(",")}; intervals ${intervals.join(",")} ms; windows ${measureMs} ms; ${new Date().toISOString()}`);
  for (const mode of modes) {
    for (const interval of intervals) {
      const byConfig = new Map<Config, BenchRecord[]>(configs.map((config) => [config, []]));
      for (let round = 0; round < rounds; round++) {
        const order = configs.map((_, i) => configs[(i + round) % configs.length] as Config);
        for (const config of order) {
          const record = await runOne(mode, interval, config);
          byConfig.get(config)?.push(record);
          const m = record.metrics;
          log(
            `  ${mode} interval ${interval} round ${round + 1} ${config}: ${fmt(m.deliveredMBps)} MB/s, staleness p50 ${fmt(m.stalenessP50Ms)} ms, ` +
              `p99 ${fmt(m.stalenessP99Ms)} ms, CPU ${fmt(m.serverCpuSecPerGB, 3)} s/GB, publish p50 ${fmt(m.publishP50Ms)} ms, others ${fmt(m.otherCpuCores, 2)} cores, errors ${fmt(m.errors)}`,
          );
          if (out !== "") {
            appendFileSync(out, `${JSON.stringify({ mode, interval, round: round + 1, config, ...record.params, ...record.metrics })}\n`);
          }
        }
      }
      printSummary(mode, interval, byConfig);
    }
  }
}

function metric(records: readonly BenchRecord[], name: string): number[] {
  return records.map((record) => record.metrics[name]).filter((value): value is number => typeof value === "number");
}

function printSummary(mode: ReaderMode, interval: number, byConfig: ReadonlyMap<Config, readonly BenchRecord[]>): void {
  const single = byConfig.get("single") ?? [];
  const lines = [
    ``,
    `### ${mode}, ${interval === 0 ? "back to back" : `one version every ${interval} ms`} (${rounds} rounds, ${measureMs / 1000} s windows): median [min…max] over rounds`,
    ``,
    `| configuration | delivered MB/s | published /s | publish p50 ms | staleness p50 ms | staleness p99 ms | Δ staleness p50 vs single (per round) | CPU s/GB (servers + Redis) | × single (per round) | CPU s/GB A / B / C / redis (of which AOF rewrites) | others (cores) | errors |`,
    `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
  ];
  for (const [config, records] of byConfig) {
    const paired = records.map((record, i) => [record, single[i]] as const).filter((pair): pair is readonly [BenchRecord, BenchRecord] => pair[1] !== undefined);
    const delta = paired.flatMap(([shared, base]) =>
      typeof shared.metrics.stalenessP50Ms === "number" && typeof base.metrics.stalenessP50Ms === "number"
        ? [shared.metrics.stalenessP50Ms - base.metrics.stalenessP50Ms]
        : [],
    );
    const ratio = paired.flatMap(([shared, base]) =>
      typeof shared.metrics.serverCpuSecPerGB === "number" && typeof base.metrics.serverCpuSecPerGB === "number"
        ? [shared.metrics.serverCpuSecPerGB / base.metrics.serverCpuSecPerGB]
        : [],
    );
    const parts = ["A", "B", "C", "redis", "redisChildren"].map((part) => fmt(median(metric(records, `cpuSecPerGB_${part}`)), 3)).join(" / ").replace(/ \/ ([^/]*)$/, " ($1)");
    const errors = ["errors", "hashMismatches", "notFound"].reduce((total, name) => total + metric(records, name).reduce((a, b) => a + b, 0), 0);
    lines.push(
      `| ${config} | ${spread(metric(records, "deliveredMBps"))} | ${spread(metric(records, "publishedPerSec"), 2)} | ${spread(metric(records, "publishP50Ms"))} | ` +
        `${spread(metric(records, "stalenessP50Ms"))} | ${spread(metric(records, "stalenessP99Ms"))} | ${config === "single" ? "" : spread(delta)} | ` +
        `${spread(metric(records, "serverCpuSecPerGB"), 3)} | ${config === "single" ? "" : spread(ratio, 2)} | ${config === "single" ? "" : parts} | ` +
        `${spread(metric(records, "otherCpuCores"), 2)} | ${errors} |`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

main()
  .catch((error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  })
  .finally(() => cleanupNow());
