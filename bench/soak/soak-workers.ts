/** The orchestrator's side of the soak traffic processes (bench/soak/soak-worker.ts). */
import { fileURLToPath } from "node:url";
import { forkBenchChild } from "../support/bench-child.js";
import type { SoakParentMessage, SoakResult, SoakTask, SoakWindow } from "./soak-protocol.js";

const WORKER_FILE = fileURLToPath(new URL("./soak-worker.js", import.meta.url));

export interface SoakWorker {
  readonly pid: number;
  readonly ready: Promise<void>;
  start(window: SoakWindow, graceMs: number): void;
  /** The worker's result; rejects if it failed, died, or gave nothing within `timeoutMs` (then it is killed). */
  resultWithin(timeoutMs: number): Promise<SoakResult>;
  /** CPU seconds used so far (the last value read once the process is gone). */
  cpuSeconds(): number;
  kill(): void;
}

export function spawnSoakWorker(task: SoakTask): SoakWorker {
  const child = forkBenchChild<object, SoakResult>(WORKER_FILE, `soak worker ${task.worker}`, {
    type: "task",
    task,
  } satisfies SoakParentMessage);
  const ready = child.ready.then(() => undefined);
  ready.catch(() => {}); // as child.ready: callers may await only the result
  return {
    pid: child.pid,
    ready,
    start: (window, graceMs) => child.post({ type: "start", window, graceMs } satisfies SoakParentMessage),
    cpuSeconds: child.cpuSeconds,
    kill: child.kill,
    resultWithin: child.resultWithin,
  };
}
