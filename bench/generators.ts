/** The orchestrator's side of the load generator processes (bench/load-generator.ts). */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { trackChild } from "./cleanup.js";
import type { ChildMessage, GeneratorResult, GeneratorTask, MeasuredWindow, ParentMessage } from "./generator-protocol.js";
import { readCpuSeconds } from "./proc-stats.js";

const GENERATOR_FILE = fileURLToPath(new URL("./load-generator.js", import.meta.url));
const READY_TIMEOUT_MS = 20_000;

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
  const child: ChildProcess = fork(GENERATOR_FILE, [], {
    execArgv: [],
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { PATH: process.env.PATH ?? "" },
  });
  trackChild(child);
  const pid = child.pid as number;
  let lastCpu = 0;
  let onReady: (port: number | undefined) => void = () => {};
  let onResult: (result: GeneratorResult) => void = () => {};
  let onFailure: (error: Error) => void = () => {};
  let readyTimer: NodeJS.Timeout | undefined;
  const ready = new Promise<number | undefined>((resolve, reject) => {
    onReady = resolve;
    readyTimer = setTimeout(() => reject(new Error(`${task.role} generator not ready in ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    child.once("exit", (code, signal) => reject(new Error(`${task.role} generator exited (${code ?? signal}) before ready`)));
  });
  // 'close' (not 'exit') comes after the IPC channel delivered its last message.
  const result = new Promise<GeneratorResult>((resolve, reject) => {
    onResult = resolve;
    onFailure = reject;
    child.once("close", (code, signal) => reject(new Error(`${task.role} generator exited (${code ?? signal}) without a result`)));
  });
  // Callers may await only one of the two; keep the other from being an unhandled rejection.
  ready.then(
    () => clearTimeout(readyTimer),
    () => clearTimeout(readyTimer),
  );
  result.catch(() => {});
  child.on("message", (message: ChildMessage) => {
    if (message.type === "ready") {
      onReady(message.port);
    } else if (message.type === "result") {
      lastCpu = safeCpu(pid, lastCpu);
      onResult(message.result);
    } else {
      onFailure(new Error(`${task.role} generator failed: ${message.message}`));
    }
  });
  const post = (message: ParentMessage): void => {
    if (child.connected) {
      child.send(message);
    }
  };
  post({ type: "task", task });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
    }
  };
  return {
    pid,
    task,
    ready,
    result,
    start: (window) => post({ type: "start", window }),
    stop: () => post({ type: "stop" }),
    cpuSeconds: () => (lastCpu = safeCpu(pid, lastCpu)),
    kill,
    resultWithin: (timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          kill();
          reject(new Error(`${task.role} generator gave no result in ${timeoutMs} ms: killed`));
        }, timeoutMs);
        result.then(
          (value) => {
            clearTimeout(timer);
            resolve(value);
          },
          (error: unknown) => {
            clearTimeout(timer);
            reject(error instanceof Error ? error : new Error(String(error)));
          },
        );
      }),
  };
}

/** The last CPU time read, kept once the process is gone. */
function safeCpu(pid: number, last: number): number {
  try {
    return readCpuSeconds(pid);
  } catch {
    return last;
  }
}

/** Kills every generator still running (each by its own pid). */
export function killAll(generators: readonly Generator[]): void {
  for (const generator of generators) {
    generator.kill();
  }
}
