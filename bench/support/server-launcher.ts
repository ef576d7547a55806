/**
 * Starts the registry like src/main.ts does, but lets the bench choose the
 * SHA-256 implementation of the worker pool (BENCH_SHA256=node-crypto|hash-wasm),
 * so end-to-end publish throughput can be compared between the two.
 * startServer logs the same "model registry serving" line (with the port) as main.js.
 */
import { loadConfig } from "../../src/config.js";
import { SHA256_IMPLEMENTATIONS, type Sha256Implementation } from "../../src/data/index.js";
import { createLogger } from "../../src/logger.js";
import { startServer } from "../../src/server.js";

function sha256FromEnv(value: string | undefined): Sha256Implementation {
  const found = SHA256_IMPLEMENTATIONS.find((name) => name === (value ?? "node-crypto"));
  if (found === undefined) {
    throw new Error(`BENCH_SHA256=${JSON.stringify(value)}: expected one of ${SHA256_IMPLEMENTATIONS.join(", ")}`);
  }
  return found;
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel);
  const server = await startServer(config, log, { sha256: sha256FromEnv(process.env.BENCH_SHA256) });
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) {
      process.exit(1);
    }
    stopping = true;
    server.stop().then(
      () => log.flush(() => process.exit(0)),
      () => log.flush(() => process.exit(1)),
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`server-launcher: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
