import { ConfigError, configWarnings, describeIgnoredVariable, loadConfig } from "./config.js";
import { createLogger, exitOnceLogged, stdoutDestination } from "./logger.js";
import { missingServerFlags } from "./runtime-flags.js";
import { type RunningServer, startServer } from "./server.js";

/** How long a second signal's exit waits at most for the log lines to reach stdout (a blocked stdout must not hold it). */
const SECOND_SIGNAL_LOG_WAIT_MS = 500;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`cogment-model-registry: invalid configuration\n${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const destination = stdoutDestination();
  const log = createLogger(config.logLevel, destination);
  for (const name of config.ignoredVariables) {
    log.warn({ variable: name, reason: describeIgnoredVariable(name) }, "COGMENT_MODEL_REGISTRY_ variable ignored");
  }
  for (const { variable, value, limit, message } of configWarnings(config)) {
    log.warn({ variable, value, limit }, message);
  }
  const missingFlags = missingServerFlags();
  if (missingFlags.length > 0) {
    log.info({ flags: missingFlags }, "started without the recommended Node.js flags (npm start and the Docker image pass them): expect more CPU per GB served and a larger resident set");
  }
  process.on("unhandledRejection", (reason) => log.error({ err: reason }, "unhandled rejection"));

  let server: RunningServer | undefined = undefined;
  const startStopper = new AbortController();
  let signals = 0;
  const stop = (running: RunningServer, signal: NodeJS.Signals): void => {
    log.info({ signal, graceMs: config.shutdownGraceMs }, "stopping");
    running.stop().then(
      () => {
        log.info("stopped");
        exitOnceLogged(destination, 0);
      },
      (error: unknown) => {
        log.error({ err: error }, "error while stopping");
        exitOnceLogged(destination, 1);
      },
    );
  };
  // Installed before the start, which can take a while with a large archive: a harness that
  // stops the server at once, or an orchestrator stopping it while it lists a large or stalled
  // archive, gets a clean stop at once, not the default action (killed by SIGTERM) nor a wait for
  // the whole listing.
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, "second signal: exiting now");
      // Not process.exit at once: the line (and those before it) may still be on its way to stdout.
      exitOnceLogged(destination, 1, SECOND_SIGNAL_LOG_WAIT_MS);
      return;
    }
    if (server === undefined) {
      log.info({ signal }, "signal during start-up: stopping the start");
      startStopper.abort(new StartStopped(signal));
    } else {
      stop(server, signal);
    }
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  log.info(config.archiveS3 === undefined ? { archiveDir: config.archiveDir } : { archiveUrl: `s3://${config.archiveS3.bucket}/${config.archiveS3.prefix}` }, "opening the archive");
  try {
    server = await startServer(config, log, { signal: startStopper.signal });
  } catch (error) {
    if (error instanceof StartStopped) {
      log.info({ signal: error.signal }, "stopped");
      exitOnceLogged(destination, 0);
      return;
    }
    throw error;
  }
}

/** Why a start was stopped: a signal came before the server was up. */
class StartStopped extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`stopped by ${signal} during start-up`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`cogment-model-registry: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
