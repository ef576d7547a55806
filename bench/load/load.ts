/**
 * The end-to-end load benchmark over real gRPC on 127.0.0.1: the list of
 * scenarios (each one on a fresh server process) and a CLI to run them alone:
 *
 *   node dist/bench/load/load.js [group...] [--quick]
 *
 * Groups: publish, hash, broadcast, scaling, ceiling, metadata, window, s3 (archived versions
 * in an S3 test server's bucket, beside the directory), and issue #15's small (small calls
 * against the registry and the bare grpc-js floor, 4 publishers of 1 MiB), startup (spawn to
 * first served RPC) and archived (first read after a restart); cluster (issue #17: the 16 MiB
 * broadcast through three instances on one Redis, beside one instance).
 * run-all.ts runs these plus the micro-benchmarks and prints the summary table.
 *
 * Load generators are child processes (load-generator.ts); the thread that
 * runs this file only starts servers, times windows and reads /proc.
 * Checking that the generators are not the bottleneck: every record carries
 * the server's and the generators' CPU use (cores) and the share of the
 * published versions the readers fetched; the reference broadcast puts its 8
 * readers in REFERENCE_READER_PROCS processes, the fewest at which they keep
 * up, and the "scaling" group reruns it with the readers in 1 and 2 processes
 * to show what happens when they do not. It also reruns it with the stock
 * grpc-js client reading the data, to show what the lean reader saves.
 */
import { pathToFileURL } from "node:url";
import { type BenchRecord, DISTURBED_OTHER_CORES, toJsonLine } from "../support/bench-record.js";
import { REFERENCE_READER_PROCS } from "../support/goals.js";
import { waitForQuietMachine } from "../support/quiet-machine.js";
import { type BroadcastScenario, runBroadcast } from "./scenario-broadcast.js";
import { runCeiling } from "./scenario-ceiling.js";
import { runMetadata } from "./scenario-metadata.js";
import { runArchive, runFetchArchived } from "./scenario-archive.js";
import { runPublish } from "./scenario-publish.js";
import type { LoadOptions } from "./scenario-support.js";
import { runArchivedRead } from "./scenario-archived-read.js";
import { runSmallCalls, smallCallClient } from "./scenario-small.js";
import { runStartup } from "./scenario-startup.js";
import { runWindow } from "./scenario-window.js";
import { GIB, MIB } from "../support/server-process.js";

export const LOAD_GROUPS = ["publish", "hash", "broadcast", "scaling", "ceiling", "metadata", "window", "s3", "small", "startup", "archived", "cluster"] as const;
export type LoadGroup = (typeof LOAD_GROUPS)[number];

export interface ScenarioEntry {
  readonly group: LoadGroup;
  readonly label: string;
  /** `earlier`: the records measured before this one in the same run. */
  run(earlier: readonly BenchRecord[]): Promise<BenchRecord[]>;
}

/** The 16 small-call clients run in this many load-generator processes. */
export const SMALL_CLIENT_PROCS = 2;

/** 8 MiB, as a tuned client sets it: with grpc-js's default 64 KiB window the client, not the server, caps each download. */
export const DEFAULT_READER_WINDOW_BYTES = 8 * MIB;

export function defaultLoadOptions(quick: boolean, log: (line: string) => void): LoadOptions {
  return {
    quick,
    warmupMs: quick ? 1000 : 1500,
    measureMs: quick ? 3000 : 8000,
    readerProcs: REFERENCE_READER_PROCS,
    readerWindowBytes: DEFAULT_READER_WINDOW_BYTES,
    readerClient: "http2",
    cpuProfileDir: undefined,
    quietWaitMs: quick ? 0 : 10_000,
    log,
  };
}

