import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const live = new Set<ChildProcess>();

/** Kills every server process still running; test files call it in an `after` hook so none outlives a failure. */
export function killAllServers(): void {
  for (const child of live) {
    child.kill("SIGKILL");
  }
  live.clear();
}

export const MAIN_FILE = fileURLToPath(new URL("../../src/main.js", import.meta.url));

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly logLines: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name) once the process ended. */
  readonly exited: Promise<number | string>;
}

/** Starts the compiled server as its own process (like the bin entry) and waits for its "serving" line. */
export function spawnServer(env: Record<string, string>, timeoutMs = 15_000, mainFile = MAIN_FILE): Promise<ServerProcess> {
  const child = spawn(process.execPath, [mainFile], {
    env: { PATH: process.env.PATH ?? "", COGMENT_MODEL_REGISTRY_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  child.on("exit", () => live.delete(child));
  const logLines: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server did not start in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logLines.push(entry);
      if (entry.msg === "model registry serving") {
        clearTimeout(timer);
        resolve({ child, port: entry.port as number, logLines, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before serving; stderr: ${stderr}`));
    });
  });
}

/** Runs the server expecting it to fail at start; returns its exit code and stderr. */
export function runFailingServer(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN_FILE], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stderr })));
}

/**
 * Starts the server and sends it `signal` as soon as it logs `message`; resolves with its exit
 * code (or signal name) and log lines once it ended (SIGKILL after `timeoutMs`).
 */
export function runServerSignalledAt(
  env: Record<string, string>,
  message: string,
  signal: NodeJS.Signals,
  timeoutMs = 15_000,
): Promise<{ exit: number | string; logLines: Record<string, unknown>[] }> {
  const child = spawn(process.execPath, [MAIN_FILE], {
    env: { PATH: process.env.PATH ?? "", COGMENT_MODEL_REGISTRY_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "ignore"],
  });
  live.add(child);
  const logLines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logLines.push(entry);
      if (entry.msg === message) {
        child.kill(signal);
      }
    } catch {
      // not a log line
    }
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) =>
    child.on("exit", (code, exitSignal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ exit: code ?? exitSignal ?? "unknown", logLines });
    }),
  );
}
