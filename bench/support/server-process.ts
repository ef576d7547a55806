/**
 * One fresh registry server process per scenario, so its peak RSS (VmHWM) and
 * CPU time belong to that scenario alone. Its archive lives in a temporary
 * directory that is removed when it stops.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Sha256Implementation } from "../../src/data/index.js";
import { SERVER_ENV, SERVER_NODE_FLAGS } from "../../src/runtime-flags.js";
import { removeTempDir, trackChild, trackTempDir } from "./cleanup.js";
import { type ProcessMemory, readCpuSeconds, readMemory } from "./proc-stats.js";

const MAIN_FILE = fileURLToPath(new URL("../../bundle/main.js", import.meta.url));
/** The server's bundle; BENCH_SERVER_MAIN_FILE (read at each start) runs another build's, e.g. the base of an A/B pair, under this bench. */
const mainFile = (): string => process.env.BENCH_SERVER_MAIN_FILE ?? MAIN_FILE;
const LAUNCHER_FILE = fileURLToPath(new URL("./server-launcher.js", import.meta.url));
// BENCH_FLOOR=http2 (investigations): the floor is node:http2 alone, below grpc-js (http2-floor-server.ts).
const FLOOR_FILE = fileURLToPath(
  new URL(process.env.BENCH_FLOOR === "http2" ? "../load/http2-floor-server.js" : "../load/floor-server.js", import.meta.url),
);

export const GIB = 1024 * 1024 * 1024;
export const MIB = 1024 * 1024;

export interface BenchServerOptions {
  /** Version cache budget; 1 GiB by default. */
  readonly cacheMaxBytes?: number;
  /** Runs bench/support/server-launcher.js with this implementation instead of src/main.js. */
  readonly sha256?: Sha256Implementation;
  /** Runs bench/load/floor-server.js (a bare grpc-js server with fixed replies) instead of src/main.js. */
  readonly floor?: boolean;
  /** Uses this archive directory, and leaves it in place at stop (the caller owns it); a fresh temporary one otherwise. */
  readonly archiveDir?: string;
  /** Extra COGMENT_MODEL_REGISTRY_* (or other) variables. */
  readonly env?: Readonly<Record<string, string>>;
  /** Writes a V8 CPU profile of the server into this directory (NODE_OPTIONS for the server only). */
  readonly cpuProfileDir?: string;
  readonly startTimeoutMs?: number;
}

export interface BenchServer {
  readonly pid: number;
  readonly port: number;
  readonly address: string;
  readonly cacheMaxBytes: number;
  /** "main", "floor", or the launcher's SHA-256 implementation. */
  readonly entry: string;
  cpuSeconds(): number;
  /** Where several processes serve (a cluster), the CPU seconds of each, by name. */
  cpuSecondsByPart?(): Record<string, number>;
  memory(): ProcessMemory;
  /** SIGTERM, wait for exit (SIGKILL after a timeout), remove the archive directory. Idempotent. */
  stop(): Promise<void>;
}

export async function startBenchServer(options: BenchServerOptions = {}): Promise<BenchServer> {
  const cacheMaxBytes = options.cacheMaxBytes ?? GIB;
  const ownArchive = options.archiveDir === undefined;
  const archiveDir = options.archiveDir ?? mkdtempSync(join(tmpdir(), "registry-bench-"));
  if (ownArchive) {
    trackTempDir(archiveDir);
  }
  const removeArchive = (): void => {
    if (ownArchive) {
      removeTempDir(archiveDir);
    }
  };
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    // As in production (npm start, the Docker image), unless BENCH_SERVER_ENV (below) says otherwise.
    ...SERVER_ENV,
    COGMENT_MODEL_REGISTRY_PORT: "0",
    COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: archiveDir,
    COGMENT_MODEL_REGISTRY_VERSION_CACHE_MAX_SIZE: String(cacheMaxBytes),
    // "info" and not "warn": the "model registry serving" line that carries the bound port is an
    // info line. The server logs nothing at info per request (only start, stop and failed
    // VersionUpdate subscribers), so this costs nothing on the measured path.
    COGMENT_MODEL_REGISTRY_LOG_LEVEL: "info",
    COGMENT_MODEL_REGISTRY_SHUTDOWN_GRACE_PERIOD: "2s",
    ...options.env,
    // For investigations: extra environment for the server only, e.g. "MALLOC_ARENA_MAX=2".
    ...Object.fromEntries(
      (process.env.BENCH_SERVER_ENV ?? "")
        .split(" ")
        .filter((pair) => pair.includes("="))
        .map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]),
    ),
  };
  if (options.sha256 !== undefined) {
    env.BENCH_SHA256 = options.sha256;
  }
  if (options.cpuProfileDir !== undefined) {
    env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${options.cpuProfileDir}`;
  }
  const file = options.floor === true ? FLOOR_FILE : options.sha256 === undefined ? mainFile() : LAUNCHER_FILE;
  // For investigations: Node/V8 flags for the server only (e.g. "--single-threaded-gc --trace-gc";
  // "none" for none at all), and a file that gets its stdout.
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter((arg) => arg !== "" && arg !== "none") ?? [];
  // The server runs as in production (SERVER_NODE_FLAGS), unless BENCH_SERVER_NODE_ARGS says otherwise.
  const child = spawn(process.execPath, [...(nodeArgs.length > 0 ? nodeArgs : SERVER_NODE_FLAGS), file], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdoutCopy = process.env.BENCH_SERVER_STDOUT;
  if (stdoutCopy !== undefined) {
    child.stdout.on("data", (data: Buffer) => appendFileSync(stdoutCopy, data));
  }
  trackChild(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let port: number;
  try {
    port = await waitForServing(child, options.startTimeoutMs ?? 15_000);
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    removeArchive();
    throw error;
  }
  const pid = child.pid as number;
  let stopped: Promise<void> | undefined;
  return {
    pid,
    port,
    address: `127.0.0.1:${port}`,
    cacheMaxBytes,
    entry: options.floor === true ? "floor" : (options.sha256 ?? "main"),
    cpuSeconds: () => readCpuSeconds(pid),
    memory: () => readMemory(pid),
    stop: () => {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(timer);
        }
        removeArchive();
      })();
      return stopped;
    },
  };
}

/** Resolves with the port of the "model registry serving" JSON line; keeps draining the output afterwards. */
function waitForServing(child: ChildProcess, timeoutMs: number): Promise<number> {
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr = (stderr + data.toString()).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      let entry: { msg?: unknown; port?: unknown; level?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === "model registry serving" && typeof entry.port === "number") {
        clearTimeout(timer);
        resolve(entry.port);
      } else if (typeof entry.level === "number" && entry.level >= 40) {
        process.stderr.write(`[server] ${line}\n`);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before serving; stderr: ${stderr}`));
    });
  });
}