export function loadScenarios(options: LoadOptions): ScenarioEntry[] {
  const entries: ScenarioEntry[] = [];
  const add = (group: LoadGroup, label: string, run: (earlier: readonly BenchRecord[]) => Promise<BenchRecord | BenchRecord[]>): void => {
    entries.push({ group, label, run: async (earlier) => [await run(earlier)].flat() });
  };
  const quick = options.quick;

  for (const mib of quick ? [16] : [1, 16]) {
    add("publish", `publish ${mib} MiB`, () => runPublish(options, { versionBytes: mib * MIB }));
  }
  for (const sha256 of ["node-crypto", "hash-wasm"] as const) {
    add("hash", `publish 16 MiB via launcher, ${sha256}`, () => runPublish(options, { versionBytes: 16 * MIB, sha256 }));
  }

  const broadcasts: BroadcastScenario[] = [];
  for (const publishIntervalMs of quick ? [0] : [0, 200]) {
    for (const readers of quick ? [8] : [8, 32]) {
      for (const mode of ["poll", "update"] as const) {
        broadcasts.push({ versionBytes: 16 * MIB, readers, mode, publishIntervalMs });
      }
    }
  }
  // Eviction under fan-out: a budget the publisher fills in a few seconds.
  for (const mode of quick ? [] : (["poll", "update"] as const)) {
    broadcasts.push({ versionBytes: 16 * MIB, readers: 8, mode, publishIntervalMs: 0, cacheMaxBytes: 256 * MIB });
  }
  for (const scenario of broadcasts) {
    add("broadcast", describeBroadcast(scenario), () => runBroadcast(options, scenario));
  }
  if (!quick) {
    for (const mode of ["poll", "update"] as const) {
      for (const readerProcs of [1, 2]) {
        const scenario: BroadcastScenario = { versionBytes: 16 * MIB, readers: 8, mode, publishIntervalMs: 0, readerProcs };
        add("scaling", `${describeBroadcast(scenario)}, readers in ${readerProcs} process(es)`, () => runBroadcast(options, scenario));
      }
      // The same load read through the stock grpc-js client instead of the lean node:http2 reader.
      const stock: BroadcastScenario = { versionBytes: 16 * MIB, readers: 8, mode, publishIntervalMs: 0, readerClient: "grpc-js" };
      add("scaling", `${describeBroadcast(stock)}, grpc-js reader client`, () => runBroadcast(options, stock));
    }
  }

  // Issue #17: three instances on one Redis (publisher on A, readers over A, B, C) beside one instance.
  for (const mode of ["poll", "update"] as const) {
    for (const instances of [1, 3]) {
      const scenario: BroadcastScenario = { versionBytes: 16 * MIB, readers: 8, mode, publishIntervalMs: 0, instances };
      add("cluster", `${describeBroadcast(scenario)}, ${instances === 1 ? "single mode" : `${instances} instances on Redis`}`, () =>
        runBroadcast(options, scenario),
      );
    }
  }
  for (const connections of quick ? [1] : [1, 8]) {
    add("ceiling", `raw TCP, ${connections} connection(s)`, (earlier) =>
      runCeiling({ bytes: ceilingBytes(earlier, options), connections }),
    );
  }
  add("metadata", "metadata, 16 clients", () => runMetadata(options, { clients: 16, clientProcs: 2 }));
  // BENCH_SMALL_CALLS=create-version,publish,...: only these small-group scenarios (all by default).
  const smallCalls = process.env.BENCH_SMALL_CALLS?.split(",").filter((call) => call !== "");
  const client = smallCallClient();
  for (const call of ["infos", "create-version", "create-model"] as const) {
    if (smallCalls !== undefined && smallCalls.length > 0 && !smallCalls.includes(call)) {
      continue;
    }
    for (const server of ["registry", "floor"] as const) {
      add("small", `small calls: ${call}, 16 ${client} clients, ${server}`, () =>
        runSmallCalls(options, { call, server, client, clients: 16, clientProcs: SMALL_CLIENT_PROCS, bodyBytes: call === "create-version" ? 1024 : 0 }),
      );
    }
  }
  if (smallCalls === undefined || smallCalls.length === 0 || smallCalls.includes("publish")) {
    // The lean node:http2 publisher by default: 4 grpc-js clients cost the 2-core box more CPU per GB than the server.
    const publisherClient = options.publisherClient ?? "http2";
    // BENCH_PUBLISH_CACHE_MIB=512: a budget the cache fills within the window (1 GiB by default).
    const cacheMiB = Number(process.env.BENCH_PUBLISH_CACHE_MIB ?? "0");
    const cacheMaxBytes = cacheMiB > 0 ? cacheMiB * MIB : undefined;
    add("small", `publish 1 MiB, 4 publishers, ${publisherClient} publisher client`, () =>
      runPublish(options, { versionBytes: MIB, publishers: 4, publisherClient, cacheMaxBytes }),
    );
    if (options.publisherClient === undefined) {
      // Unless a client was chosen: the same load from grpc-js clients, in the same run, for comparison
      // (the goal is checked on the lean client's record).
      add("small", "publish 1 MiB, 4 publishers, grpc-js publisher client", () =>
        runPublish(options, { versionBytes: MIB, publishers: 4, publisherClient: "grpc-js", cacheMaxBytes }),
      );
    }
  }
  add("startup", "startup: spawn to first served RPC, empty and 10k archived versions, with references", () =>
    runStartup(options, { runs: quick ? 3 : 9, models: 100, versions: 100 }),
  );
  add("archived", "first read of archived 64 MiB versions after a restart", () =>
    runArchivedRead(options, { versionBytes: 64 * MIB, versions: quick ? 1 : 3 }),
  );
  for (const serverWindowBytes of [0, 8 * MIB] as const) {
    add("window", `window ${serverWindowBytes === 0 ? "before (64 KiB)" : "after (8 MiB)"}`, () =>
      runWindow(options, { versionBytes: (quick ? 16 : 64) * MIB, delayMs: 5, serverWindowBytes }),
    );
  }
  // The archive directory beside a bucket of the S3 test server (s3rver on loopback).
  for (const store of ["directory", "s3"] as const) {
    add("s3", `archive 16 MiB, ${store}`, () => runArchive(options, { store, versionBytes: 16 * MIB }));
  }
  for (const store of ["directory", "s3"] as const) {
    add("s3", `fetch-archived 64 MiB, ${store}`, () => runFetchArchived(options, { store, versionBytes: 64 * MIB }));
  }
  return entries;
}

