/**
 * A benchmark child process (load generator, soak worker) driven over IPC: the parent sends
 * messages, the child answers "ready" once, then "result" or "failed". forkBenchChild is the
 * parent's side, sendToParent the child's.
 */
import { type ChildProcess, fork } from "node:child_process";
import { trackChild } from "./cleanup.js";
import { readCpuSeconds } from "./proc-stats.js";

const READY_TIMEOUT_MS = 20_000;

/** What every such child sends. */
export type BenchChildMessage<Ready, Result> =
  | ({ readonly type: "ready" } & Ready)
  | { readonly type: "result"; readonly result: Result }
  | { readonly type: "failed" | "error"; readonly message: string };

export interface BenchChild<Ready, Result> {
  readonly pid: number;
  /** The ready message; rejects if the child died first or took longer than 20 s. */
  readonly ready: Promise<Ready>;
  /** Rejects if the child failed or died without a result. */
  readonly result: Promise<Result>;
  post(message: object): void;
  /** CPU seconds used so far (the last value read once the process is gone). */
  cpuSeconds(): number;
  /** Waits for the result up to `timeoutMs`, then kills the process and rejects. */
  resultWithin(timeoutMs: number): Promise<Result>;
  kill(): void;
}

/** The child's side: sends one message to the parent; resolves once sent (or at once without a parent). */
export function sendToParent(message: object): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

/** Forks `file` (no exec flags, PATH only) and sends it `firstMessage`; `name` appears in errors. */
export function forkBenchChild<Ready, Result>(file: string, name: string, firstMessage: object): BenchChild<Ready, Result> {
  const child: ChildProcess = fork(file, [], {
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
  let onReady: (ready: Ready) => void = () => {};
  let onResult: (result: Result) => void = () => {};
  let onFailure: (error: Error) => void = () => {};
  let readyTimer: NodeJS.Timeout | undefined;
  const ready = new Promise<Ready>((resolve, reject) => {
    onReady = resolve;
    readyTimer = setTimeout(() => reject(new Error(`${name} not ready in ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    child.once("exit", (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before ready`)));
  });
  // 'close' (not 'exit') comes after the IPC channel delivered its last message.
  const result = new Promise<Result>((resolve, reject) => {
    onResult = resolve;
    onFailure = reject;
    child.once("close", (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) without a result`)));
  });
  // Callers may await only one of the two; keep the other from being an unhandled rejection.
  ready.then(
    () => clearTimeout(readyTimer),
    () => clearTimeout(readyTimer),
  );
  result.catch(() => {});
  child.on("message", (message: BenchChildMessage<Ready, Result>) => {
    if (message.type === "ready") {
      onReady(message);
    } else if (message.type === "result") {
      cpuSeconds();
      onResult(message.result);
    } else {
      onFailure(new Error(`${name} failed: ${message.message}`));
    }
  });
  const post = (message: object): void => {
    if (child.connected) {
      child.send(message);
    }
  };
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
    }
  };
  post(firstMessage);
  return {
    pid,
    ready,
    result,
    post,
    cpuSeconds,
    kill,
    resultWithin: (timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          kill();
          reject(new Error(`${name} gave no result in ${timeoutMs} ms: killed`));
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
