import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import type { ServerConfig, ServerOptions } from "../../src/server.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { type Logger, createLogger } from "../../src/logger.js";
import { onCleanup } from "./cleanup.js";
import { RegistryClient } from "./registry-client.js";

export interface TestServer {
  readonly server: RunningServer;
  readonly client: RegistryClient;
  readonly archiveDir: string;
  readonly address: string;
  /** Stops the server (and client) but keeps the archive directory. */
  stop(): Promise<void>;
  /** Stops and removes the archive directory. */
  close(): Promise<void>;
}

/**
 * A temporary archive directory. Given the test, it is removed once the test is over, after the
 * servers and Redis the test starts later have stopped (onCleanup: last in, first out).
 */
export async function makeArchiveDir(t?: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "mr-e2e-"));
  if (t !== undefined) {
    onCleanup(t, () => rm(dir, { recursive: true, force: true }));
  }
  return dir;
}

export const DEFAULT_TEST_CONFIG: Omit<ServerConfig, "archiveDir"> = {
  port: 0,
  cacheMaxBytes: 256 * 1024 * 1024,
  cacheExpirationMs: 3_600_000,
  cachePruneCount: 5,
  sentChunkSize: 2 * 1024 * 1024,
  grpcReflection: false,
  shutdownGraceMs: 2_000,
  http2WindowBytes: 8 * 1024 * 1024,
};

/** A real server on 127.0.0.1 with a real (temp) archive directory. */
export async function startTestServer(
  overrides: Partial<ServerConfig> = {},
  options: Omit<ServerOptions, "host"> = {},
  logger?: Logger,
): Promise<TestServer> {
  const archiveDir = overrides.archiveDir ?? (await makeArchiveDir());
  const log = logger ?? createLogger(process.env.TEST_LOG_LEVEL === undefined ? "silent" : (process.env.TEST_LOG_LEVEL as "info"));
  const server = await startServer({ ...DEFAULT_TEST_CONFIG, ...overrides, archiveDir }, log, { ...options, host: "127.0.0.1" });
  const address = `127.0.0.1:${server.port}`;
  const client = new RegistryClient(address);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      client.close();
      await server.stop();
    }
  };
  return {
    server,
    client,
    archiveDir,
    address,
    stop,
    close: async () => {
      await stop();
      await rm(archiveDir, { recursive: true, force: true });
    },
  };
}
