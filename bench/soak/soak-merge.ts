/** Adds up the results of the soak traffic processes. */
import { type LatencySummary, summarize } from "../support/percentiles.js";
import type { Ack, Failure, LatestFetch, SoakResult } from "./soak-protocol.js";

export interface MergedResults {
  readonly outcomes: Record<string, Record<string, number>>;
  readonly expected: Record<string, number>;
  readonly ops: Record<string, number>;
  readonly failureCount: number;
  readonly failures: readonly Failure[];
  readonly acks: readonly Ack[];
  readonly latestFetches: readonly LatestFetch[];
  readonly latencyMs: Record<string, LatencySummary>;
  readonly bytesPublished: number;
  readonly bytesFetched: number;
  readonly abandoned: number;
  readonly calls: number;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [name, count] of Object.entries(from)) {
    into[name] = (into[name] ?? 0) + count;
  }
}

export function mergeResults(results: readonly SoakResult[]): MergedResults {
  const outcomes: Record<string, Record<string, number>> = {};
  const expected: Record<string, number> = {};
  const ops: Record<string, number> = {};
  const samples: Record<string, number[]> = {};
  const failures: Failure[] = [];
  let calls = 0;
  for (const result of results) {
    for (const [method, byCode] of Object.entries(result.outcomes)) {
      addCounts((outcomes[method] ??= {}), byCode);
      calls += Object.values(byCode).reduce((a, b) => a + b, 0);
    }
    addCounts(expected, result.expected);
    addCounts(ops, result.ops);
    failures.push(...result.failures);
    for (const [method, values] of Object.entries(result.latencySamples)) {
      (samples[method] ??= []).push(...values);
    }
  }
  const latencyMs: Record<string, LatencySummary> = {};
  for (const [method, values] of Object.entries(samples)) {
    latencyMs[method] = summarize(values);
  }
  return {
    outcomes,
    expected,
    ops,
    failureCount: results.reduce((sum, r) => sum + r.failureCount, 0),
    failures: failures.slice(0, 40),
    acks: results.flatMap((r) => r.acks),
    latestFetches: results.flatMap((r) => r.latestFetches),
    latencyMs,
    bytesPublished: results.reduce((sum, r) => sum + r.bytesPublished, 0),
    bytesFetched: results.reduce((sum, r) => sum + r.bytesFetched, 0),
    abandoned: results.reduce((sum, r) => sum + r.abandoned, 0),
    calls,
  };
}
