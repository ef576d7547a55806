/** One measurement as printed (a flat JSON line) and the medians over repeats. */
import { median } from "./percentiles.js";

export type ParamValue = string | number | boolean;

export interface BenchRecord {
  readonly scenario: string;
  /** What was measured (sizes, counts, modes): equal params = the same measurement repeated. */
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly metrics: Readonly<Record<string, number | null>>;
}

/** Failure counters: over repeats they are summed, never averaged away. */
const SUMMED_METRICS: ReadonlySet<string> = new Set(["hashMismatches", "errors", "notFound", "generatorFailures"]);

export function recordKey(record: BenchRecord): string {
  const params = Object.keys(record.params)
    .sort()
    .map((name) => `${name}=${String(record.params[name])}`);
  return `${record.scenario} ${params.join(" ")}`;
}

export function toJsonLine(record: BenchRecord, extra: Readonly<Record<string, ParamValue>> = {}): string {
  const metrics: Record<string, number | null> = {};
  for (const [name, value] of Object.entries(record.metrics)) {
    metrics[name] = value === null ? null : round(value);
  }
  return JSON.stringify({ scenario: record.scenario, ...record.params, ...metrics, ...extra });
}

/** Three significant decimals for small numbers, two decimals for large ones. */
export function round(value: number): number {
  if (!Number.isFinite(value)) {
    return value;
  }
  const magnitude = Math.abs(value);
  const digits = magnitude >= 100 ? 1 : magnitude >= 1 ? 2 : 4;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/**
 * Above this many cores used by other processes during a measured window, a
 * run is "disturbed": the machine is shared, and such a run measured the
 * server with less CPU than the machine has.
 */
export const DISTURBED_OTHER_CORES = 0.25;

export interface AggregatedRecord extends BenchRecord {
  readonly runs: number;
  /** Runs measured; `runs` of them were used (the undisturbed ones, if there were any). */
  readonly runsTotal: number;
  /** Smallest and largest value of each metric over the runs used (the run-to-run spread). */
  readonly ranges: Readonly<Record<string, { readonly min: number; readonly max: number }>>;
}

/**
 * Groups equal measurements (in first-seen order) and takes each metric's
 * median (failure counters: their sum over all runs). When some runs of a group
 * were disturbed by other processes and some were not, only the undisturbed
 * ones are used; every run is still printed as its own JSON line.
 */
export function aggregate(records: readonly BenchRecord[]): AggregatedRecord[] {
  const groups = new Map<string, BenchRecord[]>();
  for (const record of records) {
    const key = recordKey(record);
    const group = groups.get(key);
    if (group === undefined) {
      groups.set(key, [record]);
    } else {
      group.push(record);
    }
  }
  return [...groups.values()].map((all) => {
    const first = all[0] as BenchRecord;
    const quiet = all.filter((record) => (record.metrics.otherCpuCores ?? 0) <= DISTURBED_OTHER_CORES);
    const used = quiet.length > 0 ? quiet : all;
    const names = new Set(all.flatMap((record) => Object.keys(record.metrics)));
    const metrics: Record<string, number | null> = {};
    const ranges: Record<string, { min: number; max: number }> = {};
    for (const name of names) {
      const pick = SUMMED_METRICS.has(name) ? all : used;
      const values = pick.map((record) => record.metrics[name]).filter((v): v is number => typeof v === "number");
      metrics[name] = SUMMED_METRICS.has(name) ? values.reduce((a, b) => a + b, 0) : median(values);
      if (values.length > 0) {
        ranges[name] = { min: Math.min(...values), max: Math.max(...values) };
      }
    }
    return { scenario: first.scenario, params: first.params, metrics, runs: used.length, runsTotal: all.length, ranges };
  });
}
