/*
 * Starts a real `redis-server` (Debian's package; .ci/run installs it) as its own process group on a
 * free loopback port, with its data in a fresh temp directory. It can be stopped (SIGTERM or a crash
 * by SIGKILL) and started again on the same port and directory, for restart and AOF tests. Every server
 * still running is killed by process group at process exit and by killAllRedisServers (call it in an
 * `after` hook), so none outlives a failed test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, createConnection } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { liveProcessGroups, signalGroup } from "./process-groups.js";
import { onCleanup } from "./cleanup.js";

export const REDIS_SERVER_BINARY = process.env.REDIS_SERVER_BINARY ?? "redis-server";

const { live, killAll } = liveProcessGroups();
const killGroup = signalGroup;

/** Kills every test Redis server still running. */
export function killAllRedisServers(): void {
  killAll();
}

export interface RedisServerOptions {
  /** AOF with `appendfsync always`: every acknowledged write is on disk. Off: no persistence at all. */
  readonly appendOnly?: boolean;
  /** More `--name value` arguments, e.g. ["--maxmemory", "10mb"]. */
  readonly extraArgs?: readonly string[];
  readonly startTimeoutMs?: number;
  /** The loopback port to listen on (default: a free one), e.g. one a server was told to use before Redis runs. */
  readonly port?: number;
}

export interface RedisTestServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** Redis's working directory (its AOF files). */
  readonly directory: string;
  /** Whether the process is running now. */
  running(): boolean;
  /** The process id while it runs (benches read its CPU time). */
  pid(): number | undefined;
  /** Stops the server: SIGTERM lets it shut down cleanly, SIGKILL is a crash. Keeps the directory. */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** SIGSTOP/SIGCONT: a Redis that accepts connections but never answers (a hung or partitioned server). */
  pause(): void;
  resume(): void;
  /** Starts it again on the same port and directory (after stop). */
  start(): Promise<void>;
  /** Kills the server and removes its directory. */
  close(): Promise<void>;
}

/** A TCP port nobody listens on right now (the kernel's pick, then released). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Resolves once a PING on a fresh connection gets +PONG; rejects after `timeoutMs` or when `failed` says so. */
async function waitForPong(port: number, timeoutMs: number, failed: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failure = failed();
    if (failure !== undefined) {
      throw new Error(failure);
    }
    if (await pingOnce(port)) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    let reply = "";
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (data: Buffer) => {
      reply += data.toString();
      if (reply.includes("\r\n")) {
        // "-LOADING ..." while it reads its AOF: not ready yet.
        done(reply.startsWith("+PONG"));
      }
    });
  });
}

/**
 * Starts redis-server on a free loopback port; with `t`, it is closed when the test ends (passed or
 * failed).
 */
export async function startRedisServer(t?: TestContext, options: RedisServerOptions = {}): Promise<RedisTestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), "mr-redis-"));
  const port = options.port ?? (await freeLoopbackPort());
  const persistence = options.appendOnly === true ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"];
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", directory,
    "--save", "",
    ...persistence,
    "--daemonize", "no",
    "--protected-mode", "yes",
    "--loglevel", "warning",
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const started = spawn(REDIS_SERVER_BINARY, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    child = started;
    live.add(started);
    let output = "";
    const collect = (data: Buffer): void => {
      output = (output + data.toString()).slice(-4000);
    };
    started.stdout?.on("data", collect);
    started.stderr?.on("data", collect);
    let spawnError: Error | undefined;
    started.once("error", (error) => (spawnError = error));
    exited = new Promise((resolve) => started.once("close", () => resolve()));
    started.once("exit", () => live.delete(started));
    try {
      await waitForPong(port, options.startTimeoutMs ?? 30_000, () => {
        if (spawnError !== undefined) {
          return `cannot run ${REDIS_SERVER_BINARY} (install Debian's redis-server): ${spawnError.message}`;
        }
        if (started.exitCode !== null || started.signalCode !== null) {
          return `redis-server exited with ${started.exitCode ?? started.signalCode}: ${output}`;
        }
        return undefined;
      });
    } catch (error) {
      killGroup(started, "SIGKILL");
      throw error;
    }
  };

  const stop = async (signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> => {
    if (child !== undefined) {
      killGroup(child, signal);
      await exited;
      child = undefined;
    }
  };

  const server: RedisTestServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    directory,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    pid: () => child?.pid,
    stop,
    pause: () => child !== undefined && killGroup(child, "SIGSTOP"),
    resume: () => child !== undefined && killGroup(child, "SIGCONT"),
    start: launch,
    close: async () => {
      await stop("SIGKILL");
      await rm(directory, { recursive: true, force: true });
    },
  };
  try {
    await launch();
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  if (t !== undefined) {
    onCleanup(t, () => server.close());
  }
  return server;
}
