/** The orchestrator's side of the load generator processes (bench/load/load-generator.ts). */
import { fileURLToPath } from "node:url";
import { forkBenchChild } from "../support/bench-child.js";
import type { GeneratorResult, GeneratorTask, MeasuredWindow, ParentMessage } from "./generator-protocol.js";

const GENERATOR_FILE = fileURLToPath(new URL("./load-generator.js", import.meta.url));

export interface Generator {
  readonly pid: number;
  readonly task: GeneratorTask;
  /** Resolves with the port the task listens on (sink, proxy), if any. */
  readonly ready: Promise<number | undefined>;
  /** Resolves with the task's result; rejects if it failed or the process died. */
  readonly result: Promise<GeneratorResult>;
  start(window: MeasuredWindow): void;
  stop(): void;
  cpuSeconds(): number;
  /** Waits for the result up to `timeoutMs`, then kills the process and rejects. */
  resultWithin(timeoutMs: number): Promise<GeneratorResult>;
  kill(): void;
}

export function spawnGenerator(task: GeneratorTask): Generator {
  const child = forkBenchChild<{ readonly port: number | undefined }, GeneratorResult>(GENERATOR_FILE, `${task.role} generator`, {
    type: "task",
    task,
  } satisfies ParentMessage);
  const post = (message: ParentMessage): void => child.post(message);
  const ready = child.ready.then((message) => message.port);
  ready.catch(() => {}); // as child.ready: callers may await only the result
  return {
    pid: child.pid,
    task,
    ready,
    result: child.result,
    start: (window) => post({ type: "start", window }),
    stop: () => post({ type: "stop" }),
    cpuSeconds: child.cpuSeconds,
    kill: child.kill,
    resultWithin: child.resultWithin,
  };
}

/** Kills every generator still running (each by its own pid). */
export function killAll(generators: readonly Generator[]): void {
  for (const generator of generators) {
    generator.kill();
  }
}
