/**
 * Startup time of the server, from spawn to the first RPC served:
 *
 *   node dist/bench/startup/startup.js [--repeat=9] [--models=100] [--versions=100] [--data-bytes=1024]
 *
 * Cases: (a) an empty archive; (b) an archive of models × versions archived
 * versions, written once on disk in the original's layout (startup-archive.ts);
 * (c) in that archive, the first RetrieveVersionInfos of one model (its
 * versions are read from disk on first use), with a second call for contrast.
 * Also the spawn-to-exit time of `node -e 0`, the floor under any Node server.
 * The runs are interleaved (a, b, baseline, a, b, ...) after one discarded
 * warm-up run of each, and each waits (a bounded time) for a quiet machine.
 * The archive's files are in the page cache (it was just written): these are
 * warm-cache figures. Prints one JSON line per figure, then a Markdown table;
 * exits 1 if the server failed to serve the big archive as written.
 */
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeTempDir, trackTempDir } from "../support/cleanup.js";
import { machineInfo } from "../support/machine-info.js";
import { percentile } from "../support/percentiles.js";
import { waitForQuietMachine } from "../support/quiet-machine.js";
import { type GeneratedArchive, generateArchive, modelIdOf } from "./startup-archive.js";
import { type StartupProbe, nodeBaselineMs, probeStartup } from "./startup-probe.js";

const START_TIMEOUT_MS = 60_000;
const QUIET_BUSY_CORES = 0.5;
const QUIET_WAIT_MS = 5000;

interface StartupOptions {
  readonly repeat: number;
  readonly models: number;
  readonly versions: number;
  readonly dataBytes: number;
}