function describeBroadcast(scenario: BroadcastScenario): string {
  const pace = scenario.publishIntervalMs === 0 ? "back to back" : `every ${scenario.publishIntervalMs} ms`;
  const budget = scenario.cacheMaxBytes === undefined ? "" : `, ${scenario.cacheMaxBytes / MIB} MiB cache`;
  return `broadcast ${scenario.mode}, ${scenario.versionBytes / MIB} MiB ${pace}, ${scenario.readers} readers${budget}`;
}

/** The byte volume the broadcast scenarios moved in their window (the largest), or a default. */
function ceilingBytes(earlier: readonly BenchRecord[], options: LoadOptions): number {
  let bytes = 0;
  for (const record of earlier) {
    const mbps = record.metrics.deliveredMBps;
    if (record.scenario.startsWith("broadcast-") && typeof mbps === "number") {
      bytes = Math.max(bytes, mbps * 1e6 * (options.measureMs / 1000));
    }
  }
  return bytes > 0 ? Math.ceil(bytes) : options.quick ? GIB : 4 * GIB;
}

export async function runLoadEntries(
  entries: readonly ScenarioEntry[],
  options: LoadOptions,
  onRecord: (record: BenchRecord) => void,
  earlier: BenchRecord[] = [],
): Promise<{ records: BenchRecord[]; failures: string[] }> {
  const failures: string[] = [];
  for (const entry of entries) {
    const quiet = await waitForQuietMachine(DISTURBED_OTHER_CORES, options.quietWaitMs);
    const note = quiet.waitedMs > 1000 ? ` (waited ${Math.round(quiet.waitedMs / 1000)} s for a quiet machine; others use ${quiet.busyCores.toFixed(2)} cores)` : "";
    options.log(`# ${entry.label}${note}`);
    try {
      for (const record of await entry.run(earlier)) {
        earlier.push(record);
        onRecord(record);
      }
    } catch (error) {
      const message = `${entry.label}: ${error instanceof Error ? error.message : String(error)}`;
      failures.push(message);
      options.log(`FAILED ${message}`);
    }
  }
  return { records: earlier, failures };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const options = defaultLoadOptions(args.includes("--quick"), (line) => process.stderr.write(`${line}\n`));
  const groups = args.filter((arg) => !arg.startsWith("--"));
  const entries = loadScenarios(options).filter((entry) => groups.length === 0 || groups.includes(entry.group));
  const { failures } = await runLoadEntries(entries, options, (record) => process.stdout.write(`${toJsonLine(record)}\n`));
  process.exitCode = failures.length === 0 ? 0 : 1;
}
