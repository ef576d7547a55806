/** The orchestrator's side of the soak traffic processes (bench/soak-worker.ts). */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { trackChild } from "./cleanup.js";
import { readCpuSeconds } from "./proc-stats.js";
import type { SoakChildMessage, SoakParentMessage, SoakResult, SoakTask, SoakWindow } from "./soak-protocol.js";

const WORKER_FILE = fileURLToPath(new URL("./soak-worker.js", import.meta.url));
const READY_TIMEOUT_MS = 20_000;

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
  const child: ChildProcess = fork(WORKER_FILE, [], {
    execArgv: [],
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { PATH: process.env.PATH ?? "" },
  });
  trackChild(child);
  const pid = child.pid as number;
  let lastCpu = 0;
  const cpuSeconds = (): number => {
    try {
      lastCpu = readCpuSeconds(pid);
    } catch {
      // Gone: keep the last value.
    }
    return lastCpu;
  };
  let onReady: () => void = () => {};
  let onResult: (result: SoakResult) => void = () => {};
  let onFailure: (error: Error) => void = () => {};
  let readyTimer: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    readyTimer = setTimeout(() => reject(new Error(`soak worker ${task.worker} not ready in ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    child.once("exit", (code, signal) => reject(new Error(`soak worker ${task.worker} exited (${code ?? signal}) before ready`)));
  });
  ready.then(
    () => clearTimeout(readyTimer),
    () => clearTimeout(readyTimer),
  );
  // 'close' comes after the IPC channel delivered its last message.
  const result = new Promise<SoakResult>((resolve, reject) => {
    onResult = resolve;
    onFailure = reject;
    child.once("close", (code, signal) => reject(new Error(`soak worker ${task.worker} exited (${code ?? signal}) without a result`)));
  });
  result.catch(() => {});
  child.on("message", (message: SoakChildMessage) => {
    if (message.type === "ready") {
      onReady();
    } else if (message.type === "result") {
      cpuSeconds();
      onResult(message.result);
    } else {
      onFailure(new Error(`soak worker ${task.worker} failed: ${message.message}`));
    }
  });
  const post = (message: SoakParentMessage): void => {
    if (child.connected) {
      child.send(message);
    }
  };
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
    }
  };
  post({ type: "task", task });
  return {
    pid,
    ready,
    start: (window, graceMs) => post({ type: "start", window, graceMs }),
    cpuSeconds,
    kill,
    resultWithin: (timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          kill();
          reject(new Error(`soak worker ${task.worker} gave no result in ${timeoutMs} ms: killed`));
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
