/**
 * One startup measurement: spawn the server on a port chosen beforehand, poll
 * it with Version calls from the moment of the spawn (short reconnect backoff,
 * a few ms between attempts) and time the first call that succeeds. The
 * "serving" log line is timed too, for comparison. Optionally, the first (and
 * a second) RetrieveVersionInfos of one model: versions are read from disk
 * lazily, on a model's first use.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SERVER_ENV, SERVER_NODE_FLAGS } from "../../src/runtime-flags.js";
import { RegistryClient, type WireVersionInfo } from "../../test/support/registry-client.js";
import { trackChild } from "../support/cleanup.js";
import { sleep } from "../support/clock.js";
import { readMemory } from "../support/proc-stats.js";
import { MIB } from "../support/server-process.js";

const MAIN_FILE = fileURLToPath(new URL("../../bundle/main.js", import.meta.url));
/** tsc's output, unbundled: how the server started before the bundle (a reference in the startup bench). */
export const UNBUNDLED_MAIN_FILE = fileURLToPath(new URL("../../src/main.js", import.meta.url));
const FLOOR_FILE = fileURLToPath(new URL("../load/floor-server.js", import.meta.url));
const POLL_GAP_MS = 2;
const POLL_CALL_DEADLINE_MS = 1000;
const STOP_TIMEOUT_MS = 10_000;

export interface StartupProbeOptions {
  readonly archiveDir: string;
  /** Time out (and fail) if no call succeeded by then. */
  readonly timeoutMs: number;
  /** Also time the first and second RetrieveVersionInfos (all versions) of this model. */
  readonly modelId?: string;
  /** bench/load/floor-server.js (a bare grpc-js server, the same proto, fixed replies) instead of the server. */
  readonly floor?: boolean;
  /** The server's main file; the production bundle (dist/bundle/main.js) by default. */
  readonly mainFile?: string;
  /**
   * After the first call, also wait (up to the timeout) for the "model registry serving" line, which
   * comes once the model listing is done, so spawnToServingLogMs is known even when it comes later.
   */
  readonly awaitServingLog?: boolean;
}

export interface StartupProbe {
  readonly spawnToFirstRpcMs: number;
  readonly spawnToServingLogMs: number | null;
  readonly attempts: number;
  readonly rssAtFirstRpcMiB: number | null;
  /**
   * CPU time of the server's main thread from its start to the first served call (ms, from
   * /proc/<pid>/task/<pid>/schedstat): less swayed than the wall time by the other work on a shared
   * machine (a start that waits for a core does not count it).
   */
  readonly mainThreadCpuMsAtFirstRpc: number | null;
  readonly firstVersionInfosMs: number | null;
  readonly secondVersionInfosMs: number | null;
  /** What the first RetrieveVersionInfos returned (for checking), if asked. */
  readonly versionInfos: readonly WireVersionInfo[] | null;
  /** Server log lines at warn level or above (e.g. archived versions skipped). */
  readonly warnings: readonly string[];
  readonly client: RegistryClient;
}

/** A port free right now on 127.0.0.1 (the server binds it a few ms later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port"))));
    });
  });
}

function callVersion(client: RegistryClient): Promise<boolean> {
  return new Promise((resolve) => {
    const method = client.raw.Version as (
      request: object,
      options: { deadline: Date },
      callback: (error: Error | null) => void,
    ) => unknown;
    method.call(client.raw, {}, { deadline: new Date(Date.now() + POLL_CALL_DEADLINE_MS) }, (error) => resolve(error === null));
  });
}

/**
 * Starts the server, measures, then stops it (SIGTERM, SIGKILL after a timeout)
 * before returning; `body` runs while it is still up, with its client.
 */
