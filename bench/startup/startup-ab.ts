/**
 * Paired start-up A/B: this build's bundle against another server main file (a base build),
 * alternated run by run, both cases (an empty archive, a generated archive of archived versions):
 *
 *   node dist/bench/startup/startup-ab.js --base=/path/to/dist/bundle/main.js [--side=<name>=<main file>]… [--repeat=9] [--models=100] [--versions=100]
 *
 * (`--side` adds more servers to the rotation, e.g. an intermediate commit's build.)
 *
 * Each side has its own copy of the generated archive (each side's server leaves its own model
 * journal in it). One discarded warm-up start per side and case. Prints the samples, the medians
 * (with each pair's difference to base and the wins), the server's main-thread CPU time at the first
 * call (less swayed by other work than the wall time), the time to the "model registry serving" line
 * (the model listing done: what calls that need the models wait for) and the "others" CPU load seen
 * before each start (waitForQuietMachine).
 */
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { removeTempDir, trackTempDir } from "../support/cleanup.js";
import { machineInfo } from "../support/machine-info.js";
import { median } from "../support/percentiles.js";
import { waitForQuietMachine } from "../support/quiet-machine.js";
import { generateArchive } from "./startup-archive.js";
import { probeStartup } from "./startup-probe.js";

const HEAD_MAIN_FILE = fileURLToPath(new URL("../../bundle/main.js", import.meta.url));
const START_TIMEOUT_MS = 60_000;

function parseArgs(argv: readonly string[]): { base: string; sides: Record<string, string>; repeat: number; models: number; versions: number } {
  const options = { base: "", sides: {} as Record<string, string>, repeat: 9, models: 100, versions: 100 };
  for (const arg of argv) {
    const match = /^--(base|side|repeat|models|versions)=(.+)$/.exec(arg);
    if (match === null) {
      throw new Error(`unknown argument "${arg}"; usage: startup-ab.js --base=<main file> [--side=<name>=<main file>]… [--repeat=9] [--models=100] [--versions=100]`);
    }
    if (match[1] === "base") {
      options.base = match[2] as string;
    } else if (match[1] === "side") {
      const [name, file] = (match[2] as string).split(/=(.*)/s);
      if (name === undefined || file === undefined || name === "" || file === "" || name === "base" || name === "head") {
        throw new Error(`--side=<name>=<main file>, a name other than base and head: "${arg}"`);
      }
      options.sides[name] = file;
    } else {
      options[match[1] as "repeat" | "models" | "versions"] = Number(match[2]);
    }
  }
  if (options.base === "") {
    throw new Error("--base=<main file of the server to compare with> is required");
  }
  return options;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const sides: Record<string, string> = { base: options.base, ...options.sides, head: HEAD_MAIN_FILE };
  const names = Object.keys(sides);
  const source = mkdtempSync(join(tmpdir(), "registry-startup-ab-"));
  trackTempDir(source);
  await generateArchive(source, options.models, options.versions, 1024);
  const bigDirs: Record<string, string> = Object.fromEntries(names.map((name) => [name, `${source}-${name}`]));
  for (const dir of Object.values(bigDirs)) {
    trackTempDir(dir);
    cpSync(source, dir, { recursive: true });
  }
  const samples = new Map<string, number[]>();
  const busy: number[] = [];
  const add = (name: string, value: number): void => void (samples.get(name) ?? samples.set(name, []).get(name))?.push(value);
  const cpu = new Map<string, number[]>();
  const serving = new Map<string, number[]>();
  const start = async (side: string, big: boolean): Promise<number> => {
    busy.push((await waitForQuietMachine(0.5, 5000, 250)).busyCores);
    const archiveDir = (big ? bigDirs[side] : undefined) ?? mkdtempSync(join(tmpdir(), "registry-startup-ab-empty-"));
    try {
      const { probe } = await probeStartup({ archiveDir, timeoutMs: START_TIMEOUT_MS, mainFile: sides[side], awaitServingLog: true });
      const name = `${big ? "big" : "empty"}.${side}`;
      (cpu.get(name) ?? cpu.set(name, []).get(name))?.push(probe.mainThreadCpuMsAtFirstRpc ?? Number.NaN);
      (serving.get(name) ?? serving.set(name, []).get(name))?.push(probe.spawnToServingLogMs ?? Number.NaN);
      return probe.spawnToFirstRpcMs;
    } finally {
      if (!big) {
        removeTempDir(archiveDir);
      }
    }
  };
  for (const side of names) {
    await start(side, false);
    await start(side, true);
  }
  for (let run = 1; run <= options.repeat; run++) {
    // Alternated, and the order rotated every run.
    const order = names.map((_, index) => names[(index + run) % names.length] as string);
    for (const big of [false, true]) {
      for (const side of order) {
        add(`${big ? "big" : "empty"}.${side}`, await start(side, big));
      }
    }
    process.stderr.write(`run ${run} of ${options.repeat}\n`);
  }
  for (const dir of [source, ...Object.values(bigDirs)]) {
    removeTempDir(dir);
  }
  const rows = [...samples.entries()].map(([name, values]) => {
    // The first value of each name is the warm-up's (discarded from `samples`).
    const cpuValues = (cpu.get(name) ?? []).slice(1);
    const servingValues = (serving.get(name) ?? []).slice(1);
    const baseValues = samples.get(name.replace(/\.[^.]+$/, ".base")) ?? [];
    const differences = values.map((value, index) => value - (baseValues[index] ?? Number.NaN));
    const baseCpuValues = (cpu.get(name.replace(/\.[^.]+$/, ".base")) ?? []).slice(1);
    const cpuDifferences = cpuValues.map((value, index) => value - (baseCpuValues[index] ?? Number.NaN));
    return {
      name,
      median: median(values),
      samples: values.map((v) => Number(v.toFixed(1))),
      pairedDifferenceMedian: median(differences),
      winsOverBase: differences.filter((difference) => difference < 0).length,
      mainThreadCpuMedian: median(cpuValues),
      pairedCpuDifferenceMedian: median(cpuDifferences),
      servingLogMedian: median(servingValues),
      mainThreadCpuSamples: cpuValues.map((v) => Number(v.toFixed(1))),
    };
  });
  console.log(JSON.stringify({ machine: machineInfo(), date: new Date().toISOString(), othersBusyCoresMedian: median(busy), othersBusyCoresMax: Math.max(...busy), rows }));
  console.log(
    "| case | side | median (ms) | min | max | runs | − base, paired median (wins) | main-thread CPU at the first call, median (ms) | CPU − base, paired median | \"serving\" line, median (ms) |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const row of rows) {
    const [kind, side] = row.name.split(".");
    const paired = side === "base" ? "" : `${row.pairedDifferenceMedian?.toFixed(1)} (${row.winsOverBase}/${row.samples.length})`;
    console.log(
      `| ${kind} | ${side} | ${row.median?.toFixed(1)} | ${Math.min(...row.samples).toFixed(1)} | ${Math.max(...row.samples).toFixed(1)} | ${row.samples.length} | ${paired} | ${row.mainThreadCpuMedian?.toFixed(1)} | ${side === "base" ? "" : row.pairedCpuDifferenceMedian?.toFixed(1)} | ${row.servingLogMedian?.toFixed(1)} |`,
    );
  }
  console.log(`others' load before each start: median ${median(busy)?.toFixed(2)} cores, max ${Math.max(...busy).toFixed(2)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
