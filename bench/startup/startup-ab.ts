/**
 * Paired start-up A/B: this build's bundle against another server main file (a base build),
 * alternated run by run, both cases (an empty archive, a generated archive of archived versions):
 *
 *   node dist/bench/startup/startup-ab.js --base=/path/to/dist/bundle/main.js [--repeat=9] [--models=100] [--versions=100]
 *
 * Each side has its own copy of the generated archive (each side's server leaves its own model
 * journal in it). One discarded warm-up start per side and case. Prints the samples, the medians
 * and the "others" CPU load seen before each start (waitForQuietMachine).
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

function parseArgs(argv: readonly string[]): { base: string; repeat: number; models: number; versions: number } {
  const options = { base: "", repeat: 9, models: 100, versions: 100 };
  for (const arg of argv) {
    const match = /^--(base|repeat|models|versions)=(.+)$/.exec(arg);
    if (match === null) {
      throw new Error(`unknown argument "${arg}"; usage: startup-ab.js --base=<main file> [--repeat=9] [--models=100] [--versions=100]`);
    }
    if (match[1] === "base") {
      options.base = match[2] as string;
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
  const sides = { base: options.base, head: HEAD_MAIN_FILE } as const;
  const source = mkdtempSync(join(tmpdir(), "registry-startup-ab-"));
  trackTempDir(source);
  await generateArchive(source, options.models, options.versions, 1024);
  const bigDirs = { base: `${source}-base`, head: `${source}-head` };
  for (const dir of Object.values(bigDirs)) {
    trackTempDir(dir);
    cpSync(source, dir, { recursive: true });
  }
  const samples = new Map<string, number[]>();
  const busy: number[] = [];
  const add = (name: string, value: number): void => void (samples.get(name) ?? samples.set(name, []).get(name))?.push(value);
  const start = async (side: keyof typeof sides, big: boolean): Promise<number> => {
    busy.push((await waitForQuietMachine(0.5, 5000, 250)).busyCores);
    const archiveDir = big ? bigDirs[side] : mkdtempSync(join(tmpdir(), "registry-startup-ab-empty-"));
    try {
      const { probe } = await probeStartup({ archiveDir, timeoutMs: START_TIMEOUT_MS, mainFile: sides[side] });
      return probe.spawnToFirstRpcMs;
    } finally {
      if (!big) {
        removeTempDir(archiveDir);
      }
    }
  };
  for (const side of ["base", "head"] as const) {
    await start(side, false);
    await start(side, true);
  }
  for (let run = 1; run <= options.repeat; run++) {
    // Alternated, and the order flipped every run.
    const order = run % 2 === 0 ? (["base", "head"] as const) : (["head", "base"] as const);
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
  const rows = [...samples.entries()].map(([name, values]) => ({ name, median: median(values), samples: values.map((v) => Number(v.toFixed(1))) }));
  console.log(JSON.stringify({ machine: machineInfo(), date: new Date().toISOString(), othersBusyCoresMedian: median(busy), othersBusyCoresMax: Math.max(...busy), rows }));
  console.log("| case | side | median (ms) | min | max | runs |\n| --- | --- | ---: | ---: | ---: | ---: |");
  for (const row of rows) {
    const [kind, side] = row.name.split(".");
    console.log(`| ${kind} | ${side} | ${row.median?.toFixed(1)} | ${Math.min(...row.samples).toFixed(1)} | ${Math.max(...row.samples).toFixed(1)} | ${row.samples.length} |`);
  }
  console.log(`others' load before each start: median ${median(busy)?.toFixed(2)} cores, max ${Math.max(...busy).toFixed(2)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