export async function probeStartup<T>(
  options: StartupProbeOptions,
  body: (probe: StartupProbe) => Promise<T> = async () => undefined as T,
): Promise<{ probe: StartupProbe; extra: T }> {
  const port = await freePort();
  const client = new RegistryClient(`127.0.0.1:${port}`, {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.initial_reconnect_backoff_ms": 2,
    "grpc.max_reconnect_backoff_ms": 5,
  });
  const env = {
    PATH: process.env.PATH ?? "",
    // As in production (npm start, the Docker image, the bin entry): MALLOC_ARENA_MAX=2.
    ...SERVER_ENV,
    COGMENT_MODEL_REGISTRY_PORT: String(port),
    COGMENT_MODEL_REGISTRY_ARCHIVE_DIR: options.archiveDir,
    COGMENT_MODEL_REGISTRY_LOG_LEVEL: "info",
    COGMENT_MODEL_REGISTRY_SHUTDOWN_GRACE_PERIOD: "1s",
  };
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, options.floor === true ? FLOOR_FILE : (options.mainFile ?? MAIN_FILE)], { env, stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let servingLogAt: number | null = null;
  const warnings: string[] = [];
  let stderr = "";
  child.stderr.on("data", (data: Buffer) => (stderr = (stderr + data.toString()).slice(-2000)));
  createInterface({ input: child.stdout }).on("line", (line) => {
    let entry: { msg?: unknown; level?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    if (entry.msg === "model registry serving") {
      servingLogAt ??= performance.now();
    } else if (typeof entry.level === "number" && entry.level >= 40) {
      warnings.push(line.slice(0, 300));
    }
  });
  try {
    let attempts = 0;
    let firstRpcAt: number | undefined;
    while (firstRpcAt === undefined) {
      if (performance.now() - spawnedAt > options.timeoutMs) {
        throw new Error(`no successful call within ${options.timeoutMs} ms (${attempts} attempts); stderr: ${stderr}`);
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before serving; stderr: ${stderr}`);
      }
      attempts++;
      if (await callVersion(client)) {
        firstRpcAt = performance.now();
      } else {
        await sleep(POLL_GAP_MS);
      }
    }
    let rssAtFirstRpcMiB: number | null = null;
    const mainThreadCpuMsAtFirstRpc = readMainThreadCpuMs(child.pid as number);
    try {
      rssAtFirstRpcMiB = readMemory(child.pid as number).rssBytes / MIB;
    } catch {
      // Gone: reported as null.
    }
    while (options.awaitServingLog === true && servingLogAt === null && child.exitCode === null && performance.now() - spawnedAt < options.timeoutMs) {
      await sleep(POLL_GAP_MS);
    }
    let firstVersionInfosMs: number | null = null;
    let secondVersionInfosMs: number | null = null;
    let versionInfos: WireVersionInfo[] | null = null;
    if (options.modelId !== undefined) {
      const first = performance.now();
      versionInfos = (await client.retrieveVersionInfos({ model_id: options.modelId })).version_infos;
      firstVersionInfosMs = performance.now() - first;
      const second = performance.now();
      await client.retrieveVersionInfos({ model_id: options.modelId });
      secondVersionInfosMs = performance.now() - second;
    }
    const probe: StartupProbe = {
      spawnToFirstRpcMs: firstRpcAt - spawnedAt,
      spawnToServingLogMs: servingLogAt === null ? null : (servingLogAt as number) - spawnedAt,
      attempts,
      rssAtFirstRpcMiB,
      mainThreadCpuMsAtFirstRpc,
      firstVersionInfosMs,
      secondVersionInfosMs,
      versionInfos,
      warnings,
      client,
    };
    const extra = await body(probe);
    return { probe, extra };
  } finally {
    client.close();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
  }
}

/** CPU time run by a process's main thread so far (ms); null once it is gone. */
function readMainThreadCpuMs(pid: number): number | null {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
  } catch {
    return null;
  }
}

/** Spawn to exit of `node -e 0`: the floor under any Node server's startup on this machine. */
export async function nodeBaselineMs(): Promise<number> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, ["-e", "0"], { stdio: "ignore", env: { PATH: process.env.PATH ?? "" } });
  trackChild(child);
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`node -e 0 exited with ${code}`))));
  });
  return performance.now() - startedAt;
}
