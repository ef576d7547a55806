import { performance } from "node:perf_hooks";

/**
 * Milliseconds since the Unix epoch with sub-millisecond resolution.
 *
 * `performance.timeOrigin` is the wall-clock time at which this thread or
 * process started, so `timeOrigin + now()` can be compared between the bench
 * orchestrator, the load generator processes and their threads on one machine
 * (to within the wall clock's agreement with itself, i.e. well under a millisecond).
 */
export function sharedNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves at shared time `at` (at once if it has passed). */
export function sleepUntil(at: number): Promise<void> {
  const delay = at - sharedNow();
  return delay <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, delay));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
