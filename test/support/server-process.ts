import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { rm } from "node:fs/promises";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { makeArchiveDir } from "./test-server.js";
import { onCleanup } from "./cleanup.js";
import { killAtExit } from "./process-groups.js";

const live = new Set<ChildProcess>();

/**
 * Kills every server process still running; test files call it in an `after` hook so none outlives a
 * failure, and it runs at this process's exit too (a file whose hooks never ran), or when a signal
 * ends it (process-groups.ts: killAtExit).
 */
export function killAllServers(): void {
  for (const child of live) {
    child.kill("SIGKILL");
  }
  live.clear();
}
killAtExit(killAllServers);

/**
 * Resolves with the exit code (or signal name) once the process ended and its stdout and stderr are
 * read to the end ("close", not "exit": at "exit" its last log lines may not have been read yet).
 */
function whenClosed(child: ChildProcess): Promise<number | string> {
  child.once("exit", () => live.delete(child));
  return new Promise((resolve) => child.once("close", (code, signal) => resolve(code ?? signal ?? "unknown")));
}

/** Kills every server process still running and waits until each has exited. */
async function stopAllServers(): Promise<void> {
  const exits = [...live].map((child) => (child.exitCode !== null || child.signalCode !== null ? undefined : once(child, "exit")));
  killAllServers();
  await Promise.all(exits);
}

/**
 * Removes `archiveDir` once the test is over and every server this process started has exited: hooks
 * run in the order registered, so a server's own teardown may come later, and none may still write.
 */
export function removeArchiveAfterServers(t: TestContext, archiveDir: string): void {
  onCleanup(t, async () => {
    await stopAllServers();
    await rm(archiveDir, { recursive: true, force: true });
  });
}

/** What production runs (npm start, the Docker image, the bin entry): the bundle `npm run build` writes (scripts/bundle.ts). */
export const MAIN_FILE = fileURLToPath(new URL("../../bundle/main.js", import.meta.url));

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly logLines: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name) once the process ended and every log line it wrote is in `logLines`. */
  readonly exited: Promise<number | string>;
}

interface LoggingProcess {
  readonly child: ChildProcess;
  readonly logLines: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name) once the process ended and its output is read to the end. */
  readonly exited: Promise<number | string>;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

/**
 * Starts the compiled server (killed by killAllServers if still running), collecting its JSON log
 * lines; `onEntry` sees each one as it arrives.
 */
function spawnLogging(
  env: Record<string, string>,
  mainFile: string,
  onEntry: (entry: Record<string, unknown>) => void,
): LoggingProcess {
  const child = spawn(process.execPath, [mainFile], {
    env: { PATH: process.env.PATH ?? "", COGMENT_MODEL_REGISTRY_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  const exited = whenClosed(child);
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => (stderr += data.toString()));
  const logLines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not a log line
    }
    logLines.push(entry);
    onEntry(entry);
  });
  return { child, logLines, exited, stderr: () => stderr };
}

/**
 * The log lines `select` picks, once there are at least `count` of them or `timeoutMs` passed: lines
 * come through the server's stdout pipe, which may lag behind the reply of the call that logged them.
 * The test asserts on what it gets (exact lines, exact count).
 */
export async function logLinesWhen(
  server: { readonly logLines: readonly Record<string, unknown>[] },
  select: (line: Record<string, unknown>) => boolean,
  count = 1,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = server.logLines.filter(select);
    if (lines.length >= count || Date.now() >= deadline) {
      return lines;
    }
    await sleep(20);
  }
}

/** Starts the compiled server as its own process (like the bin entry) and waits for its "serving" line. */
export function spawnServer(env: Record<string, string>, timeoutMs = 30_000, mainFile = MAIN_FILE): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined = undefined;
    const server = spawnLogging(env, mainFile, (entry) => {
      if (entry.msg === "model registry serving") {
        clearTimeout(timer);
        resolve({ child: server.child, port: entry.port as number, logLines: server.logLines, exited: server.exited });
      }
    });
    timer = setTimeout(() => {
      server.child.kill("SIGKILL");
      reject(new Error(`server did not start in ${timeoutMs} ms; stderr: ${server.stderr()}`));
    }, timeoutMs);
    void server.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before serving; stderr: ${server.stderr()}`));
    });
  });
}

/** A server on a fresh temp archive directory, removed after the test (as is the process, by killAllServers). */
export async function spawnServerOnTempArchive(t: TestContext, env: Record<string, string> = {}): Promise<ServerProcess & { archiveDir: string }> {
  const archiveDir = await makeArchiveDir();
  const server = await spawnServer({ COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir, ...env }).catch(async (error: unknown) => {
    await rm(archiveDir, { recursive: true, force: true });
    throw error;
  });
  // The archive goes only once this server is gone (a test's own stop, registered later, may not have run).
  onCleanup(t, async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL");
    }
    await server.exited;
    await rm(archiveDir, { recursive: true, force: true });
  });
  return { ...server, archiveDir };
}

/**
 * Runs the server expecting it to fail at start; returns its exit code and all of its stderr. One
 * that runs on instead is killed after `timeoutMs` (code null, a note in stderr), so none hangs a test.
 */
export function runFailingServer(env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN_FILE], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  live.add(child);
  let stderr = "";
  child.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
  const timer = setTimeout(() => {
    stderr += `\n[test harness: still running after ${timeoutMs} ms, killed]`;
    child.kill("SIGKILL");
  }, timeoutMs);
  const closed = whenClosed(child);
  return closed.then(() => {
    clearTimeout(timer);
    return { code: child.exitCode, stderr };
  });
}

/**
 * Starts the server without waiting for its "serving" line (killed by killAllServers if still
 * running): for starts that do not get that far.
 */
export function spawnServerUnwaited(env: Record<string, string>): LoggingProcess {
  return spawnLogging(env, MAIN_FILE, () => {});
}

/**
 * Starts the server and sends it `signal` as soon as it logs `message`; resolves with its exit
 * code (or signal name) and log lines once it ended (SIGKILL after `timeoutMs`).
 */
export async function runServerSignalledAt(
  env: Record<string, string>,
  message: string,
  signal: NodeJS.Signals,
  timeoutMs = 60_000,
): Promise<{ exit: number | string; logLines: Record<string, unknown>[] }> {
  const { child, logLines, exited } = spawnLogging(env, MAIN_FILE, (entry) => {
    if (entry.msg === message) {
      child.kill(signal);
    }
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const exit = await exited;
  clearTimeout(timer);
  return { exit, logLines };
}
