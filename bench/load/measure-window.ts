/**
 * Runs load generators against a server for one measured window and reads the
 * server's and the generators' CPU time at the window's edges.
 *
 *   ready ─ start ─ warm-up ─┤ windowStart … windowEnd ├─ calls in flight finish ─ results
 *
 * The orchestrator's thread only sleeps, samples /proc and collects results,
 * so its timers fire on time and it adds no load of its own.
 */
import { sharedNow, sleepUntil } from "../support/clock.js";
import { DRAIN_GRACE_MS, type GeneratorResult, type GeneratorTask, type MeasuredWindow } from "./generator-protocol.js";
import { type Generator, killAll, spawnGenerator } from "./generators.js";
import { readMachineBusySeconds } from "../support/proc-stats.js";
import type { BenchServer } from "../support/server-process.js";

export interface WindowPlan {
  readonly warmupMs: number;
  readonly measureMs: number;
}

export interface WindowMeasurement {
  readonly window: MeasuredWindow;
  /** Seconds between the two CPU samples (≈ measureMs). */
  readonly seconds: number;
  readonly results: readonly GeneratorResult[];
  readonly serverCpuSeconds: number;
  /** The window's CPU seconds of each serving process, where the server says (a cluster). */
  readonly serverCpuSecondsByPart: Record<string, number> | undefined;
  readonly generatorCpuSeconds: number;
  /** Busy CPU time of the whole machine in the window (ours and everyone else's). */
  readonly machineBusySeconds: number;
  readonly serverPeakRssBytes: number;
}

const RESULT_TIMEOUT_MS = DRAIN_GRACE_MS + 20_000;

export async function measureWindow(server: BenchServer, tasks: readonly GeneratorTask[], plan: WindowPlan): Promise<WindowMeasurement> {
  const generators: Generator[] = [];
  try {
    for (const task of tasks) {
      generators.push(spawnGenerator(task));
    }
    await Promise.all(generators.map((generator) => generator.ready));
    const windowStart = sharedNow() + plan.warmupMs;
    const window: MeasuredWindow = { windowStart, windowEnd: windowStart + plan.measureMs };
    for (const generator of generators) {
      generator.start(window);
    }
    await sleepUntil(window.windowStart);
    const startedAt = sharedNow();
    const serverCpu0 = server.cpuSeconds();
    const parts0 = server.cpuSecondsByPart?.();
    const generatorCpu0 = sumCpu(generators);
    const machine0 = readMachineBusySeconds();
    await sleepUntil(window.windowEnd);
    const serverCpu1 = server.cpuSeconds();
    const parts1 = server.cpuSecondsByPart?.();
    const generatorCpu1 = sumCpu(generators);
    const machine1 = readMachineBusySeconds();
    const seconds = (sharedNow() - startedAt) / 1000;
    const results = await Promise.all(generators.map((generator) => generator.resultWithin(RESULT_TIMEOUT_MS)));
    return {
      window,
      seconds,
      results,
      serverCpuSeconds: serverCpu1 - serverCpu0,
      serverCpuSecondsByPart:
        parts0 === undefined || parts1 === undefined
          ? undefined
          : Object.fromEntries(Object.entries(parts1).map(([part, seconds]) => [part, seconds - (parts0[part] ?? 0)])),
      generatorCpuSeconds: generatorCpu1 - generatorCpu0,
      machineBusySeconds: machine1 - machine0,
      serverPeakRssBytes: server.memory().peakRssBytes,
    };
  } finally {
    killAll(generators);
  }
}

function sumCpu(generators: readonly Generator[]): number {
  return generators.reduce((total, generator) => total + generator.cpuSeconds(), 0);
}

/** The results of one role, in task order. */
export function resultsOf<R extends GeneratorResult["role"]>(
  results: readonly GeneratorResult[],
  role: R,
): Extract<GeneratorResult, { role: R }>[] {
  return results.filter((result): result is Extract<GeneratorResult, { role: R }> => result.role === role);
}

export function inWindow(window: MeasuredWindow, at: number): boolean {
  return at >= window.windowStart && at < window.windowEnd;
}
