import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

/** The root logger: JSON lines on stdout. Modules take `logger.child({ module })` once. */
export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { service: "cogment-model-registry" }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** The asynchronous stdout destination the server logs to. */
export type StdoutDestination = ReturnType<typeof pino.destination>;

export function stdoutDestination(): StdoutDestination {
  return pino.destination({ fd: 1, sync: false });
}

/**
 * Exits with `code` once every line logged so far is written to stdout (at most `boundMs` later).
 * pino's flush(callback) calls back at once on this destination (no minimum write length) while a
 * write may still be in flight, so a line logged just before process.exit (the last one, "stopped")
 * could be lost. An empty write queues behind what is pending; "drain" follows once all is out.
 */
export function exitOnceLogged(destination: StdoutDestination, code: number, boundMs = 2000): void {
  const exit = (): void => process.exit(code);
  setTimeout(exit, boundMs);
  destination.once("drain", exit);
  destination.once("error", exit);
  destination.write("");
}
