/**
 * Runs the micro-benchmarks and the load scenarios in sequence, prints one
 * JSON line per measurement on stdout, then the medians as a Markdown table
 * and the goals check. Progress goes to stderr.
 *
 *   node dist/bench/run-all.js [group...] [--quick] [--repeat=N] [--reader-procs=N]
 *                              [--reader-window=BYTES] [--reader-client=http2|grpc-js] [--cpu-prof=DIR]
 *
 * Groups: sha256 (micro-benchmarks, with the in-place vs worker hash crossover), publish, hash, broadcast, scaling,
 * ceiling, metadata, window, s3 (archived versions in an S3 test server's bucket,
 * beside the directory), small, startup, archived (issue #15: small calls against the
 * registry and the bare grpc-js floor, start-up, first archived read after a restart),
 * tiny (memory after 100,000 tiny versions), cluster (issue #17: three instances on one Redis);
 * none = all. Environment equivalents:
 * BENCH_SCENARIOS=publish,broadcast  BENCH_QUICK=1  BENCH_REPEAT=3.
 * A full run takes about 5 minutes on 2 cores (plus up to 10 s per scenario
 * spent waiting for other processes to leave the CPUs idle); --quick under 1.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { type BenchRecord, aggregate, toJsonLine } from "./support/bench-record.js";
import { checkGoals, goalsMarkdown } from "./support/goals.js";
import { LOAD_GROUPS, defaultLoadOptions, loadScenarios, runLoadEntries } from "./load/load.js";
import { machineInfo } from "./support/machine-info.js";
import { runSha256Bench } from "./micro/sha256.bench.js";
import { runHashCrossoverBench } from "./micro/hash-crossover.bench.js";
import { defaultTinyVersionsOptions, runTinyVersionsBench } from "./memory/tiny-versions.js";
import type { LoadOptions } from "./load/scenario-support.js";
import type { PublisherClient, ReaderClient } from "./load/generator-protocol.js";
import { summaryTable } from "./support/summary-table.js";

const GROUPS: readonly string[] = ["sha256", ...LOAD_GROUPS, "tiny"];

interface CliOptions {
  readonly groups: readonly string[];
  readonly quick: boolean;
  readonly repeat: number;
  readonly readerProcs: number | undefined;
  readonly readerWindowBytes: number | undefined;
  readonly cpuProfileDir: string | undefined;
  readonly readerClient: ReaderClient | undefined;
  readonly publisherClient: PublisherClient | undefined;
}

function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): CliOptions {
  const flag = (name: string): string | undefined => {
    const prefix = `--${name}=`;
    return argv.find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
  };
  const positiveInt = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) {
      return undefined;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(`${name}=${value}: expected a non-negative integer`);
    }
    return n;
  };
  const positional = argv.filter((arg) => !arg.startsWith("--"));
  const groups = positional.length > 0 ? positional : (env.BENCH_SCENARIOS ?? "").split(",").filter((g) => g !== "");
  for (const group of groups) {
    if (!GROUPS.includes(group)) {
      throw new Error(`unknown scenario group "${group}": expected one of ${GROUPS.join(", ")}`);
    }
  }
  const cpuProf = flag("cpu-prof");
  const readerClient = flag("reader-client");
  if (readerClient !== undefined && readerClient !== "http2" && readerClient !== "grpc-js") {
    throw new Error(`--reader-client=${readerClient}: expected http2 or grpc-js`);
  }
  const publisherClient = flag("publisher-client") ?? env.BENCH_PUBLISHER_CLIENT;
  if (publisherClient !== undefined && publisherClient !== "http2" && publisherClient !== "grpc-js") {
    throw new Error(`--publisher-client=${publisherClient}: expected http2 or grpc-js`);
  }
  return {
    groups,
    quick: argv.includes("--quick") || env.BENCH_QUICK === "1",
    repeat: Math.max(1, positiveInt("--repeat", flag("repeat") ?? env.BENCH_REPEAT) ?? 1),
    readerProcs: positiveInt("--reader-procs", flag("reader-procs")),
    readerWindowBytes: positiveInt("--reader-window", flag("reader-window")),
    cpuProfileDir: cpuProf === undefined ? undefined : resolve(cpuProf),
    readerClient,
    publisherClient,
  };
}

async function main(): Promise<void> {
  const cli = parseArgs(process.argv.slice(2), process.env);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const defaults = defaultLoadOptions(cli.quick, log);
  const options: LoadOptions = {
    ...defaults,
    readerProcs: cli.readerProcs ?? defaults.readerProcs,
    readerWindowBytes: cli.readerWindowBytes ?? defaults.readerWindowBytes,
    readerClient: cli.readerClient ?? defaults.readerClient,
    publisherClient: cli.publisherClient,
    cpuProfileDir: cli.cpuProfileDir,
  };
  if (options.cpuProfileDir !== undefined) {
    mkdirSync(options.cpuProfileDir, { recursive: true });
  }
  const wanted = (group: string): boolean => cli.groups.length === 0 || cli.groups.includes(group);
  const entries = loadScenarios(options).filter((entry) => wanted(entry.group));
  const startedAt = Date.now();
  const all: BenchRecord[] = [];
  const failures: string[] = [];
  const print = (record: BenchRecord, repeat: number): void => {
    all.push(record);
    process.stdout.write(`${toJsonLine(record, cli.repeat > 1 ? { repeat } : {})}\n`);
  };

  for (let repeat = 1; repeat <= cli.repeat; repeat++) {
    if (cli.repeat > 1) {
      log(`## repeat ${repeat} of ${cli.repeat}`);
    }
    if (wanted("sha256")) {
      log("# sha256 and copy micro-benchmarks");
      for (const record of await runSha256Bench({ quick: cli.quick })) {
        print(record, repeat);
      }
      log("# hash in place vs on the worker pool: main-thread CPU per hash");
      for (const record of await runHashCrossoverBench({ quick: cli.quick })) {
        print(record, repeat);
      }
    }
    const run = await runLoadEntries(entries, options, (record) => print(record, repeat));
    failures.push(...run.failures);
    if (wanted("tiny")) {
      log("# tiny versions: memory after a burst of 16-byte versions");
      print(await runTinyVersionsBench(defaultTinyVersionsOptions(cli.quick), log), repeat);
    }
  }

  const medians = aggregate(all);
  const machine = machineInfo();
  process.stdout.write(`\n${summaryTable(medians, machine, cli.repeat)}\n\n`);
  process.stdout.write(`Goals:\n${goalsMarkdown(checkGoals(medians))}\n`);
  if (failures.length > 0) {
    process.stdout.write(`\nFailed scenarios:\n${failures.map((f) => `- ${f}`).join("\n")}\n`);
  }
  log(`done in ${Math.round((Date.now() - startedAt) / 1000)} s`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`run-all: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