function parseArgs(argv: readonly string[]): StartupOptions {
  const values: Record<string, number> = { repeat: 9, models: 100, versions: 100, "data-bytes": 1024 };
  for (const arg of argv) {
    const match = /^--(repeat|models|versions|data-bytes)=(\d+)$/.exec(arg);
    if (match === null) {
      throw new Error(`unknown argument "${arg}"; usage: node dist/bench/startup/startup.js [--repeat=9] [--models=100] [--versions=100] [--data-bytes=1024]`);
    }
    values[match[1] as string] = Number(match[2]);
  }
  const repeat = values.repeat ?? 9;
  if (repeat < 7 || repeat > 100) {
    throw new Error("--repeat: from 7 to 100");
  }
  return { repeat, models: values.models ?? 100, versions: values.versions ?? 100, dataBytes: values["data-bytes"] ?? 1024 };
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** Samples of one figure, by case. */
class Figures {
  readonly samples = new Map<string, number[]>();

  add(name: string, value: number | null): void {
    if (value === null) {
      return;
    }
    const list = this.samples.get(name);
    if (list === undefined) {
      this.samples.set(name, [value]);
    } else {
      list.push(value);
    }
  }
}

/** What the server serves from the generated archive must be what was written. */
async function checkBigArchive(probe: StartupProbe, archive: GeneratedArchive, modelId: string): Promise<string[]> {
  const problems: string[] = [];
  if (probe.warnings.length > 0) {
    problems.push(`server warnings: ${probe.warnings.slice(0, 3).join(" | ")}`);
  }
  const models: string[] = [];
  let handle = "";
  for (let page = 0; page < 100; page++) {
    const reply = await probe.client.retrieveModels({ models_count: 50, model_handle: handle });
    if (reply.model_infos.length === 0) {
      break;
    }
    models.push(...reply.model_infos.map((model) => model.model_id));
    handle = reply.next_model_handle;
  }
  if (models.length !== archive.modelIds.length || models.some((id, i) => id !== archive.modelIds[i])) {
    problems.push(`RetrieveModels listed ${models.length} models, ${archive.modelIds.length} were written`);
  }
  const infos = probe.versionInfos ?? [];
  if (infos.length !== archive.versions / archive.modelIds.length) {
    problems.push(`model "${modelId}" has ${infos.length} versions, ${archive.versions / archive.modelIds.length} were written`);
  }
  for (const expected of archive.samples.get(modelId) ?? []) {
    const info = infos.find((v) => v.version_number === expected.versionNumber);
    if (
      info === undefined ||
      info.data_hash !== expected.hash ||
      info.data_size !== String(expected.size) ||
      info.creation_timestamp !== expected.creationTimestampNs ||
      info.user_data.step !== expected.step ||
      !info.archived
    ) {
      problems.push(`model "${modelId}" v${expected.versionNumber}: served ${JSON.stringify(info ?? null)}, written ${JSON.stringify(expected)}`);
      continue;
    }
    const data = await probe.client.retrieveData(modelId, expected.versionNumber);
    if (createHash("sha256").update(data).digest("base64") !== expected.hash) {
      problems.push(`model "${modelId}" v${expected.versionNumber}: data does not hash to data_hash`);
    }
  }
  return problems;
}

function markdownTable(rows: readonly { name: string; median: number | null; p90: number | null; min: number; max: number; runs: number }[]): string {
  const f = (value: number | null): string => (value === null ? "-" : value.toFixed(1));
  return [
    "| measurement | median | p90 | min | max | runs |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((row) => `| ${row.name} | ${f(row.median)} | ${f(row.p90)} | ${f(row.min)} | ${f(row.max)} | ${row.runs} |`),
  ].join("\n");
}

const LABELS: Record<string, string> = {
  "baseline.nodeSpawnToExitMs": "`node -e 0`, spawn to exit (ms)",
  "empty.spawnToFirstRpcMs": "(a) empty archive: spawn to first RPC (ms)",
  "empty.spawnToServingLogMs": "(a) empty archive: spawn to \"serving\" log line (ms)",
  "empty.rssAtFirstRpcMiB": "(a) empty archive: RSS at first RPC (MiB)",
  "big.spawnToFirstRpcMs": "(b) big archive: spawn to first RPC (ms)",
  "big.spawnToServingLogMs": "(b) big archive: spawn to \"serving\" log line (ms)",
  "big.rssAtFirstRpcMiB": "(b) big archive: RSS at first RPC (MiB)",
  "big.firstVersionInfosMs": "(c) big archive: first RetrieveVersionInfos of a model (ms)",
  "big.secondVersionInfosMs": "(c) big archive: second RetrieveVersionInfos, same model (ms)",
  "big.pollAttempts": "(b) big archive: poll attempts before the first success",
};

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const bigDir = mkdtempSync(join(tmpdir(), "registry-startup-big-"));
  trackTempDir(bigDir);
  const figures = new Figures();
  const problems: string[] = [];
  const busy: number[] = [];
  try {
    log(`writing ${options.models} models × ${options.versions} versions of ${options.dataBytes} bytes to ${bigDir}`);
    const archive = await generateArchive(bigDir, options.models, options.versions, options.dataBytes);
    log(`  ${archive.versions} versions written in ${archive.seconds.toFixed(1)} s`);

    const runEmpty = async (record: boolean): Promise<void> => {
      const emptyDir = mkdtempSync(join(tmpdir(), "registry-startup-empty-"));
      trackTempDir(emptyDir);
      try {
        const { probe } = await probeStartup({ archiveDir: emptyDir, timeoutMs: START_TIMEOUT_MS });
        if (record) {
          figures.add("empty.spawnToFirstRpcMs", probe.spawnToFirstRpcMs);
          figures.add("empty.spawnToServingLogMs", probe.spawnToServingLogMs);
          figures.add("empty.rssAtFirstRpcMiB", probe.rssAtFirstRpcMiB);
        }
      } finally {
        removeTempDir(emptyDir);
      }
    };
    const runBig = async (record: boolean, run: number): Promise<void> => {
      // A different model each run: none of them was read by an earlier server (each run is a new process anyway).
      const modelId = modelIdOf((run * 37) % options.models);
      const { probe, extra } = await probeStartup({ archiveDir: bigDir, timeoutMs: START_TIMEOUT_MS, modelId }, (p) =>
        run === 0 ? checkBigArchive(p, archive, modelId) : Promise.resolve([]),
      );
      problems.push(...extra);
      if (record) {
        figures.add("big.spawnToFirstRpcMs", probe.spawnToFirstRpcMs);
        figures.add("big.spawnToServingLogMs", probe.spawnToServingLogMs);
        figures.add("big.rssAtFirstRpcMiB", probe.rssAtFirstRpcMiB);
        figures.add("big.firstVersionInfosMs", probe.firstVersionInfosMs);
        figures.add("big.secondVersionInfosMs", probe.secondVersionInfosMs);
        figures.add("big.pollAttempts", probe.attempts);
      }
    };
    const quiet = async (): Promise<void> => {
      busy.push((await waitForQuietMachine(QUIET_BUSY_CORES, QUIET_WAIT_MS, 250)).busyCores);
    };

    log("warm-up runs (not counted)");
    await runBig(false, 0);
    await runEmpty(false);
    await nodeBaselineMs();
    for (let run = 1; run <= options.repeat; run++) {
      log(`run ${run} of ${options.repeat}`);
      await quiet();
      await runEmpty(true);
      await quiet();
      await runBig(true, run);
      await quiet();
      figures.add("baseline.nodeSpawnToExitMs", await nodeBaselineMs());
    }

    const rows = [...figures.samples.entries()].map(([name, values]) => ({
      name: LABELS[name] ?? name,
      key: name,
      median: percentile(values, 50),
      p90: percentile(values, 90),
      min: Math.min(...values),
      max: Math.max(...values),
      runs: values.length,
      samples: values,
    }));
    const round = (value: number | null): number | null => (value === null ? null : Math.round(value * 10) / 10);
    const machine = machineInfo();
    for (const row of rows) {
      const [kase, metric] = row.key.split(".");
      process.stdout.write(
        `${JSON.stringify({
          bench: "startup",
          case: kase,
          metric,
          median: round(row.median),
          p90: round(row.p90),
          min: round(row.min),
          max: round(row.max),
          runs: row.runs,
          samples: row.samples.map(round),
          archive: kase === "big" ? { models: options.models, versionsPerModel: options.versions, dataBytes: options.dataBytes } : undefined,
        })}\n`,
      );
    }
    process.stdout.write(
      `${JSON.stringify({
        bench: "startup",
        case: "meta",
        machine,
        busyCoresBeforeRuns: { median: round(percentile(busy, 50)), max: round(Math.max(...busy)) },
        archiveWriteSeconds: round(archive.seconds),
        problems,
      })}\n\n`,
    );
    process.stdout.write(
      `Startup on ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}; big archive: ${options.models} models × ${options.versions} versions × ${options.dataBytes} B (page cache warm)\n\n`,
    );
    process.stdout.write(`${markdownTable(rows)}\n`);
    if (problems.length > 0) {
      process.stdout.write(`\nThe big archive was not served as written:\n${problems.map((p) => `- ${p}`).join("\n")}\n`);
    }
    process.exitCode = problems.length === 0 ? 0 : 1;
  } finally {
    removeTempDir(bigDir);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`startup: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
