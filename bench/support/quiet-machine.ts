/**
 * The machine is shared: before a scenario, wait (a bounded time) until other
 * processes leave the CPUs mostly idle, so fewer runs are measured disturbed.
 */
import { sleep } from "./clock.js";
import { readMachineBusySeconds } from "./proc-stats.js";

export interface QuietResult {
  readonly waitedMs: number;
  /** Busy cores seen in the last probe. */
  readonly busyCores: number;
}

export async function waitForQuietMachine(maxBusyCores: number, maxWaitMs: number, probeMs = 500): Promise<QuietResult> {
  const started = Date.now();
  let busyCores = Number.POSITIVE_INFINITY;
  while (Date.now() - started <= maxWaitMs) {
    const before = readMachineBusySeconds();
    await sleep(probeMs);
    busyCores = (readMachineBusySeconds() - before) / (probeMs / 1000);
    if (busyCores <= maxBusyCores) {
      break;
    }
  }
  return { waitedMs: Date.now() - started, busyCores };
}
